"""ocsp_fetch: the host-side HTTP client and its failure classes, against loopback servers."""
from __future__ import annotations

import base64
import errno
import socket
import ssl
import threading
import time

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import fetch as ocsp_fetch


class RawServer:
    """A loopback TCP server whose reply is scripted per test; records what it received."""

    def __init__(self, reply, family=socket.AF_INET, host="127.0.0.1", greet=b""):
        self.reply = reply
        self.greet = greet
        self.received: list[bytes] = []
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.release = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn = self.sock.accept()[0]
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        conn.settimeout(5)
        data = b""
        try:
            if self.greet:  # speak first, as a plain-HTTP server answering a TLS hello does
                conn.sendall(self.greet)
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, dummy, body = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    while len(body) < int(line.split(b":")[1]):
                        body += conn.recv(65536)
            self.received.append(head + b"\r\n\r\n" + body)
            self.reply(conn, self)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stopped.set()
        self.release.set()
        self.sock.close()


def http(status="200 OK", body=b"\x30\x03\x0a\x01\x03", ctype="application/ocsp-response", extra=""):
    def reply(conn, _server):
        conn.sendall(f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
                     .encode() + body)
    return reply


def hang(conn, server):
    server.release.wait(30)


@pytest.fixture
def serve():
    servers = []

    def start(reply, **kwargs):
        server = RawServer(reply, **kwargs)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def url(server, path="/"):
    return f"http://127.0.0.1:{server.port}{path}"


def test_post_returns_raw_bytes_and_timings(serve):
    server = serve(http())
    result = ocsp_fetch.fetch(url(server, "/ocsp"), b"REQ", timeout=5)
    assert result["failure"] is None, result["detail"]
    assert base64.b64decode(result["response"]) == b"\x30\x03\x0a\x01\x03"
    assert result["http_status"] == 200 and result["content_type"] == "application/ocsp-response"
    assert result["address"] == "127.0.0.1" and result["port"] == server.port
    assert result["latency_ms"] >= 0 and set(result["timings"]) == {"dns_ms", "connect_ms", "exchange_ms"}
    request = server.received[0]
    assert request.startswith(b"POST /ocsp HTTP/1.0\r\n")
    assert b"Content-Type: application/ocsp-request" in request
    assert request.endswith(b"\r\n\r\nREQ")
    assert f"Host: 127.0.0.1:{server.port}".encode() in request


def test_get_appends_base64_request(serve):
    server = serve(http())
    body = bytes(range(250, 256)) * 3  # base64 with + and /
    result = ocsp_fetch.fetch(url(server, "/ocsp/"), body, method="GET")
    assert result["failure"] is None
    line = server.received[0].split(b"\r\n")[0].decode()
    assert line.startswith("GET /ocsp/") and line.endswith(" HTTP/1.0")
    encoded = line.split(" ")[1].rsplit("/", 1)[1]
    import urllib.parse
    assert base64.b64decode(urllib.parse.unquote(encoded)) == body
    assert "+" not in encoded and "/" not in encoded


def test_plain_get_without_body(serve):
    server = serve(http(body=b"CERT"))
    result = ocsp_fetch.fetch(url(server, "/ca.der"), None, method="GET")
    assert base64.b64decode(result["response"]) == b"CERT"
    assert server.received[0].startswith(b"GET /ca.der HTTP/1.0")


def test_chunked_body(serve):
    def reply(conn, server):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    result = ocsp_fetch.fetch(url(serve(reply)), b"x")
    assert base64.b64decode(result["response"]) == b"abcde"


def test_body_until_close_without_length(serve):
    def reply(conn, server):
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nabc")
    assert base64.b64decode(ocsp_fetch.fetch(url(serve(reply)), b"x")["response"]) == b"abc"


@pytest.mark.parametrize("status", ["500 Internal Server Error", "404 Not Found"])
def test_http_error_status(serve, status):
    result = ocsp_fetch.fetch(url(serve(http(status, b"oops", "text/plain"))), b"x")
    assert result["failure"] == "http_error"
    assert result["http_status"] == int(status[:3])
    assert status[:3] in result["detail"]


