# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and verify OCSP responses (controller side, needs ``cryptography``).

A response is only worth stapling when (RFC 6960 3.2 and 4.2.2.2):

1. it parses and its responseStatus is ``successful``;
2. it is signed by the issuer itself, or by a delegated responder certificate that the
   issuer signed directly and gave the id-kp-OCSPSigning extended key usage;
3. a SingleResponse carries the CertID of the certificate asked about;
4. thisUpdate is not in the future and nextUpdate (when present) not in the past, each
   with a clock-skew allowance, as OpenSSL's ``OCSP_check_validity`` does.

:func:`verify_response` checks all of that and reports the first failure in the
collection's failure vocabulary: ``malformed_response``, ``responder_error``,
``signature_invalid``, ``certid_mismatch``, ``stale_response``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.crypto import HAS_CRYPTOGRAPHY

if HAS_CRYPTOGRAPHY:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
    from cryptography.x509 import ocsp
    from cryptography.x509.oid import SignatureAlgorithmOID

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import certificates
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import wire as ocsp_wire

# Keyed by the names of cryptography's OCSPResponseStatus / OCSPCertStatus members.
RESPONSE_STATUS_NAMES = {
    "SUCCESSFUL": "successful",
    "MALFORMED_REQUEST": "malformedRequest",
    "INTERNAL_ERROR": "internalError",
    "TRY_LATER": "tryLater",
    "SIG_REQUIRED": "sigRequired",
    "UNAUTHORIZED": "unauthorized",
}
CERT_STATUS_NAMES = {"GOOD": "good", "REVOKED": "revoked", "UNKNOWN": "unknown"}
# What each error status means for the operator (RFC 6960 2.3).
_STATUS_ADVICE = {
    "malformedRequest": "the responder could not parse the request",
    "internalError": "the responder reported an internal error; the CA's service is failing",
    "tryLater": "the responder is up but cannot answer now (overloaded or being maintained); "
                "a web server that staples this breaks handshakes in Firefox",
    "sigRequired": "the responder wants signed requests, which web servers never send",
    "unauthorized": "the responder does not serve this issuer: check the responder URL "
                    "(responder_url / SSLStaplingForceURL) and the issuer certificate",
}
DEFAULT_SKEW = 300


