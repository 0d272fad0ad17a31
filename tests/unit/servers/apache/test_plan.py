"""The Apache plan on Debian-shaped trees: symlinked sites and confs, per-vhost switches."""
from __future__ import annotations

import base64
import os

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import plan as apache_plan
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache.plan import ApachePlanRequest, PlanError

MAIN = """\
PidFile ${APACHE_PID_FILE}
ErrorLog ${APACHE_LOG_DIR}/error.log
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
IncludeOptional conf-enabled/*.conf
IncludeOptional sites-enabled/*.conf
"""

VHOST = """\
<IfModule mod_ssl.c>
\t<VirtualHost _default_:443>
\t\tServerName {name}
\t\tSSLEngine on
\t\tSSLCertificateFile /etc/ssl/{name}.pem
\t\tSSLCertificateChainFile /etc/ssl/chain.pem
{extra}\t</VirtualHost>
</IfModule>
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def link(path, target):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


@pytest.fixture
def tree(tmp_path):
    """A Debian apache2 tree whose enabled files are a2ensite/a2enconf symlinks."""
    etc = tmp_path / "etc" / "apache2"
    write(etc / "apache2.conf", MAIN)
    write(etc / "envvars", "export APACHE_RUN_DIR=/var/run/apache2\nexport APACHE_PID_FILE=/var/run/apache2/apache2.pid\n"
                           "export APACHE_LOG_DIR=/var/log/apache2\n")
    for mod in ("ssl", "socache_shmcb"):
        write(etc / "mods-available" / f"{mod}.load", f"LoadModule {mod}_module /usr/lib/apache2/modules/mod_{mod}.so\n")
        link(etc / "mods-enabled" / f"{mod}.load", f"../mods-available/{mod}.load")
    return tmp_path


def site(tree, name, extra="", enabled=True):
    etc = tree / "etc" / "apache2"
    write(etc / "sites-available" / f"{name}.conf", VHOST.format(name=name, extra=extra))
    if enabled:
        link(etc / "sites-enabled" / f"{name}.conf", f"../sites-available/{name}.conf")
    return etc / "sites-available" / f"{name}.conf"


def conf(tree, name, text):
    etc = tree / "etc" / "apache2"
    write(etc / "conf-available" / f"{name}.conf", text)
    link(etc / "conf-enabled" / f"{name}.conf", f"../conf-available/{name}.conf")
    return etc / "conf-available" / f"{name}.conf"


def request(tree, state, **kwargs):
    return ApachePlanRequest(
        state=state, layout="debian", root=str(tree), main_config="/etc/apache2/apache2.conf",
        snippet="/etc/apache2/conf-available/zz-ocsp-stapling.conf",
        link="/etc/apache2/conf-enabled/zz-ocsp-stapling.conf",
        link_src="../conf-available/zz-ocsp-stapling.conf", **kwargs)


def apply(tree, result):
    """Write the plan's whole-file results the way stapling_change does (real paths)."""
    for item in result["files"]:
        path = tree / item["path"].lstrip("/")
        if item["state"] == "absent":
            if path.exists():
                path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if "content_base64" in item:
                path.write_bytes(base64.b64decode(item["content_base64"]))
            else:
                path.write_text(item["content"])
    for item in result["links"]:
        path = tree / item["path"].lstrip("/")
        if path.is_symlink():
            path.unlink()
        if item["state"] == "present":
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(item["src"], path)


def snapshot(tree):
    out = {}
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            path = os.path.join(dirpath, name)
            out[path] = os.readlink(path) if os.path.islink(path) else open(path, "rb").read()
    return out


