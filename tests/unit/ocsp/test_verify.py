"""verify_response: every verdict a responder's answer can earn."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.verify import OCSPResult, verify_response
from tests.unit.ocsp_helpers import NOW, make_pki, respond, signer_without_eku, unsuccessful


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("verify"))


def check(pki, der, leaf="good", **kwargs) -> OCSPResult:
    """Judge ``der`` at the helpers' fixed NOW, so a slow run can't move the window."""
    kwargs.setdefault("now", NOW)
    return verify_response(der, pki.leaves[leaf].cert, pki.intermediate.cert, **kwargs)


def test_good_from_delegated_signer(pki):
    result = check(pki, respond(pki))
    assert result.failure is None, result.detail
    assert (result.response_status, result.cert_status, result.signer) == ("successful", "good", "delegated")
    assert result.signature_valid is True and result.certid_match is True
    assert result.signer_subject.endswith("CN=Lab OCSP Signer") or "Lab OCSP Signer" in result.signer_subject
    assert dt.datetime.fromisoformat(result.this_update) == NOW - dt.timedelta(minutes=1)
    assert dt.datetime.fromisoformat(result.next_update) == NOW + dt.timedelta(minutes=59)
    assert result.as_dict()["cert_status"] == "good"


def test_good_signed_by_issuer_itself_by_name(pki):
    result = check(pki, respond(pki, signer="issuer", by_name=True))
    assert result.failure is None, result.detail
    assert result.signer == "issuer"


def test_revoked(pki):
    result = check(pki, respond(pki, "revoked", status=ocsp.OCSPCertStatus.REVOKED), leaf="revoked")
    assert result.failure is None
    assert result.cert_status == "revoked"
    assert result.revocation_time == (NOW - dt.timedelta(days=1)).isoformat()
    assert result.revocation_reason == "key_compromise"


def test_unknown(pki):
    result = check(pki, respond(pki, status=ocsp.OCSPCertStatus.UNKNOWN))
    assert result.failure is None
    assert result.cert_status == "unknown"


def test_sha256_certid_is_matched(pki):
    result = check(pki, respond(pki, algorithm=hashes.SHA256()))
    assert result.failure is None and result.certid_match is True


def test_wrong_signer_is_rejected(pki):
    result = check(pki, respond(pki, signer="rogue"))
    assert result.failure == "signature_invalid"
    assert result.signature_valid is False
    assert "Rogue Signer" in result.detail and "did not certify" in result.detail
    assert result.cert_status is None  # never report a status nobody vouches for


def test_delegated_signer_without_eku_is_rejected(pki):
    result = check(pki, respond(pki, signer=signer_without_eku(pki)))
    assert result.failure == "signature_invalid"
    assert "id-kp-OCSPSigning" in result.detail


def test_tampered_signature_is_rejected(pki):
    der = bytearray(respond(pki))
    der[-5] ^= 0xFF  # inside the signature BIT STRING
    result = check(pki, bytes(der))
    assert result.failure in ("signature_invalid", "malformed_response")
    assert result.signature_valid is not True


def test_expired_response(pki):
    result = check(pki, respond(pki, this_update=NOW - dt.timedelta(days=2),
                                next_update=NOW - dt.timedelta(days=1)))
    assert result.failure == "stale_response"
    assert "expired" in result.detail
    assert result.cert_status == "good"  # what it said, for the record


def test_expired_within_skew_is_accepted(pki):
    result = check(pki, respond(pki, this_update=NOW - dt.timedelta(hours=1),
                                next_update=NOW - dt.timedelta(seconds=60)))
    assert result.failure is None


def test_future_this_update(pki):
    result = check(pki, respond(pki, this_update=NOW + dt.timedelta(hours=1)))
    assert result.failure == "stale_response"
    assert "future" in result.detail and "clock" in result.detail


def test_future_this_update_within_skew_is_accepted(pki):
    result = check(pki, respond(pki, this_update=NOW + dt.timedelta(seconds=100)))
    assert result.failure is None


def test_skew_is_configurable(pki):
    result = check(pki, respond(pki, this_update=NOW + dt.timedelta(seconds=100)), skew_seconds=10)
    assert result.failure == "stale_response"


def test_no_next_update_is_accepted(pki):
    result = check(pki, respond(pki, next_update=None))
    assert result.failure is None and result.next_update is None


def test_certid_mismatch(pki):
    # A correctly signed answer, but about the revoked leaf.
    result = check(pki, respond(pki, "revoked"))
    assert result.failure == "certid_mismatch"
    assert result.certid_match is False
    assert result.signature_valid is True


def test_now_parameter_moves_the_window(pki):
    der = respond(pki)
    assert check(pki, der, now=NOW + dt.timedelta(days=1)).failure == "stale_response"
    assert check(pki, der, now=(NOW + dt.timedelta(minutes=30)).replace(tzinfo=None)).failure is None


@pytest.mark.parametrize("status, name", [
    (ocsp.OCSPResponseStatus.TRY_LATER, "tryLater"),
    (ocsp.OCSPResponseStatus.INTERNAL_ERROR, "internalError"),
    (ocsp.OCSPResponseStatus.UNAUTHORIZED, "unauthorized"),
    (ocsp.OCSPResponseStatus.MALFORMED_REQUEST, "malformedRequest"),
    (ocsp.OCSPResponseStatus.SIG_REQUIRED, "sigRequired"),
])
def test_responder_error_statuses(pki, status, name):
    result = check(pki, unsuccessful(status))
    assert result.failure == "responder_error"
    assert result.response_status == name
    assert name in result.detail
    assert result.cert_status is None and result.signature_valid is None


@pytest.mark.parametrize("body", [b"", b"this is not an OCSP response\n", b"\x30\x03\x0a\x01"])
def test_malformed(pki, body):
    result = check(pki, body)
    assert result.failure == "malformed_response"
    assert result.response_status is None


def test_nonce_echo(pki):
    assert check(pki, respond(pki, nonce=b"a" * 16), request_nonce=b"a" * 16).nonce_match is True
    bad = check(pki, respond(pki, nonce=b"b" * 16), request_nonce=b"a" * 16)
    assert bad.failure == "malformed_response" and bad.nonce_match is False
    # Responders that ignore the nonce (most CAs) are fine.
    assert check(pki, respond(pki), request_nonce=b"a" * 16).failure is None


def test_issuer_mismatch_is_not_trusted(pki):
    # Verifying against the wrong issuer: the delegated signer is not certified by it.
    result = verify_response(respond(pki), pki.leaves["good"].cert, pki.root.cert)
    assert result.failure == "signature_invalid"
