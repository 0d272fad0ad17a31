"""The relay's CertID reader against requests built by cryptography and by openssl."""
from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import given, strategies as st

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.certid import (
    CertIDError, certid_key, request_certids)
from tests.unit.ocsp_helpers import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("certid"))


def build(pki, leaf="good", algorithm=None, nonce=None):
    builder = ocsp.OCSPRequestBuilder().add_certificate(pki.leaves[leaf].cert, pki.intermediate.cert,
                                                        algorithm or hashes.SHA1())
    if nonce:
        from cryptography import x509
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("algorithm,oid", [(hashes.SHA1(), "1.3.14.3.2.26"), (hashes.SHA256(), "2.16.840.1.101.3.4.2.1")])
def test_the_certid_fields_match_cryptographys_reading(pki, algorithm, oid):
    der = build(pki, algorithm=algorithm, nonce=b"n" * 16)
    [certid] = request_certids(der)
    parsed = ocsp.load_der_ocsp_request(der)
    assert certid["hash_oid"] == oid
    assert certid["issuer_name_hash"] == parsed.issuer_name_hash.hex()
    assert certid["issuer_key_hash"] == parsed.issuer_key_hash.hex()
    assert int(certid["serial"], 16) == parsed.serial_number


def test_openssl_and_cryptography_requests_for_one_certificate_have_one_key(pki, tmp_path):
    out = tmp_path / "req.der"
    subprocess.run(["openssl", "ocsp", "-issuer", str(pki.intermediate.cert_path), "-cert",
                    str(pki.leaves["good"].cert_path), "-reqout", str(out)], check=True, capture_output=True)
    assert certid_key(request_certids(out.read_bytes())[0]) == certid_key(request_certids(build(pki))[0])


def test_different_certificates_and_hashes_have_different_keys(pki):
    keys = {certid_key(request_certids(build(pki, leaf))[0]) for leaf in ("good", "revoked", "muststaple")}
    keys.add(certid_key(request_certids(build(pki, algorithm=hashes.SHA256()))[0]))
    assert len(keys) == 4


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x05\x30\x03\x02\x01", b"garbage", b"\x04\x00",
                                  b"\x30\x84\xff\xff\xff\xff", b"\x30\x02\x30\x00"])
def test_broken_requests_are_refused(data):
    with pytest.raises(CertIDError):
        request_certids(data)


@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_reader(data):
    try:
        request_certids(data)
    except CertIDError:
        pass


def test_truncations_of_a_real_request_are_refused(pki):
    der = build(pki)
    for cut in range(len(der)):
        with pytest.raises(CertIDError):
            request_certids(der[:cut])
