"""Layout detection under a private root, with stand-in binaries and a recording runner."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers import layouts
from tests.unit.paths import FIXTURES as UNIT_FIXTURES, REPO

FIXTURES = UNIT_FIXTURES / "configs"


def test_versions_and_minimums():
    assert layouts.parse_apache_version("Server version: Apache/2.4.62 (cPanel)") == "2.4.62"
    assert layouts.parse_nginx_version("nginx version: openresty/1.21.4.3") == "1.21.4.3"
    assert layouts.supports_stapling("apache", "2.3.2") is False
    assert layouts.supports_stapling("apache", "2.3.3") is True
    assert layouts.supports_stapling("nginx", "1.3.6") is False
    assert layouts.supports_stapling("nginx", "1.3.7") is True
    assert layouts.supports_stapling("nginx", None) is None


def test_configure_args_keep_quoted_values():
    args = layouts.parse_configure_args("configure arguments: --with-cc-opt='-g -O2' --conf-path=/etc/nginx/nginx.conf")
    assert args == ["--with-cc-opt=-g -O2", "--conf-path=/etc/nginx/nginx.conf"]
    assert layouts.configure_option(args, "conf-path") == "/etc/nginx/nginx.conf"


@pytest.mark.parametrize("tree, layout, config", [
    ("debian", "debian", "/etc/apache2/apache2.conf"),
    ("rhel", "rhel", "/etc/httpd/conf/httpd.conf"),
    ("cpanel_ea4", "cpanel_ea4", "/etc/apache2/conf/httpd.conf"),
    ("cpanel_ea3", "cpanel_ea3", "/usr/local/apache/conf/httpd.conf"),
])
def test_apache_layouts(tree, layout, config):
    found = layouts.detect_apache(root=str(FIXTURES / tree), run_binaries=False)
    assert (found["present"], found["layout"], found["config"]) == (True, layout, config)


def test_ea4_paths_conf_and_stapling_files():
    root = str(FIXTURES / "cpanel_ea4")
    cpanel = layouts.detect_cpanel(root)
    assert cpanel["ea_version"] == 4 and cpanel["paths"]["dir_run"] == "/run/apache2"
    found = layouts.detect_apache(root=root)  # runs the stand-in /usr/sbin/httpd -v
    assert found["version"] == "2.4.62" and found["supports_stapling"] is True
    assert found["error_log"] == "/etc/apache2/logs/error_log"
    assert [(f["path"], f["exists"]) for f in found["stapling_files"]] == [
        ("/etc/apache2/conf.d/includes/pre_main_global.conf", True),
        ("/etc/apache2/conf.d/includes/pre_virtualhost_global.conf", True),
        ("/etc/apache2/conf.d/includes/pre_virtualhost_2.conf", False),
    ]
    assert found["litespeed_files"][0]["path"] == "/etc/apache2/conf.d/userdata/lscache_vhosts.conf"
    assert found["litespeed_files"][0]["exists"] is False


def test_ea3_stapling_files_include_pre_virtualhost_2():
    found = layouts.detect_apache(root=str(FIXTURES / "cpanel_ea3"), run_binaries=False)
    assert [f["path"].rsplit("/", 1)[1] for f in found["stapling_files"]] == [
        "pre_main_global.conf", "pre_virtualhost_global.conf", "pre_virtualhost_2.conf"]
    assert all(f["exists"] for f in found["stapling_files"])


def test_debian_stapling_files_report_the_enabling_link():
    found = layouts.detect_apache(root=str(FIXTURES / "debian"), run_binaries=False)
    available, enabled = found["stapling_files"]
    assert available["exists"] and not available["is_link"]
    assert enabled["exists"] and enabled["is_link"]


def test_old_apache_is_flagged_through_the_runner():
    calls = []

    def runner(argv):
        calls.append(argv)
        return 0, "Server version: Apache/2.2.15 (Unix)\n", ""

    found = layouts.detect_apache(root=str(FIXTURES / "rhel"), runner=runner)
    assert calls == [[str(FIXTURES / "rhel" / "usr/sbin/httpd"), "-v"]]
    assert (found["version"], found["supports_stapling"]) == ("2.2.15", False)


def test_nginx_from_stand_in_binary():
    found = layouts.detect_nginx(root=str(FIXTURES / "nginx"))
    assert (found["version"], found["supports_stapling"], found["prefix"]) == ("1.22.1", True, "/usr/share/nginx")
    assert found["config"] == "/etc/nginx/nginx.conf"
    assert "--with-cc-opt=-g -O2 -fstack-protector-strong" in found["configure_args"]


def test_nginx_conf_path_comes_from_configure_args():
    def runner(argv):
        return 0, "", "nginx version: nginx/1.2.9\nconfigure arguments: --conf-path=/opt/nginx/conf/nginx.conf\n"

    found = layouts.detect_nginx(root=str(FIXTURES / "nginx"), runner=runner)
    assert found["config"] == "/opt/nginx/conf/nginx.conf"
    assert found["supports_stapling"] is False


def test_litespeed_editions():
    ols = layouts.detect_litespeed(root=str(FIXTURES / "ols"))
    assert (ols["edition"], ols["version"], ols["config"]) == ("openlitespeed", "1.8.2", "/usr/local/lsws/conf/httpd_config.conf")
    lsws = layouts.detect_litespeed(root=str(FIXTURES / "lsws"))
    assert (lsws["edition"], lsws["version"]) == ("lsws", "6.3.1")


def test_nothing_found_under_an_empty_root(tmp_path):
    root = str(tmp_path)
    assert layouts.detect_apache(root=root)["present"] is False
    assert layouts.detect_nginx(root=root)["present"] is False
    assert layouts.detect_litespeed(root=root)["present"] is False
    assert layouts.detect_cpanel(root)["ea_version"] is None


def test_defaults_are_shared_values():
    assert layouts.DEFAULTS["apache"]["cpanel_ea4"]["stapling_files"][0]["path"] == "/etc/apache2/conf.d/includes/pre_main_global.conf"
    assert layouts.DEFAULTS["apache"]["rhel"]["stapling_files"][0]["path"] == "/etc/httpd/conf.d/zz-ocsp-stapling.conf"


def _role_defaults(role):
    import yaml
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())


def test_the_roles_defaults_are_the_layouts_defaults():
    """One source of truth: what stapling_facts names is what the roles write."""
    apache, nginx = _role_defaults("apache"), _role_defaults("nginx")
    debian = [f["path"] for f in layouts.DEFAULTS["apache"]["debian"]["stapling_files"]]
    assert debian == [apache["apache_stapling_debian_conf_available"] + "/" + apache["apache_stapling_debian_snippet"],
                      apache["apache_stapling_debian_conf_enabled"] + "/" + apache["apache_stapling_debian_snippet"]]
    rhel = layouts.DEFAULTS["apache"]["rhel"]["stapling_files"][0]["path"]
    assert rhel == apache["apache_stapling_rhel_conf_d"] + "/" + apache["apache_stapling_rhel_snippet"]
    for layout in ("cpanel_ea4", "cpanel_ea3"):
        spec = layouts.DEFAULTS["apache"][layout]
        short = layout.split("_")[1]
        assert spec["config"] == apache[f"apache_stapling_{short}_main_config"]
        assert {Path(f["path"]).parent.as_posix() for f in spec["stapling_files"]} == {apache[f"apache_stapling_{short}_includes_dir"]}
    assert layouts.DEFAULTS["cpanel"]["ea4_marker"] == apache["apache_stapling_detect_ea4_marker"]
    assert layouts.DEFAULTS["cpanel"]["ea4_paths"] == apache["apache_stapling_ea4_paths_conf"]
    assert layouts.DEFAULTS["apache"]["debian"]["config"] == apache["apache_stapling_debian_main_config"]
    assert layouts.DEFAULTS["apache"]["rhel"]["config"] == apache["apache_stapling_rhel_main_config"]
    assert layouts.DEFAULTS["nginx"]["stapling_files"][0]["path"] == nginx["nginx_stapling_http_include_file"]
    assert layouts.DEFAULTS["nginx"]["config"] == nginx["nginx_stapling_config"]


def test_ea4_is_detected_by_paths_conf_alone(tmp_path):
    (tmp_path / "etc/cpanel/ea4").mkdir(parents=True)
    (tmp_path / "etc/cpanel/ea4/paths.conf").write_text("dir_conf=/etc/apache2/conf.d\nfile_conf=/etc/apache2/conf/httpd.conf\n")
    found = layouts.detect_cpanel(str(tmp_path))
    assert found["ea_version"] == 4
    assert found["paths"]["file_conf"] == "/etc/apache2/conf/httpd.conf"
