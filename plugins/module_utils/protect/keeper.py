# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keeper: hold a verified OCSP response per certificate on the host, refresh it early.

Standard library plus the host's ``openssl`` CLI. For each certificate the keeper builds
the request with ``openssl ocsp -reqout``, asks the responder over HTTP
(:mod:`..ocsp.fetch`), and verifies the answer with ``openssl ocsp -respin`` (signature,
signer chain, CertID, thisUpdate/nextUpdate). The CLI is the verifier because web servers
get no new Python packages and the standard library cannot check a signature; ``openssl``
is already there, since the web server links the same library.

A response is written (DER, atomically) only when it verified, is inside its validity
and is newer than the held one (:mod:`.policy`); anything else is recorded as the last
error and the held response stays. Per certificate a state file
``<state_dir>/<name>.json`` says what is held and when the next refresh is due, for
``stapling_keeper``, the relay, ``stapling_status`` and the run summary.

nginx serves ``ssl_stapling_file`` with no expiry check and reads it only at (re)load, so
a certificate may name a ``snippet``: the keeper writes there either the
``ssl_stapling_file`` lines (a valid response is held) or the fallback lines (the held
response is within :func:`.policy.expiry_margin` of nextUpdate, or nothing is held), then
runs ``configtest_command`` and ``reload_command``. A snippet change nginx rejects is
put back. A reload only signals nginx, and until the previous worker generation has
handled it those workers keep serving the old file: with ``pid_file`` the keeper waits
(at most ``settle_timeout`` seconds) until the master's workers from before the reload
have exited, so a switch it reports is in effect.