def test_redirect_is_not_followed(serve):
    target = serve(http())
    server = serve(http("302 Found", b"", "text/plain", f"Location: https://127.0.0.1:{target.port}/\r\n"))
    result = ocsp_fetch.fetch(url(server), b"x")
    assert result["failure"] == "http_error"
    assert "redirect" in result["detail"] and "https://127.0.0.1" in result["detail"]
    assert target.received == []


def test_size_limit(serve):
    result = ocsp_fetch.fetch(url(serve(http(body=b"A" * 5000))), b"x", max_bytes=1000)
    assert result["failure"] == "http_error" and "1000 bytes" in result["detail"]


def test_size_limit_without_length_stops_reading(serve):
    def reply(conn, server):
        try:
            for index in range(2000):
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" if index == 0 else b"B" * 1024)
        except OSError:
            pass
    result = ocsp_fetch.fetch(url(serve(reply)), b"x", max_bytes=1000)
    assert result["failure"] == "http_error"


def test_not_http(serve):
    def reply(conn, server):
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
    result = ocsp_fetch.fetch(url(serve(reply)), b"x")
    assert result["failure"] == "http_error"


def test_closed_without_answer(serve):
    result = ocsp_fetch.fetch(url(serve(lambda conn, server: None)), b"x")
    assert result["failure"] == "http_error" and "without answering" in result["detail"]


def test_hang_costs_the_timeout_and_no_more(serve):
    server = serve(hang)
    start = time.monotonic()
    result = ocsp_fetch.fetch(url(server), b"x", timeout=1.0)
    elapsed = time.monotonic() - start
    assert result["failure"] == "timeout"
    assert 0.9 <= elapsed < 1.5, elapsed
    assert 900 <= result["latency_ms"] < 1500


def test_slow_drip_is_bounded_by_one_deadline(serve):
    def reply(conn, server):
        conn.sendall(b"HTTP/1.0 200 OK\r\n")
        for dummy in range(50):  # one byte every 0.1 s: each recv succeeds, the total must not
            if server.stopped.wait(0.1):
                return
            conn.sendall(b"X")
    start = time.monotonic()
    result = ocsp_fetch.fetch(url(serve(reply)), b"x", timeout=1.0)
    assert result["failure"] == "timeout"
    assert time.monotonic() - start < 1.5


def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the kernel refuses
        result = ocsp_fetch.fetch(f"http://127.0.0.1:{port}/", b"x")
    assert result["failure"] == "connection_refused"
    assert "refused" in result["detail"]


def test_dns_failure():
    result = ocsp_fetch.fetch("http://ocsp.no-such-responder.invalid/", b"x", timeout=5)
    assert result["failure"] == "dns_failure"
    assert "ocsp.no-such-responder.invalid" in result["detail"]


def test_ipv6_only_against_an_ipv4_literal_is_a_resolution_failure():
    result = ocsp_fetch.fetch("http://127.0.0.1:9/", b"x", ip_version="6")
    assert result["failure"] == "dns_failure"
    assert "IPv6" in result["detail"]


def test_tls_error_against_a_plain_http_server(serve):
    server = serve(http(), greet=b"HTTP/1.0 400 Bad Request\r\n\r\n")
    result = ocsp_fetch.fetch(f"https://127.0.0.1:{server.port}/", b"x", timeout=3)
    assert result["failure"] == "tls_error"


def test_unsupported_scheme():
    result = ocsp_fetch.fetch("ldap://127.0.0.1/", b"x")
    assert result["failure"] == "http_error" and "http://" in result["detail"]


def test_http_proxy_gets_absolute_uri(serve):
    proxy = serve(http())
    result = ocsp_fetch.fetch("http://ocsp.example.invalid/path", b"REQ",
                              proxy=f"http://127.0.0.1:{proxy.port}")
    assert result["failure"] is None
    assert proxy.received[0].startswith(b"POST http://ocsp.example.invalid/path HTTP/1.0")
    assert result["address"] == "127.0.0.1"


