"""dialect_litespeed: lossless OpenLiteSpeed/LSWS editing and stapling plans on real-format files."""
from __future__ import annotations

import difflib
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed import config as dl
from tests.unit.paths import FIXTURES as UNIT_FIXTURES

FIXTURES = UNIT_FIXTURES / "litespeed"
OLS_MAIN = FIXTURES / "ols" / "conf" / "httpd_config.conf"
OLS_VHOST = FIXTURES / "ols" / "conf" / "vhosts" / "Example" / "vhconf.conf"
LSWS_MAIN = FIXTURES / "lsws" / "conf" / "httpd_config.xml"
LSWS_VHOST = FIXTURES / "lsws" / "conf" / "vhosts" / "Example" / "vhconf.xml"


def changed_lines(before: str, after: str) -> list:
    """Only the '+'/'-' lines of a diff, without headers."""
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def server_tree(tmp_path: Path, flavor: str, with_certs: bool = True) -> Path:
    root = tmp_path / flavor
    shutil.copytree(FIXTURES / flavor, root)
    if with_certs:
        (root / "conf" / "cert").mkdir()
        for name in ("example.key", "example.crt", "ca.pem"):
            (root / "conf" / "cert" / name).write_text("-----BEGIN PLACEHOLDER-----\n")
    return root


# -- OpenLiteSpeed text format -------------------------------------------------------------

@pytest.mark.parametrize("path", [OLS_MAIN, OLS_VHOST, FIXTURES / "ols" / "conf" / "vhosts" / "Plain" / "vhconf.conf"])
def test_ols_round_trips_byte_for_byte(path):
    text = path.read_text()
    assert dl.OlsConfig(text).text == text


def test_ols_round_trip_keeps_crlf_and_missing_final_newline():
    text = "listener SSL {\r\n  secure 1\r\n}\r\n# tail without newline"
    assert dl.OlsConfig(text).text == text


def test_ols_parses_blocks_names_and_heredoc():
    config = dl.OlsConfig(OLS_MAIN.read_text())
    listeners = [(b.kind, b.name) for b in config.root.blocks if b.kind == "listener"]
    assert listeners == [("listener", "Default"), ("listener", "SSL")]
    assert config.get(["listener SSL"], "address") == "*:443"
    assert config.get(["listener", ], "secure") == "0"  # kind-only selector: first listener
    assert config.get(["LISTENER SSL"], "CERTFILE") == "$SERVER_ROOT/conf/cert/example.crt"
    vhost = dl.OlsConfig(OLS_VHOST.read_text())
    # the rewrite rules here-document holds "%{HTTPS}": data, not a block
    rules = vhost.get(["rewrite"], "rules")
    assert "RewriteCond %{HTTPS} !on" in rules and "END_rules" not in rules
    assert vhost.get(["vhssl"], "ocspRespMaxAge") == "86400"
    assert vhost.get(["context /docs/"], "location") == "$SERVER_ROOT/docs/"


def test_ols_set_existing_key_changes_only_that_value():
    before = OLS_VHOST.read_text()
    config = dl.OlsConfig(before)
    assert config.set(["vhssl"], "ocspRespMaxAge", "3600") is True
    assert changed_lines(before, config.text) == [
        "-  ocspRespMaxAge          86400",
        "+  ocspRespMaxAge          3600",
    ]


def test_ols_set_same_value_is_not_a_change():
    before = OLS_VHOST.read_text()
    config = dl.OlsConfig(before)
    assert config.set(["vhssl"], "enableStapling", "1") is False
    assert config.text == before


