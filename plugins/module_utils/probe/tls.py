# -*- coding: utf-8 -*-
# Copyright (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side of ``stapling_status``: one TLS handshake with status_request per endpoint.

Standard library only: this runs on the managed web server.

Python's :mod:`ssl` module can neither send status_request nor hand back a stapled
response, so each handshake is ``openssl s_client -status -msg -showcerts`` (openssl is
on every web server), stdin from ``/dev/null``, bounded by a timeout. ``-msg`` prints
every handshake message as a hex dump; the raw DER OCSP response is cut out of it:

- TLS 1.2: the CertificateStatus handshake message (type 22), RFC 6066 section 8;
- TLS 1.3: the status_request extension (type 5) of the first CertificateEntry in the
  Certificate message (RFC 8446 section 4.4.2.1), which ``-msg`` prints decrypted.

The served chain comes from the Certificate message too (DER, so nothing depends on how
``-showcerts`` formats PEM), with the ``-showcerts`` PEM blocks as a fallback. Nothing is
judged here: the controller (the ``stapling_status`` action plugin) parses and verifies
with ``cryptography``.
"""
from __future__ import annotations

import base64
import ipaddress
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable

HANDSHAKE_SERVER_HELLO = 2
HANDSHAKE_CERTIFICATE = 11
HANDSHAKE_CERTIFICATE_STATUS = 22
EXTENSION_STATUS_REQUEST = 5
EXTENSION_SUPPORTED_VERSIONS = 43
STATUS_TYPE_OCSP = 1

TLS_VERSIONS = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
_WIRE_VERSIONS = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}

# "<<< TLS 1.2, Handshake [length 03f0], Certificate" opens a received message; the hex
# dump follows on lines indented by four spaces.
_MSG_HEADER = re.compile(r"^(<<<|>>>) (?P<label>[^\[]*?)\s*\[length (?P<length>[0-9a-fA-F]+)\](?:, (?P<name>.*))?$")
_HEX_LINE = re.compile(r"^    (?:[0-9a-f]{2} ?)+$")
_NEW_SESSION = re.compile(r"^New, (?P<protocol>\S+), Cipher is (?P<cipher>\S+)", re.M)
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.S)

ERROR_CLASSES = ("connection_refused", "timeout", "unreachable", "name_resolution", "not_tls",
                 "handshake_failed", "openssl_failed")


class ParseError(ValueError):
    """A handshake message did not have the structure RFC 8446 / RFC 6066 describe."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int = 443
    server_name: str | None = None

    @property
    def sni(self) -> str | None:
        """The SNI to send: the server name, or the host when it is a name, not an address."""
        if self.server_name:
            return self.server_name
        return None if _is_address(self.host) else self.host

    @property
    def connect(self) -> str:
        host = self.host.strip("[]")
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def label(self) -> str:
        return f"{self.connect} ({self.sni or 'no SNI'})"


@dataclass
class Handshake:
    """What one ``s_client -msg`` transcript says, before any judgement."""

    handshake_ok: bool
    protocol: str | None = None
    cipher: str | None = None
    staple: bytes | None = None          # raw DER OCSPResponse, if one was stapled
    chain: list[bytes] = field(default_factory=list)  # DER certificates as served, leaf first
    server_status_request: bool = False  # TLS 1.2: ServerHello acknowledged status_request
    messages: list[str] = field(default_factory=list)  # received handshake message names


@dataclass
class ProbeResult:
    """The module's per-endpoint answer (JSON-safe through :meth:`as_dict`)."""

    host: str
    port: int
    server_name: str | None
    handshake_ok: bool = False
    error: str | None = None             # one of ERROR_CLASSES
    error_detail: str | None = None      # a whole sentence for the operator
    protocol: str | None = None
    cipher: str | None = None
    stapled: bool = False
    staple: str | None = None            # base64 DER OCSPResponse
    chain: list[str] = field(default_factory=list)  # PEM, leaf first, as served
    handshake_seconds: float | None = None
    warmup: dict | None = None           # {"stapled": bool, "handshake_ok": bool, "error": ...}

    def as_dict(self) -> dict:
        return asdict(self)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


# -- the hex dump -----------------------------------------------------------------------