@pytest.mark.parametrize("code, failure", [
    (errno.ECONNREFUSED, "connection_refused"),
    (errno.ENETUNREACH, "network_unreachable"),
    (errno.EHOSTUNREACH, "network_unreachable"),
    (errno.EADDRNOTAVAIL, "network_unreachable"),
    (errno.EAFNOSUPPORT, "network_unreachable"),
    (errno.ETIMEDOUT, "timeout"),
])
def test_errno_mapping(code, failure):
    assert ocsp_fetch.classify_os_error(OSError(code, "x")) == failure


def test_exception_mapping():
    assert ocsp_fetch.classify_os_error(socket.gaierror(-2, "Name or service not known")) == "dns_failure"
    assert ocsp_fetch.classify_os_error(socket.timeout("timed out")) == "timeout"
    assert ocsp_fetch.classify_os_error(ssl.SSLError(1, "wrong version")) == "tls_error"
    assert ocsp_fetch.classify_os_error(OSError(errno.ECONNRESET, "reset"), "exchange") == "http_error"


def test_network_unreachable_through_fetch(monkeypatch, serve):
    server = serve(http())

    def unreachable(self, address):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")
    monkeypatch.setattr(socket.socket, "connect", unreachable)
    result = ocsp_fetch.fetch(url(server), b"x")
    assert result["failure"] == "network_unreachable"
    assert "IPv6 routing" in result["detail"]


def test_both_families_are_tried_separately(serve):
    v4 = serve(http())
    jobs = [{"id": "a", "url": f"http://localhost:{v4.port}/", "body": base64.b64encode(b"x").decode()}]
    results = ocsp_fetch.fetch_many(jobs, ip_version="both", timeout=3)
    assert [r["ip_version"] for r in results] == ["4", "6"]
    assert results[0]["failure"] is None and results[0]["address"] == "127.0.0.1"
    # localhost has no IPv6 address here, or ::1 is not served: either way a classified failure.
    assert results[1]["failure"] in ("dns_failure", "connection_refused")