def test_ols_insert_aligns_with_neighbours_and_groups_stapling_keys():
    before = OLS_MAIN.read_text()
    config = dl.OlsConfig(before)
    config.set(["listener SSL"], "enableStapling", "1")
    config.set(["listener SSL"], "ocspResponder", "http://ocsp.example.test")
    assert changed_lines(before, config.text) == [
        "+  enableStapling          1",
        "+  ocspResponder           http://ocsp.example.test",
    ]
    lines = config.text.splitlines()
    at = lines.index("  enableStapling          1")
    assert lines[at + 1].startswith("  ocspResponder") and lines[at + 2] == "}"
    # the other listener did not get the key
    assert config.get(["listener Default"], "enableStapling") is None
    # and the result parses again to the same values
    again = dl.OlsConfig(config.text)
    assert again.get(["listener SSL"], "ocspResponder") == "http://ocsp.example.test"


def test_ols_insert_into_block_without_stapling_keys_goes_last_with_block_indent():
    text = "vhssl  {\n\tkeyFile /k\n\tcertFile /c\n}\n"
    config = dl.OlsConfig(text)
    config.set(["vhssl"], "enableStapling", "0")
    assert config.text == "vhssl  {\n\tkeyFile /k\n\tcertFile /c\n\tenableStapling 0\n}\n"


def test_ols_set_keeps_crlf_line_endings():
    config = dl.OlsConfig("vhssl {\r\n  enableStapling 1\r\n}\r\n")
    config.set(["vhssl"], "enableStapling", "0")
    config.set(["vhssl"], "ocspRespMaxAge", "60")
    assert config.text == "vhssl {\r\n  enableStapling 0\r\n  ocspRespMaxAge 60\r\n}\r\n"


def test_ols_set_fills_a_key_that_has_no_value_yet():
    config = dl.OlsConfig("vhssl {\n  certChain               1\n  ocspResponder\n}\n")
    config.set(["vhssl"], "ocspResponder", "http://r.test")
    assert config.text == "vhssl {\n  certChain               1\n  ocspResponder           http://r.test\n}\n"


def test_ols_duplicate_keys_are_all_set_so_the_server_cannot_pick_a_stale_one():
    config = dl.OlsConfig("vhssl {\n  enableStapling 1\n  enableStapling 1\n}\n")
    config.set(["vhssl"], "enableStapling", "0")
    assert config.text == "vhssl {\n  enableStapling 0\n  enableStapling 0\n}\n"


def test_ols_remove_deletes_only_that_line():
    before = OLS_VHOST.read_text()
    config = dl.OlsConfig(before)
    assert config.remove(["vhssl"], "ocspRespMaxAge") is True
    assert changed_lines(before, config.text) == ["-  ocspRespMaxAge          86400"]
    assert config.remove(["vhssl"], "ocspRespMaxAge") is False


def test_ols_set_in_missing_block_says_what_to_do():
    config = dl.OlsConfig(OLS_MAIN.read_text())
    with pytest.raises(dl.LiteSpeedConfigError, match="no block listener Nope"):
        config.set(["listener Nope"], "enableStapling", "1")


@pytest.mark.parametrize("text, message", [
    ("listener SSL {\n  secure 1\n", "never closed"),
    ("secure 1\n}\n", "closes no block"),
    ("rewrite {\n  rules <<<END_rules\nRewriteRule x y\n}\n", "never ends"),
])
def test_ols_broken_files_raise_with_line_numbers(text, message):
    with pytest.raises(dl.LiteSpeedConfigError, match=message):
        dl.OlsConfig(text, source="vhconf.conf")


# -- LSWS XML ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [LSWS_MAIN, LSWS_VHOST])
def test_xml_round_trips_byte_for_byte(path):
    data = path.read_bytes()
    assert dl.LswsXml(data).data == data


def test_xml_finds_listeners_by_name_and_reads_values():
    doc = dl.LswsXml(LSWS_MAIN.read_bytes())
    assert [n.child_text("name") for n in doc.find(["listenerList", "listener"])] == ["Default", "SSL"]
    assert doc.get(["listenerList", "listener[name=SSL]"], "enableStapling") == "1"
    assert doc.get(["listenerList", "listener[name=SSL]"], "ocspResponder") == ""
    assert doc.get(["listenerList", "listener[name=Default]"], "enableStapling") is None


