"""staple_verdict: one verdict per endpoint, judged on staples made by the lab's responder code."""
from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils.probe import verdict as staple_verdict
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.certificates import to_pem
from tests.lab.pki import LabPKI
from tests.lab.responder import ResponderState, build_response

VALIDITY = 3600


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return LabPKI.create(tmp_path_factory.mktemp("verdict") / "pki", ocsp_url="http://127.0.0.1:9/")


@pytest.fixture(scope="module")
def state(pki):
    return ResponderState(pki, validity=VALIDITY, delay=0, engine="cryptography")


def request_for(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding
    return (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
            .build().public_bytes(Encoding.DER))


def staple(state, leaf: str = "good", mode: str = "good", cert: x509.Certificate | None = None) -> bytes:
    cert = cert or state.pki.leaves[leaf].cert
    return build_response(state, request_for(cert, state.pki.intermediate.cert), mode)


def probe(pki, leaf: str = "good", der: bytes | None = None, chain: list | None = None, **extra) -> dict:
    served = chain if chain is not None else [pki.leaves[leaf].cert, pki.intermediate.cert]
    result = {"host": "127.0.0.1", "port": 8443, "server_name": f"{leaf}.lab.test",
              "handshake_ok": True, "error": None, "error_detail": None, "protocol": "TLSv1.3",
              "cipher": "TLS_AES_256_GCM_SHA384", "stapled": der is not None,
              "staple": base64.b64encode(der).decode() if der is not None else None,
              "chain": [to_pem(c) for c in served], "handshake_seconds": 0.1, "warmup": None}
    result.update(extra)
    return result


def test_good_staple(pki, state):
    judged = staple_verdict.judge(probe(pki, "good", staple(state)))
    assert judged["verdict"] == "good"
    assert judged["verified"] is True and judged["verify_failure"] is None
    assert judged["ocsp_response_status"] == "successful" and judged["cert_status"] == "good"
    assert VALIDITY - 120 < judged["seconds_until_expiry"] <= VALIDITY
    assert judged["certificate"]["subject"] == "CN=good.lab.test,O=ocsp.stapling lab"
    assert judged["certificate"]["ocsp_urls"] == ["http://127.0.0.1:9/"]
    assert judged["certificate"]["must_staple"] is False
    assert judged["issuer"] == "CN=Lab Intermediate CA,O=ocsp.stapling lab"
    assert judged["this_update"] < judged["next_update"]
    assert judged["chain_trusted"] is None  # no trust bundle given


def test_revoked_staple(pki, state):
    judged = staple_verdict.judge(probe(pki, "revoked", staple(state, "revoked")))
    assert judged["verdict"] == "revoked" and judged["verified"]
    assert judged["cert_status"] == "revoked" and judged["revocation_time"]
    assert "replace the certificate" in judged["message"]


def test_trylater_staple_is_error_stapled(pki, state):
    judged = staple_verdict.judge(probe(pki, "good", staple(state, mode="trylater")))
    assert judged["verdict"] == "error_stapled"
    assert judged["ocsp_response_status"] == "tryLater"
    assert judged["cert_status"] is None and not judged["verified"]
    assert "SSLStaplingFakeTryLater off" in judged["message"]


def test_trylater_on_must_staple_is_error_stapled_not_missing(pki, state):
    judged = staple_verdict.judge(probe(pki, "muststaple", staple(state, "muststaple", "trylater")))
    assert judged["verdict"] == "error_stapled"
    assert judged["certificate"]["must_staple"] is True


def test_badsig_staple_is_invalid(pki, state):
    judged = staple_verdict.judge(probe(pki, "good", staple(state, mode="badsig")))
    assert judged["verdict"] == "invalid"
    assert judged["verify_failure"] == "signature_invalid" and judged["verified"] is False


def test_response_for_another_certificate_is_invalid(pki, state):
    # The server staples good.lab.test's response on the muststaple site.
    judged = staple_verdict.judge(probe(pki, "muststaple", staple(state, "good")))
    assert judged["verdict"] == "invalid"
    assert judged["verify_failure"] == "certid_mismatch"


def test_expired_staple_is_stale(pki, state):
    judged = staple_verdict.judge(probe(pki, "good", staple(state, mode="expired")))
    assert judged["verdict"] == "stale"
    assert judged["seconds_until_expiry"] < -3600
    assert judged["verify_failure"] == "stale_response"


def test_staple_judged_later_goes_stale(pki, state):
    der = staple(state)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=VALIDITY + 600)
    judged = staple_verdict.judge(probe(pki, "good", der), now=later)
    assert judged["verdict"] == "stale" and judged["seconds_until_expiry"] < 0


