"""Protected mode in the check's report: what the keeper and mod_md hold (real state files and
mod_md's JSON shape, with real OCSP responses), "protected until <nextUpdate>" in the verdict,
nextUpdate treated as a deadline, and the Prometheus series."""
from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.certificates import serial_hex
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.certid import CertIDError, response_certids
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.held import held_responses
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.report import prometheus_text, summary_lines
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.verdict import RECOMMENDATIONS, decide
from tests.unit.ocsp_helpers import make_pki, respond, unsuccessful
from tests.unit.runbook.test_decide import cert, check, endpoint, site

NOW = 1_900_000_000.0
HOUR = 3600


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def http_date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def write_md_store(store, der: bytes, until: float, name="bc6c580169a00dfb1a6ad58b4b97ecd1878bdae8"):
    """A store as mod_md 2.4.71 writes it (sampled from the lab's mod_md Apache):
    ``ocsp/other/ocsp-<certid>.json`` with the base64url DER, the status and its validity as
    HTTP dates, next to the watchdog's ``job.json``."""
    other = store / "ocsp" / "other"
    other.mkdir(parents=True, exist_ok=True)
    (other / "job.json").write_text(json.dumps({"name": "other", "finished": True, "errors": 0}))
    (other / f"ocsp-{name}.json").write_text(json.dumps({
        "response": base64.urlsafe_b64encode(der).decode().rstrip("="), "status": "good",
        "valid": {"from": http_date(until - 2 * HOUR), "until": http_date(until)}}, indent=2))


def write_keeper_state(state_dir, name: str, serial: str, next_update: float, held=True, served="file"):
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / f"{name}.json").write_text(json.dumps({
        "version": 1, "name": name, "held": held, "cert_status": "good", "this_update": next_update - 2 * HOUR,
        "next_update": next_update, "certid": f"1.3.14.3.2.26/aa/bb/{serial}", "served": served,
        "last_error": "fetching from http://ocsp.example.test/: timeout", "consecutive_failures": 4}))


def test_the_serial_of_a_stored_response_is_read_without_cryptography(pki):
    der = respond(pki, "good")
    assert int(response_certids(der)[0]["serial"], 16) == pki.leaves["good"].cert.serial_number
    from cryptography.x509 import ocsp
    with pytest.raises(CertIDError):
        response_certids(unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER))
    with pytest.raises(CertIDError):
        response_certids(b"\x30\x03\x02\x01\x00")


