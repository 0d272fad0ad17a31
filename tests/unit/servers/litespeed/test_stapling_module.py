"""litespeed_stapling module, run as Ansible runs it (a subprocess reading its arguments
from a JSON file) against real-format trees and stand-in lswsctrl / openlitespeed scripts
that record their calls. LiteSpeed itself cannot be installed here."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import unshare_available
from tests.unit.paths import FIXTURES as UNIT_FIXTURES, REPO

COLLECTIONS = REPO / ".cache" / "collections"
FIXTURES = UNIT_FIXTURES / "litespeed"
MODULE = "ansible_collections.ocsp.stapling.plugins.modules.litespeed_stapling"

STAND_IN = """#!/bin/sh
# Stand-in for LiteSpeed's {name}: record the call, exit with the code in {name}.rc (default 0).
echo "$*" >> "{log}"
[ -f "{rc}" ] && exit "$(cat "{rc}")"
exit 0
"""


def make_tree(tmp_path: Path, flavor: str) -> Path:
    root = tmp_path / flavor
    shutil.copytree(FIXTURES / flavor, root)
    (root / "conf" / "cert").mkdir()
    for name in ("example.key", "example.crt", "ca.pem"):
        (root / "conf" / "cert" / name).write_text("-----BEGIN PLACEHOLDER-----\n")
    (root / "bin").mkdir()
    for name in ("lswsctrl", "openlitespeed"):
        script = root / "bin" / name
        script.write_text(STAND_IN.format(name=name, log=root / (name + ".log"), rc=root / (name + ".rc")))
        script.chmod(0o755)
    return root


def role_vars(root: Path, tmp_path: Path, **extra) -> dict:
    """The litespeed role's variables for a disable of this stand-in tree (its scripts, a private
    state file and backup directory), plus ``extra``."""
    values = {
        "litespeed_server_root": str(root),
        "litespeed_stapling_state": "disabled",
        "litespeed_state_file": str(tmp_path / "state" / "litespeed-originals.json"),
        "litespeed_backup_dir": str(tmp_path / "backups"),
        "litespeed_configtest_command": f"{root}/bin/openlitespeed -t",
        "litespeed_restart_command": f"{root}/bin/lswsctrl restart",
    }
    values.update(extra)
    return values


def calls(root: Path, name: str = "lswsctrl") -> list:
    log = root / (name + ".log")
    return log.read_text().splitlines() if log.exists() else []


def run(tmp_path: Path, check: bool = False, diff: bool = False, **args) -> dict:
    args_file = tmp_path / "args.json"
    args.setdefault("backup_dir", str(tmp_path / "backups"))
    args.setdefault("state_file", str(tmp_path / "state" / "litespeed-originals.json"))
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(
        args, _ansible_check_mode=check, _ansible_diff=diff,
        _ansible_tmpdir=str(tmp_path), _ansible_remote_tmp=str(tmp_path),
        _ansible_keep_remote_files=False)}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(COLLECTIONS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", MODULE, str(args_file)], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), timeout=60, check=False)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail("module printed no JSON: stdout=%r stderr=%r" % (proc.stdout, proc.stderr))


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "conf").rglob("*")) if p.is_file()}


@pytest.mark.parametrize("flavor", ["ols", "lsws"])
def test_enable_changes_files_restarts_once_then_is_idempotent(tmp_path, flavor):
    root = make_tree(tmp_path, flavor)
    common = dict(server_root=str(root), max_age=7200, configtest_command="%s/bin/openlitespeed -t" % root)
    first = run(tmp_path, **common)
    assert first["changed"] is True, first
    assert first["restarted"] is True
    assert calls(root) == ["restart"]
    assert first["files"] and all(os.path.isfile(f) for f in first["files"])
    assert len(first["backups"]) == len(first["files"]) and all(os.path.isfile(b) for b in first["backups"])
    # the config test runs on OpenLiteSpeed only (LSWS -t checks the license)
    assert calls(root, "openlitespeed") == (["-t"] if flavor == "ols" else [])
    # a second run finds nothing to do and does not restart
    second = run(tmp_path, **common)
    assert second["changed"] is False and second["restarted"] is False and second["files"] == []
    assert calls(root) == ["restart"]


def test_check_mode_with_diff_reports_but_writes_and_restarts_nothing(tmp_path):
    root = make_tree(tmp_path, "ols")
    before = snapshot(root)
    result = run(tmp_path, check=True, diff=True, server_root=str(root), state="enabled",
                 responder="http://ocsp.example.test")
    assert result["changed"] is True and result["restarted"] is False
    assert snapshot(root) == before and calls(root) == []
    main = str(root / "conf" / "httpd_config.conf")
    diff = {d["before_header"]: d for d in result["diff"]}
    assert set(diff) == set(result["files"]) and main in diff
    assert "ocspResponder           http://ocsp.example.test" in diff[main]["after"]
    assert "ocspResponder" not in diff[main]["before"]


def test_no_diff_key_without_diff_mode(tmp_path):
    root = make_tree(tmp_path, "ols")
    assert "diff" not in run(tmp_path, check=True, server_root=str(root))


def test_restart_always_restarts_even_without_change(tmp_path):
    """OpenLiteSpeed keeps stapling off after one bad responder answer until a restart."""
    root = make_tree(tmp_path, "ols")
    run(tmp_path, server_root=str(root))
    result = run(tmp_path, server_root=str(root), restart="always")
    assert result["files"] == [] and result["changed"] is True and result["restarted"] is True
    assert calls(root) == ["restart", "restart"]


def test_restart_only_with_an_empty_scope_touches_no_setting(tmp_path):
    """The runbook's recovery restart: no listener or vhost in scope, so a listener an
    operator left with stapling off stays off; only the graceful restart happens."""
    root = make_tree(tmp_path, "ols")
    before = snapshot(root)
    result = run(tmp_path, server_root=str(root), state="enabled", listeners=[], vhosts=[],
                 restart="always")
    assert result["files"] == [] and result["restarted"] is True
    assert snapshot(root) == before
    assert calls(root) == ["restart"]


def test_restart_never_writes_without_restarting(tmp_path):
    root = make_tree(tmp_path, "lsws")
    result = run(tmp_path, server_root=str(root), state="disabled", restart="never")
    assert result["changed"] is True and result["restarted"] is False and calls(root) == []
    assert "<enableStapling>0</enableStapling>" in (root / "conf" / "httpd_config.xml").read_text()


def test_failed_configtest_restores_files_and_does_not_restart(tmp_path):
    root = make_tree(tmp_path, "ols")
    before = snapshot(root)
    (root / "openlitespeed.rc").write_text("1")
    result = run(tmp_path, server_root=str(root), configtest_command="%s/bin/openlitespeed -t" % root)
    assert result.get("failed") is True
    # the candidate is tested before it goes live (private mount namespace; we run as root)
    assert "failed configtest" in result["msg"] and "No live file was changed" in result["msg"]
    assert result["configtest"]["ran"] is True and result["configtest"]["passed"] is False
    assert {k: v for k, v in snapshot(root).items() if not k.endswith("~")} == before
    assert calls(root) == [] and result["restarted"] is False


def test_failed_restart_rolls_back_and_restarts_again(tmp_path):
    root = make_tree(tmp_path, "lsws")
    original = (root / "conf" / "httpd_config.xml").read_bytes()
    (root / "lswsctrl.rc").write_text("3")
    result = run(tmp_path, server_root=str(root), state="disabled")
    assert result.get("failed") is True
    assert "exited 3" in result["msg"] and "old configuration was restored" in result["msg"]
    assert result["rolled_back"] is True and result["restarted"] is False
    assert (root / "conf" / "httpd_config.xml").read_bytes() == original
    assert calls(root) == ["restart", "restart"]  # the change, then the rollback


def test_missing_certificate_blocks_enable_before_anything_is_touched(tmp_path):
    root = make_tree(tmp_path, "lsws")
    (root / "conf" / "cert" / "ca.pem").unlink()
    before = snapshot(root)
    result = run(tmp_path, server_root=str(root))
    assert result.get("failed") is True
    assert "vhost Example: CACertFile %s does not exist" % (root / "conf/cert/ca.pem") in result["msg"]
    assert snapshot(root) == before and calls(root) == []


def test_missing_certificate_only_warns_when_disabling(tmp_path):
    root = make_tree(tmp_path, "lsws")
    (root / "conf" / "cert" / "ca.pem").unlink()
    result = run(tmp_path, server_root=str(root), state="disabled")
    assert result["changed"] is True and not result.get("failed")
    # ansible-core 2.19 returns warnings as structured events; compare their text
    warnings = [json.dumps(w) for w in result.get("warnings", [])]
    assert any("CACertFile" in w and "not blocking" in w for w in warnings), warnings


def test_clear_cache_removes_files_keeps_directories_and_restarts(tmp_path):
    root = make_tree(tmp_path, "ols")
    run(tmp_path, server_root=str(root))  # config now as wanted
    cache = root / "tmp" / "ocspcache"
    cache.mkdir(parents=True)
    (cache / "0a1b2c.rsp").write_bytes(b"old response")
    dirs = [str(cache), str(root / "temp" / "ocspcache")]
    checked = run(tmp_path, check=True, server_root=str(root), clear_cache=True, cache_dirs=dirs)
    assert checked["changed"] is True and (cache / "0a1b2c.rsp").exists()
    result = run(tmp_path, server_root=str(root), clear_cache=True, cache_dirs=dirs)
    assert result["cache_files_removed"] == [str(cache / "0a1b2c.rsp")]
    assert cache.is_dir() and list(cache.iterdir()) == []
    assert result["files"] == [] and result["restarted"] is True
    assert calls(root) == ["restart", "restart"]
    again = run(tmp_path, server_root=str(root), clear_cache=True, cache_dirs=dirs)
    assert again["changed"] is False


def test_unknown_listener_and_bad_responder_are_explained(tmp_path):
    root = make_tree(tmp_path, "ols")
    result = run(tmp_path, server_root=str(root), listeners=["Nope"])
    assert result["failed"] is True and "Found: Default, SSL" in result["msg"]
    result = run(tmp_path, server_root=str(root), responder="https://ocsp.example.test")
    assert result["failed"] is True and "http:// URL" in result["msg"]


def test_missing_restart_command_fails_before_writing(tmp_path):
    root = make_tree(tmp_path, "ols")
    before = snapshot(root)
    result = run(tmp_path, server_root=str(root), restart_command="/nonexistent/lswsctrl restart")
    assert result["failed"] is True and "restart_command" in result["msg"]
    assert snapshot(root) == before


def test_not_a_litespeed_root(tmp_path):
    result = run(tmp_path, server_root=str(tmp_path / "nothing"))
    assert result["failed"] is True and "Set server_root" in result["msg"]


# -- the shared change shape: candidate test, backups, verification, rollback ---------------

@pytest.mark.skipif(not unshare_available()[0], reason="private mount namespaces need root and unshare(1)")
def test_candidate_is_config_tested_before_the_live_files_change(tmp_path):
    root = make_tree(tmp_path, "ols")
    main = root / "conf" / "httpd_config.conf"
    seen = tmp_path / "seen.conf"
    # The "config test" copies what it reads at the live path (tmp_path is outside the
    # namespace's replaced directories, so the copy survives it).
    test = tmp_path / "configtest.sh"
    test.write_text("#!/bin/sh\ncp %s %s\n" % (main, seen))
    test.chmod(0o755)
    before = main.read_bytes()
    result = run(tmp_path, server_root=str(root), configtest_command=str(test))
    assert result["configtest"]["passed"] is True, result
    assert result["configtest"]["method"] == "namespace"
    assert b"enableStapling          1" in seen.read_bytes()     # it read the candidate
    assert main.read_bytes() != before                            # which then went live
    manifest = json.loads((Path(result["backup_dir"]) / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} == set(result["files"])
    backup = [f["backup"] for f in manifest["files"] if f["path"] == str(main)][0]
    assert Path(backup).read_bytes() == before
    assert str(tmp_path / "backups") in result["backup_dir"]


def test_enterprise_reports_why_no_configtest_ran(tmp_path):
    root = make_tree(tmp_path, "lsws")
    result = run(tmp_path, server_root=str(root), configtest_command="%s/bin/openlitespeed -t" % root)
    assert result["configtest"]["ran"] is False and "license" in result["configtest"]["skipped"]
    warnings = [json.dumps(w) for w in result.get("warnings", [])]
    assert not any("not validated" in w for w in warnings), warnings
    assert calls(root, "openlitespeed") == []


def test_non_utf8_bytes_survive_the_change(tmp_path):
    root = make_tree(tmp_path, "ols")
    vhost = root / "conf" / "vhosts" / "Example" / "vhconf.conf"
    latin1 = b"# Caf\xe9 \xab\xe0 la carte\xbb, written by hand in Latin-1\n"
    original = latin1 + vhost.read_bytes()
    vhost.write_bytes(original)
    result = run(tmp_path, check=True, diff=True, server_root=str(root), max_age=600)
    assert str(vhost) in result["files"]
    result = run(tmp_path, server_root=str(root), max_age=600)
    assert result["changed"] is True and not result.get("failed"), result
    data = vhost.read_bytes()
    assert data.startswith(latin1)
    assert data.replace(b"ocspRespMaxAge          600", b"ocspRespMaxAge          86400") == original
    assert any(Path(b).read_bytes() == original for b in result["backups"])


def test_fatal_error_log_line_after_restart_rolls_back(tmp_path):
    root = make_tree(tmp_path, "ols")
    main = root / "conf" / "httpd_config.conf"
    original = main.read_bytes()
    log = root / "logs" / "error.log"
    log.parent.mkdir()
    log.write_text("2024-01-01 00:00:00.000 [ERROR] [SSL] Config SSL Context with Certificate File: "
                   "old line, before this run\n")
    # A restart that fails to load the listener's certificate whenever the responder is pinned.
    (root / "bin" / "lswsctrl").write_text(
        "#!/bin/sh\necho \"$*\" >> %s/lswsctrl.log\n"
        "if grep -q ocspResponder %s; then echo '2024-01-01 00:00:01.000 [ERROR] [SSL] Config SSL Context "
        "with Certificate File: %s/conf/cert/example.crt and Key File: ... get SSL error' >> %s; fi\n"
        % (root, main, root, log))
    result = run(tmp_path, server_root=str(root), responder="http://ocsp.example.test", verify_timeout=5)
    assert result.get("failed") is True, result
    assert main.read_bytes() == original
    assert result["rolled_back"] is True and calls(root) == ["restart", "restart"]
    assert "example.crt" in result["msg"] and "old configuration was restored" in result["msg"]
    assert len(result["verification"]["fatal_lines"]) == 1     # the old line is not counted
    assert result["recovery"]["verification"]["ok"] is True


def test_endpoint_that_does_not_answer_tls_rolls_back(tmp_path):
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                                              # nothing listens there
    root = make_tree(tmp_path, "lsws")
    original = (root / "conf" / "httpd_config.xml").read_bytes()
    result = run(tmp_path, server_root=str(root), state="disabled", verify_timeout=1,
                 verify_endpoints=[{"port": port, "server_name": "www.example.test"}])
    assert result.get("failed") is True
    assert "TLS handshakes failed" in result["msg"]
    assert (root / "conf" / "httpd_config.xml").read_bytes() == original
    assert calls(root) == ["restart", "restart"]


def test_verify_listeners_probes_the_planned_listener_addresses(tmp_path):
    root = make_tree(tmp_path, "ols")
    main = root / "conf" / "httpd_config.conf"
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    main.write_bytes(main.read_bytes().replace(b"*:443", b"127.0.0.1:%d" % port))
    result = run(tmp_path, server_root=str(root), verify_listeners=True, verify_timeout=1)
    assert result.get("failed") is True
    assert result["verification"]["endpoints"][0]["port"] == port
    assert result["probe_endpoints"] == [{"host": "127.0.0.1", "port": port, "listener": "SSL"}]


def test_clear_cache_with_restart_never_removes_files_without_restarting(tmp_path):
    root = make_tree(tmp_path, "ols")
    run(tmp_path, server_root=str(root))
    cache = root / "tmp" / "ocspcache"
    cache.mkdir(parents=True)
    (cache / "0a1b2c.rsp").write_bytes(b"old response")
    result = run(tmp_path, server_root=str(root), clear_cache=True, cache_dirs=[str(cache)], restart="never")
    assert result["changed"] is True and result["restarted"] is False
    assert result["cache_files_removed"] == [str(cache / "0a1b2c.rsp")] and list(cache.iterdir()) == []
    assert calls(root) == ["restart"]                          # only the first run's


def test_backup_false_keeps_no_copy_next_to_the_file_but_still_backs_up(tmp_path):
    root = make_tree(tmp_path, "lsws")
    result = run(tmp_path, server_root=str(root), state="disabled", backup=False)
    assert result["backups"] == [] and not list((root / "conf").rglob("*~"))
    assert result["backup_dir"] and (Path(result["backup_dir"]) / "manifest.json").exists()