def received_handshake_messages(stdout: str) -> list[tuple[str, bytes]]:
    """Every handshake message the client received, as (name, bytes incl. the 4-byte header).

    Only ``<<<`` (received) ``Handshake`` blocks count; record headers, inner content types,
    alerts and the client's own messages are skipped.
    """
    messages: list[tuple[str, bytes]] = []
    current: list[str] | None = None
    name = ""
    expected = 0

    def close() -> None:
        if current is not None:
            data = bytes.fromhex("".join(current))
            if len(data) < 4:
                raise ParseError(f"the {name or 'handshake'} message dump holds {len(data)} bytes, "
                                 "less than a handshake header")
            if len(data) != expected:
                raise ParseError(f"the {name} message dump holds {len(data)} bytes, "
                                 f"its header says {expected}")
            messages.append((name, data))

    for line in stdout.splitlines():
        header = _MSG_HEADER.match(line)
        if header:
            close()
            current = None
            if header.group(1) == "<<<" and header.group("label").endswith("Handshake"):
                current = []
                name = (header.group("name") or "").strip()
                expected = int(header.group("length"), 16)
            continue
        if current is not None:
            if _HEX_LINE.match(line):
                current.append(line.replace(" ", ""))
            else:
                close()
                current = None
    close()
    return messages


class _Reader:
    """Bounds-checked reads over one handshake message body."""

    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ParseError(f"the {self.what} ends after {len(self.data)} bytes, "
                             f"{self.pos + count} were needed")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.uint(length_size))

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def _body(message: bytes, expected_type: int, what: str) -> bytes:
    if len(message) < 4 or message[0] != expected_type:
        raise ParseError(f"expected a {what} message (type {expected_type})")
    length = int.from_bytes(message[1:4], "big")
    if length != len(message) - 4:
        raise ParseError(f"the {what} message says {length} bytes, holds {len(message) - 4}")
    return message[4:]


def _extensions(blob: bytes, what: str) -> dict[int, bytes]:
    reader = _Reader(blob, what)
    found = {}
    while reader.remaining:
        ext_type = reader.uint(2)
        found[ext_type] = reader.vector(2)
    return found


def parse_server_hello(message: bytes) -> tuple[str | None, dict[int, bytes]]:
    """(negotiated protocol, extensions) of a ServerHello (TLS 1.3 uses supported_versions)."""
    reader = _Reader(_body(message, HANDSHAKE_SERVER_HELLO, "ServerHello"), "ServerHello")
    legacy = reader.uint(2)
    reader.take(32)          # random
    reader.vector(1)         # legacy_session_id_echo
    reader.take(2)           # cipher_suite
    reader.take(1)           # legacy_compression_method
    extensions = _extensions(reader.vector(2), "ServerHello extensions") if reader.remaining else {}
    version = legacy
    if EXTENSION_SUPPORTED_VERSIONS in extensions and len(extensions[EXTENSION_SUPPORTED_VERSIONS]) == 2:
        version = int.from_bytes(extensions[EXTENSION_SUPPORTED_VERSIONS], "big")
    return _WIRE_VERSIONS.get(version), extensions


def _ocsp_from_certificate_status(blob: bytes, what: str) -> bytes:
    reader = _Reader(blob, what)
    status_type = reader.uint(1)
    if status_type != STATUS_TYPE_OCSP:
        raise ParseError(f"the {what} carries status_type {status_type}, not ocsp (1)")
    der = reader.vector(3)
    if not der:
        raise ParseError(f"the {what} carries an empty OCSP response")
    return der


def parse_certificate(message: bytes, tls13: bool) -> tuple[list[bytes], bytes | None]:
    """(DER chain, DER OCSP response from the leaf's status_request extension or None)."""
    reader = _Reader(_body(message, HANDSHAKE_CERTIFICATE, "Certificate"), "Certificate")
    if tls13:
        reader.vector(1)     # certificate_request_context
    entries = _Reader(reader.vector(3), "certificate_list")
    chain: list[bytes] = []
    staple = None
    while entries.remaining:
        chain.append(entries.vector(3))
        if tls13:
            extensions = _extensions(entries.vector(2), "CertificateEntry extensions")
            # Only the end-entity's entry answers the client's status_request (RFC 8446 4.4.2.1).
            if len(chain) == 1 and EXTENSION_STATUS_REQUEST in extensions:
                staple = _ocsp_from_certificate_status(extensions[EXTENSION_STATUS_REQUEST],
                                                       "status_request extension")
    return chain, staple