@dataclass
class OCSPResult:
    """The verdict on one OCSP response for one certificate."""

    response_status: str | None = None
    cert_status: str | None = None
    this_update: str | None = None
    next_update: str | None = None
    produced_at: str | None = None
    revocation_time: str | None = None
    revocation_reason: str | None = None
    signature_valid: bool | None = None
    signer: str | None = None            # 'issuer' | 'delegated' | None
    signer_subject: str | None = None
    certid_match: bool | None = None
    nonce_match: bool | None = None      # None: no nonce sent or none echoed
    failure: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None

    def as_dict(self) -> dict:
        return asdict(self)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def verify_response(response_der: bytes, cert: x509.Certificate, issuer: x509.Certificate,
                    now: dt.datetime | None = None, skew_seconds: int = DEFAULT_SKEW,
                    request_nonce: bytes | None = None) -> OCSPResult:
    """Verify a DER OCSP response for ``cert`` issued by ``issuer``; never raises on bad input.

    ``now`` defaults to the current UTC time; ``skew_seconds`` is allowed on both ends
    of the validity window. ``request_nonce``, when given, must be echoed if the
    responder echoes a nonce at all (most CA responders ignore nonces, RFC 8954).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    result = OCSPResult()
    if not response_der:
        result.failure = "malformed_response"
        result.detail = "The responder answered with an empty body instead of an OCSP response."
        return result
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except ValueError as exc:
        result.failure = "malformed_response"
        result.detail = (f"The responder's answer ({len(response_der)} bytes, starting "
                         f"{response_der[:16]!r}) is not a DER OCSP response: {exc}.")
        return result
    result.response_status = RESPONSE_STATUS_NAMES.get(response.response_status.name,
                                                       response.response_status.name)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        result.failure = "responder_error"
        advice = _STATUS_ADVICE.get(result.response_status, "")
        result.detail = f"The responder answered with OCSP status {result.response_status}: {advice}."
        return result

    try:
        result.produced_at = _iso(response.produced_at_utc)
        _check_signature(response, issuer, result, now, skew_seconds)
        if result.failure:
            return result
        _check_single_response(response, cert, issuer, result)
        if result.failure:
            return result
    except (ValueError, UnsupportedAlgorithm) as exc:
        result.failure = "malformed_response"
        result.detail = f"The OCSP response could not be read: {exc}."
        return result
    _check_window(result, now, skew_seconds)
    if result.failure:
        return result
    if request_nonce is not None:
        _check_nonce(response, request_nonce, result)
        if result.failure:
            return result
    status = result.cert_status
    result.detail = (f"A {result.signer}-signed response says {status}, valid from "
                     f"{result.this_update} until {result.next_update or 'unspecified (no nextUpdate)'}.")
    return result


def _responder_matches(response: ocsp.OCSPResponse, candidate: x509.Certificate) -> bool:
    """Does the ResponderID (byName or byKey, RFC 6960 4.2.2.3) designate ``candidate``?"""
    if response.responder_name is not None:
        return response.responder_name == candidate.subject
    key_hash = x509.SubjectKeyIdentifier.from_public_key(candidate.public_key()).digest
    return response.responder_key_hash == key_hash


def _verify_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    key = signer.public_key()
    data, signature = response.tbs_response_bytes, response.signature
    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                key.verify(signature, data, padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO),
                           algorithm)
            else:
                key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, data)
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, data, algorithm)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _check_signature(response, issuer, result: OCSPResult, now, skew_seconds) -> None:
    """Find who signed the response and whether the issuer vouches for them."""
    responder = (response.responder_name.rfc4514_string() if response.responder_name is not None
                 else "key hash " + response.responder_key_hash.hex())
    if _responder_matches(response, issuer):
        result.signer, result.signer_subject = "issuer", issuer.subject.rfc4514_string()
        result.signature_valid = _verify_signature(response, issuer)
        if not result.signature_valid:
            result.failure = "signature_invalid"
            result.detail = ("The response names the issuer as its signer but the signature does "
                             "not verify with the issuer's key: it was altered or the issuer "
                             "certificate is the wrong one.")
        return
    candidates = [c for c in response.certificates if _responder_matches(response, c)]
    if not candidates:
        result.signature_valid = False
        result.failure = "signature_invalid"
        result.detail = (f"The response is signed by {responder}, which is neither the issuer "
                         f"({issuer.subject.rfc4514_string()}) nor a certificate included in the "
                         "response: nothing vouches for the signer.")
        return
    signer = candidates[0]
    result.signer_subject = signer.subject.rfc4514_string()
    if not certificates.issued_by(signer, issuer):
        result.signature_valid = False
        result.failure = "signature_invalid"
        result.detail = (f"The response is signed by {result.signer_subject}, which the issuer "
                         f"({issuer.subject.rfc4514_string()}) did not certify: a responder for "
                         "another CA, or a forged answer.")
        return
    if not certificates.is_ocsp_signer(signer):
        result.signature_valid = False
        result.failure = "signature_invalid"
        result.detail = (f"The response is signed by {result.signer_subject}, a certificate the "
                         "issuer signed but without the id-kp-OCSPSigning extended key usage, "
                         "so it may not sign OCSP responses (RFC 6960 4.2.2.2).")
        return
    skew = dt.timedelta(seconds=skew_seconds)
    if not (signer.not_valid_before_utc - skew <= now <= signer.not_valid_after_utc + skew):
        result.signature_valid = False
        result.failure = "signature_invalid"
        result.detail = (f"The delegated OCSP signer {result.signer_subject} is valid from "
                         f"{signer.not_valid_before_utc.isoformat()} to "
                         f"{signer.not_valid_after_utc.isoformat()}, which does not include now.")
        return
    result.signer = "delegated"
    result.signature_valid = _verify_signature(response, signer)
    if not result.signature_valid:
        result.failure = "signature_invalid"
        result.detail = (f"The signature does not verify with the key of the delegated signer "
                         f"{result.signer_subject}: the response was altered.")


def _check_single_response(response, cert, issuer, result: OCSPResult) -> None:
    """Pick the SingleResponse whose CertID is ours (any hash algorithm the responder chose)."""
    expected_ids: dict[str, dict] = {}
    seen = []
    for single in response.responses:
        algorithm = ocsp_wire.hash_name(single.hash_algorithm)
        if algorithm not in expected_ids:
            try:
                expected_ids[algorithm] = ocsp_wire.cert_id(cert, issuer, algorithm)
            except KeyError:
                continue
        expected = expected_ids[algorithm]
        seen.append(format(single.serial_number, "X"))
        if (single.serial_number == expected["serial_number"]
                and single.issuer_key_hash == expected["issuer_key_hash"]
                and single.issuer_name_hash == expected["issuer_name_hash"]):
            result.certid_match = True
            result.cert_status = CERT_STATUS_NAMES.get(single.certificate_status.name)
            result.this_update = _iso(single.this_update_utc)
            result.next_update = _iso(single.next_update_utc)
            result.revocation_time = _iso(single.revocation_time_utc)
            if single.revocation_reason is not None:
                result.revocation_reason = single.revocation_reason.name
            return
    result.certid_match = False
    result.failure = "certid_mismatch"
    result.detail = (f"The response does not cover certificate serial {certificates.serial_hex(cert)} "
                     f"from {issuer.subject.rfc4514_string()} (it covers serial(s) "
                     f"{', '.join(seen) or 'none'}): the responder answered for another "
                     "certificate or issuer.")


def _check_window(result: OCSPResult, now: dt.datetime, skew_seconds: int) -> None:
    skew = dt.timedelta(seconds=skew_seconds)
    this_update = dt.datetime.fromisoformat(result.this_update) if result.this_update else None
    next_update = dt.datetime.fromisoformat(result.next_update) if result.next_update else None
    if this_update is not None and this_update > now + skew:
        result.failure = "stale_response"
        result.detail = (f"The response's thisUpdate {result.this_update} is in the future (now "
                         f"{now.isoformat()}, {skew_seconds}s skew allowed): check this host's and "
                         "the controller's clocks.")
    elif next_update is not None and next_update < now - skew:
        result.failure = "stale_response"
        result.detail = (f"The response expired at nextUpdate {result.next_update} (now "
                         f"{now.isoformat()}): the responder serves stale answers; web servers "
                         "reject them.")
    elif next_update is not None and this_update is not None and next_update < this_update:
        result.failure = "stale_response"
        result.detail = (f"The response's nextUpdate {result.next_update} is before its thisUpdate "
                         f"{result.this_update}.")


def _check_nonce(response, request_nonce: bytes, result: OCSPResult) -> None:
    for ext in response.extensions:
        if isinstance(ext.value, x509.OCSPNonce):
            result.nonce_match = ext.value.nonce == request_nonce
            if not result.nonce_match:
                result.failure = "malformed_response"
                result.detail = ("The response echoes a nonce different from the one sent: it "
                                 "answers another request (a replay or a misbehaving cache).")
            return
