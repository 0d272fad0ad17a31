"""Certificate loading: the three shapes web servers keep certificates in."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import certificates as certs
from tests.unit.ocsp_helpers import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("certs"))


def test_leaf_file(pki):
    loaded = certs.load_certificates(pki.leaves["good"].cert_path.read_bytes())
    assert loaded == [pki.leaves["good"].cert]


def test_fullchain_keeps_order(pki):
    loaded = certs.load_certificates(pki.leaves["good"].fullchain_path.read_bytes())
    assert loaded == [pki.leaves["good"].cert, pki.intermediate.cert]


def test_combined_file_skips_the_key(pki):
    data = pki.leaves["good"].combined_path.read_bytes()
    assert b"PRIVATE KEY" in data
    assert certs.load_certificates(data) == [pki.leaves["good"].cert, pki.intermediate.cert]


def test_der_and_pkcs7(pki):
    leaf = pki.leaves["good"].cert
    assert certs.load_certificates(leaf.public_bytes(serialization.Encoding.DER)) == [leaf]
    p7 = pkcs7.serialize_certificates([pki.intermediate.cert], serialization.Encoding.DER)
    assert certs.load_certificates(p7) == [pki.intermediate.cert]


def test_not_a_certificate(pki):
    assert certs.load_certificates(b"hello\n") == []
    assert certs.load_certificates(pki.leaves["good"].key_path.read_bytes()) == []
    with pytest.raises(ValueError):
        certs.load_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_urls_and_must_staple(pki):
    good, nourl, must = (pki.leaves[n].cert for n in ("good", "nourl", "muststaple"))
    assert certs.ocsp_urls(good) == [pki.ocsp_url]
    assert certs.ocsp_urls(nourl) == []
    assert certs.ca_issuer_urls(good) == []
    assert certs.has_must_staple(must) and not certs.has_must_staple(good)
    assert certs.is_ocsp_signer(pki.ocsp_signer.cert) and not certs.is_ocsp_signer(good)


def test_find_issuer(pki):
    leaf = pki.leaves["good"].cert
    assert certs.find_issuer(leaf, [leaf, pki.root.cert, pki.intermediate.cert]) == pki.intermediate.cert
    assert certs.find_issuer(leaf, [pki.root.cert, pki.rogue.cert]) is None
    assert certs.find_issuer(pki.intermediate.cert, [pki.intermediate.cert, pki.root.cert]) == pki.root.cert


def test_find_issuer_checks_the_signature_not_just_the_name(pki, tmp_path):
    # Another CA with the same name as the intermediate, different key.
    from tests.lab.pki import LabPKI
    other = LabPKI.create(tmp_path / "other", ocsp_url="http://127.0.0.1:9/")
    assert other.intermediate.cert.subject == pki.intermediate.cert.subject
    assert certs.find_issuer(pki.leaves["good"].cert, [other.intermediate.cert]) is None


def test_describe(pki):
    info = certs.describe(pki.leaves["muststaple"].cert)
    assert info["subject"] == "CN=muststaple.lab.test,O=ocsp.stapling lab"
    assert info["serial"] == format(pki.leaves["muststaple"].serial, "X").rjust(len(info["serial"]), "0")
    assert len(info["serial"]) % 2 == 0
    assert info["must_staple"] is True and info["ocsp_urls"] == [pki.ocsp_url]
    assert info["not_after"].endswith("+00:00")
