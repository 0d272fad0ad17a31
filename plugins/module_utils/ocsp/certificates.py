# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate loading for the controller side (needs ``cryptography``).

Web servers keep certificates in three shapes and this module reads all of them:
a leaf on its own (``cert.pem``), a leaf followed by its chain (``fullchain.pem``) and
cPanel's ``combined`` files (private key + leaf + chain in one PEM file). Keys are
skipped, never parsed: the controller has no business holding them.
"""
from __future__ import annotations

import hashlib
import re

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.crypto import HAS_CRYPTOGRAPHY

if HAS_CRYPTOGRAPHY:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

_PEM_CERT = re.compile(
    rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----\s.*?-----END (?:X509 |TRUSTED )?CERTIFICATE-----",
    re.DOTALL)


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in ``data``, in file order.

    ``data`` may be a PEM bundle (any other PEM blocks, private keys included, are
    ignored), a single DER certificate or a DER PKCS#7 bundle (what AIA caIssuers URLs
    often serve as ``.p7c``). Returns an empty list when there is no certificate; raises
    ``ValueError`` when a PEM certificate block is present but corrupt.
    """
    if b"-----BEGIN" in data:
        certs = []
        for match in _PEM_CERT.finditer(data):
            block = match.group(0)
            # OpenSSL's "TRUSTED CERTIFICATE" carries trust settings after the DER cert;
            # cryptography only reads the plain form, so normalise the armour.
            block = re.sub(rb"(BEGIN|END) (?:X509 |TRUSTED )CERTIFICATE", rb"\1 CERTIFICATE", block)
            certs.append(x509.load_pem_x509_certificate(block))
        if not certs and b"-----BEGIN PKCS7-----" in data:
            try:
                certs = pkcs7.load_pem_pkcs7_certificates(data)
            except ValueError:
                certs = []
        return certs
    for loader in (lambda d: [x509.load_der_x509_certificate(d)], pkcs7.load_der_pkcs7_certificates):
        try:
            return list(loader(data))
        except ValueError:
            continue
    return []


def _access_urls(cert: x509.Certificate, method) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [desc.access_location.value for desc in aia
            if desc.access_method == method
            and isinstance(desc.access_location, x509.UniformResourceIdentifier)]


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The AIA OCSP URLs, in certificate order (servers use the first one)."""
    return _access_urls(cert, AuthorityInformationAccessOID.OCSP)


def ca_issuer_urls(cert: x509.Certificate) -> list[str]:
    """The AIA caIssuers URLs: where the CA publishes the issuing certificate."""
    return _access_urls(cert, AuthorityInformationAccessOID.CA_ISSUERS)


def has_must_staple(cert: x509.Certificate) -> bool:
    """True when the certificate carries the TLS feature status_request (OCSP Must-Staple).

    Browsers refuse such a certificate without a good staple, so disabling stapling for
    it takes the site down: callers must check this before turning stapling off.
    """
    try:
        feature = cert.extensions.get_extension_for_class(x509.TLSFeature).value
    except x509.ExtensionNotFound:
        return False
    return x509.TLSFeatureType.status_request in feature


def is_ocsp_signer(cert: x509.Certificate) -> bool:
    """True when the certificate carries the id-kp-OCSPSigning extended key usage."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s subject is ``cert``'s issuer and its key signed ``cert``."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):  # TypeError: unsupported key type
        return False
    return True


def find_issuer(cert: x509.Certificate, candidates) -> x509.Certificate | None:
    """The first candidate that issued ``cert`` (name match and a valid signature), or None."""
    for candidate in candidates:
        if issued_by(cert, candidate):
            return candidate
    return None


# ASN.1 string types OpenSSL canonicalises before hashing a name (ASN1_MASK_CANON).
_CANON_STRING_TYPES = ("UTF8String", "BMPString", "UniversalString", "PrintableString", "T61String",
                       "IA5String", "VisibleString")


def _der(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _der_oid(dotted: str) -> bytes:
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1]] + arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def _canon_value(attribute) -> bytes:
    kind = getattr(getattr(attribute, "_type", None), "name", "UTF8String")
    if kind not in _CANON_STRING_TYPES or not isinstance(attribute.value, str):
        value = attribute.value if isinstance(attribute.value, bytes) else str(attribute.value).encode("utf-8")
        tag = getattr(getattr(attribute, "_type", None), "value", 0x0C)
        return _der(tag, value)
    # OpenSSL (x509_name_canon): trim and collapse ASCII whitespace, lower-case ASCII letters,
    # re-encode as UTF8String.
    text = re.sub(r"[ \t\n\v\f\r]+", " ", attribute.value.strip(" \t\n\v\f\r"))
    text = "".join(ch.lower() if ch < "\x80" else ch for ch in text)
    return _der(0x0C, text.encode("utf-8"))


def subject_hash(name: x509.Name) -> str:
    """OpenSSL's name hash (``openssl x509 -subject_hash``): the ``<hash>.N`` file names in a
    ``c_rehash`` directory such as Apache's ``SSLCACertificatePath``."""
    canon = b""
    for rdn in name.rdns:
        entries = sorted(_der(0x30, _der_oid(a.oid.dotted_string) + _canon_value(a)) for a in rdn)
        canon += _der(0x31, b"".join(entries))
    digest = hashlib.sha1(canon).digest()
    return "%08x" % int.from_bytes(digest[:4], "little")


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as upper-case hex with an even number of digits (as openssl prints it)."""
    text = format(cert.serial_number, "X")
    return "0" + text if len(text) % 2 else text


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, hex, to tell certificates apart in results."""
    return cert.fingerprint(hashes.SHA256()).hex()


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def describe(cert: x509.Certificate) -> dict:
    """A JSON-ready summary: subject, issuer, serial (hex), not_after (ISO), must_staple, ocsp_urls."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": serial_hex(cert),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "must_staple": has_must_staple(cert),
        "ocsp_urls": ocsp_urls(cert),
        "ca_issuer_urls": ca_issuer_urls(cert),
    }
