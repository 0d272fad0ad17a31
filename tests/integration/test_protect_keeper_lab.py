"""The keeper and the relay against the lab responder: a response failing verification is
never written nor served, whatever the responder does (one test per fault mode)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import Keeper
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.relay import RelayCore, serve
from tests.lab.processes import port_open, stop_pid, wait_until
from tests.lab.responder import free_port

FAULT_MODES = ("badsig", "garbage", "trylater", "http500", "expired", "hang")
REPO = Path(__file__).resolve().parents[2]


def keeper_for(lab, tmp_path, leaves=("good",), timeout=3.0) -> Keeper:
    pki = lab.pki
    specs = [{"name": leaf, "cert": str(pki.leaves[leaf].cert_path), "issuer": str(pki.intermediate.cert_path),
              "ca_file": str(pki.trusted_chain)} for leaf in leaves]
    return Keeper(specs, state_dir=str(tmp_path / "keeper"), timeout=timeout, rand=0.0)


def request_for(lab, leaf="good") -> bytes:
    return (ocsp.OCSPRequestBuilder()
            .add_certificate(lab.pki.leaves[leaf].cert, lab.pki.intermediate.cert, __import__(
                "cryptography.hazmat.primitives.hashes", fromlist=["SHA1"]).SHA1())
            .build().public_bytes(serialization.Encoding.DER))


def served_status(der: bytes) -> str:
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return response.certificate_status.name


@pytest.fixture
def relay(responder_lab, tmp_path):
    """An in-process relay over a keeper of the good leaf; yields (keeper, url)."""
    keeper = keeper_for(responder_lab, tmp_path)
    core = RelayCore(keeper, refresh_in_background=False)
    server = serve(core, f"127.0.0.1:{free_port()}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield keeper, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def post(url: str, der: bytes) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=der, headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type")


def get(url: str, der: bytes) -> tuple[int, bytes, str]:
    encoded = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    try:
        with urllib.request.urlopen(url + encoded, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type")


def test_the_keeper_holds_a_verified_response_and_reports_its_state(responder_lab, tmp_path):
    keeper = keeper_for(responder_lab, tmp_path)
    result = keeper.refresh()
    [entry] = result["certificates"]
    assert result["changed"] and entry["held"] and entry["valid"] and entry["cert_status"] == "good"
    der = (tmp_path / "keeper" / "good.der").read_bytes()
    assert served_status(der) == "GOOD"
    state = json.loads((tmp_path / "keeper" / "good.json").read_text())
    assert state["url"] == responder_lab.responder.url
    assert state["this_update"] < state["next_refresh"] < state["next_update"]
    assert state["consecutive_failures"] == 0 and state["last_error"] is None
    again = keeper.refresh()  # not due: nothing fetched, nothing changed
    assert not again["changed"] and not again["certificates"][0]["refreshed"]
    assert responder_lab.responder.state()["counts"]["POST"] == 1


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_a_fault_never_replaces_the_held_response(responder_lab, tmp_path, mode):
    keeper = keeper_for(responder_lab, tmp_path)
    assert keeper.refresh()["changed"]
    held = (tmp_path / "keeper" / "good.der").read_bytes()
    responder_lab.responder.set_mode(mode)
    result = keeper.refresh(force=True)
    [entry] = result["certificates"]
    assert not result["changed"]
    assert (tmp_path / "keeper" / "good.der").read_bytes() == held
    assert entry["valid"] and entry["held"], entry
    assert entry["consecutive_failures"] == 1 and entry["last_error"]
    assert entry["next_refresh"] - entry["last_attempt"] == pytest.approx(30, abs=0.5)


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_a_fault_with_nothing_held_writes_nothing(responder_lab, tmp_path, mode):
    keeper = keeper_for(responder_lab, tmp_path)
    responder_lab.responder.set_mode(mode)
    [entry] = keeper.refresh()["certificates"]
    assert not (tmp_path / "keeper" / "good.der").exists()
    assert not entry["held"] and not entry["valid"] and entry["last_error"]


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_the_relay_serves_the_held_response_through_a_fault(responder_lab, relay, mode):
    keeper, url = relay
    keeper.refresh()
    held = Path(keeper.certificates[0]["response"]).read_bytes()
    responder_lab.responder.set_mode(mode)
    keeper.refresh(force=True)  # the timer's attempt during the outage fails
    for ask in (post, get):
        status, body, content_type = ask(url, request_for(responder_lab))
        assert (status, content_type) == (200, "application/ocsp-response")
        assert body == held and served_status(body) == "GOOD"


@pytest.mark.parametrize("mode", FAULT_MODES)
def test_the_relay_never_serves_a_failing_response_when_nothing_is_held(responder_lab, relay, mode):
    keeper, url = relay
    responder_lab.responder.set_mode(mode)
    status, body, content_type = post(url, request_for(responder_lab))
    assert status == 503 and content_type == "text/plain", (status, body[:80])
    assert b"no valid OCSP response is held" in body
    assert not Path(keeper.certificates[0]["response"]).exists()


def test_the_relay_fills_itself_and_forwards_unknown_certificates(responder_lab, relay):
    keeper, url = relay
    status, body, _headers = get(url, request_for(responder_lab))  # nothing held yet: one refresh, then served
    assert status == 200 and served_status(body) == "GOOD"
    assert Path(keeper.certificates[0]["response"]).read_bytes() == body
    status, body, content_type = post(url, request_for(responder_lab, "revoked"))  # not kept: forwarded
    assert status == 200 and content_type == "application/ocsp-response" and served_status(body) == "REVOKED"
    status, body, _headers = post(url, b"not ocsp")
    assert status == 400


def test_a_newer_response_replaces_the_held_one_after_the_responder_returns(responder_lab, tmp_path):
    responder_lab.responder.control("set?validity=120")
    keeper = keeper_for(responder_lab, tmp_path)
    keeper.refresh()
    first = json.loads((tmp_path / "keeper" / "good.json").read_text())
    responder_lab.responder.set_mode("down")
    assert keeper.refresh(force=True)["certificates"][0]["valid"]
    responder_lab.responder.set_mode("good")

    def newer():
        keeper.refresh(force=True)
        state = json.loads((tmp_path / "keeper" / "good.json").read_text())
        return state if state["this_update"] > first["this_update"] else None
    state = wait_until(newer, 10, "a newer response (thisUpdate has one-second precision)", interval=0.25)
    assert state["consecutive_failures"] == 0 and state["last_error"] is None
    assert state["next_update"] > first["next_update"]


def test_the_relay_entry_point_runs_from_a_keeper_configuration(responder_lab, tmp_path):
    pki = responder_lab.pki
    config = tmp_path / "keeper.json"
    config.write_text(json.dumps({"state_dir": str(tmp_path / "keeper"), "timeout": 3, "certificates": [
        {"name": "good", "cert": str(pki.leaves["good"].cert_path), "issuer": str(pki.intermediate.cert_path),
         "ca_file": str(pki.trusted_chain)}]}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / ".cache" / "collections"), str(REPO)]))
    keeper_run = subprocess.run([sys.executable, "-m", "ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper",
                                 "--config", str(config)], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert keeper_run.returncode == 0, keeper_run.stderr
    assert json.loads(keeper_run.stdout)["certificates"][0]["cert_status"] == "good"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ansible_collections.ocsp.stapling.plugins.module_utils.protect.relay",
                             "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 20, "the relay to listen")
        assert proc.poll() is None, proc.stderr.read().decode()
        responder_lab.responder.set_mode("down")
        status, body, _headers = post(f"http://127.0.0.1:{port}/", request_for(responder_lab))
        assert status == 200 and body == (tmp_path / "keeper" / "good.der").read_bytes()
    finally:
        stop_pid(proc.pid)
        proc.wait(5)


def test_the_module_reports_in_check_mode_refreshes_once_then_is_idempotent(responder_lab, tmp_path):
    from tests.integration.ansible_run import run_module
    pki = responder_lab.pki
    args = {"state_dir": str(tmp_path / "keeper"), "config_path": str(tmp_path / "keeper.json"), "timeout": 3,
            "certificates": [{"name": "good", "cert": str(pki.leaves["good"].cert_path),
                              "issuer": str(pki.intermediate.cert_path), "ca_file": str(pki.trusted_chain)}]}
    checked = run_module("ocsp.stapling.stapling_keeper", args, check=True)
    assert checked["changed"] and checked["certificates"][0]["would_refresh"], checked
    assert "Would refresh 1 of 1" in checked["message"]
    assert not (tmp_path / "keeper").exists() and not (tmp_path / "keeper.json").exists()
    assert responder_lab.responder.state()["counts"]["POST"] == 0
    first = run_module("ocsp.stapling.stapling_keeper", args)
    assert first["changed"] and first["certificates"][0]["cert_status"] == "good", first
    assert first["protected_until"] == first["certificates"][0]["next_update_iso"]
    second = run_module("ocsp.stapling.stapling_keeper", args)
    assert not second["changed"] and not second["certificates"][0]["refreshed"], second
    status = run_module("ocsp.stapling.stapling_keeper", dict(args, action="status"))
    assert not status["changed"] and status["certificates"][0]["valid"]
    assert responder_lab.responder.state()["counts"]["POST"] == 1