def test_disable_replaces_each_vhost_switch_behind_the_symlink(tree):
    a = site(tree, "a.example", "\t\tSSLUseStapling on\n")
    b = site(tree, "b.example", "\t\tSSLUseStapling on\n")
    conf(tree, "stapling", "SSLStaplingCache shmcb:/var/run/apache2/ocsp(128000)\n")
    before = snapshot(tree)

    result = apache_plan.plan(request(tree, "disabled"))

    assert result["problems"] == []
    paths = sorted(f["path"] for f in result["files"])
    # The real files, not the sites-enabled symlinks (a rename would replace the link).
    assert paths == ["/etc/apache2/conf-available/zz-ocsp-stapling.conf",
                     "/etc/apache2/sites-available/a.example.conf", "/etc/apache2/sites-available/b.example.conf"]
    assert all(s["stapling"] == "off" for s in result["sites"]), result["sites"]
    apply(tree, result)
    assert os.path.islink(tree / "etc/apache2/sites-enabled/a.example.conf")
    assert "\t\t# ocsp.stapling replaced: SSLUseStapling on\n\t\tSSLUseStapling Off\n" in a.read_text()
    assert "SSLUseStapling Off" in b.read_text()

    restored = apache_plan.plan(request(tree, "restored"))
    apply(tree, restored)
    assert snapshot(tree) == before


def test_server_scope_on_is_overridden_by_the_role_snippet_operator_files_untouched(tree):
    site(tree, "a.example")
    operator = conf(tree, "stapling", "SSLStaplingCache shmcb:/run/ocsp(128000)\nSSLUseStapling on\n")
    before = snapshot(tree)

    result = apache_plan.plan(request(tree, "disabled"))
    assert [f["path"] for f in result["files"]] == ["/etc/apache2/conf-available/zz-ocsp-stapling.conf"]
    apply(tree, result)
    assert "replaced" not in operator.read_text()
    assert "/zz-ocsp-stapling.conf:6 SSLUseStapling Off" in result["sites"][0]["winner"]
    assert result["sites"][0]["stapling"] == "off"
    apply(tree, apache_plan.plan(request(tree, "restored")))
    assert snapshot(tree) == before


def test_a_server_scope_on_read_after_the_snippet_is_replaced(tree):
    site(tree, "a.example", "")
    later = tree / "etc/apache2/sites-available/zz-late.conf"
    write(later, "<IfModule ssl_module>\n  SSLUseStapling On\n</IfModule>\n")
    link(tree / "etc/apache2/sites-enabled/zz-late.conf", "../sites-available/zz-late.conf")
    before = snapshot(tree)

    result = apache_plan.plan(request(tree, "disabled"))
    apply(tree, result)
    assert "  # ocsp.stapling replaced: SSLUseStapling On\n  SSLUseStapling Off\n" in later.read_text()
    assert result["sites"][0]["winner"].startswith("/etc/apache2/sites-available/zz-late.conf:3 SSLUseStapling Off")
    apply(tree, apache_plan.plan(request(tree, "restored")))
    assert snapshot(tree) == before


def test_disable_after_an_enable_keeps_the_role_tuning_for_the_re_enable(tree):
    site(tree, "a.example")
    apply(tree, apache_plan.plan(request(tree, "enabled")))
    enabled = snapshot(tree)
    snippet = tree / "etc/apache2/conf-available/zz-ocsp-stapling.conf"

    apply(tree, apache_plan.plan(request(tree, "disabled")))
    text = snippet.read_text()
    assert "# ocsp.stapling replaced: SSLUseStapling On\n    SSLUseStapling Off\n" in text
    assert "SSLStaplingFakeTryLater off" in text
    apply(tree, apache_plan.plan(request(tree, "restored", tuning="server_default")))
    assert snapshot(tree) == enabled


def test_disable_leaves_off_vhosts_and_a_disabled_site_alone(tree):
    site(tree, "a.example", "\t\tSSLUseStapling off\n")
    site(tree, "gone.example", "\t\tSSLUseStapling on\n", enabled=False)
    result = apache_plan.plan(request(tree, "disabled"))
    assert [f["path"] for f in result["files"]] == ["/etc/apache2/conf-available/zz-ocsp-stapling.conf"]
    assert [o["setting"] for o in result["vhost_overrides"]] == ["off"]


def test_enable_finds_the_operators_cache_through_the_conf_enabled_symlink(tree):
    site(tree, "a.example")
    conf(tree, "stapling", "<IfModule mod_ssl.c>\n    SSLStaplingCache \"shmcb:/run/ocsp(128000)\"\n</IfModule>\n")
    result = apache_plan.plan(request(tree, "enabled"))
    snippet = next(f for f in result["files"] if f["path"].endswith("zz-ocsp-stapling.conf"))
    assert "SSLStaplingCache" not in snippet["content"]
    assert "SSLUseStapling On" in snippet["content"]
    assert result["links"] == [{"path": "/etc/apache2/conf-enabled/zz-ocsp-stapling.conf",
                                "src": "../conf-available/zz-ocsp-stapling.conf", "state": "present"}]
    assert result["sites"][0]["stapling"] == "on"