def test_held_responses_come_from_keeper_state_files_and_the_mod_md_store(pki, tmp_path):
    until = NOW + 30 * HOUR
    write_md_store(tmp_path / "md", respond(pki, "good"), until)
    write_keeper_state(tmp_path / "keeper", "n.test", "0A1B", NOW - 60, served="fetch")
    (tmp_path / "keeper" / "garbage.json").write_text("{not json")
    found = held_responses([str(tmp_path / "keeper"), str(tmp_path / "missing")], [str(tmp_path / "md")], now=NOW)
    by_source = {entry["source"]: entry for entry in found}
    assert sorted(by_source) == ["keeper", "mod_md"] and len(found) == 2
    md = by_source["mod_md"]
    assert int(md["serial"], 16) == pki.leaves["good"].cert.serial_number
    assert md["next_update"] == until and md["valid"] and md["seconds_left"] == 30 * HOUR
    assert md["next_update_iso"] == dt.datetime.fromtimestamp(until, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    keeper = by_source["keeper"]
    assert keeper["serial"] == "0A1B" and keeper["valid"] is False     # past its nextUpdate
    assert keeper["served"] == "fetch" and keeper["consecutive_failures"] == 4


def outage(pki, held, must_staple=False):
    """An Apache site and an nginx site whose responder is down, with what the host holds."""
    serial = serial_hex(pki.leaves["good"].cert)
    facts = {"sites": [site("apache", "a.test", "/c/a.pem"), site("nginx", "n.test", "/c/n.pem", port=8443)]}
    apache, nginx = endpoint("a.test", "good"), endpoint("n.test", "good", port=8443)
    apache["certificate"] = dict(apache["certificate"], serial=serial, must_staple=must_staple)
    nginx["certificate"] = dict(nginx["certificate"], serial="0A1B")
    responder = check([cert("/c/a.pem", False, failure="timeout", must_staple=must_staple),
                       cert("/c/n.pem", False, failure="timeout")], reachable=False)
    return facts, {"endpoints": [apache, nginx], "held_responses": held}, responder


def held_for(pki, tmp_path, apache_until, nginx_until):
    write_md_store(tmp_path / "md", respond(pki, "good"), apache_until)
    write_keeper_state(tmp_path / "keeper", "n.test", "0A1B", nginx_until)
    return held_responses([str(tmp_path / "keeper")], [str(tmp_path / "md")], now=NOW)


def test_an_outage_on_a_protected_host_reports_protected_until_instead_of_a_disable(pki, tmp_path):
    held = held_for(pki, tmp_path, NOW + 72 * HOUR, NOW + 48 * HOUR)
    decision = decide(*outage(pki, held, must_staple=True), now=NOW)
    assert decision["verdict"] == "protected", decision["reasons"]
    assert decision["recommendation"] == RECOMMENDATIONS["protected"]
    expected = dt.datetime.fromtimestamp(NOW + 48 * HOUR, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert decision["protected_until"] == expected
    assert any(f"Protected until {expected}" in reason for reason in decision["reasons"])
    rows = {row["site"]: row for row in decision["sites"]}
    assert rows["a.test"]["mode"] == "protected" and rows["a.test"]["protection_source"] == "mod_md"
    assert rows["n.test"]["mode"] == "protected" and rows["n.test"]["protection_source"] == "keeper"
    assert decision["modes"] == {"a.test": "protected", "n.test": "protected"}


def test_a_held_response_close_to_expiry_is_a_warning_with_the_next_step(pki, tmp_path):
    held = held_for(pki, tmp_path, NOW + 72 * HOUR, NOW + 5 * HOUR)
    decision = decide(*outage(pki, held), now=NOW)
    assert decision["verdict"] == "protected_expiring"
    assert "Restore the responder" in " ".join(decision["reasons"])
    # The window is a parameter: with 4 hours, 5 hours left is still plain protected.
    assert decide(*outage(pki, held), now=NOW, protected_warn_hours=4)["verdict"] == "protected"


def test_past_next_update_protected_mode_protects_nothing(pki, tmp_path):
    """mod_md keeps stapling its response past nextUpdate: the check must not call that protected."""
    held = held_for(pki, tmp_path, NOW - 60, NOW + 48 * HOUR)
    decision = decide(*outage(pki, held), now=NOW)
    assert decision["verdict"] == "disable_recommended"
    assert any("Protected mode no longer covers a.test" in reason for reason in decision["reasons"])
    # A Must-Staple site whose held response expired is at risk again.
    assert decide(*outage(pki, held, must_staple=True), now=NOW)["verdict"] == "must_staple_at_risk"


def test_standard_mode_sites_are_unchanged(pki):
    decision = decide(*outage(pki, []), now=NOW)
    assert decision["verdict"] == "disable_recommended"
    assert decision["modes"] == {"a.test": "standard", "n.test": "standard"} and decision["protected_until"] is None


def test_the_textfile_has_the_mode_and_the_held_response_expiry(pki, tmp_path):
    held = held_for(pki, tmp_path, NOW + 72 * HOUR, NOW + 5 * HOUR)
    decision = decide(*outage(pki, held), now=NOW)
    outcome = {"verdict": decision["verdict"], "sites": decision["sites"], "responders": decision["responders"]}
    lines = prometheus_text({"web01": outcome}, now=NOW, action="check").splitlines()
    assert 'ocsp_stapling_site_protected{host="web01",server="apache",site="a.test"} 1' in lines
    assert (f'ocsp_stapling_held_response_expiry_timestamp_seconds{{host="web01",server="apache",site="a.test",'
            f'source="mod_md"}} {int(NOW + 72 * HOUR)}') in lines
    assert (f'ocsp_stapling_held_response_expiry_timestamp_seconds{{host="web01",server="nginx",site="n.test",'
            f'source="keeper"}} {int(NOW + 5 * HOUR)}') in lines
    standard = decide(*outage(pki, []), now=NOW)
    text = prometheus_text({"web01": {"verdict": "x", "sites": standard["sites"]}}, now=NOW, action="check")
    assert 'ocsp_stapling_site_protected{host="web01",server="apache",site="a.test"} 0' in text.splitlines()
    assert "held_response_expiry" not in text


def test_the_run_summary_says_protected_until_when(pki, tmp_path):
    held = held_for(pki, tmp_path, NOW + 72 * HOUR, NOW + 5 * HOUR)
    decision = decide(*outage(pki, held), now=NOW)
    lines = summary_lines({"web01": dict(decision, host="web01")}, ["web01"])
    row = next(line for line in lines if line.startswith("web01 "))
    assert f"protected_expiring (until {decision['protected_until']})" in row
    assert any(line.startswith("web01: next: restore the responder") for line in lines)
