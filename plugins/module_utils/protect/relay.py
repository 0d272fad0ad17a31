# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A loopback OCSP relay that answers from the keeper's held responses.

For servers that can only fetch OCSP themselves (Apache without mod_md, LiteSpeed) the
server is pointed at this relay (``SSLStaplingForceURL http://127.0.0.1:<port>/``,
LiteSpeed's ``ocspResponder``). Standard library only (``http.server``); GET (RFC 6960
A.1, as nginx and LiteSpeed ask) and POST (as Apache asks).

Each request's CertID is read (:mod:`.certid`) and looked up among the keeper's
certificates:

- a held response that verifies (``openssl ocsp``, re-checked whenever the file changes)
  and is inside its validity is answered at once, whatever the real responder is doing:
  **no error is ever returned while a valid response is held**;
- a known certificate with nothing valid held gets one synchronous keeper refresh (so a
  fresh start fills itself), and the answer is served only if it verified; else HTTP 503
  (mod_ssl then staples nothing with ``SSLStaplingFakeTryLater off``);
- an unknown CertID is passed to the real responder of its issuer (when the keeper knows
  that issuer) or to ``upstream``, and the answer is returned as it came; the web server
  verifies it as it would without the relay.

Given the path of its keeper configuration, the relay re-reads it when it changes (its
mtime, size or inode differ; looked at no more than once per ``reload_interval`` second,
on a request), so a certificate the Apache role adds is answered without a restart. A
configuration that no longer loads is reported and the previous one kept; a removed one
(the last site left protected mode) leaves the relay serving nothing from the keeper.

Run (systemd, the schedule role): ``python3 -m
ansible_collections.ocsp.stapling.plugins.module_utils.protect.relay --config
/etc/ocsp-stapling/keeper.json --listen 127.0.0.1:8088``.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import fetch as ocsp_fetch
from ansible_collections.ocsp.stapling.plugins.module_utils.protect import policy
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.certid import (
    CertIDError, certid_key, request_certids)
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import (
    Keeper, KeeperError, keeper_from_config, load_config)

MAX_REQUEST = 16 * 1024
RELOAD_INTERVAL = 1.0
CONTENT_TYPE = "application/ocsp-response"
DEFAULT_LISTEN = "127.0.0.1:8088"


