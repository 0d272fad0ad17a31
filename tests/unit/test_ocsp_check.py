"""ocsp_check: loading, planning and judging, without Ansible or a network."""
from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils import ocsp_check
from tests.unit.ocsp_helpers import make_pki, respond


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("check"))


def files_for(*paths) -> dict:
    return {str(p): {"path": str(p), "content": base64.b64encode(p.read_bytes()).decode(), "error": None}
            for p in paths}


def answer(job, der=None, failure=None, detail="", ip_version="any"):
    return {"id": job["id"], "url": job["url"], "ip_version": ip_version, "address": "127.0.0.1",
            "http_status": 200 if der else None, "content_type": "application/ocsp-response",
            "response": base64.b64encode(der).decode() if der else None, "latency_ms": 3.0,
            "timings": {}, "failure": failure, "detail": detail}


def test_one_request_per_responder_and_issuer(pki):
    paths = [pki.leaves[n].fullchain_path for n in ("good", "revoked", "nourl")]
    entries = ocsp_check.load_entries([str(p) for p in paths], files_for(*paths))
    jobs = ocsp_check.plan_requests(entries)
    assert len(jobs) == 1 and jobs[0]["url"] == pki.ocsp_url
    assert [e.job_id for e in entries] == ["ocsp0", "ocsp0", None]
    assert len(ocsp_check.plan_requests(entries, per_certificate=True)) == 2


@pytest.mark.parametrize("network_failure", ["dns_failure", "connection_refused", "network_unreachable",
                                             "timeout", "tls_error", "http_error"])
def test_network_failures_pass_through(pki, network_failure):
    path = pki.leaves["good"].fullchain_path
    entries = ocsp_check.load_entries([str(path)], files_for(path))
    [job] = ocsp_check.plan_requests(entries)
    out = ocsp_check.judge(entries, [answer(job, failure=network_failure, detail="x")])
    assert out["certificates"][0]["failure"] == network_failure
    assert out["responders"][0]["reachable"] is False and out["all_reachable"] is False


def test_verification_failures_and_good(pki):
    path = pki.leaves["good"].fullchain_path
    entries = ocsp_check.load_entries([str(path)], files_for(path))
    [job] = ocsp_check.plan_requests(entries)
    cases = {"malformed_response": b"junk", "signature_invalid": respond(pki, signer="rogue"),
             "certid_mismatch": respond(pki, "revoked"), None: respond(pki)}
    for failure, der in cases.items():
        cert = ocsp_check.judge(entries, [answer(job, der)])["certificates"][0]
        assert cert["failure"] == failure, cert["detail"]
    good = ocsp_check.judge(entries, [answer(job, respond(pki))])
    assert good["certificates"][0]["cert_status"] == "good" and good["all_reachable"] is True


def test_both_families_must_work(pki):
    path = pki.leaves["good"].fullchain_path
    entries = ocsp_check.load_entries([str(path)], files_for(path))
    [job] = ocsp_check.plan_requests(entries)
    out = ocsp_check.judge(entries, [answer(job, respond(pki), ip_version="4"),
                                     answer(job, failure="network_unreachable", ip_version="6")])
    cert = out["certificates"][0]
    assert cert["reachable"] is False and cert["failure"] == "network_unreachable"
    assert cert["ip_version"] == "4" and cert["this_update"]  # the working family's answer is kept
    assert [a["ip_version"] for a in cert["attempts"]] == ["4", "6"]


def test_no_url_and_issuer_not_found(pki):
    leaf_only, nourl = pki.leaves["good"].cert_path, pki.leaves["nourl"].cert_path
    entries = ocsp_check.load_entries([str(leaf_only), str(nourl)], files_for(leaf_only, nourl))
    assert ocsp_check.ca_issuer_jobs(entries) == []  # the lab leaves carry no caIssuers URL
    assert ocsp_check.plan_requests(entries) == []
    out = ocsp_check.judge(entries, [])
    assert [c["failure"] for c in out["certificates"]] == ["issuer_not_found", "no_ocsp_url"]
    assert out["all_reachable"] is False


def test_issuer_file_and_responder_override(pki):
    leaf, chain = pki.leaves["nourl"].cert_path, pki.leaves["nourl"].chain_path
    entries = ocsp_check.load_entries([str(leaf)], files_for(leaf, chain), str(chain), "http://127.0.0.1:1/")
    assert entries[0].issuer_source == "issuer_file" and entries[0].responder_url == "http://127.0.0.1:1/"


def test_input_errors_name_every_file(pki, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    files = files_for(junk)
    files["/missing"] = {"path": "/missing", "content": None, "error": "/missing does not exist on this host."}
    with pytest.raises(ocsp_check.CheckError) as err:
        ocsp_check.load_entries([str(junk), "/missing"], files, issuer_path=str(junk))
    message = str(err.value)
    assert f"{junk} holds no certificate" in message and "/missing does not exist" in message
    assert message.startswith("issuer:")


def test_action_plugin_without_cryptography_on_the_controller():
    code = ("import sys; sys.modules['cryptography'] = None\n"
            "import tests.conftest\n"
            "from ansible_collections.ocsp.stapling.plugins.action import ocsp_responder_check as a\n"
            "assert a.HAS_CRYPTOGRAPHY is False\n"
            "action = a.ActionModule.__new__(a.ActionModule)\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert done.stdout.strip() == "ok", done.stderr
