"""report: the one-line-per-host summary, the JSON report and the Prometheus textfile."""
from __future__ import annotations

import json
import re

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.report import (
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


GOOD_ROW = {"server": "nginx", "site": "a.test", "verdict": "good", "stapling_configured": True,
            "responder_url": "http://ocsp.test/", "handshake_ok": True, "handshake_seconds": 0.021,
            "stapled": True, "response_status": "successful", "cert_status": "good",
            "this_update": "2025-01-01T00:00:00+00:00", "next_update": "2025-01-02T00:00:00+00:00",
            "produced_at": "2025-01-01T00:00:05+00:00"}
ERROR_ROW = {"server": "apache", "site": "a.test", "verdict": "error_stapled", "stapling_configured": True,
             "responder_url": "http://ocsp.test/", "handshake_ok": True, "handshake_seconds": 3.5,
             "stapled": True, "response_status": "tryLater", "cert_status": None}
RICH = {
    "web01": {
        "verdict": "reload_recommended", "sites": [
            GOOD_ROW, ERROR_ROW,
            dict(GOOD_ROW, server="apache", site="r.test", verdict="revoked", cert_status="revoked"),
            {"server": "apache", "site": "off.test", "verdict": "missing", "stapling_configured": False,
             "responder_url": "http://ocsp.test/", "handshake_ok": True, "stapled": False},
            {"server": "apache", "site": "down.test", "verdict": "handshake_failed", "handshake_ok": False},
            # A second server block for the same name (IPv6 listen): one series, the first row's.
            dict(GOOD_ROW, verdict="missing", stapled=False),
        ],
        "responders": [{"url": "http://ocsp.test/", "reachable": True, "ipv4": True, "ipv6": False}],
        "disabled_since": None,
    },
    "web02": dict(OUTCOMES["web02"]),
    "web03": None,
}


def series(text: str) -> dict[str, str]:
    """Sample lines of the exposition: series (name and labels) -> value."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name not in found, f"duplicate series {name}: node_exporter rejects the whole file"
            found[name] = value
    return found


def test_prometheus_text_uses_ssl_exporter_names_for_the_staple():
    found = series(prometheus_text(RICH, ["web01", "web02", "web03"], now=1735689600, action="check"))
    site = 'host="web01",server="nginx",site="a.test"'
    assert found[f"ssl_ocsp_response_stapled{{{site}}}"] == "1"
    assert found[f"ssl_ocsp_response_status{{{site}}}"] == "0"
    assert found[f"ssl_ocsp_response_this_update{{{site}}}"] == "1735689600"
    assert found[f"ssl_ocsp_response_next_update{{{site}}}"] == "1735776000"
    assert found[f"ssl_ocsp_response_produced_at{{{site}}}"] == "1735689605"
    assert found[f"ocsp_stapling_handshake_duration_seconds{{{site}}}"] == "0.021"
    assert found['ssl_ocsp_response_status{host="web01",server="apache",site="r.test"}'] == "1"
    # A tryLater error is stapled, but carries no certificate status nor times (as in ssl_exporter).
    error = 'host="web01",server="apache",site="a.test"'
    assert found[f"ssl_ocsp_response_stapled{{{error}}}"] == "1"
    assert not [name for name in found if name.startswith("ssl_ocsp_response_status") and error in name]
    assert found['ssl_ocsp_response_stapled{host="web01",server="apache",site="off.test"}'] == "0"
    # No handshake, no OCSP series; the verdict still says what happened.
    assert not [name for name in found if name.startswith("ssl_") and "down.test" in name]
    assert found['ocsp_stapling_staple_verdict{host="web01",server="apache",site="down.test",responder="",'
                 'verdict="handshake_failed",stapling="default"} 1'.rsplit(" ", 1)[0]] == "1"
    assert found['ocsp_stapling_staple_verdict{host="web01",server="apache",site="a.test",'
                 'responder="http://ocsp.test/",verdict="error_stapled",stapling="on"}'] == "1"
    assert found['ocsp_stapling_staple_verdict{host="web01",server="apache",site="off.test",'
                 'responder="http://ocsp.test/",verdict="missing",stapling="off"}'] == "1"
    # The same name in two server blocks: the first row's series only.
    assert found[f"ssl_ocsp_response_stapled{{{site}}}"] == "1"
    assert not [name for name in found if name.startswith("ocsp_stapling_staple_seconds") or "staple_status" in name]


def test_prometheus_text_has_the_runbook_series_per_responder_family_and_host():
    found = series(prometheus_text(RICH, ["web01", "web02", "web03"], now=1735689600, action="reenable"))
    responder = 'host="web01",responder="http://ocsp.test/"'
    assert found[f'ocsp_stapling_responder_reachable{{{responder},ip_family="any"}}'] == "1"
    assert found[f'ocsp_stapling_responder_reachable{{{responder},ip_family="ipv4"}}'] == "1"
    assert found[f'ocsp_stapling_responder_reachable{{{responder},ip_family="ipv6"}}'] == "0"
    # web02's responder row has no per-family attempts: only the overall series.
    assert found['ocsp_stapling_responder_reachable{host="web02",responder="http://ocsp.test/",ip_family="any"}'] == "1"
    assert not [name for name in found if 'host="web02"' in name and "ipv" in name]
    assert found['ocsp_stapling_disabled_since_timestamp_seconds{host="web02"}'] == "1735689600"
    assert found['ocsp_stapling_disabled_since_timestamp_seconds{host="web01"}'] == "0"
    assert found['ocsp_stapling_reenable_consecutive_good_answers{host="web02"}'] == "1"
    assert found['ocsp_stapling_reenable_required_good_answers{host="web02"}'] == "3"
    assert 'ocsp_stapling_reenable_consecutive_good_answers{host="web01"}' not in found
    assert found['ocsp_stapling_host_verdict{host="web03",verdict="no_result"}'] == "1"
    assert found['ocsp_stapling_last_run_timestamp_seconds{action="reenable"}'] == "1735689600"


def test_prometheus_text_keeps_the_other_playbooks_last_runs():
    first = prometheus_text(RICH, now=1000, action="reenable")
    second = prometheus_text(RICH, now=2000, action="check", previous=first)
    third = prometheus_text(RICH, now=3000, action="reenable", previous=second)
    assert series(second)['ocsp_stapling_last_run_timestamp_seconds{action="reenable"}'] == "1000"
    assert series(second)['ocsp_stapling_last_run_timestamp_seconds{action="check"}'] == "2000"
    assert series(third)['ocsp_stapling_last_run_timestamp_seconds{action="reenable"}'] == "3000"
    assert series(third)['ocsp_stapling_last_run_timestamp_seconds{action="check"}'] == "2000"
    assert prometheus_text({}, now=5, previous="garbage\n").endswith(
        'ocsp_stapling_last_run_timestamp_seconds{action="unknown"} 5\n')


def test_prometheus_text_is_valid_exposition():
    text = prometheus_text(RICH, ["web01", "web02", "web03"], now=1735689600, action="check")
    assert text.endswith("\n")
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?\d+(\.\d+)?$')
    names_with_type = set()
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            assert line.split()[2] not in names_with_type, line
            names_with_type.add(line.split()[2])
        elif not line.startswith("# HELP"):
            assert sample.match(line), line
            assert line.split("{")[0].split(" ")[0] in names_with_type
    series(text)


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