class RelayCore:
    """The relay's decisions, apart from HTTP, so tests can drive them directly."""

    def __init__(self, keeper: Keeper, upstream: str | None = None, upstream_timeout: float = 10.0,
                 refresh_in_background: bool = True, config_path: str | None = None,
                 reload_interval: float = RELOAD_INTERVAL, monotonic=time.monotonic):
        self.keeper = keeper
        self.upstream = upstream
        self.upstream_timeout = upstream_timeout
        self.refresh_in_background = refresh_in_background
        self.config_path = config_path
        self.reload_interval = reload_interval
        self.config_error: str | None = None
        self._monotonic = monotonic
        self._index: dict[str, dict] = {}
        self._verified: dict[str, tuple] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._index_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.counters = {"held": 0, "refreshed": 0, "unavailable": 0, "forwarded": 0, "bad_request": 0,
                         "config_reloads": 0}
        self._install(keeper)
        self._config_stamp = config_stamp(config_path) if config_path else None
        self._config_checked = monotonic()

    def _build_index(self, keeper: Keeper) -> dict[str, dict]:
        index = {}
        for spec in keeper.certificates:
            key = keeper.read_state(spec["name"]).get("certid")
            if not key:
                try:
                    key = certid_key(request_certids(keeper.build_request(spec))[0])
                except (KeeperError, CertIDError) as exc:
                    sys.stderr.write(f"ocsp-stapling relay: {spec['name']} is not served from the keeper: {exc}\n")
                    continue
            index[key] = spec
        return index

    def _install(self, keeper: Keeper) -> None:
        """Serve from ``keeper``: its index, a lock per certificate (kept for names that stay),
        and the verified-response cache of every certificate whose entry did not change."""
        index = self._build_index(keeper)
        with self._index_lock:
            before = {spec["name"]: spec for spec in self.keeper.certificates}
            after = {spec["name"]: spec for spec in keeper.certificates}
            self._locks = {name: self._locks.get(name) or threading.Lock() for name in after}
            self._verified = {name: cached for name, cached in self._verified.items()
                              if name in after and before.get(name) == after[name]}
            self.keeper = keeper
            self._index = index

    def reload_if_changed(self) -> bool:
        """Re-read the keeper configuration if its file changed; True when a new one is in use.

        Looks at the file at most once per ``reload_interval`` seconds, so a busy relay costs
        one stat a second; a configuration that fails to load keeps the previous one.
        """
        if not self.config_path:
            return False
        now = self._monotonic()
        with self._reload_lock:
            if now - self._config_checked < self.reload_interval:
                return False
            self._config_checked = now
            stamp = config_stamp(self.config_path)
            if stamp == self._config_stamp:
                return False
            try:
                config = load_config(self.config_path) if stamp is not None else {"certificates": []}
                keeper = keeper_from_config(config)
            except (KeeperError, OSError, ValueError) as exc:
                self._config_stamp = stamp   # tried once; the next change is tried again
                self.config_error = (f"{self.config_path} changed but could not be read ({exc}); the relay keeps "
                                     f"serving the {len(self.keeper.certificates)} certificate(s) it had. Fix the file "
                                     "(the Apache role or stapling_keeper writes it); the relay reads it again when it changes.")
                sys.stderr.write(f"ocsp-stapling relay: {self.config_error}\n")
                return False
            self._install(keeper)
            self._config_stamp = stamp
            self.config_error = None
            self._count("config_reloads")
            sys.stderr.write(f"ocsp-stapling relay: {self.config_path} changed; now serving "
                             f"{len(self._index)} certificate(s)\n")
            return True

    def state(self) -> dict:
        """What ``GET /-/state`` answers: counters, every certificate's state, the configuration."""
        self.reload_if_changed()
        return {"counters": dict(self.counters), "certificates": self.keeper.status(),
                "config": self.config_path, "config_error": self.config_error}

    def _count(self, key: str) -> None:
        with self._index_lock:
            self.counters[key] += 1

    def held_valid(self, spec: dict) -> bytes | None:
        """The held DER if it verifies and is inside its validity now, else None."""
        path = spec["response"]
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._verified.get(spec["name"])
        if not cached or cached[0] != stamp:
            held = self.keeper.held(spec)
            if held is None:
                return None
            cached = (stamp, held)
            self._verified[spec["name"]] = cached
        held = cached[1]
        if not policy.is_valid(held, self.keeper.clock()):
            return None
        return held["der"]

    def answer(self, request_der: bytes) -> tuple[int, bytes, str]:
        """(HTTP status, body, content type) for one OCSP request."""
        self.reload_if_changed()
        try:
            certids = request_certids(request_der)
        except CertIDError as exc:
            self._count("bad_request")
            return 400, f"not an OCSP request: {exc}\n".encode(), "text/plain"
        spec = self._index.get(certid_key(certids[0])) if len(certids) == 1 else None
        if spec is None:
            return self._forward(request_der, certids[0])
        der = self.held_valid(spec)
        if der is not None:
            self._count("held")
            self._maybe_refresh_later(spec)
            return 200, der, CONTENT_TYPE
        with self._locks.setdefault(spec["name"], threading.Lock()):
            der = self.held_valid(spec)
            if der is None:
                self.keeper.refresh(force=True, names=[spec["name"]])
                der = self.held_valid(spec)
        if der is not None:
            self._count("refreshed")
            return 200, der, CONTENT_TYPE
        self._count("unavailable")
        error = self.keeper.read_state(spec["name"]).get("last_error") or "no valid response is held"
        return 503, f"no valid OCSP response is held for {spec['name']}: {error}\n".encode(), "text/plain"

    def _maybe_refresh_later(self, spec: dict) -> None:
        if not self.refresh_in_background:
            return
        state = self.keeper.read_state(spec["name"])
        if state.get("next_refresh") and self.keeper.clock() < state["next_refresh"]:
            return
        lock = self._locks.setdefault(spec["name"], threading.Lock())
        if not lock.acquire(blocking=False):
            return

        def work():
            try:
                self.keeper.refresh(names=[spec["name"]])
            finally:
                lock.release()
        threading.Thread(target=work, daemon=True).start()

    def _forward(self, request_der: bytes, certid: dict) -> tuple[int, bytes, str]:
        url = self.upstream
        for key, spec in self._index.items():
            if key.split("/")[2] == certid["issuer_key_hash"]:
                url = self.keeper.read_state(spec["name"]).get("url") or spec.get("url") or url
                break
        if not url:
            self._count("unavailable")
            return 503, b"this relay holds no response for that certificate and has no upstream responder\n", "text/plain"
        self._count("forwarded")
        result = ocsp_fetch.fetch(url, request_der, method="POST", timeout=self.upstream_timeout)
        if result["response"] is not None and result["http_status"] is not None:
            return result["http_status"], base64.b64decode(result["response"]), result["content_type"] or CONTENT_TYPE
        return 502, f"the responder {url} could not be reached: {result['detail']}\n".encode(), "text/plain"


