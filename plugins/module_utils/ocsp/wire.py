# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCSP requests on the wire (controller side, needs ``cryptography``).

Requests use a SHA-1 CertID: RFC 5019 (the "lightweight" profile every public CA's
responder implements) requires responders to accept SHA-1 CertIDs and many accept
nothing else; Apache (through OpenSSL's ``OCSP_cert_to_id``) and nginx send SHA-1 too,
so a SHA-1 request asks exactly what the web server will ask.
"""
from __future__ import annotations

import base64
import os
import urllib.parse

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.crypto import HAS_CRYPTOGRAPHY

if HAS_CRYPTOGRAPHY:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

# RFC 5019 section 5: a GET URL (base64 request appended) must stay within 255 bytes.
GET_URL_LIMIT = 255
NONCE_BYTES = 16

CERTID_HASHES = ("sha1", "sha224", "sha256", "sha384", "sha512")


def build_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bool = False) -> bytes:
    """A DER OCSPRequest for ``cert`` (issued by ``issuer``), SHA-1 CertID, unsigned.

    With ``nonce=True`` a random 16-byte nonce extension (RFC 8954 limits it to 32) is
    added; read it back with :func:`request_nonce`. Most CA responders serve
    pre-generated responses and ignore nonces, which is also what the web servers
    expect, so the default is no nonce.
    """
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(os.urandom(NONCE_BYTES)), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def request_nonce(request_der: bytes) -> bytes | None:
    """The nonce carried by a DER OCSPRequest, or None."""
    request = ocsp.load_der_ocsp_request(request_der)
    for ext in request.extensions:
        if isinstance(ext.value, x509.OCSPNonce):
            return ext.value.nonce
    return None


def cert_id(cert: x509.Certificate, issuer: x509.Certificate, algorithm: str = "sha1") -> dict:
    """The CertID fields (issuer name hash, issuer key hash, serial) for ``algorithm``.

    cryptography's request builder computes the hashes exactly as RFC 6960 4.1.1 says
    (the key hash covers only the subjectPublicKey BIT STRING), so reuse it instead of
    walking DER here.
    """
    if algorithm not in CERTID_HASHES:
        raise KeyError(algorithm)
    algo = getattr(hashes, algorithm.upper())()
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algo).build()
    return {"hash_algorithm": algorithm, "issuer_name_hash": request.issuer_name_hash,
            "issuer_key_hash": request.issuer_key_hash, "serial_number": request.serial_number}


def hash_name(algorithm: hashes.HashAlgorithm) -> str:
    """``sha1`` for ``hashes.SHA1()`` and so on."""
    return algorithm.name.replace("-", "")


def get_url(responder_url: str, request_der: bytes) -> str | None:
    """The RFC 6960 A.1 GET URL for ``request_der``, or None when it exceeds 255 bytes."""
    encoded = urllib.parse.quote(base64.b64encode(request_der).decode("ascii"), safe="")
    url = responder_url if responder_url.endswith("/") else responder_url + "/"
    url += encoded
    return url if len(url) <= GET_URL_LIMIT else None