def parse_transcript(stdout: str) -> Handshake:
    """Read one ``openssl s_client -status -msg -showcerts`` stdout."""
    session = _NEW_SESSION.search(stdout)
    protocol = cipher = None
    if session and session.group("protocol") != "(NONE)":
        protocol, cipher = session.group("protocol"), session.group("cipher")
    messages = received_handshake_messages(stdout)
    names = [name for name, _data in messages]
    chain: list[bytes] = []
    staple = None
    acknowledged = False
    hello_protocol = None
    for name, data in messages:
        if data[0] == HANDSHAKE_SERVER_HELLO:
            # A HelloRetryRequest is a ServerHello too; the last one decides.
            hello_protocol, extensions = parse_server_hello(data)
            acknowledged = EXTENSION_STATUS_REQUEST in extensions
    protocol = protocol or hello_protocol
    tls13 = protocol == "TLSv1.3"
    for name, data in messages:
        if data[0] == HANDSHAKE_CERTIFICATE and not chain:
            chain, entry_staple = parse_certificate(data, tls13)
            if entry_staple is not None:
                staple = entry_staple
        elif data[0] == HANDSHAKE_CERTIFICATE_STATUS and staple is None:
            staple = _ocsp_from_certificate_status(_body(data, HANDSHAKE_CERTIFICATE_STATUS,
                                                         "CertificateStatus"),
                                                   "CertificateStatus message")
    if not chain:
        chain = [_pem_to_der(block) for block in _PEM.findall(stdout)]
    return Handshake(handshake_ok=cipher is not None, protocol=protocol, cipher=cipher,
                     staple=staple, chain=chain, server_status_request=acknowledged,
                     messages=names)


def _pem_to_der(block: str) -> bytes:
    body = "".join(line.strip() for line in block.splitlines() if line.strip() and not line.startswith("-----"))
    try:
        return base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise ParseError(f"a certificate in the transcript is not valid base64 ({exc})") from exc


def der_to_pem(der: bytes) -> str:
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


# -- failures -------------------------------------------------------------------------

_ALERT = re.compile(r"(?:sslv3|tlsv1[0-9.]*) alert ([a-z ]+?)(?::|\s*$)", re.M)
_NOT_TLS = ("wrong version number", "Not TLS data", "packet length too long",
            "record layer failure", "http request", "unknown protocol")


def classify_failure(endpoint: Endpoint, stdout: str, stderr: str) -> tuple[str, str]:
    """(error class, a sentence saying what was found and what to check) for a failed handshake."""
    where = endpoint.label()
    text = stderr + "\n" + stdout
    if "Connection refused" in text or "errno=111" in text:
        return "connection_refused", (f"Nothing accepts connections on {endpoint.connect}: "
                                      "check that the web server listens on that address and port.")
    if "Name or service not known" in text or "BIO_lookup" in text or "nodename nor servname" in text:
        return "name_resolution", (f"{endpoint.host} does not resolve on this host: use the "
                                   "address the server listens on, or fix the host's DNS.")
    if "Connection timed out" in text or "errno=110" in text:
        return "timeout", f"Connecting to {endpoint.connect} timed out: a firewall may drop the packets."
    if "No route to host" in text or "Network is unreachable" in text or "errno=113" in text \
            or "errno=101" in text:
        return "unreachable", f"{endpoint.connect} is not reachable from this host (no route)."
    if any(marker in text for marker in _NOT_TLS):
        return "not_tls", (f"{where} answered, but not with TLS (it may be plain HTTP or another "
                           "protocol): check the port, or that the listener has ssl enabled.")
    alert = _ALERT.search(text)
    if alert:
        name = alert.group(1).strip().replace(" ", "_")
        return "handshake_failed", (f"{where} refused the TLS handshake with the alert {name}: "
                                    "check the server's protocols, ciphers and certificate for "
                                    "this name, and its error log.")
    if "unexpected eof" in text or "errno=104" in text or "Connection reset" in text:
        return "handshake_failed", (f"{where} closed the connection during the TLS handshake: "
                                    "check the server's error log for this name.")
    last = (stderr.strip().splitlines() or ["no error output"])[-1]
    return "handshake_failed", f"The TLS handshake with {where} did not complete: {last}"