def test_unknown_certificate(pki, state):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    stranger = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "stranger.lab.test")]))
                .issuer_name(pki.intermediate.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
                .sign(pki.intermediate.key, hashes.SHA256()))
    judged = staple_verdict.judge(probe(pki, der=staple(state, cert=stranger),
                                        chain=[stranger, pki.intermediate.cert]))
    assert judged["verdict"] == "unknown" and judged["cert_status"] == "unknown"


def test_garbage_staple_is_invalid(pki):
    judged = staple_verdict.judge(probe(pki, "good", b"this is not an OCSP response"))
    assert judged["verdict"] == "invalid" and judged["verify_failure"] == "malformed_response"


@pytest.mark.parametrize("leaf, verdict", [("good", "missing"), ("revoked", "missing"),
                                           ("nourl", "not_applicable"),
                                           ("muststaple", "must_staple_missing")])
def test_nothing_stapled(tmp_path, leaf, verdict):
    pki = LabPKI.create(tmp_path / "pki", ocsp_url="http://127.0.0.1:9/")
    judged = staple_verdict.judge(probe(pki, leaf))
    assert judged["verdict"] == verdict
    assert judged["stapled"] is False and judged["ocsp_response_status"] is None
    if verdict != "not_applicable":
        assert "warmup: true" in judged["message"]  # nginx staples lazily
        warmed = staple_verdict.judge(probe(pki, leaf, warmup={"handshake_ok": True, "stapled": False}))
        assert warmed["verdict"] == verdict and "warmup: true" not in warmed["message"]


def test_nourl_must_staple_wins(pki):
    # A Must-Staple certificate without a staple is broken whatever else is true.
    judged = staple_verdict.judge(probe(pki, "muststaple"))
    assert judged["verdict"] == "must_staple_missing"
    assert "Firefox" in judged["message"]


def test_handshake_failure_passes_the_host_sentence_through(pki):
    judged = staple_verdict.judge({"host": "127.0.0.1", "port": 1, "server_name": None,
                                   "handshake_ok": False, "error": "connection_refused",
                                   "error_detail": "Nothing accepts connections on 127.0.0.1:1: check.",
                                   "chain": [], "stapled": False})
    assert judged["verdict"] == "handshake_failed"
    assert judged["error"] == "connection_refused"
    assert judged["message"].startswith("Nothing accepts connections")
    assert judged["certificate"] is None


def test_issuer_not_served_is_unverified_until_trust_bundle_supplies_it(pki, state):
    der = staple(state)
    leaf_only = probe(pki, "good", der, chain=[pki.leaves["good"].cert])
    judged = staple_verdict.judge(leaf_only)
    assert judged["verdict"] == "good" and judged["verified"] is False
    assert judged["verify_failure"] == "issuer_not_found"
    assert "not verified" in judged["message"]
    judged = staple_verdict.judge(leaf_only, trust=[pki.intermediate.cert, pki.root.cert])
    assert judged["verified"] is True and judged["verify_failure"] is None


def test_chain_trust_against_the_bundle(pki, state):
    judged = staple_verdict.judge(probe(pki, "good", staple(state)), trust=[pki.root.cert])
    assert judged["chain_trusted"] is True and judged["chain_error"] is None
    judged = staple_verdict.judge(probe(pki, "good", staple(state)), trust=[pki.rogue.cert])
    assert judged["chain_trusted"] is False and "does not verify" in judged["chain_error"]
    # The wrong name for the certificate fails too.
    judged = staple_verdict.judge(probe(pki, "good", staple(state), server_name="other.lab.test"),
                                  trust=[pki.root.cert])
    assert judged["chain_trusted"] is False


def test_summary_counts_and_problems(pki, state):
    results = [staple_verdict.judge(probe(pki, "good", staple(state))),
               staple_verdict.judge(probe(pki, "muststaple")),
               staple_verdict.judge(probe(pki, "nourl"))]
    summary = staple_verdict.summarize(results)
    assert summary["total"] == 3
    assert summary["verdicts"]["good"] == 1 and summary["verdicts"]["must_staple_missing"] == 1
    assert summary["verdicts"]["not_applicable"] == 1
    assert summary["problems"] == ["127.0.0.1:8443 (muststaple.lab.test): must_staple_missing"]