def test_enable_without_a_cache_adds_one_and_without_shmcb_refuses(tree):
    site(tree, "a.example")
    result = apache_plan.plan(request(tree, "enabled"))
    snippet = next(f for f in result["files"] if f["path"].endswith("zz-ocsp-stapling.conf"))
    assert "SSLStaplingCache shmcb:" in snippet["content"]
    assert result["problems"] == []

    os.unlink(tree / "etc/apache2/mods-enabled/socache_shmcb.load")
    refused = apache_plan.plan(request(tree, "enabled"))
    assert any("socache_shmcb" in p and "AH01872" in p for p in refused["problems"]), refused["problems"]


def test_enable_after_disable_restores_the_vhost_lines(tree):
    a = site(tree, "a.example", "\t\tSSLUseStapling on\n")
    original = a.read_text()
    apply(tree, apache_plan.plan(request(tree, "disabled")))
    assert a.read_text() != original
    apply(tree, apache_plan.plan(request(tree, "enabled")))
    assert a.read_text() == original


def test_cache_inside_a_virtual_host_is_a_problem(tree):
    site(tree, "a.example", "\t\tSSLStaplingCache shmcb:/run/x(1000)\n")
    result = apache_plan.plan(request(tree, "enabled"))
    assert any("inside <VirtualHost" in p and "a.example.conf" in p for p in result["problems"])


def test_a_switch_sharing_its_line_is_refused_not_guessed(tree):
    site(tree, "a.example", "\t\tSSLUseStapling \\\n\t\t  on\n")
    result = apache_plan.plan(request(tree, "disabled"))
    assert any("not a line of its own" in p for p in result["problems"])


def test_restore_text_keeps_non_utf8_bytes_and_crlf():
    original = "A \udcff\r\n  SSLUseStapling on\r\nB\r\n"
    lines = original.splitlines(keepends=True)
    lines[1] = apache_plan.replaced_lines(lines[1], "SSLUseStapling Off")
    edited = "".join(lines)
    assert "  SSLUseStapling Off\r\n" in edited
    assert apache_plan.restore_text(edited) == original


def test_tuning_dict_is_checked():
    req = ApachePlanRequest(state="enabled", layout="debian", main_config="/x", tuning={"Listen": 80})
    with pytest.raises(PlanError, match="SSLStapling"):
        apache_plan.Plan(req).tuning()


def test_a_vhost_file_with_latin1_bytes_is_edited_and_restored_byte_for_byte(tree):
    a = site(tree, "a.example", "\t\tSSLUseStapling on\n")
    a.write_bytes(b"# caf\xe9\n" + a.read_bytes())
    before = snapshot(tree)
    result = apache_plan.plan(request(tree, "disabled"))
    assert [sorted(f) for f in result["files"] if "sites-available" in f["path"]] == [["content_base64", "path", "state"]]
    apply(tree, result)
    assert a.read_bytes().startswith(b"# caf\xe9\n")
    assert b"SSLUseStapling Off" in a.read_bytes()
    apply(tree, apache_plan.plan(request(tree, "restored")))
    assert snapshot(tree) == before


EA4_MAIN = """\
Include "/etc/apache2/conf.modules.d/*.conf"
Include "/etc/apache2/conf.d/includes/pre_main_global.conf"
<IfModule ssl_module>
    SSLUseStapling On
    SSLStaplingCache shmcb:/run/apache2/stapling_cache(256000)
    SSLStaplingReturnResponderErrors off
</IfModule>
Include "/etc/apache2/conf.d/*.conf"
Include "/etc/apache2/conf.d/includes/pre_virtualhost_global.conf"
<VirtualHost 127.0.0.1:443>
    ServerName {name}
    SSLEngine on
    SSLCertificateFile /var/cpanel/ssl/apache_tls/{name}/combined
    SSLUseStapling on
{include}</VirtualHost>
"""