# -- running s_client ----------------------------------------------------------------

def skip_ca_flags(version: str | None) -> list[str]:
    """s_client flags that skip loading the system CA store, for this ``openssl version``.

    The controller verifies, so the host need not; loading the store costs more CPU than the
    handshake itself (measured: ~30 ms vs ~7 ms of user time per run, OpenSSL 3.0).
    ``-no-CAstore`` is new in 3.0; 1.1.x knows the other two; anything else gets none.
    """
    match = re.match(r"OpenSSL (\d+)\.(\d+)", version or "")
    if not match:
        return []
    major, minor = int(match.group(1)), int(match.group(2))
    if major >= 3:
        return ["-no-CAfile", "-no-CApath", "-no-CAstore"]
    if (major, minor) >= (1, 1):
        return ["-no-CAfile", "-no-CApath"]
    return []


def build_command(openssl: str, endpoint: Endpoint, tls_versions: list[str] | None = None,
                  extra_args: list[str] | tuple = ()) -> list[str]:
    command = [openssl, "s_client", "-connect", endpoint.connect, "-status", "-msg", "-showcerts"]
    command += list(extra_args)
    command += ["-servername", endpoint.sni] if endpoint.sni else ["-noservername"]
    versions = sorted(tls_versions or TLS_VERSIONS)
    command += ["-min_protocol", TLS_VERSIONS[versions[0]], "-max_protocol", TLS_VERSIONS[versions[-1]]]
    return command


def handshake(openssl: str, endpoint: Endpoint, timeout: float,
              tls_versions: list[str] | None = None, runner=subprocess.run,
              extra_args: list[str] | tuple = ()) -> ProbeResult:
    """One bounded handshake; never raises for network trouble."""
    result = ProbeResult(endpoint.host, endpoint.port, endpoint.server_name)
    command = build_command(openssl, endpoint, tls_versions, extra_args)
    started = time.monotonic()
    try:
        completed = runner(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                           check=False)
    except subprocess.TimeoutExpired:
        result.handshake_seconds = round(time.monotonic() - started, 3)
        result.error = "timeout"
        result.error_detail = (f"No TLS handshake with {endpoint.label()} within {timeout:g} s: the "
                               "server may be overloaded, or (Apache) blocked fetching an OCSP "
                               "response inside the handshake; raise timeout to see how long it takes.")
        return result
    except OSError as exc:
        result.error = "openssl_failed"
        result.error_detail = f"Could not run {openssl}: {exc}."
        return result
    result.handshake_seconds = round(time.monotonic() - started, 3)
    stdout = completed.stdout.decode("utf-8", "replace")
    stderr = completed.stderr.decode("utf-8", "replace")
    return fill_result(result, endpoint, stdout, stderr)


def fill_result(result: ProbeResult, endpoint: Endpoint, stdout: str, stderr: str) -> ProbeResult:
    """Turn one transcript into the result fields (separate so fixtures can drive it)."""
    try:
        seen = parse_transcript(stdout)
    except ParseError as exc:
        result.error = "openssl_failed"
        result.error_detail = (f"The handshake transcript from {endpoint.label()} could not be read: "
                               f"{exc}. Report this with the openssl version of this host.")
        return result
    if not seen.handshake_ok:
        result.error, result.error_detail = classify_failure(endpoint, stdout, stderr)
        return result
    result.handshake_ok = True
    result.protocol, result.cipher = seen.protocol, seen.cipher
    result.chain = [der_to_pem(der) for der in seen.chain]
    if seen.staple:
        result.stapled = True
        result.staple = base64.b64encode(seen.staple).decode("ascii")
    return result


def probe(openssl: str, endpoint: Endpoint, timeout: float, tls_versions: list[str] | None = None,
          warmup: bool = False, warmup_delay: float = 0.5, runner=subprocess.run,
          sleep=time.sleep, extra_args: list[str] | tuple = ()) -> ProbeResult:
    """The measured handshake, after an optional warm-up one.

    nginx fetches a staple only when a handshake asks for one and sends nothing on that
    handshake (the fetch is asynchronous); after a start or reload every worker starts
    empty. The warm-up handshake triggers the fetch; when it carried no staple we wait
    ``warmup_delay`` seconds for the fetch to land before the measured handshake.
    """
    before = None
    if warmup:
        first = handshake(openssl, endpoint, timeout, tls_versions, runner, extra_args)
        before = {"handshake_ok": first.handshake_ok, "stapled": first.stapled, "error": first.error,
                  "handshake_seconds": first.handshake_seconds}
        if first.handshake_ok and not first.stapled and warmup_delay > 0:
            sleep(warmup_delay)
    result = handshake(openssl, endpoint, timeout, tls_versions, runner, extra_args)
    result.warmup = before
    return result