Run from a timer with the collection on ``PYTHONPATH``: ``python3 -m
ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper --config
/etc/ocsp-stapling/keeper.json``.
"""
from __future__ import annotations

import argparse
import base64
import calendar
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from ansible_collections.ocsp.stapling.plugins.module_utils.change.atomic_write import write_atomic
from ansible_collections.ocsp.stapling.plugins.module_utils.change.processes import read_pid, wait_gone, workers
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import fetch as ocsp_fetch
from ansible_collections.ocsp.stapling.plugins.module_utils.protect import nginx_snippet, policy
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.certid import (
    CertIDError, certid_key, request_certids)

DEFAULT_STATE_DIR = "/var/lib/ocsp-stapling/keeper"
DEFAULT_OPENSSL = "openssl"
DEFAULT_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
DEFAULT_TIMEOUT = 10.0
DEFAULT_SETTLE_TIMEOUT = 30.0
STATE_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TIME_FIELDS = ("This Update", "Next Update", "Produced At")


class KeeperError(Exception):
    """A certificate entry the keeper cannot work with; the message says what to fix."""


def parse_openssl_time(text: str) -> float:
    """``Dec  2 01:51:16 2026 GMT`` (OpenSSL's ASN1_TIME_print) as POSIX seconds."""
    cleaned = " ".join(text.split())
    return float(calendar.timegm(time.strptime(cleaned, "%b %d %H:%M:%S %Y GMT")))


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_verify_output(stdout: str, stderr: str, returncode: int, cert_label: str) -> dict:
    """Judge ``openssl ocsp -respin ... -resp_text`` output for one certificate.

    ``verified`` is true only when openssl says ``Response verify OK``, found a status for
    this certificate's CertID and printed no status-times warning.
    """
    result = {"verified": False, "cert_status": None, "this_update": None, "next_update": None,
              "produced_at": None, "error": None}
    match = re.search(r"Produced At: (.+)", stdout)
    if match:
        try:
            result["produced_at"] = parse_openssl_time(match.group(1))
        except ValueError:
            pass
    responder_error = re.search(r"Responder Error: (\S+)", stdout)
    if responder_error:
        result["error"] = f"the responder answered OCSP status {responder_error.group(1)} instead of a signed response"
        return result
    # The status block follows "<cert>: " (the label openssl prints is the -cert path).
    index = stdout.rfind(cert_label + ": ")
    block = stdout[index + len(cert_label) + 2:] if index >= 0 else ""
    if "ERROR: No Status found" in block:
        result["error"] = "the response holds no status for this certificate (CertID mismatch)"
        return result
    status = re.search(r"\b(good|revoked|unknown)\b", block)
    if status:
        result["cert_status"] = status.group(1)
    for label, key in (("This Update", "this_update"), ("Next Update", "next_update")):
        found = re.search(label + r": (.+)", block)
        if found:
            try:
                result[key] = parse_openssl_time(found.group(1))
            except ValueError:
                pass
    err = stderr.strip()
    if returncode != 0 or "Response verify OK" not in stderr:
        lines = [line for line in err.splitlines() if line.strip()]
        reason = "; ".join(lines[:2]) if lines else f"openssl exited {returncode}"
        result["error"] = f"openssl could not verify the response: {reason}"
        return result
    if "Status times invalid" in block:
        result["error"] = "openssl found the response's thisUpdate/nextUpdate invalid (expired or not yet valid)"
        return result
    if result["cert_status"] is None or result["this_update"] is None:
        result["error"] = "openssl printed no status and thisUpdate for this certificate"
        return result
    if result["next_update"] is None:
        result["error"] = "the response has no nextUpdate; a held response must say when it expires"
        return result
    result["verified"] = True
    return result


class Keeper:
    """Refresh and report the held responses for a list of certificates.

    ``certificates``: dicts with ``name`` (file-name safe), ``cert`` (PEM leaf), ``issuer``
    (PEM issuer), optional ``url`` (else the certificate's AIA OCSP URL), ``ca_file`` and
    ``va_file`` (trust for the responder's signature), ``response`` (DER path, default
    ``<state_dir>/<name>.der``), ``snippet`` (nginx include written by the keeper) and
    ``fallback`` (``fetch``: nginx's own stapling, or ``off``).
    """

    def __init__(self, certificates: list[dict], state_dir: str = DEFAULT_STATE_DIR,
                 openssl: str = DEFAULT_OPENSSL, timeout: float = DEFAULT_TIMEOUT,
                 configtest_command: list[str] | None = None, reload_command: list[str] | None = None,
                 backoff_cap: float = policy.BACKOFF_CAP, clock=time.time, rand=None,
                 pid_file: str | None = None, settle_timeout: float = DEFAULT_SETTLE_TIMEOUT):
        self.state_dir = state_dir
        self.pid_file = pid_file
        self.settle_timeout = settle_timeout
        self.openssl = openssl
        self.timeout = timeout
        self.configtest_command = configtest_command or []
        self.reload_command = reload_command or []
        self.backoff_cap = backoff_cap
        self.clock = clock
        self.rand = rand
        self.certificates = [self._normalise(spec) for spec in certificates]

    # -- configuration ---------------------------------------------------------------
    def _normalise(self, spec: dict) -> dict:
        name = spec.get("name") or ""
        if not _NAME.match(name):
            raise KeeperError(f"certificate name {name!r} is not usable as a file name; use letters, digits, '.', '_' or '-'.")
        # A site whose include is gone left protected mode, and the plan swept its issuer file
        # with the include: not an error, the certificate is just not kept (see active()).
        left = bool(spec.get("snippet")) and not os.path.exists(spec["snippet"])
        for key in ("cert", "issuer"):
            if not spec.get(key):
                raise KeeperError(f"certificate {name}: '{key}' is missing; give the PEM path of the {'leaf' if key == 'cert' else 'issuing CA'} certificate.")
            if not left and not os.path.isfile(spec[key]):
                raise KeeperError(f"certificate {name}: {spec[key]} ({key}) does not exist on this host; check the path.")
        fallback = spec.get("fallback") or "fetch"
        if fallback not in ("fetch", "off"):
            raise KeeperError(f"certificate {name}: fallback must be 'fetch' or 'off', not {fallback!r}.")
        return {"name": name, "cert": spec["cert"], "issuer": spec["issuer"], "url": spec.get("url"),
                "ca_file": spec.get("ca_file") or DEFAULT_CA_FILE, "va_file": spec.get("va_file"),
                "response": spec.get("response") or os.path.join(self.state_dir, name + ".der"),
                "snippet": spec.get("snippet"), "fallback": fallback,
                "trusted_certificate": spec.get("trusted_certificate")}

    def state_path(self, name: str) -> str:
        return os.path.join(self.state_dir, name + ".json")

    def read_state(self, name: str) -> dict:
        try:
            with open(self.state_path(name), encoding="utf-8") as handle:
                return json.load(handle)
        except (FileNotFoundError, ValueError):
            return {}

    def _write_state(self, state: dict) -> None:
        write_atomic(self.state_path(state["name"]), json.dumps(state, indent=2, sort_keys=True) + "\n", mode=0o644)

    # -- openssl ---------------------------------------------------------------------
    def _run(self, args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([self.openssl] + args, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=self.timeout + 20, check=False)

    def responder_url(self, spec: dict) -> str:
        if spec["url"]:
            return spec["url"]
        result = self._run(["x509", "-noout", "-ocsp_uri", "-in", spec["cert"]])
        url = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
        if result.returncode != 0 or not url:
            raise KeeperError(f"certificate {spec['name']}: {spec['cert']} has no OCSP responder URL (AIA); "
                              "stapling cannot work for it, so keep it out of protected mode or give 'url'.")
        return url

    def build_request(self, spec: dict) -> bytes:
        with tempfile.TemporaryDirectory(prefix="ocsp-keeper-") as tmp:
            out = os.path.join(tmp, "request.der")
            result = self._run(["ocsp", "-issuer", spec["issuer"], "-cert", spec["cert"], "-no_nonce", "-reqout", out])
            if result.returncode != 0 or not os.path.exists(out):
                raise KeeperError(f"certificate {spec['name']}: openssl could not build the OCSP request from "
                                  f"{spec['cert']} and {spec['issuer']}: {result.stderr.strip()[:300]}")
            with open(out, "rb") as handle:
                return handle.read()

    def verify(self, spec: dict, response_der: bytes) -> dict:
        """Verify DER bytes for ``spec`` with ``openssl ocsp -respin``."""
        with tempfile.TemporaryDirectory(prefix="ocsp-keeper-") as tmp:
            path = os.path.join(tmp, "response.der")
            with open(path, "wb") as handle:
                handle.write(response_der)
            args = ["ocsp", "-respin", path, "-issuer", spec["issuer"], "-cert", spec["cert"],
                    "-CAfile", spec["ca_file"], "-verify_other", spec["issuer"], "-no_nonce", "-resp_text"]
            if spec["va_file"]:
                args += ["-VAfile", spec["va_file"]]
            result = self._run(args)
        return parse_verify_output(result.stdout, result.stderr, result.returncode, spec["cert"])

    def held(self, spec: dict) -> dict | None:
        """The held response re-verified now (None when there is no file)."""
        try:
            with open(spec["response"], "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        checked = self.verify(spec, data)
        checked["der"] = data
        return checked

    # -- the work --------------------------------------------------------------------
    def status(self) -> list[dict]:
        """Every certificate's state, with ``due`` (a refresh is due now) and ``age``."""
        now = self.clock()
        out = []
        for spec in self.certificates:
            state = self.read_state(spec["name"]) or self._fresh_state(spec)
            entry = self._decorate(state, now)
            entry["active"] = self.active(spec)
            out.append(entry)
        return out

    @staticmethod
    def active(spec: dict) -> bool:
        """False for an nginx site whose include is gone: the site left protected mode.

        The nginx plan writes the include before the site reads it and removes it when the
        site is disabled or goes back to standard mode, so a missing include means nginx no
        longer reads it: writing it back, fetching for it or reloading nginx for it would be
        work for nothing (and a reload during an outage empties nginx's own staples).
        """
        return not spec["snippet"] or os.path.exists(spec["snippet"])

    def _fresh_state(self, spec: dict) -> dict:
        return {"version": STATE_VERSION, "name": spec["name"], "cert": spec["cert"], "issuer": spec["issuer"],
                "response_path": spec["response"], "url": spec["url"], "certid": None, "held": False,
                "cert_status": None, "this_update": None, "next_update": None, "produced_at": None,
                "fetched_at": None, "next_refresh": None, "last_attempt": None, "last_error": None,
                "consecutive_failures": 0, "served": None, "snippet": spec["snippet"]}

    def _decorate(self, state: dict, now: float) -> dict:
        state = dict(state)
        held = {"verified": state.get("held"), "this_update": state.get("this_update"),
                "next_update": state.get("next_update")}
        state["valid"] = policy.is_valid(held, now)
        state["due"] = state.get("next_refresh") is None or now >= state["next_refresh"]
        state["age"] = round(now - state["this_update"], 1) if state.get("this_update") else None
        for key in ("this_update", "next_update", "produced_at", "fetched_at", "next_refresh", "last_attempt"):
            state[key + "_iso"] = iso(state.get(key))
        return state

    def refresh(self, force: bool = False, check_mode: bool = False, names: list[str] | None = None) -> dict:
        """Refresh every due certificate (all with ``force``); run the server hooks once.

        Returns ``{"changed", "certificates": [...], "reload": {...}}``. In check mode
        nothing is fetched or written: each entry says whether it would be refreshed.
        """
        now = self.clock()
        results, response_changed, snippet_changes = [], False, []
        for spec in self.certificates:
            if names and spec["name"] not in names:
                continue
            state = self.read_state(spec["name"]) or self._fresh_state(spec)
            if not self.active(spec):
                entry = self._decorate(state, now)
                entry.update(active=False, refreshed=False, changed=False, would_refresh=False)
                results.append(entry)
                continue
            due = force or state.get("next_refresh") is None or now >= state["next_refresh"]
            if check_mode:
                entry = self._decorate(state, now)
                entry.update(active=True, would_refresh=due, refreshed=False, changed=due)
                results.append(entry)
                continue
            if due:
                state, changed = self._refresh_one(spec, state, now)
                response_changed = response_changed or changed
            else:
                changed = False
            snippet_change = self._snippet_change(spec, state, now)
            if snippet_change:
                snippet_changes.append(snippet_change)
            state["refreshed_now"] = bool(due)
            self._write_state(state)
            entry = self._decorate(state, now)
            entry.update(active=True, refreshed=bool(due), changed=changed)
            results.append(entry)
        reload_result = {"ran": False}
        if not check_mode and (snippet_changes or (response_changed and self._any_serving())):
            reload_result = self._apply_server(snippet_changes)
            for entry in results:
                for change in snippet_changes:
                    if change["name"] == entry["name"]:
                        entry["served"] = change["served"] if reload_result.get("ok") else change["previous_served"]
                        state = self.read_state(entry["name"])
                        state["served"] = entry["served"]
                        self._write_state(state)
        changed = any(entry.get("changed") for entry in results) or bool(snippet_changes)
        return {"changed": changed, "certificates": results, "reload": reload_result}

    def _refresh_one(self, spec: dict, state: dict, now: float) -> tuple[dict, bool]:
        state = dict(self._fresh_state(spec), **state)
        state["last_attempt"] = now
        # What is on disk is the truth: a held file removed or gone stale is not held.
        held = self.held(spec)
        if held is None or not held.get("verified"):
            state["held"] = False
        try:
            url = self.responder_url(spec)
            state["url"] = url
            request = self.build_request(spec)
            try:
                state["certid"] = certid_key(request_certids(request)[0])
            except CertIDError as exc:
                raise KeeperError(f"certificate {spec['name']}: the request openssl built could not be read ({exc}).")
        except KeeperError as exc:
            return self._failed(state, now, str(exc)), False
        answer = ocsp_fetch.fetch(url, request, method="POST", timeout=self.timeout)
        if answer["failure"]:
            return self._failed(state, now, f"fetching from {url}: {answer['detail']}"), False
        candidate = self.verify(spec, base64.b64decode(answer["response"]))
        if candidate["error"] and not candidate["verified"]:
            return self._failed(state, now, f"the answer from {url} was refused: {candidate['error']}"), False
        replace, reason = policy.should_replace(held, candidate, now)
        if not replace:
            return self._failed(state, now, f"the answer from {url} was not kept: {reason}"), False
        write_atomic(spec["response"], base64.b64decode(answer["response"]), mode=0o644)
        state.update(held=True, cert_status=candidate["cert_status"], this_update=candidate["this_update"],
                     next_update=candidate["next_update"], produced_at=candidate["produced_at"], fetched_at=now,
                     last_error=None, consecutive_failures=0)
        state["next_refresh"] = policy.next_refresh(now, candidate, 0)
        return state, True

    def _failed(self, state: dict, now: float, error: str) -> dict:
        state["last_error"] = error
        state["last_error_at"] = now
        state["consecutive_failures"] = int(state.get("consecutive_failures") or 0) + 1
        state["next_refresh"] = policy.next_refresh(now, None, state["consecutive_failures"], rand=self.rand,
                                                    cap=self.backoff_cap)
        return state

    # -- nginx: ssl_stapling_file while valid, the fallback before expiry ----------------
    def snippet_text(self, spec: dict, state: dict, now: float) -> tuple[str, str]:
        held = {"verified": state.get("held"), "this_update": state.get("this_update"),
                "next_update": state.get("next_update")}
        if not policy.must_withdraw(held, now):
            return "file", nginx_snippet.render("file", spec["response"], iso(state["next_update"]))
        return spec["fallback"], nginx_snippet.render(spec["fallback"], trusted_certificate=spec.get("trusted_certificate"))

    def _snippet_change(self, spec: dict, state: dict, now: float) -> dict | None:
        if not spec["snippet"]:
            return None
        served, text = self.snippet_text(spec, state, now)
        try:
            with open(spec["snippet"], encoding="utf-8") as handle:
                old = handle.read()
        except FileNotFoundError:
            old = None
        if old == text:
            return None
        return {"name": spec["name"], "path": spec["snippet"], "old": old, "new": text, "served": served,
                "previous_served": state.get("served")}

    def _any_serving(self) -> bool:
        return any(spec["snippet"] for spec in self.certificates) and bool(self.reload_command)

    def _apply_server(self, changes: list[dict]) -> dict:
        for change in changes:
            write_atomic(change["path"], change["new"])
        result = {"ran": True, "ok": True, "configtest": None, "reload": None, "error": None}
        if self.configtest_command:
            test = subprocess.run(self.configtest_command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=60, check=False)
            result["configtest"] = {"rc": test.returncode, "output": (test.stdout + test.stderr)[-2000:]}
            if test.returncode != 0:
                for change in changes:
                    if change["old"] is None:
                        os.unlink(change["path"])
                    else:
                        write_atomic(change["path"], change["old"])
                result.update(ok=False, error="the server's configtest rejected the keeper's snippet change, so the "
                                              "previous snippets were put back and nothing was reloaded: "
                                              + result["configtest"]["output"][-500:])
                return result
        if self.reload_command:
            previous = workers(read_pid(self.pid_file))
            reload_ = subprocess.run(self.reload_command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                     timeout=60, check=False)
            result["reload"] = {"rc": reload_.returncode, "output": (reload_.stdout + reload_.stderr)[-2000:]}
            if reload_.returncode != 0:
                result.update(ok=False, error=f"the reload command exited {reload_.returncode}: "
                                              + result["reload"]["output"][-500:])
                return result
            self._settle(previous, result)
        return result

    def _settle(self, previous: set, result: dict) -> None:
        """Wait for the workers from before the reload to exit; say so when they outlive the wait."""
        if not self.pid_file:
            result["settled"] = None
            return
        left = wait_gone(previous, self.settle_timeout)
        result["settled"] = not left
        if left:
            result["warning"] = (f"nginx was reloaded, but {len(left)} worker(s) from before the reload "
                                 f"(pids {', '.join(map(str, left))}) were still running after {self.settle_timeout:g} s "
                                 "and serve the previous stapling file until they exit; long-lived connections "
                                 "keep them: set worker_shutdown_timeout in nginx.conf to bound that.")


def load_config(path: str) -> dict:
    """The keeper's JSON configuration (what ``stapling_keeper`` writes for timers and the relay)."""
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    if not isinstance(config.get("certificates"), list):
        raise KeeperError(f"{path} has no 'certificates' list; it should be the keeper configuration the role writes.")
    return config


def prune_config(path: str, keep: list[str], check_mode: bool = False) -> dict:
    """Drop from the keeper configuration at ``path`` the certificates that left protected mode.

    A certificate stays when its name is in ``keep`` and its nginx include (if it has one)
    still exists. A dropped certificate's state file and held response are removed too, so
    monitoring no longer reports the site as protected; with no certificate left the
    configuration itself is removed (the timer and the relay skip a missing one).
    Returns ``{"changed", "pruned": [names], "kept": [names], "removed": [paths]}``.
    """
    result: dict = {"changed": False, "pruned": [], "kept": [], "removed": []}
    try:
        config = load_config(path)
    except FileNotFoundError:
        return result
    state_dir = config.get("state_dir") or DEFAULT_STATE_DIR
    kept, removed = [], []
    for spec in config["certificates"]:
        name = spec.get("name") or ""
        snippet = spec.get("snippet")
        if name in keep and (not snippet or os.path.exists(snippet)):
            kept.append(spec)
            continue
        result["pruned"].append(name)
        if _NAME.match(name):
            removed.append(os.path.join(state_dir, name + ".json"))
            removed.append(spec.get("response") or os.path.join(state_dir, name + ".der"))
    result["kept"] = [spec.get("name") for spec in kept]
    if not result["pruned"]:
        return result
    result["changed"] = True
    result["removed"] = [candidate for candidate in removed if os.path.exists(candidate)] + ([] if kept else [path])
    if check_mode:
        return result
    for candidate in result["removed"]:
        if candidate != path:
            os.unlink(candidate)
    if kept:
        write_atomic(path, json.dumps(dict(config, certificates=kept), indent=2, sort_keys=True) + "\n", mode=0o644)
    else:
        os.unlink(path)
    return result


def keeper_from_config(config: dict) -> Keeper:
    return Keeper(config["certificates"], state_dir=config.get("state_dir") or DEFAULT_STATE_DIR,
                  openssl=config.get("openssl") or DEFAULT_OPENSSL, timeout=float(config.get("timeout") or DEFAULT_TIMEOUT),
                  configtest_command=config.get("configtest_command"), reload_command=config.get("reload_command"),
                  backoff_cap=float(config.get("backoff_cap") or policy.BACKOFF_CAP),
                  pid_file=config.get("pid_file"),
                  settle_timeout=float(config.get("settle_timeout") or DEFAULT_SETTLE_TIMEOUT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Refresh the held OCSP responses (ocsp.stapling keeper).")
    parser.add_argument("--config", required=True, help="keeper JSON configuration")
    parser.add_argument("--force", action="store_true", help="refresh every certificate now")
    parser.add_argument("--status", action="store_true", help="print the state, change nothing")
    args = parser.parse_args(argv)
    try:
        keeper = keeper_from_config(load_config(args.config))
        result = {"certificates": keeper.status()} if args.status else keeper.refresh(force=args.force)
    except (KeeperError, OSError, ValueError) as exc:
        sys.stderr.write(f"ocsp-stapling keeper: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    failed = [entry for entry in result["certificates"]
              if entry.get("active", True) and entry.get("last_error") and not entry.get("valid")]
    return 1 if failed or not result.get("reload", {}).get("ok", True) else 0


if __name__ == "__main__":
    raise SystemExit(main())
