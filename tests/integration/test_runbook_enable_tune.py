"""enable_stapling and tune_stapling run end to end against the loopback lab.

Each test starts its own lab (PKI, responder, nginx and apache2 on 127.0.0.1) serving the
``good`` and ``nourl`` certificates only: no Must-Staple leaf, so the Must-Staple guard
stays out of the way and the verdicts are the plain ones. The playbooks are run as an
operator runs them (``ansible-playbook -i <inventory> ocsp.stapling.<name>``) with the
inventory ``tests.lab.inventory`` builds from the lab, and judged by what the operator
relies on: the staples the servers serve, the configuration in force, the JSON report,
PLAY RECAP, and the files left alone when the playbook refuses.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from tests.integration.runbook_play import RESILIENT, conf_digest, play, start_lab
from tests.lab.lab import Lab


@pytest.fixture
def lab_off(tmp_path):
    with start_lab(tmp_path / "lab", stapling=False) as running:
        yield running


@pytest.fixture
def lab_on(tmp_path):
    with start_lab(tmp_path / "lab", stapling=True) as running:
        yield running


def apache_snippet(lab: Lab) -> dict[str, str]:
    """The directives of the role's snippet, which must be enabled (linked from conf-enabled)."""
    link = lab.apache.conf_dir / "conf-enabled" / "zz-ocsp-stapling.conf"
    snippet = lab.apache.conf_dir / "conf-available" / "zz-ocsp-stapling.conf"
    assert link.is_symlink() and link.resolve() == snippet.resolve(), "the stapling snippet is not enabled"
    directives = {}
    for line in snippet.read_text().splitlines():
        words = line.split(None, 1)
        if words and words[0].startswith("SSL"):
            directives[words[0]] = words[1].strip() if len(words) > 1 else ""
    return directives


def apache_configtest(lab: Lab) -> None:
    result = lab.apache.ctl("-t", "-D", "DUMP_RUN_CFG")
    assert result.returncode == 0, result.stdout + result.stderr


def nginx_dump(lab: Lab) -> str:
    result = subprocess.run(lab.nginx.base_command + ["-T"], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_good_everywhere(lab: Lab) -> None:
    assert lab.probe("apache", "good").verdict == "good"
    lab.wait_for_verdict("nginx", "good", "good", timeout=30)
    assert lab.probe("nginx", "nourl").verdict != "good"


def test_enable_turns_stapling_on_with_resilient_tuning_and_is_idempotent(lab_off, tmp_path):
    lab = lab_off
    # Starting point: neither server staples.
    assert lab.probe("apache", "good").verdict != "good"
    assert lab.probe("nginx", "good").verdict != "good"

    first = play(lab, tmp_path, "enable_stapling", "enable-1", ticket="CHG-1")
    assert first.rc == 0, first.tail()
    host = first.host
    assert host["error"] is None, host
    assert host["verdict"] == "healthy", host
    changed = " ".join(host["changes"])
    assert "apache: stapling enabled" in changed and "nginx: stapling enabled" in changed, host["changes"]
    assert first.recap().get("changed", 0) > 0

    assert_good_everywhere(lab)
    directives = apache_snippet(lab)
    assert directives.get("SSLUseStapling", "").lower() == "on", directives
    for name, value in RESILIENT.items():
        assert directives.get(name, "").lower() == value, (name, directives)
    apache_configtest(lab)
    assert re.search(r"^\s*ssl_stapling\s+on;", nginx_dump(lab), re.M)
    # No state record: enable clears ours and writes none.
    assert not (lab.directory / "runbook" / "state.json").exists()

    before = conf_digest(lab)
    second = play(lab, tmp_path, "enable_stapling", "enable-2", ticket="CHG-1")
    assert second.rc == 0, second.tail()
    assert second.host["verdict"] == "healthy", second.host
    assert second.host["changes"] == [], second.host["changes"]
    assert second.recap().get("changed") == 0, second.tail()
    assert conf_digest(lab) == before
    assert_good_everywhere(lab)


def test_enable_refuses_during_an_outage_and_changes_nothing(lab_off, tmp_path):
    lab = lab_off
    lab.responder.set_mode("down")
    before = conf_digest(lab)

    refused = play(lab, tmp_path, "enable_stapling", "enable-outage")
    assert refused.rc != 0, refused.tail()
    host = refused.host
    assert host["error"] and "Not enabling stapling" in host["error"], host
    assert "force=true" in host["error"], host["error"]
    assert host["changes"] == [], host["changes"]
    assert refused.recap().get("changed") == 0, refused.tail()
    assert conf_digest(lab) == before
    # The servers were not touched: still no staple, and no snippet.
    assert not (lab.apache.conf_dir / "conf-available" / "zz-ocsp-stapling.conf").exists()
    assert lab.probe("apache", "good").verdict != "good"
    # The lock is released for the next run.
    assert not (lab.directory / "runbook" / "run.lock").exists()


def test_tune_applies_the_tuning_where_stapling_is_on_and_is_idempotent(lab_on, tmp_path):
    lab = lab_on
    lab.wait_for_verdict("nginx", "good", "good")
    assert lab.probe("apache", "good").verdict == "good"
    assert not (lab.apache.conf_dir / "conf-available" / "zz-ocsp-stapling.conf").exists()

    tuned = play(lab, tmp_path, "tune_stapling", "tune-1")
    assert tuned.rc == 0, tuned.tail()
    assert tuned.host["error"] is None and tuned.host["verdict"] == "healthy", tuned.host
    assert any(change.startswith("apache: stapling enabled (resilient)") for change in tuned.host["changes"]), \
        tuned.host["changes"]
    directives = apache_snippet(lab)
    for name, value in RESILIENT.items():
        assert directives.get(name, "").lower() == value, (name, directives)
    apache_configtest(lab)
    dump = nginx_dump(lab)
    assert re.search(r"^\s*ssl_stapling\s+on;", dump, re.M) and re.search(r"^\s*ssl_stapling_verify\s+on;", dump, re.M)
    assert_good_everywhere(lab)

    before = conf_digest(lab)
    again = play(lab, tmp_path, "tune_stapling", "tune-2")
    assert again.rc == 0, again.tail()
    assert again.host["changes"] == [] and again.recap().get("changed") == 0, again.tail()
    assert conf_digest(lab) == before

    # An explicit tuning dict replaces the resilient set on Apache.
    custom = {"SSLStaplingResponderTimeout": 7, "SSLStaplingStandardCacheTimeout": 7200}
    dict_run = play(lab, tmp_path, "tune_stapling", "tune-3", tuning=custom)
    assert dict_run.rc == 0, dict_run.tail()
    assert dict_run.host["error"] is None and dict_run.host["verdict"] == "healthy", dict_run.host
    directives = apache_snippet(lab)
    assert directives.get("SSLStaplingResponderTimeout") == "7", directives
    assert directives.get("SSLStaplingStandardCacheTimeout") == "7200", directives
    assert "SSLStaplingFakeTryLater" not in directives, directives
    apache_configtest(lab)
    assert lab.probe("apache", "good").verdict == "good"