def cpanel_tree(tmp_path, include=True):
    etc = tmp_path / "etc" / "apache2"
    userdata = "/etc/apache2/conf.d/userdata/ssl/2_4/bob/shop.example"
    line = '    Include "%s/*.conf"\n' % userdata if include else ""
    write(etc / "conf" / "httpd.conf", EA4_MAIN.replace("{name}", "shop.example").replace("{include}", line))
    write(etc / "conf.modules.d" / "ssl.conf", "LoadModule ssl_module modules/mod_ssl.so\n"
                                               "LoadModule socache_shmcb_module modules/mod_socache_shmcb.so\n")
    write(etc / "conf.d" / "includes" / "pre_main_global.conf", "")
    write(etc / "conf.d" / "includes" / "pre_virtualhost_global.conf", "# operator\n")
    if include:
        (tmp_path / userdata.lstrip("/")).mkdir(parents=True)
    return ApachePlanRequest(
        state="disabled", layout="cpanel_ea4", root=str(tmp_path), main_config="/etc/apache2/conf/httpd.conf",
        server_root="/etc/apache2", includes_dir="/etc/apache2/conf.d/includes",
        userdata_dir="/etc/apache2/conf.d/userdata")


def test_cpanel_vhost_with_its_own_on_is_turned_off_in_its_userdata_include(tmp_path):
    req = cpanel_tree(tmp_path)
    main = tmp_path / "etc/apache2/conf/httpd.conf"
    before = snapshot(tmp_path)

    result = apache_plan.plan(req)

    assert result["problems"] == []
    paths = sorted(f["path"] for f in result["files"])
    assert paths == ["/etc/apache2/conf.d/includes/pre_virtualhost_global.conf",
                     "/etc/apache2/conf.d/userdata/ssl/2_4/bob/shop.example/ocsp-stapling.conf"]
    assert "conf/httpd.conf" not in " ".join(paths)  # cPanel regenerates it
    assert result["sites"] == [{
        "names": ["shop.example"], "file": "/etc/apache2/conf/httpd.conf", "line": 10, "stapling": "off",
        "winner": "/etc/apache2/conf.d/userdata/ssl/2_4/bob/shop.example/ocsp-stapling.conf:2 SSLUseStapling Off"}]
    apply(tmp_path, result)
    assert main.read_bytes() == before[str(main)]
    assert "# operator\n" in (tmp_path / "etc/apache2/conf.d/includes/pre_virtualhost_global.conf").read_text()

    req.state = "restored"
    apply(tmp_path, apache_plan.plan(req))
    assert snapshot(tmp_path) == before


def test_cpanel_vhost_on_without_a_userdata_include_is_refused_with_the_rebuild_command(tmp_path):
    result = apache_plan.plan(cpanel_tree(tmp_path, include=False))
    assert len(result["problems"]) == 1
    assert "rebuildhttpdconf" in result["problems"][0] and "shop.example" in result["problems"][0]


def test_many_vhosts_in_one_file_are_all_turned_off_in_one_round(tree, monkeypatch):
    body = "".join(VHOST.format(name=f"s{i}.example", extra="\t\tSSLUseStapling on\n") for i in range(40))
    write(tree / "etc/apache2/sites-available/many.conf", body)
    link(tree / "etc/apache2/sites-enabled/many.conf", "../sites-available/many.conf")
    before = snapshot(tree)
    reads = []
    real_read = apache_plan.read_config
    monkeypatch.setattr(apache_plan, "read_config", lambda *a, **k: reads.append(1) or real_read(*a, **k))

    result = apache_plan.plan(request(tree, "disabled"))

    # the live read, the candidate with the snippet and every vhost edit, and the check that settled
    assert len(reads) == 3
    assert [s["stapling"] for s in result["sites"]] == ["off"] * 40
    apply(tree, result)
    text = (tree / "etc/apache2/sites-available/many.conf").read_text()
    assert text.count("# ocsp.stapling replaced: SSLUseStapling on\n\t\tSSLUseStapling Off\n") == 40
    apply(tree, apache_plan.plan(request(tree, "restored")))
    assert snapshot(tree) == before
