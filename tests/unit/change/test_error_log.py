"""Error log classification, bounded tails and scanning after an offset."""
from __future__ import annotations


from ansible_collections.ocsp.stapling.plugins.module_utils.change import error_log as el
from tests.unit.paths import FIXTURES as UNIT_FIXTURES

FIXTURES = UNIT_FIXTURES / "configs"
APACHE_LINE = "[Tue Nov 24 03:10:01.000101 2026] [ssl:error] [pid 1:tid 1] AH01941: stapling_renew_response: responder error\n"


def test_classify_every_known_marker():
    samples = {
        "AH01941": APACHE_LINE,
        "AH01974": "[ssl:error] AH01974: could not connect to OCSP responder 'ocsp.example.net'",
        "AH01977": "[ssl:error] AH01977: failed reading line from OCSP server",
        "AH01980": "[ssl:error] AH01980: bad response from OCSP server: (null)",
        "AH01985": "[ssl:error] AH01985: error reading response from OCSP server",
        "AH02217": "[ssl:error] AH02217: ssl_stapling_init_cert: can't retrieve issuer certificate!",
        "AH02218": "[ssl:error] AH02218: ssl_stapling_init_cert: no OCSP URI in certificate",
        "nginx_ocsp_verify_failed": "[error] 1#1: OCSP_basic_verify() failed (SSL: ...)",
        "nginx_ocsp_timeout": "[error] 1#1: OCSP responder timed out (110: Connection timed out)",
        "nginx_stapling_ignored": '[warn] 1#1: "ssl_stapling" ignored, no OCSP responder URL in the certificate "/x.pem"',
    }
    for name, line in samples.items():
        assert el.classify_line(line).name == name
    assert el.classify_line("[ssl:warn] AH01909: certificate does not include an ID") is None


def test_nginx_fixture_counts_and_newest_example():
    summary = el.tail_scan("/var/log/nginx/error.log", root=str(FIXTURES / "nginx")).summary()
    classes = summary["classes"]
    assert {k: v["count"] for k, v in classes.items()} == {
        "nginx_ocsp_verify_failed": 2, "nginx_stapling_ignored": 1, "nginx_ocsp_timeout": 1}
    assert "self signed certificate" in classes["nginx_ocsp_verify_failed"]["newest"]
    assert classes["nginx_ocsp_timeout"]["category"] == "responder"
    assert summary["total"] == 4


def test_apache_fixture_counts():
    summary = el.tail_scan("/etc/httpd/logs/error_log", root=str(FIXTURES / "rhel")).summary()
    assert {k: v["count"] for k, v in summary["classes"].items()} == {"AH01985": 1, "AH01941": 2, "AH01974": 1, "AH02217": 1}
    assert "03:10:01" in summary["classes"]["AH01941"]["newest"]


def test_tail_is_bounded_and_drops_the_partial_first_line(tmp_path):
    log = tmp_path / "error.log"
    old = "[old] AH01974: could not connect to OCSP responder\n"
    log.write_text(old * 1000 + APACHE_LINE)
    scan = el.tail_scan(str(log), max_bytes=len(APACHE_LINE) + 10)
    assert scan.counts == {"AH01941": 1}
    assert scan.end - scan.start == len(APACHE_LINE) + 10


def test_scan_since_offset_sees_only_new_lines_and_handles_rotation(tmp_path):
    log = tmp_path / "error.log"
    log.write_text("[x] AH01974: could not connect\n")
    offset = el.log_size(str(log))
    with log.open("a") as handle:
        handle.write(APACHE_LINE)
    scan = el.scan_since(str(log), offset)
    assert scan.counts == {"AH01941": 1} and scan.end == log.stat().st_size
    log.write_text("[x] AH02218: no OCSP URI\n")  # rotated: now shorter than the offset
    assert el.scan_since(str(log), scan.end).counts == {"AH02218": 1}


def test_missing_log_is_reported_not_raised(tmp_path):
    summary = el.tail_scan(str(tmp_path / "nope.log")).summary()
    assert summary["exists"] is False and summary["total"] == 0 and summary["error"] is None
    assert el.log_size(str(tmp_path / "nope.log")) == 0
