"""How the modules end (module_utils/module_main.py), seen from outside: each module run
directly as Ansible runs it on a host (its file, with the arguments as JSON), so the JSON
it prints is what a playbook gets."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from tests.unit.paths import REPO

COLLECTIONS = REPO / ".cache" / "collections"


def run(module: str, args: dict, tmp_path: Path) -> tuple[int, dict]:
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_tmpdir=str(tmp_path))}))
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    done = subprocess.run([sys.executable, "-m", f"ansible_collections.ocsp.stapling.plugins.modules.{module}",
                           str(args_file)], capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL, check=False)
    return done.returncode, json.loads(done.stdout)


def test_an_engine_failure_returns_its_result_and_the_engine_warnings(tmp_path):
    target = tmp_path / "site.conf"
    target.write_text("old\n")
    rc, out = run("stapling_change", {
        "files": [{"path": str(target), "content": "new\n"}],
        "configtest_command": ["sh", "-c", "echo 'AH00526: Syntax error' >&2; exit 1"],
        "reload_command": ["true"], "backup_dir": str(tmp_path / "backups"),
        "candidate_validation": "swap"}, tmp_path)
    assert rc == 1 and out["failed"] is True, out
    assert "configtest" in out["msg"].lower() and "AH00526" in json.dumps(out["configtest"]), out
    assert "warnings_list" in out and out["reload"]["ran"] is False
    assert "exception" not in out
    assert target.read_text() == "old\n"


def test_a_planning_refusal_is_the_message_alone(tmp_path):
    args = {"state": "disabled", "layout": "debian", "main_config": str(tmp_path / "missing" / "apache2.conf")}
    rc, out = run("apache_stapling_plan", args, tmp_path)
    assert rc == 1 and out["failed"] is True, out
    assert "missing" in out["msg"] and "exception" not in out