def config_stamp(path: str) -> tuple | None:
    """What tells a changed configuration file: (mtime_ns, size, inode), None when it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def make_handler(core: RelayCore):
    class RelayHandler(BaseHTTPRequestHandler):
        server_version = "ocsp-stapling-relay/1"
        protocol_version = "HTTP/1.0"

        def log_message(self, fmt, *args):
            return

        def do_GET(self):
            if self.path == "/-/state":
                body = json.dumps(core.state()).encode()
                self._send(200, body, "application/json")
                return
            self._send(*core.answer(get_request_der(self.path)))

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_REQUEST:
                self._send(413, b"an OCSP request is a few hundred bytes\n", "text/plain")
                return
            self.connection.settimeout(10)
            self._send(*core.answer(self.rfile.read(length)))

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    return RelayHandler


class RelayServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # a client hanging up is not our error
        return


def get_request_der(path: str) -> bytes:
    """The DER request of an OCSP GET (RFC 6960 A.1: the base64 request, URL-encoded, after the
    responder URL's path). A client that does not URL-encode puts the base64 '/' in the path
    as it is: the longest tail of the path that decodes is the request. b"" when none does."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    for start in range(len(parts)):
        encoded = urllib.parse.unquote("/".join(parts[start:]))
        try:
            der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if der[:1] == b"\x30":          # an OCSPRequest is a DER SEQUENCE
            return der
    return b""


def serve(core: RelayCore, listen: str = DEFAULT_LISTEN) -> RelayServer:
    host, _sep, port = listen.rpartition(":")
    return RelayServer((host.strip("[]") or "127.0.0.1", int(port)), make_handler(core))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback OCSP relay answering from the keeper's held responses.")
    parser.add_argument("--config", required=True, help="keeper JSON configuration")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port (loopback)")
    parser.add_argument("--upstream", help="responder for certificates the keeper does not hold")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        core = RelayCore(keeper_from_config(config), upstream=args.upstream or config.get("upstream"),
                         config_path=args.config)
        server = serve(core, args.listen)
    except (KeeperError, OSError, ValueError) as exc:
        sys.stderr.write(f"ocsp-stapling relay: {exc}\n")
        return 2
    sys.stderr.write(f"ocsp-stapling relay: listening on {args.listen} for {len(core._index)} certificate(s)\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
