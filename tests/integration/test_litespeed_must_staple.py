"""The litespeed role's Must-Staple guard (the contract's one guard) before a disable.

LiteSpeed cannot be installed here: the role changes a real-format OpenLiteSpeed tree with the
stand-in ``lswsctrl`` of tests/unit/servers/litespeed/test_stapling_module.py. The vhost's ``certFile``
holds a Must-Staple certificate from a lab PKI: a disable is refused with nothing written and no
restart, ``force`` goes through and reports the site, and the runbook's own list of Must-Staple
sites is taken as given.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.integration.ansible_run import play_role
from tests.unit.ocsp_helpers import make_pki
from tests.unit.servers.litespeed.test_stapling_module import calls, make_tree, snapshot
from tests.unit.servers.litespeed.test_stapling_module import role_vars as litespeed_role_vars


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("ls-must-staple"))


def tree(tmp_path: Path, pki, leaf: str) -> Path:
    root = make_tree(tmp_path, "ols")
    shutil.copyfile(pki.leaves[leaf].fullchain_path, root / "conf" / "cert" / "example.crt")
    return root


def role_vars(root: Path, tmp_path: Path, **extra) -> dict:
    # Nothing answers TLS for the stand-in: no listener probe, no check after the change.
    return litespeed_role_vars(root, tmp_path, litespeed_verify=False, **extra)


def test_a_must_staple_certificate_blocks_the_disable_and_force_reports_it(tmp_path, pki):
    root = tree(tmp_path, pki, "muststaple")
    before = snapshot(root)
    refused = play_role("ocsp.stapling.litespeed", role_vars(root, tmp_path), "stapling_server_result")
    assert refused["failed"], refused
    assert "Must-Staple" in refused["msg"] and "Example" in refused["msg"] and "Nothing was changed" in refused["msg"], refused
    assert snapshot(root) == before and calls(root) == []
    forced = play_role("ocsp.stapling.litespeed", role_vars(root, tmp_path, litespeed_stapling_force=True),
                       "stapling_server_result")
    assert not forced["failed"], forced
    assert "Example" in forced["result"]["forced_must_staple_sites"], forced["result"]
    assert calls(root) == ["restart"]
    assert "enableStapling          0" in (root / "conf/vhosts/Example/vhconf.conf").read_text()


def test_the_callers_must_staple_sites_are_taken_as_given(tmp_path, pki):
    # The runbook's diagnosis names the vhost although its file shows no Must-Staple (a renewed
    # certificate not yet loaded): refused. An empty list does not hide what the file shows.
    plain = tree(tmp_path / "plain", pki, "good")
    named = play_role("ocsp.stapling.litespeed", role_vars(plain, tmp_path / "plain", litespeed_stapling_must_staple_sites=["Example"]),
                      "stapling_server_result")
    assert named["failed"] and "Example" in named["msg"] and calls(plain) == [], named
    must = tree(tmp_path / "must", pki, "muststaple")
    unnamed = play_role("ocsp.stapling.litespeed", role_vars(must, tmp_path / "must", litespeed_stapling_must_staple_sites=[]),
                        "stapling_server_result")
    assert unnamed["failed"] and "Must-Staple" in unnamed["msg"] and calls(must) == [], unnamed
