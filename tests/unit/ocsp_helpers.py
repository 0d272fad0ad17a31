"""Shared helpers for the OCSP unit tests: a lab PKI and a response builder."""
from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.lab.pki import Issued, LabPKI

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def make_pki(tmp_path) -> LabPKI:
    """A PKI valid from a day before NOW (fixed when the tests were collected): a module
    fixture built many minutes later, on a loaded machine, still covers NOW."""
    return LabPKI.create(tmp_path / "pki", ocsp_url="http://127.0.0.1:9/ocsp", not_before=NOW - dt.timedelta(days=1))


def signer_without_eku(pki: LabPKI) -> Issued:
    """A certificate the intermediate signed, with no id-kp-OCSPSigning EKU."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not An OCSP Signer")]))
            .issuer_name(pki.intermediate.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=10))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(pki.intermediate.key, hashes.SHA256()))
    return Issued("noeku", cert, key)


def respond(pki: LabPKI, leaf: str = "good", *, status=ocsp.OCSPCertStatus.GOOD, signer: str | Issued = "delegated",
            this_update: dt.datetime | None = None, next_update: dt.datetime | None | str = "default",
            cert: x509.Certificate | None = None, issuer: x509.Certificate | None = None,
            algorithm=None, nonce: bytes | None = None, by_name: bool = False) -> bytes:
    """A DER OCSP response for ``leaf`` built the way a responder would, with knobs to break it."""
    cert = cert or pki.leaves[leaf].cert
    issuer = issuer or pki.intermediate.cert
    this_update = this_update or NOW - dt.timedelta(minutes=1)
    if next_update == "default":
        next_update = this_update + dt.timedelta(hours=1)
    if isinstance(signer, Issued):
        item = signer
    else:
        item = {"delegated": pki.ocsp_signer, "issuer": pki.intermediate, "rogue": pki.rogue}[signer]
    revoked_at = NOW - dt.timedelta(days=1) if status == ocsp.OCSPCertStatus.REVOKED else None
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer, algorithm=algorithm or hashes.SHA1(), cert_status=status,
        this_update=this_update, next_update=next_update, revocation_time=revoked_at,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None)
    encoding = ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH
    builder = builder.responder_id(encoding, item.cert)
    if item is not pki.intermediate:
        builder = builder.certificates([item.cert])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(item.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
