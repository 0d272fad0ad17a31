"""The host side's DER reader (ocsp/der.py) against cryptography's reading of the same
certificates, and on broken input: always DERError, never an IndexError or a wrong field."""
from __future__ import annotations

import base64

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import der
from tests.unit.ocsp_helpers import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("der"))


@pytest.mark.parametrize("leaf", ["good", "nourl", "muststaple", "revoked"])
def test_certificate_fields_match_what_cryptography_reads(pki, leaf):
    pem = der.read_chain(str(pki.leaves[leaf].fullchain_path))[0]
    cert = x509.load_pem_x509_certificate(pem)
    info = der.certificate_info(pem)
    assert info["issuer"] == cert.issuer.public_bytes()
    assert info["subject"] == cert.subject.public_bytes()
    assert info["common_name"] == cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        urls = [d.access_location.value for d in aia if d.access_method == x509.AuthorityInformationAccessOID.OCSP]
    except x509.ExtensionNotFound:
        urls = []
    assert info["ocsp_urls"] == urls
    try:
        features = cert.extensions.get_extension_for_class(x509.TLSFeature).value
        must = x509.TLSFeatureType.status_request in features
    except x509.ExtensionNotFound:
        must = False
    assert info["must_staple"] is must
    assert (leaf == "muststaple") is must and (leaf == "nourl") is (urls == [])


def test_a_chain_file_yields_every_certificate_and_skips_keys(pki):
    text = pki.leaves["good"].fullchain_path.read_bytes()
    blocks = der.pem_blocks(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" + text)
    assert len(blocks) == text.count(b"-----BEGIN CERTIFICATE-----") >= 2
    assert [der.certificate_info(b)["subject"] for b in blocks[1:2]] == [der.certificate_info(blocks[0])["issuer"]]


def test_a_body_that_is_not_base64_is_a_der_error():
    with pytest.raises(der.DERError, match="base64"):
        der.certificate_info(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=2000))
def test_any_truncated_or_mangled_certificate_raises_der_error_only(pki, tail, cut):
    good = der.pem_to_der(der.read_chain(str(pki.leaves["good"].fullchain_path))[0])
    data = good[:cut] + tail
    try:
        der.certificate_info(b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(data)
                             + b"-----END CERTIFICATE-----\n")
    except der.DERError:
        pass


def test_the_reader_never_reads_past_its_data():
    with pytest.raises(der.DERError, match="claims"):
        der.read_tlv(bytes([0x30, 0x05, 0x01]), 0)
    with pytest.raises(der.DERError, match="truncated"):
        der.read_tlv(bytes([0x30]), 0)
    with pytest.raises(der.DERError, match="more than 2"):
        der.children(bytes([0x05, 0x00] * 3), 0, 6, limit=2)
    assert der.oid_text(bytes.fromhex("2b06010505073001")) == "1.3.6.1.5.5.7.48.1"
