"""cPanel's include flow (create the include file -> rebuildhttpdconf -> graceful restart) on
both cPanel layouts, and the httpd.conf the rebuild rewrites kept in the backup directory.

- EA4 (``/etc/apache2``): stapling on from httpd.conf's own block (WHM's Global Configuration);
- EA3 (``/usr/local/apache``): no block in httpd.conf; the operator turned stapling on in
  ``pre_main_global.conf`` (cPanel's Include Editor), and httpd.conf also includes the EA3-only
  ``pre_virtualhost_2.conf``.

In each, ``pre_virtualhost_global.conf`` did not exist at the last rebuild, so httpd.conf does not
include it. A disable creates it, runs the rebuild (tests/lab/cpanel.py's stand-in renders
httpd.conf as cPanel's templates do: an Include only for files that exist), keeps the pre-rebuild
httpd.conf in ``<backup_dir>/<stamp>-cpanel-rebuild-*/`` with a manifest, then makes the change;
real handshakes show no staple. The re-enable rebuilds nothing, gives the operator's include files
back byte for byte and the good staple returns. A rebuild that fails stops the run naming the kept
copy, with nothing changed and Apache not reloaded.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.integration.ansible_run import play_role
from tests.integration.test_apache_faults import run_role
from tests.integration.test_cpanel_include_flow import include_file, included, reset
from tests.lab import cpanel
from tests.lab.lab import Lab
from tests.lab.probe import probe
from tests.lab.processes import wait_until
from tests.lab.responder import free_port

# EA3 has no stapling block in httpd.conf: the operator's own, in pre_main_global.conf
# (read before the vhosts, so every vhost inherits it).
EA3_OPERATOR_STAPLING = "SSLStaplingCache shmcb:{run}/operator_stapling(128000)\r\nSSLUseStapling On\r\n"


@pytest.fixture(scope="module", params=["ea4", "ea3"])
def cpanel_lab(request, tmp_path_factory):
    flavor = request.param
    base = tmp_path_factory.mktemp(f"cpanel-{flavor}")
    with Lab.start(base / "lab", servers=()) as lab:
        root = base / "cpanel"
        info = cpanel.build(root, lab.pki.directory, flavor, free_port())
        info["rebuild"] = str(cpanel.install_rebuild(root, base / "lab"))
        if flavor == "ea3":
            pre_main = Path(info["includes"]) / "pre_main_global.conf"
            pre_main.write_bytes(pre_main.read_bytes() + EA3_OPERATOR_STAPLING.format(run=info["run"]).encode())
        try:
            yield info
        finally:
            cpanel.stop(root)


def role_vars(info: dict, tmp_path: Path, state: str, **extra) -> dict:
    flavor = info["flavor"]
    prefix = f"apache_stapling_{flavor}_"
    variables = {
        "apache_stapling_layout": f"cpanel_{flavor}",
        "apache_stapling_state": state,
        "apache_stapling_reason": "responder unreachable (rebuild layouts test)",
        "apache_stapling_backup_dir": str(tmp_path / "backups"),
        "apache_stapling_endpoints": [{"host": "127.0.0.1", "port": info["port"], "server_name": "good.lab.test"}],
        prefix + "main_config": info["conf"],
        prefix + "includes_dir": info["includes"],
        prefix + "userdata_dir": info["userdata"],
        prefix + "configtest_command": info["configtest"],
        prefix + "reload_command": [info["scripts"] + "/restartsrv_httpd", "--graceful"],
        prefix + "start_command": [info["scripts"] + "/restartsrv_httpd"],
        prefix + "pid_file": info["pid_file"],
        prefix + "error_log": info["error_log"],
        "apache_stapling_cpanel_rebuild_command": [info["rebuild"]],
        "apache_stapling_verify_timeout": 20,
        "apache_stapling_warmup_timeout": 20,
    }
    if flavor == "ea4":
        variables.update({
            "apache_stapling_ea4_paths_conf": info["paths_conf"],
            "apache_stapling_ea4_conf": str(Path(info["paths_conf"]).parent / "ea4.conf"),
        })
    variables.update(extra)
    return variables


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def operator_files(info: dict) -> dict[str, bytes]:
    """The include files the operator owns (pre_virtualhost_global.conf is the one the role creates)."""
    return {path.name: path.read_bytes() for path in sorted(Path(info["includes"]).glob("*.conf"))
            if path.name != "pre_virtualhost_global.conf"}


def rebuild_backups(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "backups").glob("*-cpanel-rebuild-*"))


def test_disable_keeps_the_pre_rebuild_httpd_conf_then_reenable_gives_everything_back(cpanel_lab, tmp_path):
    info = cpanel_lab
    reset(info)
    wait_until(lambda: probe(info["port"], "good.lab.test").verdict == "good", 30, "a good staple before the disable")
    before_rebuild = Path(info["conf"]).read_bytes()
    operator = operator_files(info)

    both = play_role("ocsp.stapling.apache", role_vars(info, tmp_path, "disabled"),
                     "{'role': apache_stapling_result, 'server': stapling_server_result}")
    assert not both["failed"], both
    result, server = both["result"]["role"], both["result"]["server"]
    rebuild = result["cpanel_rebuild"]
    assert rebuild["ran"] and rebuild["created"] == [str(include_file(info))], rebuild
    # the front door's one schema lists the rebuild's copy beside the change's own backup
    assert server["backups"] == [result["backup_dir"], rebuild["backup_dir"]], server
    calls = Path(info["calls"]).read_text().splitlines()
    assert calls.index("rebuildhttpdconf ") < calls.index("restartsrv_httpd --graceful"), calls
    rebuilt = Path(info["conf"]).read_bytes()
    assert 'Include "%s"' % include_file(info) in included(info) and rebuilt != before_rebuild

    # the pre-rebuild httpd.conf, byte for byte, where the manifest says, in the change's files/<path> layout
    kept = rebuild_backups(tmp_path)
    assert len(kept) == 1 and Path(rebuild["backup_dir"]) == kept[0], (kept, rebuild)
    copy = kept[0] / "files" / info["conf"].lstrip("/")
    assert rebuild["main_config_backup"] == str(copy) and copy.read_bytes() == before_rebuild
    assert (rebuild["sha256_before"], rebuild["sha256_after"]) == (sha256(before_rebuild), sha256(rebuilt))
    manifest = json.loads((kept[0] / "manifest.json").read_text())
    assert manifest["kind"] == "cpanel_rebuild" and manifest["rc"] == 0
    assert (manifest["main_config"], manifest["backup"]) == (info["conf"], str(copy))
    assert (manifest["sha256_before"], manifest["sha256_after"]) == (sha256(before_rebuild), sha256(rebuilt))
    assert manifest["created_files"] == [str(include_file(info))] and manifest["command"] == [info["rebuild"]]
    assert "copy the backup over it" in manifest["rollback"]
    assert oct(kept[0].stat().st_mode & 0o777) == "0o700"

    own = include_file(info).read_text()
    assert own.startswith("# Created by ocsp.stapling so that cPanel's rebuildhttpdconf includes this file")
    assert "SSLUseStapling Off" in own
    if info["flavor"] == "ea4":
        assert result["whm_stapling"]["enabled"] is True   # no ea4.conf in the lab: the template's default, On
    if info["flavor"] == "ea3":
        assert result["whm_stapling"] is None
        assert "SSLUseStapling Off" in (Path(info["includes"]) / "pre_virtualhost_2.conf").read_text()
    staple = probe(info["port"], "good.lab.test")
    assert staple.handshake_ok and not staple.stapled, staple

    again = run_role(tmp_path, role_vars(info, tmp_path, "restored"))
    assert not again["failed"], again
    assert again["result"]["cpanel_rebuild"] is None
    assert rebuild_backups(tmp_path) == kept          # no rebuild, no second copy
    assert Path(info["conf"]).read_bytes() == rebuilt
    assert operator_files(info) == operator           # pre_main_global (CRLF), pre_virtualhost_2, post_...
    assert include_file(info).read_text() == own.split("# BEGIN")[0]   # the placeholder, byte for byte
    wait_until(lambda: probe(info["port"], "good.lab.test").verdict == "good", 30, "a good staple after the re-enable")


def test_a_failing_rebuild_stops_naming_the_kept_httpd_conf(cpanel_lab, tmp_path):
    info = cpanel_lab
    reset(info)
    failing = tmp_path / "rebuildhttpdconf"
    # cPanel's rebuild may write httpd.conf and then fail (its own configtest): the stand-in does both.
    failing.write_text("#!/bin/sh\n%s\necho 'httpd.conf failed its test' >&2\nexit 3\n" % info["rebuild"])
    failing.chmod(0o755)
    before_rebuild = Path(info["conf"]).read_bytes()
    outcome = run_role(tmp_path, role_vars(info, tmp_path, "disabled", apache_stapling_cpanel_rebuild_command=[str(failing)]))
    assert outcome["failed"]
    msg = outcome["msg"]
    kept = rebuild_backups(tmp_path)
    assert len(kept) == 1, kept
    assert f"{failing} exited 3 (httpd.conf failed its test)" in msg, msg
    assert str(kept[0]) in msg and "the rebuild changed the live file" in msg, msg
    assert "Apache was not reloaded" in msg
    assert (kept[0] / "files" / info["conf"].lstrip("/")).read_bytes() == before_rebuild
    assert json.loads((kept[0] / "manifest.json").read_text())["rc"] == 3
    assert "restartsrv_httpd" not in Path(info["calls"]).read_text()
    assert probe(info["port"], "good.lab.test").verdict == "good"


def test_a_vhost_on_in_httpd_conf_gets_its_userdata_directory_in_the_same_kept_rebuild(cpanel_lab, tmp_path):
    info = cpanel_lab
    reset(info, vhost_on=("good",))
    place = Path(info["userdata"]) / "ssl/2_4" / cpanel.REBUILD_USER / "good.lab.test"
    before_rebuild = Path(info["conf"]).read_bytes()
    assert b"SSLUseStapling on" in before_rebuild
    wait_until(lambda: probe(info["port"], "good.lab.test").verdict == "good", 30, "a good staple before the disable")
    outcome = run_role(tmp_path, role_vars(info, tmp_path, "disabled"))
    assert not outcome["failed"], outcome
    rebuild = outcome["result"]["cpanel_rebuild"]
    assert sorted(rebuild["created"]) == sorted([str(include_file(info)), str(place / "ocsp-stapling.conf")])
    assert Path(info["calls"]).read_text().count("rebuildhttpdconf") == 1
    assert 'Include "%s/*.conf"' % place in included(info)
    kept = rebuild_backups(tmp_path)
    assert len(kept) == 1 and (kept[0] / "files" / info["conf"].lstrip("/")).read_bytes() == before_rebuild
    assert sorted(json.loads((kept[0] / "manifest.json").read_text())["created_files"]) == sorted(rebuild["created"])
    own = (place / "ocsp-stapling.conf").read_text()
    assert own.startswith("# Managed by ocsp.stapling: stapling off for this site") and "SSLUseStapling Off" in own
    staple = probe(info["port"], "good.lab.test")
    assert staple.handshake_ok and not staple.stapled, staple

    again = run_role(tmp_path, role_vars(info, tmp_path, "restored"))
    assert not again["failed"], again
    assert (place / "ocsp-stapling.conf").read_text().startswith("# Created by ocsp.stapling so that cPanel")
    wait_until(lambda: probe(info["port"], "good.lab.test").verdict == "good", 30, "a good staple after the re-enable")


def test_auto_detection_finds_the_layout_and_check_mode_only_says_it_would_rebuild(cpanel_lab, tmp_path):
    """EA4 by paths.conf alone (newer ea-apache24-config has no is_ea4), EA3 by its includes directory."""
    info = cpanel_lab
    reset(info)
    conf = Path(info["conf"]).read_bytes()
    nowhere = str(tmp_path / "absent")
    variables = role_vars(info, tmp_path, "disabled", apache_stapling_layout="auto", apache_stapling_server="auto",
                          apache_stapling_detect_ea4_marker=nowhere, apache_stapling_detect_debian_conf=nowhere,
                          apache_stapling_detect_rhel_conf=nowhere, apache_stapling_detect_litespeed_ctl=nowhere,
                          apache_stapling_ea4_paths_conf=info["paths_conf"] if info["flavor"] == "ea4" else nowhere,
                          apache_stapling_detect_ea3_includes=info["includes"] if info["flavor"] == "ea3" else nowhere)
    outcome = run_role(tmp_path, variables, check=True)
    assert not outcome["failed"], outcome
    result = outcome["result"]
    assert (result["layout"], result["server"]) == (f"cpanel_{info['flavor']}", "apache")
    assert result["cpanel_rebuild"]["ran"] is False and result["cpanel_rebuild"]["needed"] == [str(include_file(info))]
    assert not include_file(info).exists() and Path(info["conf"]).read_bytes() == conf
    assert rebuild_backups(tmp_path) == [] and "rebuildhttpdconf" not in Path(info["calls"]).read_text()
    assert probe(info["port"], "good.lab.test").verdict == "good"