def probe_all(openssl: str, endpoints: list[Endpoint], timeout: float, concurrency: int,
              tls_versions: list[str] | None = None, warmup: bool = False,
              warmup_delay: float = 0.5, runner=subprocess.run,
              extra_args: list[str] | tuple = ()) -> list[ProbeResult]:
    """Probe every endpoint with at most ``concurrency`` handshakes in flight; input order kept."""
    if not endpoints:
        return []
    workers = max(1, min(concurrency, len(endpoints)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        def one(endpoint: Endpoint) -> ProbeResult:
            return probe(openssl, endpoint, timeout, tls_versions, warmup, warmup_delay, runner,
                         extra_args=extra_args)
        return list(pool.map(one, endpoints))


# -- where the endpoints come from ---------------------------------------------------

_WILDCARD_LISTEN = {"", "*", "0.0.0.0", "::", "[::]", "_default_"}


def _sni_name(names) -> str | None:
    """The first server name a client could send as SNI (no wildcard, regex or catch-all)."""
    for name in names or []:
        if not isinstance(name, str):
            continue
        name = name.strip()
        if not name or name == "_" or "*" in name or name.startswith("~") or _is_address(name):
            continue
        return name
    return None


def endpoints_from_facts(facts: dict | None, default_port: int = 443) -> tuple[list[Endpoint], list[dict]]:
    """Adapt ``stapling_facts`` output to endpoints: ``(endpoints, skipped)``.

    Reads ``facts["sites"][]`` with ``server_names`` (or ``names``, as ``stapling_facts``
    writes it; a list) and ``listen`` (list of ``{address, port}``). Tolerant of missing keys: a site without ``listen`` is probed on
    127.0.0.1:443; a wildcard listen address (``*``, ``0.0.0.0``, ``[::]``) is probed on
    loopback, because a wildcard listener answers there too; a listen entry or site marked
    ``ssl: false`` (or ``tls: false``) is skipped; a site without a usable SNI name (only
    ``_``, wildcards or regexes) is skipped and reported. Duplicates are dropped.
    """
    endpoints: list[Endpoint] = []
    skipped: list[dict] = []
    seen = set()
    sites = (facts or {}).get("sites") if isinstance(facts, dict) else None
    for site in sites or []:
        if not isinstance(site, dict):
            continue
        names = site.get("server_names") or site.get("names")
        if isinstance(names, str):
            names = [names]
        name = _sni_name(names)
        where = site.get("file") or site.get("config_file") or site.get("source")
        if site.get("ssl") is False or site.get("tls") is False:
            continue
        if name is None:
            skipped.append({"server_names": names or [], "file": where,
                            "reason": "no server name usable as SNI (only '_', wildcards or regexes)"})
            continue
        listens = site.get("listen") or [{}]
        if isinstance(listens, dict):
            listens = [listens]
        for listen in listens:
            if not isinstance(listen, dict):
                continue
            if listen.get("ssl") is False or listen.get("tls") is False:
                continue
            address = str(listen.get("address") or "").strip()
            if address.startswith("unix:") or address.startswith("/"):
                skipped.append({"server_names": names, "file": where,
                                "reason": f"listens on the unix socket {address}, not TCP"})
                continue
            if address in _WILDCARD_LISTEN:
                address = "::1" if address in ("::", "[::]") else "127.0.0.1"
            try:
                port = int(listen.get("port") or default_port)
            except (TypeError, ValueError):
                skipped.append({"server_names": names, "file": where,
                                "reason": f"listen port {listen.get('port')!r} is not a number"})
                continue
            endpoint = Endpoint(address.strip("[]"), port, name)
            if endpoint not in seen:
                seen.add(endpoint)
                endpoints.append(endpoint)
    return endpoints, skipped


def endpoints_from_options(entries: list[dict] | None) -> list[Endpoint]:
    """Endpoints from the module's ``endpoints`` option, duplicates dropped, order kept."""
    endpoints: list[Endpoint] = []
    for entry in entries or []:
        endpoint = Endpoint(str(entry["host"]).strip("[]"), int(entry.get("port") or 443),
                            entry.get("server_name") or None)
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    return endpoints


# -- the module's body -----------------------------------------------------------------

def openssl_version(openssl: str, run_command) -> str | None:
    """``openssl version`` through AnsibleModule.run_command (rc, out, err)."""
    rc, out, _err = run_command([openssl, "version"])
    return out.strip() if rc == 0 else None


OPENSSL_DIRS = ("/usr/local/ssl/bin", "/usr/local/bin")


def find_openssl() -> str | None:
    """The host's openssl command line tool: PATH first, then where source builds install it."""
    return shutil.which("openssl") or next(
        (path for path in (d + "/openssl" for d in OPENSSL_DIRS) if shutil.which(path)), None)


def openssl_missing(who: str) -> str:
    """The message for a host without openssl; ``who`` names what needs it."""
    return (f"openssl was not found on this host (searched PATH, {', '.join(OPENSSL_DIRS)}); {who} needs it for "
            "the TLS handshake with each site. Install the openssl package (Debian: apt-get install openssl; "
            "RHEL: dnf install openssl).")


def run_module_probe(params: dict, openssl: str, run_command=None, facts_endpoints=None) -> dict:
    """Everything ``stapling_status`` does on the host; raises ValueError for bad options.

    ``facts_endpoints`` is ``endpoints_from_facts(params["facts"])`` when the caller has it already.
    """
    if params.get("timeout") is not None and params["timeout"] <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {params['timeout']}.")
    if params.get("concurrency") is not None and params["concurrency"] < 1:
        raise ValueError(f"concurrency must be 1 or more, got {params['concurrency']}.")
    if params.get("warmup_delay") is not None and params["warmup_delay"] < 0:
        raise ValueError(f"warmup_delay must be 0 or more seconds, got {params['warmup_delay']}.")
    endpoints = endpoints_from_options(params.get("endpoints"))
    skipped: list[dict] = []
    warnings: list[str] = []
    if params.get("facts") is not None:
        from_facts, skipped = facts_endpoints or endpoints_from_facts(params["facts"])
        endpoints += [ep for ep in from_facts if ep not in endpoints]
        if not from_facts:
            warnings.append("The stapling_facts output given in facts lists no TLS site this module "
                            "can probe (facts.sites is empty or every site was skipped): check that "
                            "stapling_facts found the web server's configuration.")
    for name in ("rounds", "handshakes"):
        if params.get(name) is not None and params[name] < 1:
            raise ValueError(f"{name} must be 1 or more, got {params[name]}.")
    version = openssl_version(openssl, run_command) if run_command else None
    results = probe_rounds(
        lambda: probe_all(openssl, endpoints * (params.get("handshakes") or 1), timeout=params.get("timeout") or 15,
                          concurrency=params.get("concurrency") or 16,
                          tls_versions=params.get("tls_versions"), warmup=bool(params.get("warmup")),
                          warmup_delay=params.get("warmup_delay") or 0,
                          extra_args=skip_ca_flags(version)),
        rounds=params.get("rounds") or 1, delay=params.get("round_delay") or 0,
        settle_names=([e.server_name for e in endpoints] if params.get("settle_names") is None
                      else params["settle_names"]))
    return {"endpoints": results, "skipped_sites": skipped,
            "openssl": {"path": openssl, "version": version}, "warnings": warnings}


def probe_rounds(probe_once: Callable[[], list], rounds: int = 1, delay: float = 0,
                 settle_names=(), sleep: Callable[[float], None] = time.sleep) -> list[dict]:
    """Up to ``rounds`` rounds of ``probe_once``, ``delay`` s apart, each handshake tagged with
    its round; stop after the round by which every name of ``settle_names`` has stapled."""
    found: list[dict] = []
    waiting = set(settle_names)
    for number in range(1, rounds + 1):
        if number > 1:
            sleep(delay)
        for result in probe_once():
            found.append(dict(result.as_dict(), round=number) if rounds > 1 else result.as_dict())
            if result.stapled:
                waiting.discard(result.server_name)
        if not waiting:
            break
    return found
