"""ocsp_check: loading, planning and judging, without Ansible or a network."""
from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import check as ocsp_check
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import check_args
from tests.lab.pki import LabPKI
from tests.unit.ocsp_helpers import make_pki, respond
from tests.unit.paths import REPO


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


def judge_families(pki, four: dict, six: dict) -> dict:
    """The good leaf judged from one IPv4 and one IPv6 attempt (``answer`` keyword arguments)."""
    path = pki.leaves["good"].fullchain_path
    entries = ocsp_check.load_entries([str(path)], files_for(path))
    [job] = ocsp_check.plan_requests(entries)
    attempts = []
    for family, given in (("4", four), ("6", six)):
        attempt = answer(job, ip_version=family, **{k: v for k, v in given.items() if k != "address"})
        attempt["address"] = given.get("address", attempt["address"])
        attempts.append(attempt)
    return ocsp_check.judge(entries, attempts)


def test_a_family_that_cannot_connect_beside_one_that_answers_is_a_warning(pki):
    # Broken IPv6 on a dual-stack responder: web servers move on to the IPv4 address.
    out = judge_families(pki, {"der": respond(pki)},
                         {"failure": "network_unreachable", "detail": "ocsp.test:80 (2001:db8::1) is unreachable."})
    cert = out["certificates"][0]
    assert cert["reachable"] is True and cert["failure"] is None and cert["cert_status"] == "good"
    assert out["all_reachable"] is True and out["responders"][0]["reachable"] is True
    assert cert["ip_version"] == "4" and cert["this_update"]  # the working family's answer is kept
    assert [(a["ip_version"], a["no_address"]) for a in cert["attempts"]] == [("4", False), ("6", False)]
    [warning] = cert["warnings"]
    assert warning.startswith("IPv6 to this responder is broken from this host (network_unreachable)")
    assert "2001:db8::1" in warning and "over IPv4" in warning and "SSLStaplingResponderTimeout" not in warning
    # Refused is as quick a move to the next address; so is a connect that timed out,
    # at the price of Apache's responder timeout inside the handshake.
    refused = judge_families(pki, {"der": respond(pki)}, {"failure": "connection_refused", "detail": "refused."})
    assert refused["certificates"][0]["reachable"] is True
    stalled = judge_families(pki, {"der": respond(pki)}, {"failure": "timeout", "detail": "no accept.", "address": None})
    assert stalled["certificates"][0]["reachable"] is True
    assert "SSLStaplingResponderTimeout" in stalled["certificates"][0]["warnings"][0]


def test_a_family_that_connects_and_answers_wrongly_makes_the_responder_unreachable(pki):
    # Connected: the web server uses that answer and tries no other address.
    junk = judge_families(pki, {"der": respond(pki)}, {"der": b"junk"})
    cert = junk["certificates"][0]
    assert cert["reachable"] is False and cert["failure"] == "malformed_response"
    assert cert["detail"].startswith("Over IPv6: ") and junk["all_reachable"] is False
    hung = judge_families(pki, {"der": respond(pki)}, {"failure": "timeout", "detail": "no answer.",
                                                       "address": "2001:db8::1"})
    assert hung["certificates"][0]["reachable"] is False and hung["certificates"][0]["failure"] == "timeout"


def test_an_ipv6_only_name_with_broken_ipv6_is_unreachable_over_ipv6(pki):
    out = judge_families(pki, {"failure": "dns_failure", "detail": "ocsp.test did not resolve to IPv4 (A) addresses."},
                         {"failure": "network_unreachable", "detail": "ocsp.test:80 (2001:db8::1) is unreachable."})
    cert = out["certificates"][0]
    assert cert["reachable"] is False and cert["failure"] == "network_unreachable"
    assert cert["detail"] == ("Over IPv6, the only address family the responder's name has on this host: "
                              "ocsp.test:80 (2001:db8::1) is unreachable.")
    assert [(a["ip_version"], a["no_address"]) for a in cert["attempts"]] == [("4", True), ("6", False)]
    assert out["responders"][0]["failure"] == "network_unreachable"
    # No family resolves: a DNS failure, and no family is "without address".
    dns = judge_families(pki, {"failure": "dns_failure", "detail": "no A."}, {"failure": "dns_failure", "detail": "no AAAA."})
    cert = dns["certificates"][0]
    assert cert["failure"] == "dns_failure" and not any(a["no_address"] for a in cert["attempts"])
    assert cert["detail"] == "Over IPv4: no A. Over IPv6: no AAAA."


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
    with pytest.raises(check_args.CheckError) as err:
        ocsp_check.load_entries([str(junk), "/missing"], files, issuer_path=str(junk))
    message = str(err.value)
    assert f"{junk} holds no certificate" in message and "/missing does not exist" in message
    assert message.startswith("issuer:")


