"""The litespeed role's check after a disable, on real handshakes.

LiteSpeed cannot be installed here: the role changes a real-format OpenLiteSpeed tree with a
stand-in ``lswsctrl`` (tests/unit/servers/litespeed/test_stapling_module.py's), and the endpoint it probes
is the lab's nginx on 127.0.0.1. An endpoint that still staples after the disable (here: a server
the change cannot reach, as a vhost outside the scope would be) fails the run naming it, what it
staples and what the change turned off; an endpoint that staples nothing lets the disable pass.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.ansible_run import play_role
from tests.lab.lab import Lab
from tests.unit.servers.litespeed.test_stapling_module import calls, make_tree
from tests.unit.servers.litespeed.test_stapling_module import role_vars as litespeed_role_vars


@pytest.fixture(scope="module")
def nginx_lab(tmp_path_factory):
    with Lab.start(tmp_path_factory.mktemp("ls-verify-off") / "lab", servers=("nginx",)) as lab:
        yield lab


def role_vars(root: Path, tmp_path: Path, endpoint: dict) -> dict:
    return litespeed_role_vars(root, tmp_path, litespeed_stapling_endpoints=[endpoint],
                               litespeed_verify_endpoints=[endpoint], litespeed_verify_timeout=15)


def test_an_endpoint_still_stapling_after_the_disable_fails_the_run_naming_it(nginx_lab, tmp_path):
    nginx_lab.wait_for_verdict("nginx", "good.lab.test", "good")
    root = make_tree(tmp_path, "ols")
    endpoint = {"host": "127.0.0.1", "port": nginx_lab.nginx.port, "server_name": "good.lab.test"}
    outcome = play_role("ocsp.stapling.litespeed", role_vars(root, tmp_path, endpoint), "stapling_server_result")
    assert outcome["failed"], outcome
    msg = outcome["msg"]
    assert (f"Stapling was turned off and LiteSpeed restarted, yet these endpoints still staple a response: "
            f"good.lab.test at 127.0.0.1:{nginx_lab.nginx.port} (good)") in msg, msg
    assert "This change set enableStapling 0 for vhost Example (%s/conf/vhosts/Example/vhconf.conf)" % root in msg, msg
    assert f"grep -rn enableStapling {root}/conf" in msg and str(tmp_path / "backups") in msg, msg
    assert calls(root) == ["restart"]          # the change went live and was restarted once
    assert "enableStapling          0" in (root / "conf/vhosts/Example/vhconf.conf").read_text()


def test_an_endpoint_stapling_nothing_lets_the_disable_pass(nginx_lab, tmp_path):
    root = make_tree(tmp_path, "ols")
    endpoint = {"host": "127.0.0.1", "port": nginx_lab.nginx.port, "server_name": "nourl.lab.test"}
    staple = nginx_lab.probe("nginx", "nourl.lab.test")
    assert staple.handshake_ok and not staple.stapled, staple
    outcome = play_role("ocsp.stapling.litespeed", role_vars(root, tmp_path, endpoint), "stapling_server_result")
    assert not outcome["failed"], outcome
    assert outcome["result"]["state"] == "disabled" and outcome["result"]["changed"] is True
    assert calls(root) == ["restart"]