def test_xml_set_existing_and_empty_elements_in_place():
    before = LSWS_MAIN.read_text()
    doc = dl.LswsXml(before.encode())
    path = ["listenerList", "listener[name=SSL]"]
    assert doc.set(path, "enableStapling", "0") is True
    assert doc.set(path, "ocspResponder", "http://ocsp.example.test/?a=1&b=2") is True
    assert changed_lines(before, doc.data.decode()) == [
        "-            <enableStapling>1</enableStapling>",
        "+            <enableStapling>0</enableStapling>",
        "-            <ocspResponder></ocspResponder>",
        "+            <ocspResponder>http://ocsp.example.test/?a=1&amp;b=2</ocspResponder>",
    ]
    tree = doc.check()
    ssl = [n for n in tree.iter("listener") if n.findtext("name") == "SSL"][0]
    assert ssl.findtext("ocspResponder") == "http://ocsp.example.test/?a=1&b=2"
    assert doc.set(path, "enableStapling", "0") is False


def test_xml_self_closing_element_is_expanded():
    doc = dl.LswsXml(b"<c>\n  <vhssl>\n    <ocspCACerts/>\n  </vhssl>\n</c>\n")
    doc.set(["vhssl"], "ocspCACerts", "/ca.pem")
    assert doc.data == b"<c>\n  <vhssl>\n    <ocspCACerts>/ca.pem</ocspCACerts>\n  </vhssl>\n</c>\n"


def test_xml_insert_copies_sibling_indentation():
    before = LSWS_VHOST.read_text()
    doc = dl.LswsXml(before.encode())
    doc.set(["vhssl"], "enableStapling", "1")
    doc.set(["vhssl"], "ocspRespMaxAge", "600")
    assert changed_lines(before, doc.data.decode()) == [
        "+    <enableStapling>1</enableStapling>",
        "+    <ocspRespMaxAge>600</ocspRespMaxAge>",
    ]
    # the entity in an unrelated element is untouched (ElementTree would rewrite quotes)
    assert '<extraHeaders>Header set X-Fixture "a &amp; b"</extraHeaders>' in doc.data.decode()
    assert ET.fromstring(doc.data).find("vhssl").findtext("ocspRespMaxAge") == "600"


def test_xml_insert_into_empty_parent():
    doc = dl.LswsXml(b"<r>\n  <vhssl></vhssl>\n</r>")
    doc.set(["vhssl"], "enableStapling", "1")
    assert doc.data == b"<r>\n  <vhssl>\n      <enableStapling>1</enableStapling>\n  </vhssl>\n</r>"
    doc = dl.LswsXml(b"<r>\n  <vhssl/>\n</r>")
    doc.set(["vhssl"], "enableStapling", "1")
    assert ET.fromstring(doc.data).find("vhssl").findtext("enableStapling") == "1"


def test_xml_remove_takes_the_element_and_its_indentation():
    before = LSWS_MAIN.read_text()
    doc = dl.LswsXml(before.encode())
    assert doc.remove(["listenerList", "listener[name=SSL]"], "ocspResponder") is True
    assert changed_lines(before, doc.data.decode()) == ["-            <ocspResponder></ocspResponder>"]
    assert doc.remove(["listenerList", "listener[name=SSL]"], "ocspResponder") is False


def test_xml_not_well_formed_is_reported_with_the_file():
    with pytest.raises(dl.LiteSpeedConfigError, match="httpd_config.xml is not well-formed"):
        dl.LswsXml(b"<httpServerConfig><listenerList></httpServerConfig>", source="httpd_config.xml")


# -- planning over a server root -----------------------------------------------------------

def test_detect_flavor(tmp_path):
    assert dl.detect_flavor(str(server_tree(tmp_path, "ols"))) == dl.OPENLITESPEED
    assert dl.detect_flavor(str(server_tree(tmp_path, "lsws"))) == dl.ENTERPRISE
    with pytest.raises(dl.LiteSpeedConfigError, match="Set server_root"):
        dl.detect_flavor(str(tmp_path / "empty"))


