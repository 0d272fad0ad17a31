"""Read-only LiteSpeed site listing for OpenLiteSpeed text and LSWS XML."""
from __future__ import annotations


import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed import sites as ls
from tests.unit.paths import FIXTURES as UNIT_FIXTURES

FIXTURES = UNIT_FIXTURES / "configs"


def test_ols_listener_and_vhosts():
    result = ls.read_sites(root=str(FIXTURES / "ols"))
    assert (result["edition"], result["config"], result["reads_apache_config"]) == (
        "openlitespeed", "/usr/local/lsws/conf/httpd_config.conf", False)
    # the fixture's vhTemplate names a template file that is not there
    assert result["warnings"] == ["vhost template centralConfigLog: template file "
                                  "/usr/local/lsws/conf/templates/ccl.conf does not exist; skipped"]
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
    # OpenLiteSpeed builds a vhost's SSL context from vhssl alone (enableStapling default 0):
    # the listener's enableStapling 1 does not reach it
    assert "enableStapling" not in shop["stapling"] and shop["stapling_enabled"] is False


def test_lsws_xml_with_line_numbers_and_apache_flag():
    result = ls.read_sites(root=str(FIXTURES / "lsws"))
    assert result["edition"] == "lsws" and result["reads_apache_config"] is True
    listener, vhost = result["sites"]
    assert listener["listen"] == [{"address": "192.0.2.20", "port": 443, "listener": "HTTPS"}]
    assert listener["stapling"]["ocspResponder"] == {
        "value": "http://ocsp.lsws-ca.test", "file": "/usr/local/lsws/conf/httpd_config.xml", "line": 24, "inherited": False}
    assert vhost["file"] == "/usr/local/lsws/DEFAULT/conf/vhconf.xml"
    assert vhost["stapling"]["enableStapling"]["value"] == "0" and vhost["stapling"]["enableStapling"]["line"] == 8
    assert "ocspRespMaxAge" not in vhost["stapling"]  # not inherited from the listener
    assert vhost["names"] == ["example.org", "www.example.org"]


def test_no_litespeed_gives_empty_result(tmp_path):
    assert ls.read_sites(root=str(tmp_path))["sites"] == []


def test_broken_files_say_what_to_fix():
    with pytest.raises(ls.LiteSpeedReadError, match="never closed"):
        ls.parse_ols_text("listener SSL {\n  secure 1\n", "x.conf")
    with pytest.raises(ls.LiteSpeedReadError, match="not well-formed"):
        ls.parse_xml(b"<a><b></a>", "x.xml")


@pytest.mark.parametrize("name", ["ols_cyberpanel", "ols_llstack", "lsws_xml"])
def test_real_shapes_list_template_members_and_expand_vh_name(tmp_path, name):
    import shutil
    shutil.copytree(FIXTURES / name, tmp_path / "usr" / "local" / "lsws")
    result = ls.read_sites(root=str(tmp_path))
    assert result["warnings"] == []
    sites = {(s["kind"], s["name"]): s for s in result["sites"]}
    if name == "ols_cyberpanel":
        assert sites[("vhost", "shop.example.org")]["names"] == ["shop.example.org", "www.shop.example.org"]
        assert sites[("vhost", "shop.example.org")]["stapling_enabled"] is True
        assert sites[("vhost", "blog.example.org")]["stapling_enabled"] is False
    elif name == "ols_llstack":
        template = sites[("template", "wordpress")]
        assert [m["name"] for m in template["members"]] == ["alpha", "beta", "gamma"]
        assert "beta.example.net" in template["names"]
        assert template["listen"] == [{"address": "*", "port": 443, "listener": "HTTPS"}]
        listener = sites[("listener", "HTTPS")]
        # the key comes from the included file, with its own file and line
        assert listener["stapling"]["enableStapling"] == {
            "value": "0", "file": "/usr/local/lsws/conf/listeners/ssl-default.inc", "line": 5, "inherited": False}
    else:
        template = sites[("template", "centralConfigLog")]
        assert template["names"] == ["one.example.com", "two.example.com", "www.two.example.com"]
