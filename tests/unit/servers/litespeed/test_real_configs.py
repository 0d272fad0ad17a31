"""The LiteSpeed dialect on configurations in the shapes operators run: the Mozilla SSL
configuration generator's OpenLiteSpeed output, a CyberPanel-managed OpenLiteSpeed, an
LLStack-style tree split into include files with vhost templates, and an LSWS Enterprise
``httpd_config.xml`` with a template. Each is parsed, enabled, disabled and restored on a
copy: nothing lost, nothing refused that is valid."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed.config import (
    LiteSpeedConfigError,
    OlsConfig,
    StaplingSettings,
    discover,
    plan_stapling,
    record_originals,
)
from tests.unit.paths import FIXTURES

CONFIGS = FIXTURES / "configs"
TREES = ["ols_mozilla", "ols_cyberpanel", "ols_llstack", "lsws_xml"]


def copy(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(CONFIGS / name, root)
    return root


def apply(plan) -> None:
    for path in plan.changed_files:
        Path(path).write_bytes(plan.after[path])


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(root: Path, state: str, originals: dict, **kwargs):
    plan = plan_stapling(str(root), StaplingSettings(state=state, originals=originals, **kwargs))
    apply(plan)
    return plan, record_originals(plan, state, originals)


@pytest.mark.parametrize("name", TREES)
@pytest.mark.parametrize("second", ["absent", "disabled"])
def test_enable_then_restore_gives_back_every_byte(tmp_path, name, second):
    root = copy(tmp_path, name)
    original = snapshot(root)
    plan, record = run(root, "enabled", {}, max_age=7200)
    assert plan.changed_files, "enable changed nothing on %s" % name
    enabled = snapshot(root)
    # nothing but stapling keys changed: every other line of every file is still there
    for path, data in enabled.items():
        before = set(original[path].splitlines())
        lost = [line for line in before - set(data.splitlines())
                if b"enableStapling" not in line and b"ocspRespMaxAge" not in line]
        assert not lost, (path, lost)
    plan, record = run(root, second, record)
    if second == "absent":
        assert snapshot(root) == original
        assert record == {}
    else:
        # a block whose original had stapling on keeps its keys, now off; every other block
        # gets its original keys back
        tree, _main, _l, _v, _log = discover(str(root))
        for target in plan.targets:
            assert tree.get(target.segments, "enableStapling") in (None, "0"), target.name


def test_cyberpanel_vhosts_are_sites_and_blog_keeps_no_stapling_keys(tmp_path):
    root = copy(tmp_path, "ols_cyberpanel")
    blog = root / "conf" / "vhosts" / "blog.example.org" / "vhost.conf"
    before = blog.read_bytes()
    _plan, record = run(root, "enabled", {})
    assert b"enableStapling          1" in blog.read_bytes()
    run(root, "disabled", record)
    # the vhssl had no enableStapling: disabling after an enable removes it again
    assert blog.read_bytes() == before


def test_cyberpanel_ipv6_listener_with_a_space_in_its_name_is_a_target(tmp_path):
    root = copy(tmp_path, "ols_cyberpanel")
    plan = plan_stapling(str(root), StaplingSettings(state="enabled"))
    assert {t.name for t in plan.targets if t.kind == "listener"} == {"SSL", "SSL IPv6"}
    assert {"host": "127.0.0.1", "port": 443, "listener": "SSL IPv6"} in plan.probe_endpoints()


def test_llstack_include_files_are_followed_and_edited_where_the_key_is(tmp_path):
    root = copy(tmp_path, "ols_llstack")
    plan = plan_stapling(str(root), StaplingSettings(state="enabled"))
    listener = next(t for t in plan.targets if t.kind == "listener")
    assert listener.name == "HTTPS"
    included = str(root / "conf" / "listeners" / "ssl-default.inc")
    # enableStapling 0 lives in the included file: that line changes, no duplicate is added
    assert listener.changes == {"enableStapling": ["0", "1"]}
    assert included in plan.changed_files
    assert str(root / "conf" / "listeners" / "20-https.conf") not in plan.changed_files
    assert listener.referenced_files["CACertFile"] == "/etc/llstack/ssl/default-chain.crt"


def test_llstack_template_members_are_sites_of_the_template_vhssl(tmp_path):
    root = copy(tmp_path, "ols_llstack")
    plan = plan_stapling(str(root), StaplingSettings(state="enabled"), listeners=[], vhosts=["beta"])
    [target] = plan.targets
    assert target.kind == "template" and target.name == "wordpress"
    assert [m["name"] for m in target.members] == ["alpha", "beta", "gamma"]
    assert target.names == ["alpha.example.net", "www.alpha.example.net", "beta.example.net", "gamma"]
    assert plan.changed_files == [str(root / "conf" / "templates" / "wordpress.conf")]
    assert any("also applies to alpha, gamma" in note for note in plan.notes)
    # $VH_NAME in the certificate paths is expanded per member
    assert target.referenced_files["certFile (beta)"] == "/etc/llstack/ssl/beta/cert.pem"
    # the template without a vhssl is not a target, and says why
    assert not any(t.name == "static" for t in plan.targets)


def test_llstack_editor_backup_files_in_an_included_directory_are_not_read(tmp_path):
    root = copy(tmp_path, "ols_llstack")
    (root / "conf" / "listeners" / "30-old.conf~").write_text("listener Broken {\n")
    tree, _main, listeners, _vhosts, _log = discover(str(root))
    assert [t.name for t in listeners] == ["HTTP", "HTTPS"]


def test_an_include_loop_is_refused_with_the_line(tmp_path):
    root = copy(tmp_path, "ols_llstack")
    (root / "conf" / "tuning.conf").write_text("include httpd_config.conf\n")
    with pytest.raises(LiteSpeedConfigError, match="includes it again"):
        discover(str(root))


def test_lsws_template_members_and_vh_name_domains(tmp_path):
    root = copy(tmp_path, "lsws_xml")
    plan = plan_stapling(str(root), StaplingSettings(state="enabled"))
    kinds = {(t.kind, t.name) for t in plan.targets}
    assert kinds == {("listener", "SSL"), ("vhost", "Example"), ("template", "centralConfigLog")}
    template = next(t for t in plan.targets if t.kind == "template")
    assert template.names == ["one.example.com", "two.example.com", "www.two.example.com"]
    assert template.changes == {"enableStapling": ["0", "1"]}
    vhost = next(t for t in plan.targets if t.kind == "vhost")
    # certChain holds a file name here (LSWS), so it is a referenced file
    assert vhost.referenced_files["certChain"].endswith("conf/cert/example-chain.crt")


def test_mozilla_listener_closing_brace_with_a_comment_parses():
    text = (CONFIGS / "ols_mozilla" / "conf" / "httpd_config.conf").read_text()
    config = OlsConfig(text)
    assert config.get(["listener HTTPS"], "enableStapling") == "1"
    assert config.get(["virtualhost Example"], "vhRoot") == "/var/www/example/"
    assert config.text == text


def test_absent_leaves_a_key_changed_since_alone(tmp_path):
    root = copy(tmp_path, "ols_cyberpanel")
    _plan, record = run(root, "enabled", {}, max_age=7200)
    blog = root / "conf" / "vhosts" / "blog.example.org" / "vhost.conf"
    blog.write_text(blog.read_text().replace("ocspRespMaxAge          7200", "ocspRespMaxAge          600"))
    plan, record = run(root, "absent", record)
    text = blog.read_text()
    assert "ocspRespMaxAge          600" in text and "enableStapling" not in text
    assert any("changed since" in note for note in plan.notes)
    assert record == {}
