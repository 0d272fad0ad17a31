"""build_request: what goes on the wire, checked against cryptography's and openssl's readers."""
from __future__ import annotations

import base64
import subprocess
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import wire as ocsp_wire
from tests.lab.responder import _key_hash
from tests.unit.ocsp_helpers import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("wire"))


def test_request_has_sha1_certid_of_leaf_and_issuer(pki):
    leaf, issuer = pki.leaves["good"].cert, pki.intermediate.cert
    request = ocsp.load_der_ocsp_request(ocsp_wire.build_request(leaf, issuer))
    assert isinstance(request.hash_algorithm, hashes.SHA1)
    assert request.serial_number == leaf.serial_number
    # Independent computation (the lab responder's DER walk) of the key hash.
    assert request.issuer_key_hash == _key_hash(issuer, hashes.SHA1())
    digest = hashes.Hash(hashes.SHA1())
    digest.update(issuer.subject.public_bytes())
    assert request.issuer_name_hash == digest.finalize()
    assert list(request.extensions) == []
    assert ocsp_wire.request_nonce(ocsp_wire.build_request(leaf, issuer)) is None


def test_nonce_is_random_and_readable(pki):
    leaf, issuer = pki.leaves["good"].cert, pki.intermediate.cert
    first = ocsp_wire.request_nonce(ocsp_wire.build_request(leaf, issuer, nonce=True))
    second = ocsp_wire.request_nonce(ocsp_wire.build_request(leaf, issuer, nonce=True))
    assert len(first) == ocsp_wire.NONCE_BYTES and first != second


def test_openssl_reads_the_request(pki, tmp_path):
    der = ocsp_wire.build_request(pki.leaves["good"].cert, pki.intermediate.cert, nonce=True)
    path = tmp_path / "req.der"
    path.write_bytes(der)
    out = subprocess.run(["openssl", "ocsp", "-reqin", str(path), "-req_text"], capture_output=True,
                         text=True, timeout=20, check=True).stdout
    assert "Hash Algorithm: sha1" in out
    serial = format(pki.leaves["good"].serial, "X")
    assert serial.lstrip("0") in out.replace(" ", "").upper()
    assert "OCSP Nonce" in out


def test_cert_id_matches_request(pki):
    leaf, issuer = pki.leaves["good"].cert, pki.intermediate.cert
    request = ocsp.load_der_ocsp_request(ocsp_wire.build_request(leaf, issuer))
    cid = ocsp_wire.cert_id(leaf, issuer)
    assert (cid["issuer_key_hash"], cid["issuer_name_hash"], cid["serial_number"]) == (
        request.issuer_key_hash, request.issuer_name_hash, request.serial_number)
    assert ocsp_wire.cert_id(leaf, issuer, "sha256")["issuer_key_hash"] == _key_hash(issuer, hashes.SHA256())


def test_get_url_roundtrips_and_respects_the_limit(pki):
    der = ocsp_wire.build_request(pki.leaves["good"].cert, pki.intermediate.cert)
    url = ocsp_wire.get_url("http://ocsp.example.test", der)
    assert url.startswith("http://ocsp.example.test/")
    encoded = urllib.parse.unquote(url.rsplit("/", 1)[1])
    assert base64.b64decode(encoded) == der
    assert "+" not in url.rsplit("/", 1)[1] and "=" not in url.rsplit("/", 1)[1]
    assert ocsp_wire.get_url("http://x.test/" + "a" * 250, der) is None