@pytest.mark.parametrize("plugin", ["ocsp_responder_check", "stapling_diagnose"])
def test_action_plugin_without_cryptography_on_the_controller(plugin):
    """The plugin still imports, and says what to install instead of failing on an import."""
    code = ("import sys; sys.modules['cryptography'] = None\n"
            "import tests.conftest\n"
            f"from ansible_collections.ocsp.stapling.plugins.action import {plugin} as a\n"
            "from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.crypto import missing_message\n"
            "message = missing_message(a.ActionModule.PLUGIN, a.ActionModule.NEEDS)\n"
            "assert \"needs the Python package 'cryptography'\" in message and 'pip install' in message, message\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          cwd=str(REPO))
    assert done.stdout.strip() == "ok", done.stderr


# -- the issuer from the AIA caIssuers URL -----------------------------------------------------

CA_ISSUERS_URL = "http://127.0.0.1:9/ca/intermediate.der"


@pytest.fixture(scope="module")
def aia_pki(tmp_path_factory):
    return LabPKI.create(tmp_path_factory.mktemp("check-aia") / "pki", ocsp_url="http://127.0.0.1:9/ocsp",
                         ca_issuers_url=CA_ISSUERS_URL)


def aia_entries(aia_pki):
    leaf = aia_pki.extra_leaves["aia"].cert_path
    return ocsp_check.load_entries([str(leaf)], files_for(leaf))


def download(job, data=None, failure=None, detail=""):
    return dict(answer(job, data, failure, detail), method="GET")


def test_ca_issuers_download_supplies_the_issuer(aia_pki):
    entries = aia_entries(aia_pki)
    jobs = ocsp_check.ca_issuer_jobs(entries)
    assert jobs == [{"id": "aia0", "url": CA_ISSUERS_URL, "body": None, "method": "GET"}]
    der = aia_pki.intermediate.cert.public_bytes(serialization.Encoding.DER)
    ocsp_check.apply_ca_issuers(entries, jobs, [download(jobs[0], der)])
    assert entries[0].issuer_source == "aia" and entries[0].issuer == aia_pki.intermediate.cert
    [request] = ocsp_check.plan_requests(entries)
    out = ocsp_check.judge(entries, [answer(request, respond(aia_pki, cert=aia_pki.extra_leaves["aia"].cert))])
    assert out["certificates"][0]["cert_status"] == "good" and out["all_reachable"] is True


@pytest.mark.parametrize("result, words", [
    ({"failure": "connection_refused", "detail": "127.0.0.1:9 refused the connection."},
     ["downloading its AIA caIssuers URL", "failed (connection_refused", "refused the connection"]),
    ({"der": "root"}, ["served no certificate that issued it"]),
    ({"der": b"not a certificate"}, ["served no certificate (PEM, DER or PKCS#7)"]),
])
def test_ca_issuers_download_that_does_not_fit_says_why(aia_pki, result, words):
    entries = aia_entries(aia_pki)
    [job] = ocsp_check.ca_issuer_jobs(entries)
    der = result.get("der")
    if der == "root":
        der = aia_pki.root.cert.public_bytes(serialization.Encoding.DER)
    ocsp_check.apply_ca_issuers(entries, [job], [download(job, der, result.get("failure"), result.get("detail", ""))])
    assert entries[0].issuer is None
    record = ocsp_check.judge(entries, [])["certificates"][0]
    assert record["failure"] == "issuer_not_found"
    for word in words + [CA_ISSUERS_URL, "Set issuer to the intermediate CA file"]:
        assert word in record["detail"], record["detail"]


def test_fetch_ca_issuers_off_says_so(aia_pki):
    entries = aia_entries(aia_pki)
    ocsp_check.skip_ca_issuers(entries)
    record = ocsp_check.judge(entries, [])["certificates"][0]
    assert record["failure"] == "issuer_not_found"
    assert f"fetch_ca_issuers is false, so its AIA caIssuers URL {CA_ISSUERS_URL} was not downloaded" in record["detail"]
    assert "no issuer option was given" in record["detail"]


def test_issuer_not_found_without_a_ca_issuers_url_names_the_issuer_option(pki):
    leaf, wrong = pki.leaves["good"].cert_path, pki.root.cert_path
    entries = ocsp_check.load_entries([str(leaf)], files_for(leaf, wrong), issuer_path=str(wrong))
    ocsp_check.skip_ca_issuers(entries)  # nothing to skip: no caIssuers URL
    detail = ocsp_check.judge(entries, [])["certificates"][0]["detail"]
    assert f"the issuer option ({wrong}) holds no certificate that issued it" in detail
    assert "it has no AIA caIssuers URL" in detail and "fetch_ca_issuers" not in detail
