"""report: the one-line-per-host summary, the JSON report and the Prometheus textfile."""
from __future__ import annotations

import json
import re

from ansible_collections.ocsp.stapling.plugins.module_utils.report import (
    json_report,
    prometheus_text,
    summary_lines,
    write_atomic,
)

OUTCOMES = {
    "web01": {
        "host": "web01", "verdict": "disable_recommended", "recommendation": "run disable_stapling",
        "servers": ["apache", "nginx"], "changes": [],
        "sites": [
            {"server": "apache", "site": "a.test", "verdict": "error_stapled", "seconds_until_expiry": None},
            {"server": "apache", "site": "b.test", "verdict": "error_stapled", "seconds_until_expiry": None},
            {"server": "nginx", "site": "a.test", "verdict": "good", "seconds_until_expiry": 1200},
        ],
        "responders": [{"url": "http://ocsp.test/", "reachable": False}],
        "disabled_since": None,
    },
    "web02": {
        "host": "web02", "verdict": "disabled_by_collection", "recommendation": "wait for reenable_stapling",
        "servers": ["apache"], "changes": ["stapling disabled on apache"],
        "sites": [{"server": "apache", "site": "c.test", "verdict": "missing"}],
        "responders": [{"url": "http://ocsp.test/", "reachable": True}],
        "disabled_since": 1735689600, "reenable": {"consecutive_good": 1, "required_good": 3},
    },
}


def test_summary_has_one_aligned_line_per_host_and_next_steps():
    lines = summary_lines(OUTCOMES, ["web01", "web02", "web03"], title="disable_stapling")
    assert lines[0] == "disable_stapling"
    header, web01, web02, web03 = lines[1:5]
    assert header.startswith("HOST")
    assert header.index("VERDICT") == web01.index("disable_recommended") == web02.index("disabled_by_collection")
    assert "apache,nginx" in web01 and "3: error 2, good 1" in web01 and web01.endswith("nothing")
    assert "(1/3 good)" in web02 and web02.endswith("stapling disabled on apache")
    assert "no_result" in web03 and "unreachable" in web03
    assert "web01: next: run disable_stapling" in lines
    assert not any(line.startswith("web03: next") for line in lines)


def test_failed_host_shows_its_error():
    outcome = dict(OUTCOMES["web01"], error="configtest failed: AH00526")
    line = summary_lines({"web01": outcome})[1]
    assert line.endswith("FAILED: configtest failed: AH00526")


def test_json_report_counts_verdicts_and_lists_missing_hosts():
    report = json_report(OUTCOMES, ["web01", "web02", "web03"], {"playbook": "check_stapling", "run_id": "r1"},
                         now=1735689600)
    assert report["generated_at"] == "2025-01-01T00:00:00Z"
    assert report["playbook"] == "check_stapling"
    assert report["verdicts"] == {"disable_recommended": 1, "disabled_by_collection": 1, "no_result": 1}
    assert report["hosts"]["web03"]["verdict"] == "no_result"
    json.dumps(report)


def test_prometheus_text_is_valid_exposition_with_the_gauges():
    text = prometheus_text(OUTCOMES, now=1735689600)
    assert text.endswith("\n")
    assert 'ocsp_stapling_staple_status{host="web01",server="nginx",site="a.test",verdict="good"} 1' in text
    assert 'ocsp_stapling_staple_status{host="web01",server="apache",site="a.test",verdict="error_stapled"} 0' in text
    assert 'ocsp_stapling_responder_reachable{host="web01",responder="http://ocsp.test/"} 0' in text
    assert 'ocsp_stapling_responder_reachable{host="web02",responder="http://ocsp.test/"} 1' in text
    assert 'ocsp_stapling_staple_seconds_until_expiry{host="web01",server="nginx",site="a.test"} 1200' in text
    assert 'ocsp_stapling_disabled_since_timestamp_seconds{host="web02"} 1735689600' in text
    assert 'ocsp_stapling_disabled_since_timestamp_seconds{host="web01"} 0' in text
    assert "ocsp_stapling_last_run_timestamp_seconds 1735689600" in text
    sample = re.compile(r'^ocsp_stapling_[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?\d+$')
    names_with_type = set()
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            names_with_type.add(line.split()[2])
        elif not line.startswith("# HELP"):
            assert sample.match(line), line
            assert line.split("{")[0].split(" ")[0] in names_with_type
    # Each series once: a duplicate makes node_exporter reject the whole file.
    series = [line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")]
    assert len(series) == len(set(series))


def test_prometheus_label_values_are_escaped():
    outcome = {"verdict": "healthy", "sites": [{"server": "nginx", "site": 'we"ird\\', "verdict": "good"}]}
    text = prometheus_text({"h": outcome}, now=0)
    assert 'site="we\\"ird\\\\"' in text


def test_write_atomic_reports_change_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out" / "ocsp_stapling.prom"
    assert write_atomic(str(path), "a 1\n") is True
    assert write_atomic(str(path), "a 1\n") is False
    assert path.read_text() == "a 1\n"
    assert [p.name for p in path.parent.iterdir()] == ["ocsp_stapling.prom"]


def test_unchanged_host_says_why():
    outcome = dict(OUTCOMES["web01"], notes=["responder still failing, 0/2 good answers"])
    assert summary_lines({"web01": outcome})[1].endswith("nothing: responder still failing, 0/2 good answers")


def test_check_mode_changes_are_predictions():
    outcome = dict(OUTCOMES["web02"], check_mode=True)
    assert summary_lines({"web02": outcome})[1].endswith("would change (check mode): stapling disabled on apache")
