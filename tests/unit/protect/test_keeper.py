"""The keeper's verification (the host's openssl CLI), its state and its nginx snippet, no network."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils.protect import keeper as keeper_mod
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import Keeper, KeeperError
from tests.unit.ocsp_helpers import NOW, make_pki, respond, unsuccessful


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("keeper"))


def make_keeper(pki, tmp_path, leaf="good", **extra):
    spec = {"name": leaf, "cert": str(pki.leaves[leaf].cert_path), "issuer": str(pki.intermediate.cert_path),
            "ca_file": str(pki.trusted_chain), "url": "http://127.0.0.1:9/"}
    spec.update(extra)
    return Keeper([spec], state_dir=str(tmp_path / "state"))


def test_a_correct_response_verifies_with_its_times_and_status(pki, tmp_path):
    keeper = make_keeper(pki, tmp_path)
    result = keeper.verify(keeper.certificates[0], respond(pki))
    assert result["verified"], result
    assert result["cert_status"] == "good"
    assert result["this_update"] == (NOW - dt.timedelta(minutes=1)).timestamp()
    assert result["next_update"] == (NOW + dt.timedelta(minutes=59)).timestamp()


def test_revoked_verifies_as_revoked(pki, tmp_path):
    keeper = make_keeper(pki, tmp_path, "revoked")
    result = keeper.verify(keeper.certificates[0], respond(pki, "revoked", status=ocsp.OCSPCertStatus.REVOKED))
    assert result["verified"] and result["cert_status"] == "revoked"


@pytest.mark.parametrize("case", ["rogue_signer", "expired", "not_yet_valid", "other_cert", "trylater", "garbage",
                                  "no_next_update", "empty"])
def test_broken_responses_fail_verification_with_a_reason(pki, tmp_path, case):
    keeper = make_keeper(pki, tmp_path)
    der = {
        "rogue_signer": lambda: respond(pki, signer="rogue"),
        "expired": lambda: respond(pki, this_update=NOW - dt.timedelta(days=2), next_update=NOW - dt.timedelta(days=1)),
        "not_yet_valid": lambda: respond(pki, this_update=NOW + dt.timedelta(days=1)),
        "other_cert": lambda: respond(pki, "muststaple"),
        "trylater": lambda: unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER),
        "garbage": lambda: b"this is not an OCSP response\n",
        "no_next_update": lambda: respond(pki, next_update=None),
        "empty": lambda: b"",
    }[case]()
    result = keeper.verify(keeper.certificates[0], der)
    assert not result["verified"]
    assert result["error"]


def test_openssl_time_format_is_read_as_utc():
    assert keeper_mod.parse_openssl_time("Dec  2 01:51:16 2026 GMT") == dt.datetime(
        2026, 12, 2, 1, 51, 16, tzinfo=dt.timezone.utc).timestamp()


def test_entries_that_cannot_work_are_refused_with_what_to_fix(pki, tmp_path):
    with pytest.raises(KeeperError, match="does not exist on this host"):
        make_keeper(pki, tmp_path, cert=str(tmp_path / "missing.pem"))
    with pytest.raises(KeeperError, match="not usable as a file name"):
        make_keeper(pki, tmp_path, name="../etc/passwd")
    with pytest.raises(KeeperError, match="fallback must be"):
        make_keeper(pki, tmp_path, fallback="maybe")


def test_the_responder_url_comes_from_the_certificate(pki, tmp_path):
    keeper = make_keeper(pki, tmp_path, url=None)
    assert keeper.responder_url(keeper.certificates[0]) == "http://127.0.0.1:9/ocsp"
    nourl = make_keeper(pki, tmp_path, "nourl", url=None)
    with pytest.raises(KeeperError, match="no OCSP responder URL"):
        nourl.responder_url(nourl.certificates[0])


def test_an_unreachable_responder_is_recorded_and_backs_off(pki, tmp_path):
    keeper = make_keeper(pki, tmp_path, url="http://127.0.0.1:1/")
    keeper.timeout = 2
    keeper.rand = 0.0
    result = keeper.refresh()
    [entry] = result["certificates"]
    assert not result["changed"] and entry["consecutive_failures"] == 1
    assert "connection_refused" in entry["last_error"] or "refused" in entry["last_error"]
    state = json.loads((tmp_path / "state" / "good.json").read_text())
    assert state["next_refresh"] == pytest.approx(state["last_attempt"] + 30)
    assert not (tmp_path / "state" / "good.der").exists()
    again = keeper.refresh()  # not due yet: no attempt, the counter stays
    assert again["certificates"][0]["consecutive_failures"] == 1 and not again["certificates"][0]["refreshed"]


def test_check_mode_reports_what_would_be_refreshed_and_writes_nothing(pki, tmp_path):
    keeper = make_keeper(pki, tmp_path)
    result = keeper.refresh(check_mode=True)
    assert result["certificates"][0]["would_refresh"] and result["changed"]
    assert not (tmp_path / "state").exists()


def test_the_snippet_serves_the_file_while_valid_and_falls_back_before_expiry(pki, tmp_path):
    keeper = make_keeper(pki, tmp_path, snippet=str(tmp_path / "snip.conf"), trusted_certificate="/t.pem")
    spec = keeper.certificates[0]
    state = {"held": True, "this_update": 1000.0, "next_update": 4600.0}
    served, text = keeper.snippet_text(spec, state, 2000.0)
    assert served == "file" and f"ssl_stapling_file {spec['response']};" in text
    served, text = keeper.snippet_text(spec, state, 4600.0 - 100)
    assert served == "fetch" and "ssl_stapling_file" not in text and "ssl_trusted_certificate /t.pem;" in text
    off = make_keeper(pki, tmp_path, fallback="off")
    served, text = off.snippet_text(off.certificates[0], {"held": False}, 2000.0)
    assert served == "off" and "ssl_stapling off;" in text
