"""The keeper's issuer from a served chain (protect/issuer.py), shared by the Apache and
LiteSpeed relay modes: the certificate after the leaf, only when it really is the leaf's issuer."""
from __future__ import annotations

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.der import read_chain
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.issuer import issuer_after_leaf
from tests.unit.ocsp_helpers import make_pki

MISSING = "the file holds no certificate after the leaf. Serve the chain, then run again."


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("issuer"))


def test_the_certificate_after_the_leaf_is_the_issuer(pki):
    blocks = read_chain(str(pki.leaves["good"].fullchain_path))
    issuer, problem = issuer_after_leaf(blocks, "good.pem", "site good", MISSING)
    assert problem is None and issuer == blocks[1].decode("ascii")
    assert read_chain(str(pki.intermediate.cert_path))[0].decode("ascii") == issuer


def test_a_leaf_alone_says_what_the_server_offers(pki):
    leaf = read_chain(str(pki.leaves["good"].cert_path))
    issuer, problem = issuer_after_leaf(leaf, "good.pem", "site good", MISSING)
    assert issuer is None and problem == f"site good: the keeper needs the issuer of good.pem, and {MISSING} Nothing was changed."


def test_a_chain_out_of_order_is_refused(pki):
    blocks = read_chain(str(pki.leaves["good"].cert_path)) + read_chain(str(pki.leaves["revoked"].cert_path))
    issuer, problem = issuer_after_leaf(blocks, "good.pem", "site good", MISSING)
    assert issuer is None and "is not its issuer" in problem and "Fix the chain order" in problem


def test_an_unreadable_certificate_is_refused_naming_it():
    broken = [b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"] * 2
    issuer, problem = issuer_after_leaf(broken, "bad.pem", "site bad", MISSING)
    assert issuer is None and problem.startswith("site bad: bad.pem does not hold a readable certificate")
