"""nginx dialect: tokens, nested includes, server blocks and http-level inheritance."""
from __future__ import annotations


import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import config as dn
from tests.unit.paths import FIXTURES

ROOT = str(FIXTURES / "configs" / "nginx")


def test_tokenize_quotes_comments_and_lines():
    tokens = list(dn.tokenize('a "b c"; # x { ;\nd \'e\\\'f\' g#h;\n'))
    assert tokens == [("a", 1, False), ("b c", 1, True), (";", 1, False), ("d", 2, False), ("e'f", 2, True), ("g#h", 2, False), (";", 2, False)]


@pytest.mark.parametrize("text, fragment", [
    ("http { server { listen 443 }", "missing its ';'"),
    ("http {\n server {\n }\n", "never closed"),
    ("}", "unexpected '}'"),
    ("listen 443", "not terminated"),
])
def test_parse_errors_say_where(text, fragment):
    with pytest.raises(dn.NginxConfigError, match=fragment):
        dn.parse_text(text, "bad.conf")


def test_includes_are_spliced_with_their_own_files_and_lines():
    config = dn.load_nginx_config("/etc/nginx/nginx.conf", root=ROOT)
    assert "/etc/nginx/snippets/shop-stapling.conf" in config.files  # include inside an include
    stapling_file = config.find("ssl_stapling_file")[0]
    assert (stapling_file.args, stapling_file.file, stapling_file.line) == (
        ["/var/cache/ocsp/shop.der"], "/etc/nginx/snippets/shop-stapling.conf", 2)
    assert config.warnings == []
    assert config.error_logs() == ["/var/log/nginx/error.log"]


def test_tls_servers_names_and_listen():
    config = dn.load_nginx_config("/etc/nginx/nginx.conf", root=ROOT)
    assert len(config.server_blocks()) == 3
    tls = {tuple(s.names): s for s in config.tls_server_blocks()}
    assert set(tls) == {("shop.example.org", "www.shop.example.org"), ("api.example.org",)}
    shop = tls[("shop.example.org", "www.shop.example.org")]
    assert [(l.address, l.port, l.ssl) for l in shop.listens] == [("*", "443", True), ("::", "443", True)]
    assert [s.directive.value for s in shop.lookup_all("ssl_certificate")] == ["/etc/ssl/shop/fullchain.pem", "/etc/ssl/shop/ecdsa.pem"]


def test_http_level_stapling_is_inherited_unless_overridden():
    config = dn.load_nginx_config("/etc/nginx/nginx.conf", root=ROOT)
    tls = {s.names[0]: s for s in config.tls_server_blocks()}
    shop = tls["shop.example.org"].stapling()
    assert shop["ssl_stapling"].inherited is True
    assert shop["ssl_stapling"].directive.location() == "/etc/nginx/nginx.conf:23"
    assert shop["resolver"].directive.args == ["127.0.0.53", "[::1]:5353", "valid=300s"]
    assert shop["resolver_timeout"].directive.file == "/etc/nginx/conf.d/ocsp-stapling.conf"
    # "ssl_stapling off" inside a location is not the server's setting.
    assert shop["ssl_stapling"].directive.value == "on"
    api = tls["api.example.org"].stapling()
    assert (api["ssl_stapling"].directive.value, api["ssl_stapling"].inherited) == ("off", False)
    assert api["resolver"].directive.value == "10.0.0.2"
    assert api["ssl_stapling_verify"].inherited is True


def test_listen_targets():
    assert dn.parse_listen_target("443") == ("*", "443")
    assert dn.parse_listen_target("[::1]:8443") == ("::1", "8443")
    assert dn.parse_listen_target("localhost") == ("localhost", "80")
    assert dn.parse_listen_target("unix:/run/x.sock") == ("unix:/run/x.sock", None)


def test_relative_include_is_resolved_against_conf_dir(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "main.conf").write_text("http { include sub/*.conf; }\n")
    (tmp_path / "conf" / "sub").mkdir()
    (tmp_path / "conf" / "sub" / "a.conf").write_text("server { listen 8443 ssl; ssl_stapling on; }\n")
    config = dn.load_nginx_config("/conf/main.conf", root=str(tmp_path))
    (server,) = config.tls_server_blocks()
    assert server.lookup("ssl_stapling").directive.location() == "/conf/sub/a.conf:1"


def test_missing_plain_include_warns(tmp_path):
    (tmp_path / "nginx.conf").write_text("http {\n  include missing.conf;\n}\n")
    config = dn.load_nginx_config("/nginx.conf", root=str(tmp_path))
    assert "/nginx.conf:2" in config.warnings[0]
