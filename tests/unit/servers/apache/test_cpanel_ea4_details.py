"""cPanel EA4 details on the ea-apache24-config-shaped fixture: EA4 found by ``paths.conf``
alone, WHM's ``sslusestapling`` (``/etc/cpanel/ea4/ea4.conf``) read and reported by the facts
and the plan, ``SSLStaplingCache`` inside a ``<VirtualHost>`` named by file and line, and the
include files httpd.conf must gain (created, then ``rebuildhttpdconf``) reported as such."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers import facts as facts_mod
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import layouts
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import plan as apache_plan
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache.plan import ApachePlanRequest
from tests.unit.paths import FIXTURES, REPO

FIXTURE = FIXTURES / "configs" / "cpanel_ea4"
WHM_SAVED = FIXTURES / "ea4_conf" / "saved_by_whm.conf"
EA4_CONF = "/etc/cpanel/ea4/ea4.conf"
MAIN = "/etc/apache2/conf/httpd.conf"
INCLUDES = "/etc/apache2/conf.d/includes"
USERDATA = "/etc/apache2/conf.d/userdata"


@pytest.fixture
def root(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "root", symlinks=True)
    return tmp_path / "root"


def request(root: Path, state: str, **kwargs) -> ApachePlanRequest:
    fields = dict(state=state, layout="cpanel_ea4", root=str(root), main_config=MAIN, server_root="/etc/apache2",
                  includes_dir=INCLUDES, userdata_dir=USERDATA, ea4_conf=EA4_CONF)
    fields.update(kwargs)
    return ApachePlanRequest(**fields)


def set_whm(root: Path, value) -> None:
    path = root / EA4_CONF.lstrip("/")
    data = json.loads(path.read_text())
    if value is None:
        data.pop("sslusestapling")
    else:
        data["sslusestapling"] = value
    path.write_text(json.dumps(data, indent=3))


@pytest.mark.parametrize("value, enabled, default", [("On", True, False), ("Off", False, False), ("off", False, False),
                                                     (None, True, True)])
def test_whm_stapling_is_read_from_ea4_conf(root, value, enabled, default):
    set_whm(root, value)
    whm = layouts.read_whm_stapling(str(root / EA4_CONF.lstrip("/")), EA4_CONF)
    assert (whm["enabled"], whm["default"], whm["problem"]) == (enabled, default, None)
    assert whm["value"] == value and whm["file"] == EA4_CONF


def test_ea4_conf_as_whm_saves_it_is_read(root):
    """One JSON object, sorted keys, three-space indent and ' : ' (Cpanel::EA4::Conf's save), with
    nested local_attrs, nulls and numbers beside the string values."""
    path = root / EA4_CONF.lstrip("/")
    shutil.copyfile(WHM_SAVED, path)
    whm = layouts.read_whm_stapling(str(path), EA4_CONF)
    assert (whm["value"], whm["enabled"], whm["default"], whm["problem"]) == ("Off", False, False, None)


# What the next rebuildhttpdconf writes for each file content (cPanel's Cpanel::EA4::Conf::Tiny and
# ea4_main.default): its default On when the file is empty, not JSON, a JSON scalar, or the value
# is missing, null or empty; the value itself when it is On or Off in any case (Apache's flag).
@pytest.mark.parametrize("content, enabled, default, problem", [
    ("", True, True, None),
    ("{}", True, True, None),
    ('{"sslusestapling" : null}', True, True, None),
    ('{"sslusestapling" : ""}', True, True, None),
    ('{"sslusestapling" : "OFF"}', False, False, None),
    ('{"sslusestapling" : " on "}', True, False, None),
    ("{not json", True, True, "is not JSON"),
    ("\ufeff{}", True, True, "is not JSON"),
    ('"Off"', True, True, "single JSON value"),
    ("[]", None, False, "JSON array"),
    ('{"sslusestapling" : true}', None, False, "sslusestapling true"),
    ('{"sslusestapling" : 0}', None, False, "sslusestapling 0"),
    ('{"sslusestapling" : "1"}', None, False, 'sslusestapling "1"'),
    ('{"sslusestapling" : "maybe"}', None, False, 'sslusestapling "maybe"'),
])
def test_ea4_conf_contents_give_what_the_rebuild_writes(root, content, enabled, default, problem):
    path = root / EA4_CONF.lstrip("/")
    path.write_text(content, encoding="utf-8")
    whm = layouts.read_whm_stapling(str(path), EA4_CONF)
    assert (whm["enabled"], whm["default"]) == (enabled, default), whm
    if problem is None:
        assert whm["problem"] is None, whm
    else:
        assert problem in whm["problem"] and EA4_CONF in whm["problem"] and "Global Configuration" in whm["problem"], whm


def test_whm_stapling_missing_file_is_the_default_and_an_unreadable_one_is_unknown(root):
    path = root / EA4_CONF.lstrip("/")
    path.unlink()
    missing = layouts.read_whm_stapling(str(path), EA4_CONF)
    assert (missing["exists"], missing["enabled"], missing["default"], missing["problem"]) == (False, True, True, None)
    path.mkdir()   # not a file: reported as missing, the default applies
    assert layouts.read_whm_stapling(str(path))["enabled"] is True


def test_a_problem_in_ea4_conf_is_a_plan_warning_and_changes_nothing_else(root):
    (root / EA4_CONF.lstrip("/")).write_text('{"sslusestapling" : 1}')
    result = apache_plan.plan(request(root, "disabled"))
    assert result["whm_stapling"]["enabled"] is None
    assert any("sslusestapling 1" in w and "Apache refuses" in w for w in result["warnings"]), result["warnings"]
    assert not result["problems"], result["problems"]


def test_ea4_found_by_paths_conf_alone_and_facts_report_whm(root):
    (root / "etc/cpanel/ea4/is_ea4").unlink()   # ea-apache24-config 1.0-29 and later: no is_ea4
    set_whm(root, "Off")
    facts = facts_mod.gather_facts(root=str(root), run_binaries=False)
    assert facts["cpanel"]["ea_version"] == 4
    assert facts["servers"]["apache"]["layout"] == "cpanel_ea4"
    whm = facts["cpanel"]["whm_stapling"]
    assert (whm["file"], whm["value"], whm["enabled"]) == (EA4_CONF, "Off", False)


def test_stapling_cache_inside_a_virtual_host_is_named_by_facts_and_refused_by_the_plan(root):
    userdata = root / USERDATA.lstrip("/") / "ssl/2_4/bob/bob.example/stapling.conf"
    userdata.write_text(userdata.read_text() + "SSLStaplingCache shmcb:/run/apache2/bob(128000)\n")
    shown = USERDATA + "/ssl/2_4/bob/bob.example/stapling.conf"
    facts = facts_mod.gather_facts(root=str(root), run_binaries=False)
    misplaced = facts["servers"]["apache"]["stapling_cache_in_vhost"]
    assert [(m["file"], m["line"]) for m in misplaced] == [(shown, 4)]
    assert misplaced[0]["virtual_host"].startswith(MAIN + ":")
    assert any(f"{shown}:4 sets SSLStaplingCache inside <VirtualHost 192.0.2.11:443>" in w for w in facts["warnings"])
    result = apache_plan.plan(request(root, "disabled"))
    assert any(f"{shown}:4" in p and "server scope" in p for p in result["problems"]), result["problems"]
    # the server-scope cache of cPanel's own block is not flagged
    assert facts["servers"]["apache"]["stapling_cache"]["file"] == MAIN


def test_plan_reports_whm_and_says_how_it_meets_a_disable_and_an_enable(root):
    disabled = apache_plan.plan(request(root, "disabled"))
    assert disabled["whm_stapling"]["value"] == "On"
    assert any("WHM's Global Configuration has SSLUseStapling On" in w and "survives rebuilds" in w
               for w in disabled["warnings"]), disabled["warnings"]
    set_whm(root, "Off")
    enabled = apache_plan.plan(request(root, "enabled"))
    assert enabled["whm_stapling"]["enabled"] is False
    assert any("SSLUseStapling Off" in w and "wins" in w for w in enabled["warnings"]), enabled["warnings"]
    # WHM On and an enable agree: nothing to say
    set_whm(root, "On")
    assert not any("WHM" in w for w in apache_plan.plan(request(root, "enabled"))["warnings"])
    # other layouts never read it
    assert apache_plan.plan(request(root, "disabled", layout="cpanel_ea3"))["whm_stapling"] is None


def _drop_include(root: Path, name: str) -> None:
    main = root / MAIN.lstrip("/")
    main.write_text(main.read_text().replace(f'Include "{INCLUDES}/{name}"\n', f'# Create "{INCLUDES}/{name}" if you want '
                                             "to customize httpd.conf.\n"))


def test_missing_pre_virtualhost_global_include_is_reported_as_a_file_to_create(root):
    (root / INCLUDES.lstrip("/") / "pre_virtualhost_global.conf").unlink()
    _drop_include(root, "pre_virtualhost_global.conf")
    result = apache_plan.plan(request(root, "disabled"))
    assert result["files"] == []
    assert [(i["path"], i["exists"], i["scope"]) for i in result["includes_needed"]] == [
        (INCLUDES + "/pre_virtualhost_global.conf", False, "server")]
    assert result["includes_needed"][0]["content"] == apache_plan.INCLUDE_PLACEHOLDER
    assert len(result["problems"]) == 1 and "does not exist" in result["problems"][0]
    assert "rebuildhttpdconf" in result["problems"][0]


def test_include_file_present_but_not_included_yet_needs_only_the_rebuild(root):
    _drop_include(root, "pre_virtualhost_global.conf")
    result = apache_plan.plan(request(root, "enabled"))
    assert [(i["path"], i["exists"]) for i in result["includes_needed"]] == [(INCLUDES + "/pre_virtualhost_global.conf", True)]
    assert result["files"] == [] and "Rebuild httpd.conf so it includes" in result["problems"][0]


def test_vhost_on_in_httpd_conf_asks_for_its_userdata_directory_from_the_template_hint(root):
    main = root / MAIN.lstrip("/")
    text = main.read_text()
    carol_off = "    SSLCertificateFile /var/cpanel/ssl/apache_tls/carol.example/combined\n    SSLUseStapling off\n"
    assert carol_off in text
    main.write_text(text.replace(carol_off, carol_off.replace("off", "on")))   # a custom template's 'on'
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = apache_plan.plan(request(root, "disabled"))
    place = USERDATA + "/ssl/2_4/carol/carol.example"
    assert [(i["path"], i["scope"]) for i in result["includes_needed"]] == [(place + "/ocsp-stapling.conf", "vhost")]
    assert any(place + "/" in p for p in result["problems"]), result["problems"]
    # The flow: the placeholder created, httpd.conf rebuilt with the Include (as cPanel does).
    created = root / place.lstrip("/") / "ocsp-stapling.conf"
    created.parent.mkdir(parents=True)
    created.write_text(result["includes_needed"][0]["content"])
    hint = f'  # To customize this VirtualHost use an include file at the following location\n  # Include "{place}/*.conf"\n'
    main.write_text(main.read_text().replace(hint, f'    Include "{place}/*.conf"\n\n' + hint))
    rebuilt = main.read_bytes()
    again = apache_plan.plan(request(root, "disabled"))
    assert again["problems"] == [] and again["includes_needed"] == []
    assert {s["names"][0]: s["stapling"] for s in again["sites"]}["carol.example"] == "off"
    entry = next(f for f in again["files"] if f["path"] == place + "/ocsp-stapling.conf")
    assert entry["content"].startswith(apache_plan.USERDATA_HEADER + "SSLUseStapling Off\n")
    created.write_text(entry["content"])
    for item in again["files"]:
        if item["path"] != entry["path"]:
            path = root / item["path"].lstrip("/")
            path.write_text(item["content"])
    restored = apache_plan.plan(request(root, "restored"))
    for item in restored["files"]:
        path = root / item["path"].lstrip("/")
        if item["state"] == "present":
            path.write_text(item["content"])
        else:
            path.unlink()
    # the directory keeps a .conf so httpd.conf's Include still matches; everything else as before
    assert created.read_text() == apache_plan.USERDATA_PLACEHOLDER
    assert main.read_bytes() == rebuilt
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p not in (created, main)}
    assert after == {p: b for p, b in before.items() if p != main}


def test_the_roles_cpanel_defaults_are_the_layouts_defaults():
    import yaml   # pylint: disable=import-outside-toplevel
    defaults = yaml.safe_load((REPO / "roles/apache/defaults/main.yml").read_text())
    assert defaults["apache_stapling_ea4_conf"] == layouts.DEFAULTS["cpanel"]["ea4_conf"] == EA4_CONF
    assert defaults["apache_stapling_cpanel_rebuild_command"] == [layouts.DEFAULTS["cpanel"]["rebuild_httpd_conf"]]


def test_one_rebuild_covers_the_server_include_and_the_userdata_directories(root):
    (root / INCLUDES.lstrip("/") / "pre_virtualhost_global.conf").unlink()
    _drop_include(root, "pre_virtualhost_global.conf")
    main = root / MAIN.lstrip("/")
    main.write_text(main.read_text().replace("combined\n    SSLUseStapling off\n", "combined\n    SSLUseStapling on\n"))
    result = apache_plan.plan(request(root, "disabled"))
    assert [(Path(i["path"]).name, i["scope"]) for i in result["includes_needed"]] == [
        ("pre_virtualhost_global.conf", "server"), ("ocsp-stapling.conf", "vhost")]
    assert "/carol/carol.example/" in result["includes_needed"][1]["path"]
    # an enable needs only the server-scope file
    enabled = apache_plan.plan(request(root, "enabled"))
    assert [i["scope"] for i in enabled["includes_needed"]] == ["server"]


def _apply(root: Path, result: dict) -> None:
    for item in result["files"]:
        path = root / item["path"].lstrip("/")
        if item["state"] == "present":
            path.write_text(item["content"])
        else:
            path.unlink()


def test_ea4_pre_virtualhost_2_is_read_last_so_a_disable_turns_it_off_there_too(root):
    """ea4_main.default includes pre_virtualhost_2.conf (when it exists) after
    pre_virtualhost_global.conf, so an operator's 'On' there would win over a disable written only
    in pre_virtualhost_global.conf."""
    second = root / INCLUDES.lstrip("/") / "pre_virtualhost_2.conf"
    second.write_bytes(b"# Apache 2.4 only (operator)\r\nSSLUseStapling On\r\n")
    main = root / MAIN.lstrip("/")
    line = f'Include "{INCLUDES}/pre_virtualhost_global.conf"\n'
    assert line in main.read_text()
    main.write_text(main.read_text().replace(line, line + f'\n# Major Version Specific\nInclude "{INCLUDES}/pre_virtualhost_2.conf"\n'))
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = apache_plan.plan(request(root, "disabled"))
    assert result["problems"] == [], result["problems"]
    written = {Path(item["path"]).name: item["content"] for item in result["files"]}
    assert "SSLUseStapling Off" in written["pre_virtualhost_2.conf"], written
    assert written["pre_virtualhost_2.conf"].startswith("# Apache 2.4 only (operator)\r\nSSLUseStapling On\r\n")
    assert MAIN not in [item["path"] for item in result["files"]]
    _apply(root, result)
    after = apache_plan.plan(request(root, "disabled"))
    assert after["files"] == [] and len(after["sites"]) >= 2, after
    assert {s["stapling"] for s in after["sites"]} == {"off"}, after["sites"]
    _apply(root, apache_plan.plan(request(root, "restored")))
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
