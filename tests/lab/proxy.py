"""A tiny HTTP forward proxy on 127.0.0.1, as Apache's ``SSLOCSPProxyURL`` points at.

    with ForwardProxy() as proxy:
        ...  # send requests to proxy.url
        proxy.requests  # ["POST http://127.0.0.1:40123/ HTTP/1.0", ...]

It forwards absolute-URI requests (``POST http://host:port/path HTTP/1.x``) and tunnels
``CONNECT host:port``, to loopback targets only. A request in origin form (``POST /``)
gets ``400``: a client that forgets it talks to a proxy fails loudly. A target that cannot
be reached gets ``502 Bad Gateway``, as squid answers. Every request line is recorded.
"""
from __future__ import annotations

import http.client
import ipaddress
import select
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host"}


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class _ProxyHandler(BaseHTTPRequestHandler):
    server_version = "lab-proxy/1"
    protocol_version = "HTTP/1.0"
    proxy: "ForwardProxy"  # set on the bound subclass

    def log_message(self, fmt, *args):
        return

    def do_GET(self):
        self._forward()

    def do_POST(self):
        self._forward()

    def _forward(self):
        self.proxy.record(self.requestline)
        parts = urllib.parse.urlsplit(self.path)
        if parts.scheme != "http" or not parts.hostname:
            self._reply(400, b"a proxy needs an absolute http:// URI\n")
            return
        if not _loopback(parts.hostname):
            self._reply(403, b"this lab proxy only forwards to loopback\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=self.proxy.timeout)
        try:
            connection.request(self.command, target, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError as exc:
            self._reply(502, f"the proxy could not reach {parts.netloc}: {exc}\n".encode())
            return
        finally:
            connection.close()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_CONNECT(self):
        self.proxy.record(self.requestline)
        host, dummy, port = self.path.rpartition(":")
        if not host or not port.isdigit() or not _loopback(host):
            self._reply(403, b"this lab proxy only tunnels to loopback host:port\n")
            return
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=self.proxy.timeout)
        except OSError as exc:
            self._reply(502, f"the proxy could not reach {self.path}: {exc}\n".encode())
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        client = self.connection
        try:
            while True:
                readable = select.select([client, upstream], [], [], self.proxy.timeout)[0]
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients hanging up is normal here
        return


class ForwardProxy:
    """The proxy, served from a thread of the calling process on a free loopback port."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.requests: list[str] = []
        self._lock = threading.Lock()
        handler = type("BoundProxyHandler", (_ProxyHandler,), {"proxy": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def record(self, request_line: str) -> None:
        with self._lock:
            self.requests.append(request_line)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "ForwardProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
