"""The Apache plan's protected mode: mod_md staples, mod_ssl's switch off, undone exactly."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import plan as apache_plan

from tests.unit.servers.apache.test_plan import MAIN, apply, conf, cpanel_tree, link, request, site, snapshot, tree, write  # noqa: F401  pylint: disable=unused-import

SNIPPET = "etc/apache2/conf-available/zz-ocsp-stapling.conf"
MD_LINK = "etc/apache2/mods-enabled/md.load"


def md_available(tree):
    write(tree / "etc/apache2/mods-available/md.load", "LoadModule md_module /usr/lib/apache2/modules/mod_md.so\n")


def protect(tree, **kwargs):
    return apache_plan.plan(request(tree, "enabled", mode="protected", server_version="2.4.71", **kwargs))


def test_protected_links_md_writes_md_stapling_and_turns_mod_ssl_off_everywhere(tree):
    md_available(tree)
    a = site(tree, "a.example", "\t\tSSLUseStapling on\n")
    site(tree, "b.example")
    conf(tree, "stapling", "SSLStaplingCache shmcb:/run/ocsp(128000)\nSSLUseStapling on\n")
    before = snapshot(tree)

    result = protect(tree)

    assert result["problems"] == []
    assert result["mode"] == "protected"
    assert result["md_loaded_by_change"] is True   # the role reloads twice
    assert {"path": "/etc/apache2/mods-enabled/md.load", "src": "../mods-available/md.load",
            "state": "present"} in result["links"]
    snippet = next(f["content"] for f in result["files"] if f["path"].endswith("zz-ocsp-stapling.conf"))
    for line in ("MDStapling on", "MDStapleOthers on", "MDStaplingRenewWindow 33%", "SSLUseStapling Off",
                 apache_plan.MD_LINK_NOTE):
        assert line in snippet
    assert "SSLStaplingFakeTryLater" not in snippet and "SSLUseStapling On" not in snippet
    assert all(s["stapling"] == "off" for s in result["sites"]), result["sites"]
    apply(tree, result)
    assert os.readlink(tree / MD_LINK) == "../mods-available/md.load"
    assert "# ocsp.stapling replaced: SSLUseStapling on\n\t\tSSLUseStapling Off\n" in a.read_text()
    protected = snapshot(tree)

    again = protect(tree)   # idempotent: the same files, so stapling_change changes nothing
    assert again["md_loaded_by_change"] is False
    apply(tree, again)
    assert snapshot(tree) == protected

    apply(tree, apache_plan.plan(request(tree, "absent")))
    assert snapshot(tree) == before
    assert not os.path.lexists(tree / MD_LINK)


def test_standard_enable_undoes_protected_byte_for_byte(tree):
    md_available(tree)
    site(tree, "a.example", "\t\tSSLUseStapling on\n")
    apply(tree, apache_plan.plan(request(tree, "enabled")))
    standard = snapshot(tree)

    apply(tree, protect(tree))
    assert os.path.islink(tree / MD_LINK)
    assert snapshot(tree) != standard

    apply(tree, apache_plan.plan(request(tree, "enabled")))
    assert snapshot(tree) == standard


def test_an_md_already_loaded_is_left_to_the_operator(tree):
    md_available(tree)
    link(tree / MD_LINK, "../mods-available/md.load")
    site(tree, "a.example")
    before = snapshot(tree)
    result = protect(tree)
    assert [item for item in result["links"] if item["path"].endswith("md.load")] == []
    apply(tree, result)
    assert apache_plan.MD_LINK_NOTE not in (tree / SNIPPET).read_text()
    apply(tree, apache_plan.plan(request(tree, "absent")))
    assert snapshot(tree) == before   # the operator's md.load link is still there


def test_disable_on_a_protected_host_turns_md_stapling_off_and_restored_gives_it_back(tree):
    md_available(tree)
    site(tree, "a.example", "\t\tSSLUseStapling on\n")   # restored must keep this one off: mod_md staples
    apply(tree, protect(tree))
    protected = snapshot(tree)

    apply(tree, apache_plan.plan(request(tree, "disabled")))
    text = (tree / SNIPPET).read_text()
    assert "# ocsp.stapling replaced: MDStapling on\nMDStapling off\n" in text

    apply(tree, apache_plan.plan(request(tree, "restored")))
    assert snapshot(tree) == protected


def test_old_httpd_is_refused_with_the_relay_as_the_answer(tree):
    md_available(tree)
    site(tree, "a.example")
    result = apache_plan.plan(request(tree, "enabled", mode="protected", server_version="Apache/2.4.37 (Red Hat)"))
    assert len(result["problems"]) == 1
    assert "2.4.42" in result["problems"][0] and "2.4.37" in result["problems"][0]
    assert "relay" in result["problems"][0]


def test_no_mod_md_is_refused_naming_the_missing_file(tree):
    site(tree, "a.example")
    result = protect(tree)
    assert len(result["problems"]) == 1
    assert "mods-available/md.load" in result["problems"][0] and "relay" in result["problems"][0]


def test_an_unwritable_md_store_is_refused_with_what_was_found(tree):
    md_available(tree)
    site(tree, "a.example")
    store = tree / "srv/md-store"
    write(store, "not a directory\n")   # a file where the store should be
    result = protect(tree, md_store_dir="/srv/md-store")
    assert len(result["problems"]) == 1, result["problems"]
    problem = result["problems"][0]
    assert "MDStoreDir /srv/md-store" in problem and "not a directory" in problem
    assert "apache_stapling_md_store_dir" in problem

    ok = protect(tree, md_store_dir="/srv/md-store-new")   # missing but creatable: fine
    assert ok["problems"] == []
    assert ok["md_store_dir"] == "/srv/md-store-new"
    assert "MDStoreDir /srv/md-store-new" in next(f["content"] for f in ok["files"] if f["path"].endswith("zz-ocsp-stapling.conf"))


def test_the_operators_md_store_dir_is_the_one_checked(tree):
    md_available(tree)
    site(tree, "a.example")
    conf(tree, "md", "MDStoreDir /var/lib/apache2/md\n")
    result = protect(tree)
    assert result["md_store_dir"] == "/var/lib/apache2/md"
    snippet = next(f["content"] for f in result["files"] if f["path"].endswith("zz-ocsp-stapling.conf"))
    assert "\nMDStoreDir" not in snippet


def test_cpanel_protected_needs_ea_mod_md(tmp_path):
    req = cpanel_tree(tmp_path)
    req.state, req.mode, req.server_version = "enabled", "protected", "2.4.62"
    result = apache_plan.plan(req)
    assert len(result["problems"]) == 1
    assert "ea-apache24-mod_md" in result["problems"][0]


def test_cpanel_protected_writes_include_files_and_the_vhost_userdata_off(tmp_path):
    req = cpanel_tree(tmp_path)
    write(tmp_path / "etc/apache2/conf.modules.d/md.conf", "LoadModule md_module modules/mod_md.so\n")
    before = snapshot(tmp_path)
    req.state, req.mode, req.server_version = "enabled", "protected", "2.4.62"

    result = apache_plan.plan(req)

    assert result["problems"] == []
    files = {f["path"]: f["content"] for f in result["files"]}
    assert "/etc/apache2/conf/httpd.conf" not in files
    pre_vhost = files["/etc/apache2/conf.d/includes/pre_virtualhost_global.conf"]
    assert "MDStapling on" in pre_vhost and "SSLUseStapling Off" in pre_vhost
    assert "SSLUseStapling Off" in files["/etc/apache2/conf.d/userdata/ssl/2_4/bob/shop.example/ocsp-stapling.conf"]
    assert [s["stapling"] for s in result["sites"]] == ["off"]
    apply(tmp_path, result)
    apply(tmp_path, apache_plan.plan(req))   # idempotent
    req.state, req.mode = "absent", "standard"
    apply(tmp_path, apache_plan.plan(req))
    assert snapshot(tmp_path) == before


@pytest.fixture
def open_tree():
    """A Debian tree under a directory every user may enter (pytest's tmp_path is root-only)."""
    base = tempfile.mkdtemp(prefix="ocsp-md-unit-", dir="/tmp")
    os.chmod(base, 0o755)
    root = Path(base)
    etc = root / "etc" / "apache2"
    write(etc / "apache2.conf", MAIN)
    for mod in ("ssl", "socache_shmcb", "md"):
        write(etc / "mods-available" / f"{mod}.load", f"LoadModule {mod}_module /usr/lib/apache2/modules/mod_{mod}.so\n")
    for mod in ("ssl", "socache_shmcb"):
        link(etc / "mods-enabled" / f"{mod}.load", f"../mods-available/{mod}.load")
    try:
        yield root
    finally:
        shutil.rmtree(base)


def test_a_store_the_run_user_cannot_enter_is_refused(open_tree):
    site(open_tree, "a.example")
    conf(open_tree, "user", "User nobody\n")
    locked = open_tree / "locked"
    (locked / "md").mkdir(parents=True)
    for directory in (open_tree / "etc", open_tree / "etc/apache2"):
        directory.chmod(0o755)
    locked.chmod(0o700)   # root only: mod_md's watchdog child (User nobody) could not store responses

    result = protect(open_tree, md_store_dir="/locked/md")

    assert len(result["problems"]) == 1, result["problems"]
    assert "User nobody" in result["problems"][0] and "mode 0700" in result["problems"][0]
    locked.chmod(0o711)
    assert protect(open_tree, md_store_dir="/locked/md")["problems"] == []


def test_cpanel_disable_on_a_protected_host_turns_md_stapling_off_until_restored(tmp_path):
    req = cpanel_tree(tmp_path)
    write(tmp_path / "etc/apache2/conf.modules.d/md.conf", "LoadModule md_module modules/mod_md.so\n")
    req.state, req.mode, req.server_version = "enabled", "protected", "2.4.62"
    apply(tmp_path, apache_plan.plan(req))
    protected = snapshot(tmp_path)

    req.state = "disabled"
    result = apache_plan.plan(req)
    apply(tmp_path, result)
    text = (tmp_path / "etc/apache2/conf.d/includes/pre_virtualhost_global.conf").read_text()
    assert text.index("MDStapling off") > text.index("MDStapling on")   # read later: wins

    req.state = "restored"
    apply(tmp_path, apache_plan.plan(req))
    assert snapshot(tmp_path) == protected


def test_rhel_loads_mod_md_from_the_snippet_and_keeps_loading_it(tmp_path):
    etc = tmp_path / "etc/httpd"
    write(etc / "conf/httpd.conf", 'ServerRoot "/etc/httpd"\nInclude conf.modules.d/*.conf\nIncludeOptional conf.d/*.conf\n')
    write(etc / "conf.modules.d/00-ssl.conf", "LoadModule ssl_module modules/mod_ssl.so\n")
    write(etc / "modules/mod_md.so", "")
    write(etc / "conf.d/site.conf", "<VirtualHost *:443>\n  ServerName a.example\n  SSLEngine on\n</VirtualHost>\n")
    before = snapshot(tmp_path)
    req = apache_plan.ApachePlanRequest(
        state="enabled", layout="rhel", root=str(tmp_path), main_config="/etc/httpd/conf/httpd.conf",
        server_root="/etc/httpd", snippet="/etc/httpd/conf.d/zz-ocsp-stapling.conf", mode="protected",
        server_version="2.4.62")

    first = apache_plan.plan(req)
    assert first["problems"] == [] and first["md_loaded_by_change"] is True
    apply(tmp_path, first)
    assert "LoadModule md_module /etc/httpd/modules/mod_md.so" in (etc / "conf.d/zz-ocsp-stapling.conf").read_text()
    applied = snapshot(tmp_path)

    second = apache_plan.plan(req)
    assert second["md_loaded_by_change"] is False
    apply(tmp_path, second)
    assert snapshot(tmp_path) == applied   # idempotent: the snippet still loads mod_md

    req.state, req.mode = "absent", "standard"
    apply(tmp_path, apache_plan.plan(req))
    assert snapshot(tmp_path) == before
