"""The Prometheus textfile and the shipped alert rules, checked by Prometheus' own promtool.

``promtool`` comes with Debian's ``prometheus`` package (tests/bin/install-system-deps).
``promtool check metrics`` lints the exposition (names, units, HELP/TYPE, duplicates);
``promtool test rules`` runs prometheus/alerts_test.yml, one case per alert in
prometheus/alerts.yml.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.report import prometheus_text
from tests.unit.runbook.test_report import OUTCOMES, RICH
from tests.unit.paths import REPO

ALERTS = REPO / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "prometheus" / "alerts_test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(path).exists():
        pytest.fail("promtool not found: install Debian's prometheus package (tests/bin/install-system-deps)")
    return path


def run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("outcomes", [RICH, OUTCOMES, {}], ids=["sites", "hosts", "empty"])
def test_textfile_passes_promtool_check_metrics(promtool, outcomes):
    text = prometheus_text(outcomes, now=1735689600, action="check",
                           previous='ocsp_stapling_last_run_timestamp_seconds{action="reenable"} 1735680000\n')
    result = run([promtool, "check", "metrics"], text)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        f"promtool check metrics:\n{result.stdout}{result.stderr}\n--- textfile ---\n{text}")


def test_promtool_check_metrics_does_reject_a_bad_exposition(promtool):
    # The check above can fail: a counter without _total in milliseconds is two lint problems.
    result = run([promtool, "check", "metrics"], "# HELP x_milliseconds t\n# TYPE x_milliseconds counter\nx_milliseconds 1\n")
    assert result.returncode != 0 and "_total" in result.stdout + result.stderr


def test_alert_rules_pass_promtool_check_rules(promtool):
    result = run([promtool, "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_pass_their_unit_tests_with_a_case_per_alert(promtool):
    alerts = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
    assert alerts == {"OCSPStapleBadWhileResponderAnswers", "OCSPResponderUnreachable", "OCSPStaplingDisabledTooLong",
                      "OCSPHeldResponseExpiresSoon", "OCSPReenableJobNotRun",
                      "OCSPProtectedResponseExpiresSoon"}
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in cases for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in cases for case in test["alert_rule_test"] if not case["exp_alerts"]}
    assert firing == alerts, f"no firing case for {alerts - firing}"
    assert quiet == alerts, f"no quiet case for {alerts - quiet}"
    result = run([promtool, "test", "rules", str(ALERT_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_read_only_series_the_textfile_has():
    """Every metric name an alert reads is one prometheus_text writes (a typo never fires)."""
    import re

    written = {line.split("{")[0] for line in prometheus_text(RICH, now=1735689600, action="reenable").splitlines()
               if line and not line.startswith("#")}
    written.add("ssl_ocsp_response_next_update")
    # Written for protected sites only (RICH has none): test_protect_reporting.py checks it.
    written.add("ocsp_stapling_held_response_expiry_timestamp_seconds")
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            names = set(re.findall(r"\b((?:ocsp_stapling|ssl_ocsp)_[a-z_]+)", rule["expr"]))
            assert names and names <= written, (rule["alert"], names - written)
