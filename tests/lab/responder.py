"""The lab's OCSP responder: 127.0.0.1 only, fault modes switchable at run time.

It runs as its own process (``python -m tests.lab.responder --pki DIR --port N
--control-port M``) so web servers, playbooks and tests can all reach it, and it is
steered over a second, loopback-only control port:

- ``GET /state`` returns the mode, settings and request counters as JSON;
- ``GET /mode/<name>`` switches mode and answers once the switch is in effect
  (``down`` returns after the OCSP port is closed, leaving mode ``down`` returns after it
  listens again);
- ``GET /set?validity=S&delay=S`` changes the response validity or the ``slow`` delay.

Modes: ``good`` (a correct answer), ``down`` (port closed), ``hang`` (accepts, never
answers), ``garbage`` (HTTP 200 with non-OCSP bytes), ``http500``, ``trylater`` (OCSP status
tryLater), ``badsig`` (signed by a key the issuer never certified), ``slow`` (answers after
``delay`` seconds), ``expired`` (a correctly signed response whose nextUpdate has passed),
``oversized`` (HTTP 200 ``application/ocsp-response`` without a Content-Length, then
``OVERSIZED_BYTES`` until the client hangs up: only a bounded read survives it).

Answers GET (RFC 6960 appendix A.1, as nginx asks) and POST (as Apache asks) with
``Content-Type: application/ocsp-response`` (nginx rejects anything else). ``GET
/ca/intermediate.der`` is not OCSP: it serves the intermediate CA certificate (DER), the
AIA caIssuers download of the ``aia`` leaf, in every mode but ``down`` (counted as
``ca_issuers``, not ``GET``). With
``--engine openssl`` the answer is produced by ``openssl ocsp`` (the reference
implementation) from an index file, this process only carrying the HTTP.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.lab.pki import LabPKI

MODES = ("good", "down", "hang", "garbage", "http500", "trylater", "badsig", "slow", "expired", "oversized")
OVERSIZED_BYTES = 8 * 1024 * 1024
HANG_LIMIT = 120.0  # a hung request is released after this long, or when the mode changes
MAX_REQUEST = 64 * 1024
CA_ISSUERS_PATH = "/ca/intermediate.der"  # where the aia leaf's caIssuers URL points


class ResponderState:
    """Mode, settings and counters shared by the OCSP and control handlers."""

    def __init__(self, pki: LabPKI, validity: int, delay: float, engine: str):
        self.pki = pki
        self.mode = "good"
        self.validity = validity
        self.delay = delay
        self.engine = engine
        self.counts: dict[str, int] = {"GET": 0, "POST": 0, "answered": 0}
        self.lock = threading.Lock()
        self.mode_changed = threading.Condition(self.lock)

    def count(self, key: str, by: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + by

    def snapshot(self) -> dict:
        with self.lock:
            return {"mode": self.mode, "validity": self.validity, "delay": self.delay,
                    "engine": self.engine, "counts": dict(self.counts)}

    def wait_for_mode_change(self, mode: str, limit: float) -> None:
        deadline = time.monotonic() + limit
        with self.mode_changed:
            while self.mode == mode and time.monotonic() < deadline:
                self.mode_changed.wait(deadline - time.monotonic())


def build_response(state: ResponderState, request_der: bytes, mode: str) -> bytes:
    """Answer one DER OCSP request in the given mode (cryptography's builder)."""
    pki = state.pki
    try:
        req = ocsp.load_der_ocsp_request(request_der)
    except ValueError:
        return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
            serialization.Encoding.DER)
    if mode == "trylater":
        return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
            serialization.Encoding.DER)
    issuer = pki.intermediate.cert
    expected_key_hash = _key_hash(issuer, req.hash_algorithm)
    if req.issuer_key_hash != expected_key_hash:
        return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
            serialization.Encoding.DER)
    leaf = next((item for item in pki.all_leaves().values() if item.serial == req.serial_number), None)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    this_update = now - dt.timedelta(minutes=1)
    next_update = now + dt.timedelta(seconds=state.validity)
    if mode == "expired":
        this_update, next_update = now - dt.timedelta(days=2), now - dt.timedelta(days=1)
    if leaf is None:
        status, revoked_at, cert_for_id = ocsp.OCSPCertStatus.UNKNOWN, None, None
    elif leaf.serial in pki.revoked:
        status, revoked_at, cert_for_id = ocsp.OCSPCertStatus.REVOKED, pki.revoked[leaf.serial], leaf.cert
    else:
        status, revoked_at, cert_for_id = ocsp.OCSPCertStatus.GOOD, None, leaf.cert
    signer = pki.rogue if mode == "badsig" else pki.ocsp_signer
    builder = ocsp.OCSPResponseBuilder()
    if cert_for_id is not None:
        builder = builder.add_response(
            cert=cert_for_id, issuer=issuer, algorithm=req.hash_algorithm, cert_status=status,
            this_update=this_update, next_update=next_update, revocation_time=revoked_at,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None)
    else:
        builder = builder.add_response_by_hash(
            issuer_name_hash=req.issuer_name_hash, issuer_key_hash=req.issuer_key_hash,
            serial_number=req.serial_number, algorithm=req.hash_algorithm, cert_status=status,
            this_update=this_update, next_update=next_update, revocation_time=None,
            revocation_reason=None)
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert).certificates([signer.cert])
    for ext in req.extensions:
        if isinstance(ext.value, x509.OCSPNonce):
            builder = builder.add_extension(ext.value, critical=False)
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    # The key hash covers the BIT STRING contents of subjectPublicKey, not the whole SPKI.
    digest = hashes.Hash(algorithm)
    digest.update(_spki_bitstring(spki))
    return digest.finalize()


