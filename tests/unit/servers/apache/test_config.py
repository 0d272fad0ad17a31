"""Apache dialect: lexing, includes, conditions and inheritance on real-format trees."""
from __future__ import annotations

import re

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import config as da
from tests.unit.paths import FIXTURES as UNIT_FIXTURES

FIXTURES = UNIT_FIXTURES / "configs"


def test_logical_lines_join_continuations_and_skip_comments():
    text = "# comment\n  Foo a \\\n   b\n\n  # indented comment\nBar\n"
    assert list(da.logical_lines(text)) == [(2, "Foo a    b"), (6, "Bar")]


def test_split_arguments_quotes_and_escapes():
    assert da.split_arguments('LogFormat "%h \\"%r\\"" combined') == ["LogFormat", '%h "%r"', "combined"]
    assert da.split_arguments("'single quoted' x\"y\"") == ["single quoted", 'x"y"']


def test_parse_text_nests_sections_with_lines():
    tree = da.parse_text("<VirtualHost *:443>\n  <IfModule ssl_module>\n    SSLEngine on\n  </IfModule>\n</VirtualHost>\n", "t.conf")
    vhost = tree[0]
    assert (vhost.name, vhost.args, vhost.line) == ("VirtualHost", ["*:443"], 1)
    assert vhost.children[0].children[0].location() == "t.conf:3"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("<VirtualHost *:443>\nSSLEngine on\n", "never closed"),
        ("</VirtualHost>\n", "no section is open"),
        ("<VirtualHost *:443>\n</Directory>\n", "open section is <VirtualHost> from line 1"),
    ],
)
def test_parse_errors_say_where_and_what(text, fragment):
    with pytest.raises(da.ApacheConfigError, match=fragment):
        da.parse_text(text, "bad.conf")


def test_module_names_accept_every_spelling():
    assert da.module_names("mod_ssl.c") == ("ssl_module", "mod_ssl.c")
    assert da.module_names("ssl_module") == ("ssl_module", "mod_ssl.c")
    assert da.module_names("/usr/lib/apache2/modules/mod_socache_shmcb.so") == ("socache_shmcb_module", "mod_socache_shmcb.c")
    assert da.module_names("http_core.c")[0] == "http_module"


def _debian():
    root = str(FIXTURES / "debian")
    env = da.read_envvars(root + "/etc/apache2/envvars")
    return da.load_apache_config("/etc/apache2/apache2.conf", root=root, variables=env)


def test_debian_envvars_expand_and_include_order():
    config = _debian()
    assert config.server_root == "/etc/apache2"
    assert config.files[:4] == [
        "/etc/apache2/apache2.conf",
        "/etc/apache2/mods-enabled/mpm_event.load",
        "/etc/apache2/mods-enabled/socache_shmcb.load",
        "/etc/apache2/mods-enabled/ssl.load",
    ]
    assert config.error_logs() == ["/var/log/apache2/error.log"]
    assert config.warnings == []


def test_debian_modules_and_server_scope_stapling_cache():
    config = _debian()
    assert config.has_module("ssl") and config.has_module("mod_socache_shmcb.c")
    assert not config.has_module("mod_gnutls.c")
    assert config.load_module_lines["ssl_module"].location() == "/etc/apache2/mods-enabled/ssl.load:2"
    cache = config.stapling_cache()
    assert cache.value == "shmcb:/var/run/apache2/ocsp(128000)"  # quoted, with ${APACHE_RUN_DIR}
    assert (cache.file, cache.line, cache.conditions) == ("/etc/apache2/conf-enabled/zz-ocsp-stapling.conf", 4, ("IfModule mod_ssl.c",))


def test_debian_vhosts_ifmodule_ifdefine_and_inheritance():
    config = _debian()
    tls = config.tls_virtual_hosts()
    # The mod_gnutls vhost is dropped (module not loaded); the port-80 vhost is not TLS.
    assert [v.names[0] for v in tls] == ["shop.example.org", "legacy.example.org"]
    shop, legacy = tls
    assert shop.names == ["shop.example.org", "www.shop.example.org", "static.shop.example.org"]
    assert shop.lookup("SSLCertificateFile").directive.args == ["/etc/ssl/certs/shop example.pem"]
    stapling = shop.stapling()
    assert stapling["SSLUseStapling"].inherited is True
    assert stapling["SSLUseStapling"].directive.location() == "/etc/apache2/conf-enabled/zz-ocsp-stapling.conf:3"
    assert stapling["SSLStaplingForceURL"].inherited is False
    assert stapling["SSLStaplingForceURL"].directive.location() == "/etc/apache2/sites-enabled/default-ssl.conf:18"
    assert legacy.addresses == [("192.0.2.7", "443"), ("2001:db8::7", "443")]
    assert legacy.server_name == "legacy.example.org"
    assert legacy.lookup("SSLUseStapling").directive.value == "off"
    assert legacy.lookup("SSLUseStapling").inherited is False


def test_ifdefine_negation_drops_vhost_when_defined():
    root = str(FIXTURES / "debian")
    env = da.read_envvars(root + "/etc/apache2/envvars")
    config = da.load_apache_config("/etc/apache2/apache2.conf", root=root, variables=env, defines=["NO_LEGACY"])
    assert [v.server_name for v in config.tls_virtual_hosts()] == ["shop.example.org"]


def test_unknown_variable_is_kept_and_warned(tmp_path):
    conf = tmp_path / "etc" / "httpd.conf"
    conf.parent.mkdir()
    conf.write_text("Define LOGS /var/log/x\nErrorLog ${LOGS}/error_log\nPidFile ${MISSING}/pid\n")
    config = da.load_apache_config("/etc/httpd.conf", root=str(tmp_path))
    assert config.server_directive("ErrorLog").value == "/var/log/x/error_log"
    assert config.server_directive("PidFile").value == "${MISSING}/pid"
    assert any("${MISSING}" in w and "/etc/httpd.conf:3" in w for w in config.warnings)


