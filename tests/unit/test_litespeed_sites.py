"""Read-only LiteSpeed site listing for OpenLiteSpeed text and LSWS XML."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils import litespeed_sites as ls

FIXTURES = Path(__file__).parent / "fixtures" / "configs"


def test_ols_listener_and_vhosts():
    result = ls.read_sites(root=str(FIXTURES / "ols"))
    assert (result["edition"], result["config"], result["reads_apache_config"]) == (
        "openlitespeed", "/usr/local/lsws/conf/httpd_config.conf", False)
    assert result["warnings"] == []
    by_name = {(s["kind"], s["name"]): s for s in result["sites"]}
    assert set(by_name) == {("listener", "SSL"), ("vhost", "Example"), ("vhost", "Shop")}
    listener = by_name[("listener", "SSL")]
    assert listener["names"] == ["example.com", "www.example.com", "shop.example.net"]
    assert listener["stapling"]["enableStapling"] == {
        "value": "1", "file": "/usr/local/lsws/conf/httpd_config.conf", "line": 41, "inherited": False}
    example = by_name[("vhost", "Example")]
    assert example["file"] == "/usr/local/lsws/conf/vhosts/Example/vhconf.conf"
    assert example["names"] == ["example.com", "www.example.com"]
    assert example["stapling"]["ocspResponder"]["value"] == "http://ocsp.example-ca.test/"
    assert example["stapling"]["ocspRespMaxAge"]["line"] == 27  # the here-document did not shift lines
    assert example["certificates"]["certFile"]["value"] == "/etc/letsencrypt/live/example.com/fullchain.pem"
    shop = by_name[("vhost", "Shop")]
    assert shop["stapling"]["enableStapling"]["inherited"] is True  # from listener SSL


def test_lsws_xml_with_line_numbers_and_apache_flag():
    result = ls.read_sites(root=str(FIXTURES / "lsws"))
    assert result["edition"] == "lsws" and result["reads_apache_config"] is True
    listener, vhost = result["sites"]
    assert listener["listen"] == [{"address": "192.0.2.20", "port": 443, "listener": "HTTPS"}]
    assert listener["stapling"]["ocspResponder"] == {
        "value": "http://ocsp.lsws-ca.test", "file": "/usr/local/lsws/conf/httpd_config.xml", "line": 24, "inherited": False}
    assert vhost["file"] == "/usr/local/lsws/DEFAULT/conf/vhconf.xml"
    assert vhost["stapling"]["enableStapling"]["value"] == "0" and vhost["stapling"]["enableStapling"]["line"] == 8
    assert vhost["stapling"]["ocspRespMaxAge"]["inherited"] is True
    assert vhost["names"] == ["example.org", "www.example.org"]


def test_no_litespeed_gives_empty_result(tmp_path):
    assert ls.read_sites(root=str(tmp_path))["sites"] == []


def test_broken_files_say_what_to_fix():
    with pytest.raises(ls.LiteSpeedReadError, match="never closed"):
        ls.parse_ols_text("listener SSL {\n  secure 1\n", "x.conf")
    with pytest.raises(ls.LiteSpeedReadError, match="not well-formed"):
        ls.parse_xml(b"<a><b></a>", "x.xml")