def _spki_bitstring(spki: bytes) -> bytes:
    """Return the subjectPublicKey bits of a DER SubjectPublicKeyInfo (minimal DER walk)."""
    def read_len(data: bytes, i: int) -> tuple[int, int]:
        first = data[i]
        if first < 0x80:
            return first, i + 1
        n = first & 0x7F
        return int.from_bytes(data[i + 1:i + 1 + n], "big"), i + 1 + n

    i = read_len(spki, 1)[1]          # outer SEQUENCE: step inside
    length, j = read_len(spki, i + 1)  # AlgorithmIdentifier SEQUENCE
    i = j + length
    length, j = read_len(spki, i + 1)  # BIT STRING
    return spki[j + 1:j + length]      # skip the unused-bits octet


def openssl_response(state: ResponderState, request_der: bytes) -> bytes:
    """Have ``openssl ocsp`` answer the request from an index file (the reference responder)."""
    pki = state.pki
    with tempfile.TemporaryDirectory(prefix="lab-openssl-ocsp-") as tmp:
        tmpdir = Path(tmp)
        index = tmpdir / "index.txt"
        lines = []
        for leaf in pki.all_leaves().values():
            expiry = leaf.cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
            serial = format(leaf.serial, "X")
            if len(serial) % 2:
                serial = "0" + serial
            subject = "/" + "/".join(a.rfc4514_string() for a in leaf.cert.subject)
            if leaf.serial in pki.revoked:
                when = pki.revoked[leaf.serial].strftime("%y%m%d%H%M%SZ")
                lines.append(f"R\t{expiry}\t{when}\t{serial}\tunknown\t{subject}")
            else:
                lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t{subject}")
        index.write_text("\n".join(lines) + "\n")
        (tmpdir / "req.der").write_bytes(request_der)
        minutes = max(1, state.validity // 60)
        subprocess.run(
            ["openssl", "ocsp", "-index", str(index), "-CA", str(pki.intermediate.cert_path),
             "-rsigner", str(pki.ocsp_signer.cert_path), "-rkey", str(pki.ocsp_signer.key_path),
             "-reqin", str(tmpdir / "req.der"), "-respout", str(tmpdir / "resp.der"),
             "-nmin", str(minutes)],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=20, check=True)
        return (tmpdir / "resp.der").read_bytes()


class OCSPHandler(BaseHTTPRequestHandler):
    server_version = "lab-ocsp/1"
    protocol_version = "HTTP/1.0"
    state: ResponderState  # set on the subclass

    def log_message(self, fmt, *args):  # quiet: tests read /state instead
        return

    def do_GET(self):
        if self.path.split("?", 1)[0] == CA_ISSUERS_PATH:
            self.state.count("ca_issuers")
            self._send(200, self.state.pki.intermediate.cert.public_bytes(serialization.Encoding.DER),
                       "application/pkix-cert")
            return
        self.state.count("GET")
        path = self.path.split("?", 1)[0].lstrip("/")
        # The last path segment is the url-encoded base64 DER request (RFC 6960 A.1).
        encoded = urllib.parse.unquote(path.rsplit("/", 1)[-1])
        try:
            request_der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False)
        except ValueError:
            request_der = b""
        self._answer(request_der)

    def do_POST(self):
        self.state.count("POST")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST:
            self.send_error(413)
            return
        self._answer(self.rfile.read(length))

    def _answer(self, request_der: bytes) -> None:
        state = self.state
        mode = state.mode
        if mode == "hang":
            state.wait_for_mode_change("hang", HANG_LIMIT)
            self.close_connection = True
            return
        if mode == "slow":
            time.sleep(min(state.delay, HANG_LIMIT))
        if mode == "http500":
            self._send(500, b"internal error\n", "text/plain")
            return
        if mode == "garbage":
            self._send(200, b"this is not an OCSP response\n", "application/ocsp-response")
            return
        if mode == "oversized":
            self._send_endless()
            return
        try:
            if state.engine == "openssl" and mode in ("good", "slow"):
                body = openssl_response(state, request_der)
            else:
                body = build_response(state, request_der, mode)
        except Exception as exc:  # noqa: BLE001 - answer like a real responder, and say why
            sys.stderr.write(f"lab responder: internalError for a request: {exc!r}\n")
            body = ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.INTERNAL_ERROR).public_bytes(serialization.Encoding.DER)
        state.count("answered")
        self._send(200, body, "application/ocsp-response")

    def _send_endless(self) -> None:
        """No length: HTTP/1.0 reads to the close, so the client alone decides when to stop."""
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.end_headers()
        chunk = b"\x30" * 65536
        sent = 0
        try:
            while sent < OVERSIZED_BYTES:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.state.count("oversized_bytes_sent", sent)
        self.close_connection = True

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# serve_forever polls for shutdown() at this interval; the default 0.5 s made every
# "down" (which closes the OCSP listener) and every stop wait up to half a second each.
POLL_INTERVAL = 0.02


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def serve_forever(self, poll_interval: float = POLL_INTERVAL) -> None:
        super().serve_forever(poll_interval)

    def handle_error(self, request, client_address):  # clients hanging up is normal here
        return


