"""The apache role fails loudly when the change did not do what it was for, judged by real handshakes:

- after a disable, a targeted site that still staples (here the name is also answered by the lab's
  nginx, which the Apache change cannot reach: a configuration the role did not read) fails the run,
  naming the site, what it staples and the file and line that decides its stapling in the
  configuration Apache reads (the disable's own line: so the staple comes from elsewhere);
- after an enable, a site that gets no good staple once warm-up is over (the responder is down)
  fails the run, naming the site and what it got.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.test_apache_faults import role_vars, run_role
from tests.lab.lab import Lab


@pytest.fixture
def lab(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("apache", "nginx")) as running:
        yield running


def good_endpoint(port: int) -> dict:
    return {"host": "127.0.0.1", "port": port, "server_name": "good.lab.test"}


def test_a_disable_that_leaves_a_site_stapling_fails_naming_the_line_that_decided(lab, tmp_path):
    lab.wait_for_verdict("nginx", "good.lab.test", "good")
    variables = role_vars(lab, tmp_path, apache_stapling_state="disabled",
                          apache_stapling_endpoints=[good_endpoint(lab.apache.port), good_endpoint(lab.nginx.port)])
    outcome = run_role(tmp_path, variables)
    assert outcome["failed"], outcome
    msg = outcome["msg"]
    assert "Stapling was turned off and Apache reloaded, yet these sites still staple a response" in msg, msg
    found = re.search(r"good\.lab\.test \(good; the plan expected (/\S+):(\d+) SSLUseStapling (\S+)\)", msg)
    assert found, msg
    # the line that decides for the site in the configuration Apache now reads: the disable's own
    path, line, value = found.group(1), int(found.group(2)), found.group(3)
    assert value.lower() == "off" and Path(path).name == "zz-ocsp-stapling.conf", msg
    assert re.match(r"(?i)\s*SSLUseStapling\s+off\s*$", Path(path).read_text().splitlines()[line - 1]), (path, line)
    assert "apache2ctl -S" in msg
    # Apache itself did stop stapling: the one still stapling is the server the role did not change.
    staple = lab.probe("apache", "good.lab.test")
    assert staple.handshake_ok and not staple.stapled, staple


def test_an_enable_without_a_good_staple_after_warm_up_fails_naming_the_site(lab, tmp_path):
    endpoints = [good_endpoint(lab.apache.port)]
    off = run_role(tmp_path, role_vars(lab, tmp_path, apache_stapling_state="disabled", apache_stapling_endpoints=endpoints))
    assert not off["failed"], off
    lab.responder.set_mode("down")
    outcome = run_role(tmp_path, role_vars(lab, tmp_path, apache_stapling_state="enabled", apache_stapling_endpoints=endpoints,
                                           apache_stapling_warmup_timeout=4))
    assert outcome["failed"], outcome
    msg = outcome["msg"]
    assert "Stapling is enabled and Apache is serving, but after 4s these sites are still not served a usable staple" in msg, msg
    assert "good.lab.test" in msg and "ocsp_responder_check" in msg, msg
    staple = lab.probe("apache", "good.lab.test")
    assert staple.handshake_ok and not staple.stapled, staple
