# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side of the OCSP check: DNS, TCP and HTTP to responders, standard library only.

This runs on the managed web server, because the question is whether *that host* can
reach its responders (a datacenter firewall, broken IPv6 or a bad resolver are the usual
causes). It never parses OCSP: it carries raw bytes and reports what happened on the
network, classified as one of :data:`NETWORK_FAILURES`.

Every exchange is bounded by one deadline covering resolution, connection, sending and
reading, so a responder that accepts and never answers costs ``timeout`` seconds and no
more. Redirects are not followed: neither mod_ssl's nor nginx's OCSP client follows
them, so a responder that redirects is broken for the web server too.
"""
from __future__ import annotations

import base64
import errno
import ipaddress
import re
import socket
import ssl
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

NETWORK_FAILURES = ("dns_failure", "connection_refused", "network_unreachable", "timeout",
                    "tls_error", "http_error")
IP_VERSIONS = ("any", "4", "6", "both")
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 256 * 1024   # OCSP responses are a few KiB; CA certificates too
MAX_HEADER_BYTES = 64 * 1024
MAX_FILE_BYTES = 1024 * 1024
USER_AGENT = "ocsp.stapling-ocsp_fetch/1"

_FAMILIES = {"any": socket.AF_UNSPEC, "4": socket.AF_INET, "6": socket.AF_INET6}
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT,
                errno.EPROTONOSUPPORT, getattr(errno, "ENONET", -1), getattr(errno, "EHOSTDOWN", -1),
                errno.ENETDOWN}
_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----\r?\n?",
                          re.DOTALL)


class FetchError(Exception):
    """A classified network failure: ``failure`` is one of NETWORK_FAILURES."""

    def __init__(self, failure: str, detail: str):
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


def classify_os_error(exc: BaseException, phase: str = "connect") -> str:
    """Map a socket-level exception to a failure class (``phase``: connect or exchange)."""
    if isinstance(exc, socket.gaierror):
        return "dns_failure"
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return "tls_error"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    code = getattr(exc, "errno", None)
    if code == errno.ECONNREFUSED:
        return "connection_refused"
    if code in _UNREACHABLE:
        return "network_unreachable"
    if code == errno.ETIMEDOUT:
        return "timeout"
    if phase == "connect":
        return "network_unreachable"
    return "http_error"


def strip_private_keys(data: bytes) -> bytes:
    """Drop PEM private key blocks (cPanel ``combined`` files) so keys never leave the host."""
    return _PRIVATE_KEY.sub(b"", data)


def read_file(path: str, max_bytes: int = MAX_FILE_BYTES) -> dict:
    """Read a certificate file on the host: base64 content without private keys, or an error."""
    result = {"path": path, "content": None, "size": None, "error": None}
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        result["error"] = f"{path} does not exist on this host. Check the path (certificates are read on the managed host, not the controller)."
        return result
    except IsADirectoryError:
        result["error"] = f"{path} is a directory. Please specify a path to a certificate file."
        return result
    except PermissionError:
        result["error"] = f"{path} is not readable by this user. Run the task with become: true or fix the file's permissions."
        return result
    except OSError as exc:
        result["error"] = f"{path} could not be read: {exc.strerror or exc}."
        return result
    if len(data) > max_bytes:
        result["error"] = f"{path} is larger than {max_bytes} bytes, which no certificate file is. Point at the PEM certificate, chain or combined file."
        return result
    result["size"] = len(data)
    result["content"] = base64.b64encode(strip_private_keys(data)).decode("ascii")
    return result


class _Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self, what: str) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise FetchError("timeout", f"no complete answer within {self.seconds:g}s (ran out while {what})")
        return left


def _split_url(url: str) -> tuple[str, str, int, str]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError("http_error", f"{url} is not an http:// or https:// URL; OCSP responders are reached over HTTP.")
    if not parts.hostname:
        raise FetchError("http_error", f"{url} has no host name.")
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, parts.hostname, port, path


def resolve(host: str, port: int, ip_version: str, deadline: _Deadline) -> list[tuple]:
    """getaddrinfo filtered by family, bounded by the deadline (getaddrinfo has no timeout)."""
    family = _FAMILIES[ip_version]
    box: dict = {}

    def lookup():
        try:
            box["infos"] = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        except Exception as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(deadline.remaining(f"resolving {host}"))
    if worker.is_alive():
        raise FetchError("dns_failure", f"resolving {host} took longer than {deadline.seconds:g}s: the resolver is not answering.")
    if "error" in box:
        exc = box["error"]
        wanted = {"4": "IPv4 (A)", "6": "IPv6 (AAAA)"}.get(ip_version, "any")
        detail = getattr(exc, "strerror", None) or str(exc)
        raise FetchError("dns_failure", f"{host} did not resolve to {wanted} addresses on this host: {detail}.")
    infos = [info for info in box["infos"] if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not infos:
        raise FetchError("dns_failure", f"{host} has no {'IPv' + ip_version if ip_version in '46' else ''} address.")
    return infos


def _connect(infos: list[tuple], deadline: _Deadline, label: str) -> tuple[socket.socket, str]:
    errors = []
    for family, socktype, proto, _canon, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(deadline.remaining(f"connecting to {label}"))
            sock.connect(sockaddr)
            return sock, sockaddr[0]
        except FetchError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            errors.append((sockaddr[0], exc))
            if classify_os_error(exc) == "timeout":
                break  # the deadline is spent
    address, exc = errors[-1]
    failure = classify_os_error(exc)
    tried = ", ".join(error[0] for error in errors)
    what = {"timeout": "did not accept the connection in time",
            "connection_refused": "refused the connection (nothing listens, or a firewall rejects)",
            "network_unreachable": "is unreachable from this host (no route: check the firewall and, for IPv6, the host's IPv6 routing)"}
    raise FetchError(failure, f"{label} ({tried}) {what.get(failure, 'failed')}: {getattr(exc, 'strerror', None) or exc}.")


def _recv_all(sock: socket.socket, deadline: _Deadline, max_bytes: int) -> bytes:
    """Read the whole HTTP response (until close) within the deadline and size limit."""
    chunks, total = [], 0
    limit = max_bytes + MAX_HEADER_BYTES
    while True:
        sock.settimeout(deadline.remaining("waiting for the answer"))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise FetchError("timeout", f"the responder accepted the connection but sent no complete answer within {deadline.seconds:g}s.")
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise FetchError("http_error", f"the answer exceeds {max_bytes} bytes; OCSP responses are a few kilobytes, so this is not one.")


def _parse_http(raw: bytes, max_bytes: int) -> tuple[int, str, dict, bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        if not raw:
            raise FetchError("http_error", "the responder closed the connection without answering.")
        raise FetchError("http_error", f"the answer is not HTTP (no header end): {raw[:60]!r}.")
    lines = head.decode("iso-8859-1").split("\r\n")
    match = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})\s*(.*)", lines[0])
    if not match:
        raise FetchError("http_error", f"the answer is not HTTP: status line {lines[0][:80]!r}.")
    headers = {}
    for line in lines[1:]:
        name, dummy, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise FetchError("http_error", f"bad Content-Length {headers['content-length']!r}.")
        if len(body) < length:
            raise FetchError("http_error", f"the connection closed after {len(body)} of {length} body bytes.")
        body = body[:length]
    if len(body) > max_bytes:
        raise FetchError("http_error", f"the answer exceeds {max_bytes} bytes; OCSP responses are a few kilobytes, so this is not one.")
    return int(match.group(1)), match.group(2), headers, body


def _dechunk(body: bytes) -> bytes:
    out, i = [], 0
    while True:
        end = body.find(b"\r\n", i)
        if end < 0:
            raise FetchError("http_error", "truncated chunked body.")
        size = int(body[i:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        i = end + 2 + size + 2


def _request_bytes(method: str, target: str, host_header: str, body: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.0", f"Host: {host_header}", f"User-Agent: {USER_AGENT}",
             "Accept: application/ocsp-response, */*", "Connection: close"]
    if body is not None:
        lines += ["Content-Type: application/ocsp-request", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")


def fetch(url: str, body: bytes | None = None, method: str = "POST", timeout: float = DEFAULT_TIMEOUT,
          ip_version: str = "any", proxy: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """One HTTP exchange with ``url`` over one address family; never raises.

    ``body`` is the DER request for POST; with ``method='GET'`` and a body the request is
    appended to the URL base64-encoded (RFC 6960 A.1, as nginx asks); with no body it is
    a plain GET (AIA caIssuers downloads). ``ip_version`` is ``any``, ``4`` or ``6``.
    """
    start = time.monotonic()
    deadline = _Deadline(timeout)
    result = {"url": url, "method": method, "ip_version": ip_version, "proxy": proxy,
              "address": None, "port": None, "http_status": None, "content_type": None,
              "response": None, "latency_ms": None, "timings": {}, "failure": None, "detail": ""}
    timings = result["timings"]
    sock = None
    try:
        if ip_version not in _FAMILIES:
            raise FetchError("http_error", f"ip_version must be one of any, 4, 6, not {ip_version!r}.")
        scheme, host, port, path = _split_url(url)
        if method == "GET" and body is not None:
            encoded = urllib.parse.quote(base64.b64encode(body).decode("ascii"), safe="")
            path = path.rstrip("/") + "/" + encoded
            body = None
        elif method == "POST" and body is None:
            body = b""
        host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if port in (80, 443) else f"[{host}]:{port}"
        if proxy:
            dummy_scheme, connect_host, connect_port, dummy_path = _split_url(proxy if "://" in proxy else "http://" + proxy)
            label = f"proxy {connect_host}:{connect_port}"
        else:
            connect_host, connect_port, label = host, port, f"{host}:{port}"
        t0 = time.monotonic()
        infos = resolve(connect_host, connect_port, ip_version, deadline)
        timings["dns_ms"] = _ms(t0)
        t0 = time.monotonic()
        sock, address = _connect(infos, deadline, label)
        timings["connect_ms"] = _ms(t0)
        result["address"], result["port"] = address, connect_port
        target = path
        if proxy and scheme == "http":
            target = f"http://{host_header}{path}"
        elif proxy:
            sock.sendall(f"CONNECT {host}:{port} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("ascii"))
            reply = _read_connect_reply(sock, deadline)
            if not re.match(rb"HTTP/\d(?:\.\d)? 200", reply):
                raise FetchError("http_error", f"the proxy refused to tunnel to {host}:{port}: {reply.splitlines()[0][:80]!r}.")
        if scheme == "https":
            context = ssl.create_default_context()
            sock.settimeout(deadline.remaining("the TLS handshake"))
            try:
                sock = context.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise FetchError("tls_error", f"TLS with {host}:{port} failed: {exc}.")
        t0 = time.monotonic()
        sock.settimeout(deadline.remaining("sending the request"))
        sock.sendall(_request_bytes(method, target, host_header, body))
        raw = _recv_all(sock, deadline, max_bytes)
        timings["exchange_ms"] = _ms(t0)
        status, reason, headers, payload = _parse_http(raw, max_bytes)
        result["http_status"] = status
        result["content_type"] = headers.get("content-type")
        result["response"] = base64.b64encode(payload).decode("ascii")
        if status != 200:
            detail = f"the responder answered HTTP {status} {reason}".rstrip()
            if proxy:
                detail += f" through proxy {connect_host}:{connect_port}"
                if status in (502, 503, 504):
                    detail += (" (a proxy answers this itself when it cannot reach the responder: "
                               "check the proxy's access to it)")
            if 300 <= status < 400:
                detail += (f" redirecting to {headers.get('location', '?')}; web servers' OCSP "
                           "clients do not follow redirects, so neither does this check")
            raise FetchError("http_error", detail + ".")
    except FetchError as exc:
        result["failure"], result["detail"] = exc.failure, exc.detail
    except (OSError, ssl.SSLError) as exc:
        result["failure"] = classify_os_error(exc, "exchange")
        result["detail"] = f"the exchange with {url} failed: {getattr(exc, 'strerror', None) or exc}."
    finally:
        if sock is not None:
            sock.close()
        result["latency_ms"] = _ms(start)
    return result


def _read_connect_reply(sock: socket.socket, deadline: _Deadline) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEADER_BYTES:
        sock.settimeout(deadline.remaining("waiting for the proxy"))
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)


def families(ip_version: str, url: str | None = None, proxy: str | None = None) -> list[str]:
    """The address families to test: ``both`` means IPv4 and IPv6 separately.

    When the host connected to (the proxy, else the URL's host) is an IP literal, only its
    own family applies: a web server never reaches ``http://192.0.2.1/`` over IPv6.
    """
    if ip_version != "both":
        return [ip_version]
    target = proxy if proxy else url
    if target:
        host = urllib.parse.urlsplit(target if "://" in target else "http://" + target).hostname or ""
        try:
            return [str(ipaddress.ip_address(host).version)]
        except ValueError:
            pass
    return ["4", "6"]


def fetch_many(jobs: list[dict], timeout: float = DEFAULT_TIMEOUT, ip_version: str = "any",
               proxy: str | None = None, concurrency: int = 8,
               max_bytes: int = DEFAULT_MAX_BYTES) -> list[dict]:
    """Run ``jobs`` ({id, url, body (base64 or None), method}) concurrently.

    Returns one result per job and address family, in job order, each carrying the job's
    ``id``. A bounded pool keeps a large certificate list from opening hundreds of
    connections at once.
    """
    units = [(job, family) for job in jobs for family in families(ip_version, job["url"], proxy)]

    def run(unit):
        job, family = unit
        body = base64.b64decode(job["body"]) if job.get("body") else None
        result = fetch(job["url"], body, method=job.get("method") or "POST", timeout=timeout,
                       ip_version=family, proxy=proxy, max_bytes=max_bytes)
        result["id"] = job.get("id")
        return result

    if not units:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(units)))) as pool:
        return list(pool.map(run, units))