class Responder:
    """The OCSP listener (opened and closed on demand) plus the control listener."""

    def __init__(self, state: ResponderState, port: int, control_port: int):
        self.state = state
        self.port = port
        handler = type("BoundOCSPHandler", (OCSPHandler,), {"state": state})
        self._handler = handler
        self._ocsp: QuietServer | None = None
        self._ocsp_thread: threading.Thread | None = None
        # The OCSP port first: the lab counts the responder ready once the control port
        # accepts, so nothing may still be missing by then.
        self.open()
        self.control = QuietServer(("127.0.0.1", control_port), self._control_handler())

    def open(self) -> None:
        if self._ocsp is None:
            self._ocsp = QuietServer(("127.0.0.1", self.port), self._handler)
            self.port = self._ocsp.server_address[1]
            self._ocsp_thread = threading.Thread(target=self._ocsp.serve_forever, daemon=True)
            self._ocsp_thread.start()

    def close(self) -> None:
        if self._ocsp is not None:
            self._ocsp.shutdown()
            self._ocsp.server_close()
            self._ocsp = None

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        with self.state.mode_changed:
            self.state.mode = mode
            self.state.mode_changed.notify_all()
        if mode == "down":
            self.close()
        else:
            self.open()

    def _control_handler(self):
        responder = self

        class ControlHandler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                return

            def do_GET(self):
                parsed = urllib.parse.urlsplit(self.path)
                parts = parsed.path.strip("/").split("/")
                try:
                    if parts[0] == "mode" and len(parts) == 2:
                        responder.set_mode(parts[1])
                    elif parts[0] == "set":
                        query = urllib.parse.parse_qs(parsed.query)
                        if "validity" in query:
                            responder.state.validity = int(query["validity"][0])
                        if "delay" in query:
                            responder.state.delay = float(query["delay"][0])
                    elif parts[0] != "state":
                        raise ValueError(f"unknown control path {parsed.path}")
                except ValueError as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                self._reply(200, dict(responder.state.snapshot(), port=responder.port))

            def _reply(self, code, payload):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return ControlHandler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pki", required=True, help="directory written by LabPKI.create")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--validity", type=int, default=3600, help="nextUpdate - thisUpdate, seconds")
    parser.add_argument("--delay", type=float, default=3.0, help="answer delay in slow mode")
    parser.add_argument("--engine", choices=("cryptography", "openssl"), default="cryptography")
    parser.add_argument("--mode", choices=MODES, default="good")
    args = parser.parse_args(argv)
    state = ResponderState(LabPKI.load(args.pki), args.validity, args.delay, args.engine)
    responder = Responder(state, args.port, args.control_port)
    if args.mode != "good":
        responder.set_mode(args.mode)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=responder.control.serve_forever, daemon=True).start()
    print(f"lab responder: ocsp 127.0.0.1:{responder.port} control 127.0.0.1:{args.control_port}",
          flush=True)
    stop.wait()
    responder.control.shutdown()
    responder.close()
    return 0


#: Ports handed out by free_port, one file each, shared by every test process of this user.
PORTS_HANDED_OUT = os.path.join(tempfile.gettempdir(), f"ocsp-stapling-ports-{os.getuid()}")
PORT_HOLD_SECONDS = 3600


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1 right now, and that no test process has
    been handed in the last hour: a fixture may render a port into a configuration minutes
    before a server binds it, and the kernel would give the same free port to another
    worker's server in between."""
    os.makedirs(PORTS_HANDED_OUT, exist_ok=True)
    for _attempt in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        claim = os.path.join(PORTS_HANDED_OUT, str(port))
        try:
            if time.time() - os.stat(claim).st_mtime > PORT_HOLD_SECONDS:
                os.unlink(claim)
        except FileNotFoundError:
            pass
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        return port
    raise RuntimeError(f"no loopback port free and unclaimed after 200 tries (claims in {PORTS_HANDED_OUT})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