def test_ipv6_loopback(serve):
    try:
        server = serve(http(), family=socket.AF_INET6, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    result = ocsp_fetch.fetch(f"http://[::1]:{server.port}/", b"x", ip_version="6")
    assert result["failure"] is None and result["address"] == "::1"
    assert f"Host: [::1]:{server.port}".encode() in server.received[0]


def test_fetch_many_is_concurrent_and_bounded(serve):
    def slow(conn, server):
        time.sleep(0.5)
        http()(conn, server)
    server = serve(slow)
    jobs = [{"id": str(i), "url": url(server), "body": None} for i in range(4)]
    start = time.monotonic()
    results = ocsp_fetch.fetch_many(jobs, concurrency=4, timeout=5)
    assert time.monotonic() - start < 1.5
    assert [r["id"] for r in results] == ["0", "1", "2", "3"]
    assert all(r["failure"] is None for r in results)
    start = time.monotonic()
    ocsp_fetch.fetch_many(jobs, concurrency=2, timeout=5)
    assert time.monotonic() - start >= 0.95


def test_read_file_strips_private_keys(tmp_path):
    key = b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
    rsa = b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"
    cert = b"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
    path = tmp_path / "combined"
    path.write_bytes(key + cert + rsa + cert)
    result = ocsp_fetch.read_file(str(path))
    assert result["error"] is None
    assert base64.b64decode(result["content"]) == cert + cert


def test_read_file_errors(tmp_path):
    assert "does not exist" in ocsp_fetch.read_file(str(tmp_path / "nope"))["error"]
    assert "is a directory" in ocsp_fetch.read_file(str(tmp_path))["error"]
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    assert "larger than" in ocsp_fetch.read_file(str(big), max_bytes=10)["error"]


def test_both_with_an_ip_literal_tests_only_its_family():
    assert ocsp_fetch.families("both", "http://127.0.0.1:80/") == ["4"]
    assert ocsp_fetch.families("both", "http://[::1]:80/") == ["6"]
    assert ocsp_fetch.families("both", "http://ocsp.example.test/") == ["4", "6"]
    assert ocsp_fetch.families("both", "http://127.0.0.1/", proxy="http://proxy.test:3128") == ["4", "6"]
    assert ocsp_fetch.families("6", "http://127.0.0.1/") == ["6"]


# -- through a proxy: absolute URI for http://, CONNECT for https:// ------------------------------

def test_refusing_proxy_is_named():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = ocsp_fetch.fetch("http://ocsp.example.invalid/", b"x", proxy=f"http://127.0.0.1:{port}")
    assert result["failure"] == "connection_refused"
    assert result["detail"].startswith(f"proxy 127.0.0.1:{port} (127.0.0.1) refused the connection")


def test_proxy_without_scheme_and_its_error_status_is_attributed(serve):
    proxy = serve(http("502 Bad Gateway", b"no route", "text/plain"))
    result = ocsp_fetch.fetch("http://ocsp.example.invalid:8080/x", b"x", proxy=f"127.0.0.1:{proxy.port}")
    assert proxy.received[0].startswith(b"POST http://ocsp.example.invalid:8080/x HTTP/1.0\r\n")
    assert b"Host: ocsp.example.invalid:8080\r\n" in proxy.received[0]
    assert result["failure"] == "http_error" and result["http_status"] == 502
    assert f"through proxy 127.0.0.1:{proxy.port}" in result["detail"]
    assert "cannot reach the responder" in result["detail"]


def test_https_through_a_proxy_asks_for_a_connect_tunnel(serve):
    proxy = serve(http("403 Forbidden", b"", "text/plain"))
    result = ocsp_fetch.fetch("https://ocsp.example.invalid/ocsp", b"REQ", proxy=f"http://127.0.0.1:{proxy.port}")
    assert proxy.received[0].startswith(b"CONNECT ocsp.example.invalid:443 HTTP/1.0\r\n")
    assert b"POST" not in proxy.received[0]  # nothing in clear text before the tunnel
    assert result["failure"] == "http_error"
    assert "refused to tunnel to ocsp.example.invalid:443" in result["detail"] and "403" in result["detail"]


def _tls_identity(directory):
    """A CA and a server certificate for IP 127.0.0.1 signed by it; returns (ca, cert, key) paths."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TLS CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_https_through_a_proxy_tunnels_tls_end_to_end(tmp_path, monkeypatch):
    """CONNECT through a real forwarding proxy, TLS with the origin inside the tunnel."""
    from tests.lab.proxy import ForwardProxy

    ca_path, cert_path, key_path = _tls_identity(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(str(cert_path), str(key_path))
    received = []

    def origin(conn, server):
        with server_context.wrap_socket(conn, server_side=True) as tls:
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"REQ"):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
            received.append(data)
            tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 4\r\n\r\nRESP")

    class TLSServer(RawServer):
        def _handle(self, conn):  # TLS first: no plain-text read before the handshake
            conn.settimeout(5)
            try:
                self.reply(conn, self)
            except OSError:
                pass
            finally:
                conn.close()

    server = TLSServer(origin)
    original = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: original(cafile=str(ca_path)))
    try:
        with ForwardProxy(timeout=5) as proxy:
            result = ocsp_fetch.fetch(f"https://127.0.0.1:{server.port}/ocsp", b"REQ", timeout=5, proxy=proxy.url)
            assert proxy.requests == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.0"]
    finally:
        server.close()
    assert result["failure"] is None, result["detail"]
    assert base64.b64decode(result["response"]) == b"RESP"
    assert result["port"] == proxy.port and result["address"] == "127.0.0.1"
    # Inside the tunnel the request is in origin form, to the origin's Host.
    assert received[0].startswith(b"POST /ocsp HTTP/1.0\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in received[0]


def test_forward_proxy_rejects_origin_form(serve):
    """The lab proxy fails loudly when a client forgets it talks to a proxy."""
    from tests.lab.proxy import ForwardProxy

    target = serve(http())
    with ForwardProxy() as proxy:
        result = ocsp_fetch.fetch(f"{proxy.url}/", b"x")  # origin form, straight at the proxy
        forwarded = ocsp_fetch.fetch(url(target, "/ocsp"), b"x", proxy=proxy.url)
    assert result["http_status"] == 400 and proxy.requests[0] == "POST / HTTP/1.0"
    assert forwarded["failure"] is None and target.received[0].startswith(b"POST /ocsp HTTP/1.1\r\n")