def test_plan_ols_enable_touches_secure_listener_and_vhssl_only(tmp_path):
    root = server_tree(tmp_path, "ols")
    plan = dl.plan_stapling(str(root), dl.StaplingSettings(state="enabled", max_age=7200))
    assert plan.flavor == dl.OPENLITESPEED
    assert [(t.kind, t.name) for t in plan.targets] == [("listener", "SSL"), ("vhost", "Example")]
    main, vhost = str(root / "conf" / "httpd_config.conf"), str(root / "conf/vhosts/Example/vhconf.conf")
    assert plan.changed_files == sorted([main, vhost])
    assert changed_lines(plan.before[main].decode(), plan.after[main].decode()) == [
        "+  enableStapling          1", "+  ocspRespMaxAge          7200"]
    assert changed_lines(plan.before[vhost].decode(), plan.after[vhost].decode()) == [
        "-  ocspRespMaxAge          86400", "+  ocspRespMaxAge          7200"]
    # Plain has no vhssl: read, but not changed
    plain = str(root / "conf/vhosts/Plain/vhconf.conf")
    assert plan.after[plain] == plan.before[plain]
    assert plan.problems() == []
    assert plan.probe_endpoints() == [{"listener": "SSL", "host": "127.0.0.1", "port": 443}]
    # nothing was written
    assert (root / "conf" / "httpd_config.conf").read_bytes() == OLS_MAIN.read_bytes()


def test_plan_is_idempotent_once_applied(tmp_path):
    root = server_tree(tmp_path, "ols")
    settings = dl.StaplingSettings(state="enabled", responder="http://r.test", ca_certs="$SERVER_ROOT/conf/cert/ca.pem")
    for path, data in dl.plan_stapling(str(root), settings).after.items():
        Path(path).write_bytes(data)
    assert dl.plan_stapling(str(root), settings).changed_files == []


def test_plan_disable_does_not_add_a_missing_enable_key(tmp_path):
    root = server_tree(tmp_path, "ols")
    plan = dl.plan_stapling(str(root), dl.StaplingSettings(state="disabled"))
    vhost = str(root / "conf/vhosts/Example/vhconf.conf")
    assert plan.changed_files == [vhost]  # the SSL listener had no enableStapling: already off
    assert changed_lines(plan.before[vhost].decode(), plan.after[vhost].decode()) == [
        "-  enableStapling          1", "+  enableStapling          0"]


def test_plan_lsws_changes_listener_and_vhost_xml(tmp_path):
    root = server_tree(tmp_path, "lsws")
    plan = dl.plan_stapling(str(root), dl.StaplingSettings(state="disabled", responder=""))
    main, vhost = str(root / "conf/httpd_config.xml"), str(root / "conf/vhosts/Example/vhconf.xml")
    assert plan.flavor == dl.ENTERPRISE
    assert plan.changed_files == [main]
    assert changed_lines(plan.before[main].decode(), plan.after[main].decode()) == [
        "-            <enableStapling>1</enableStapling>",
        "+            <enableStapling>0</enableStapling>",
        "-            <ocspResponder></ocspResponder>",
    ]
    assert plan.targets[1].referenced_files["CACertFile"] == str(root / "conf/cert/ca.pem")
    assert plan.after[vhost] == plan.before[vhost]


def test_plan_selects_by_name_and_rejects_unknown_names(tmp_path):
    root = server_tree(tmp_path, "lsws")
    plan = dl.plan_stapling(str(root), dl.StaplingSettings(), listeners=["SSL"], vhosts=[])
    assert [(t.kind, t.name) for t in plan.targets] == [("listener", "SSL")]
    with pytest.raises(dl.LiteSpeedConfigError, match="No listener named Nope .* Found: Default, SSL"):
        dl.plan_stapling(str(root), dl.StaplingSettings(), listeners=["Nope"])
    plan = dl.plan_stapling(str(root), dl.StaplingSettings(), listeners=["Default"], vhosts=[])
    assert plan.targets == [] and "not secure" in plan.notes[0]