def test_missing_include_warns_but_includeoptional_does_not(tmp_path):
    conf = tmp_path / "etc" / "httpd.conf"
    conf.parent.mkdir()
    conf.write_text("IncludeOptional /etc/none/*.conf\nInclude /etc/none/*.conf\n")
    config = da.load_apache_config("/etc/httpd.conf", root=str(tmp_path))
    assert len(config.warnings) == 1 and "/etc/httpd.conf:2" in config.warnings[0]


def test_include_loop_is_stopped(tmp_path):
    (tmp_path / "a.conf").write_text("Include /a.conf\n")
    config = da.load_apache_config("/a.conf", root=str(tmp_path))
    assert any("include loop" in w for w in config.warnings)


def test_rhel_relative_includes_and_server_scope_stapling():
    config = da.load_apache_config("/etc/httpd/conf/httpd.conf", root=str(FIXTURES / "rhel"))
    assert config.server_root == "/etc/httpd"
    assert "/etc/httpd/conf.d/ssl.conf" in config.files
    (vhost,) = config.tls_virtual_hosts()
    assert vhost.server_name == "www.example.com"
    assert vhost.lookup("SSLUseStapling").directive.location() == "/etc/httpd/conf.d/ssl.conf:15"
    assert vhost.lookup("SSLCACertificateFile").directive.value == "/etc/pki/tls/certs/ca-bundle.crt"
    assert vhost.lookup("SSLCertificateChainFile") is None  # commented out
    # BrowserMatch continued over three lines is one directive.
    browser = [d for d in vhost.section.children if d.name == "BrowserMatch"][0]
    assert browser.args == ["MSIE [2-5]", "nokeepalive", "ssl-unclean-shutdown", "downgrade-1.0", "force-response-1.0"]
    assert config.error_logs()[0] == "/etc/httpd/logs/error_log"


@pytest.mark.parametrize("tree, conf, server_root", [
    ("cpanel_ea4", "/etc/apache2/conf/httpd.conf", "/etc/apache2"),
    ("cpanel_ea3", "/usr/local/apache/conf/httpd.conf", "/usr/local/apache"),
])
def test_cpanel_global_block_and_vhost_overrides(tree, conf, server_root):
    config = da.load_apache_config(conf, root=str(FIXTURES / tree))
    assert config.server_root == server_root
    cache = config.stapling_cache()
    assert cache.file == conf and cache.value.startswith("shmcb:") and re.search(r"/stapling_cache(_shmcb)?\(256000\)$", cache.value)
    assert config.server_directive("SSLUseStapling").value == "On"
    sites = {v.server_name: v for v in config.tls_virtual_hosts()}
    assert sorted(sites) == ["alice.example", "bob.example", "carol.example"]
    # carol's certificate has no OCSP URL: cPanel writes SSLUseStapling off in her vhost.
    carol = sites["carol.example"].lookup("SSLUseStapling")
    assert (carol.directive.value, carol.inherited, carol.directive.line) == ("off", False, 334 if tree == "cpanel_ea4" else 301)
    assert carol.directive.conditions == ("IfModule ssl_module",)
    alice = sites["alice.example"].lookup("SSLUseStapling")
    assert (alice.directive.value, alice.inherited) == ("On", True)
    # bob's userdata include adds SSLStaplingForceURL inside his vhost.
    force = sites["bob.example"].lookup("SSLStaplingForceURL")
    assert force.inherited is False and force.directive.file.endswith("/ssl/2_4/bob/bob.example/stapling.conf")
    # The cipher list continued with a backslash is one argument.
    assert config.server_directive("SSLCipherSuite").value.count("ECDHE") == 3


def test_ea4_pre_virtualhost_global_overrides_responder_timeout():
    config = da.load_apache_config("/etc/apache2/conf/httpd.conf", root=str(FIXTURES / "cpanel_ea4"))
    timeout = config.server_directive("SSLStaplingResponderTimeout")
    assert (timeout.value, timeout.file) == ("2", "/etc/apache2/conf.d/includes/pre_virtualhost_global.conf")


def test_litespeed_ifmodule_counts_when_given_as_extra_module(tmp_path):
    (tmp_path / "httpd.conf").write_text("<IfModule Litespeed>\nSSLStaplingCache shmcb:/tmp/stapling_cache(128000)\n</IfModule>\n")
    assert da.load_apache_config("/httpd.conf", root=str(tmp_path)).stapling_cache() is None
    config = da.load_apache_config("/httpd.conf", root=str(tmp_path), extra_modules=["Litespeed"])
    assert config.stapling_cache().line == 2


def test_ifversion_uses_server_version(tmp_path):
    (tmp_path / "httpd.conf").write_text("<IfVersion >= 2.4.30>\nSSLUseStapling on\n</IfVersion>\n")
    old = da.load_apache_config("/httpd.conf", root=str(tmp_path), server_version="2.4.6")
    new = da.load_apache_config("/httpd.conf", root=str(tmp_path), server_version="2.4.62")
    assert old.server_directive("SSLUseStapling") is None
    assert new.server_directive("SSLUseStapling").value == "on"


def test_missing_main_config_error_says_what_to_do(tmp_path):
    with pytest.raises(da.ApacheConfigError, match="apache_config"):
        da.load_apache_config("/etc/httpd/conf/httpd.conf", root=str(tmp_path))