def test_plan_reports_missing_referenced_files(tmp_path):
    root = server_tree(tmp_path, "lsws", with_certs=False)
    problems = dl.plan_stapling(str(root), dl.StaplingSettings()).problems()
    assert "listener SSL: certFile %s does not exist" % (root / "conf/cert/example.crt") in problems
    assert any(p.startswith("vhost Example: CACertFile") for p in problems)


def test_plan_checks_a_new_ca_file_too(tmp_path):
    root = server_tree(tmp_path, "ols")
    plan = dl.plan_stapling(str(root), dl.StaplingSettings(ca_certs="/nonexistent/ca.pem"), vhosts=[])
    assert plan.problems() == ["listener SSL: ocspCACerts /nonexistent/ca.pem does not exist"]


@pytest.mark.parametrize("address, endpoint", [
    ("*:443", {"host": "127.0.0.1", "port": 443}),
    ("[::]:8443", {"host": "::1", "port": 8443}),
    ("192.0.2.7:443", {"host": "192.0.2.7", "port": 443}),
    ("nonsense", None),
])
def test_address_to_endpoint(address, endpoint):
    assert dl.address_to_endpoint(address) == endpoint


def test_resolve_path_expands_litespeed_variables():
    assert dl.resolve_path("$SERVER_ROOT/conf/vhosts/$VH_NAME/vhconf.conf", "/srv/lsws", "A") == \
        "/srv/lsws/conf/vhosts/A/vhconf.conf"
    assert dl.resolve_path("$VH_ROOT/ssl/k.pem", "/srv/lsws", "A", "/srv/lsws/A/") == "/srv/lsws/A/ssl/k.pem"
    assert dl.resolve_path("conf/cert.pem", "/srv/lsws") == "/srv/lsws/conf/cert.pem"


def test_stale_cache_files_lists_files_but_not_directories(tmp_path):
    cache = tmp_path / "tmp" / "ocspcache"
    (cache / "sub").mkdir(parents=True)
    (cache / "a.rsp").write_bytes(b"x")
    (cache / "sub" / "b.rsp").write_bytes(b"y")
    found = dl.stale_cache_files([str(cache), str(tmp_path / "missing")])
    assert sorted(found) == sorted([str(cache / "a.rsp"), str(cache / "sub" / "b.rsp")])
    assert dl.default_cache_dirs("/usr/local/lsws", dl.OPENLITESPEED)[0] == "/dev/shm/ols/ocspcache"
    assert dl.default_cache_dirs("/usr/local/lsws", dl.ENTERPRISE)[0] == "/dev/shm/lsws/ocspcache"
    assert os.path.join("/usr/local/lsws", "temp", "ocspcache") in dl.default_cache_dirs("/usr/local/lsws", dl.ENTERPRISE)


def test_plan_error_log_comes_from_the_main_config(tmp_path):
    ols = server_tree(tmp_path, "ols")
    (ols / "conf" / "httpd_config.conf").write_bytes((ols / "conf" / "httpd_config.conf").read_bytes().replace(
        b"errorlog $SERVER_ROOT/logs/error.log {", b"errorlog /var/log/ols/error.log {"))
    assert dl.plan_stapling(str(ols), dl.StaplingSettings()).error_log == "/var/log/ols/error.log"
    lsws = server_tree(tmp_path, "lsws")
    assert dl.plan_stapling(str(lsws), dl.StaplingSettings()).error_log == str(lsws / "logs" / "error.log")
    main = lsws / "conf" / "httpd_config.xml"
    main.write_bytes(main.read_bytes().replace(
        b"</httpServerConfig>",
        b"  <logging><log><fileName>$SERVER_ROOT/logs/lsws-error.log</fileName></log></logging>\n</httpServerConfig>"))
    assert dl.plan_stapling(str(lsws), dl.StaplingSettings()).error_log == str(lsws / "logs" / "lsws-error.log")
