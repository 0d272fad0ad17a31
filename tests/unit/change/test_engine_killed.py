"""A run killed between its swap and its reload: the files on disk are new, the server still
runs the old ones, and a rerun finds nothing left to change. The engine notes the swap next
to the backups before it happens (``pending-reload-*.json``) and removes the note once the
reload or the rollback is done, so the rerun reloads anyway, says why, and clears it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeRequest,
    FileSpec,
    StaplingChange,
)
from tests.unit.paths import REPO

ONE_RUN = r"""
import sys
from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeRequest, FileSpec, StaplingChange)
conf, backups, reload = sys.argv[1:4]
StaplingChange(ChangeRequest(files=[FileSpec(path=conf, block="SSLUseStapling off")], configtest_command=["true"],
                             reload_command=[reload], backup_dir=backups, candidate_validation="swap")).run()
"""


def request(conf: Path, backups: Path, reload: Path) -> ChangeRequest:
    return ChangeRequest(files=[FileSpec(path=str(conf), block="SSLUseStapling off")], configtest_command=["true"],
                         reload_command=[str(reload)], backup_dir=str(backups), candidate_validation="swap")


def test_a_rerun_after_a_run_killed_before_its_reload_reloads_and_clears_the_note(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("SSLUseStapling On\n")
    backups = tmp_path / "backups"
    killer = tmp_path / "kill-the-run.sh"
    killer.write_text("#!/bin/sh\nkill -KILL $PPID\n")
    killer.chmod(0o755)
    calls = tmp_path / "calls"
    reload = tmp_path / "reload.sh"
    reload.write_text(f"#!/bin/sh\necho reload >> {calls}\n")
    reload.chmod(0o755)

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / ".cache" / "collections"),
                                                                    os.environ.get("PYTHONPATH")])))
    killed = subprocess.run([sys.executable, "-c", ONE_RUN, str(conf), str(backups), str(killer)],
                            capture_output=True, text=True, timeout=60, env=env, check=False)
    assert killed.returncode == -9, killed.stderr
    assert "SSLUseStapling off" in conf.read_text(), "the swap did not happen before the kill"
    (note,) = backups.glob("pending-reload-*.json")
    assert json.loads(note.read_text())["files"] == [str(conf)]
    assert oct(note.stat().st_mode & 0o777) == "0o600"

    rerun = StaplingChange(request(conf, backups, reload)).run()
    assert [f["changed"] for f in rerun["files"]] == [False]        # nothing left to write ...
    assert rerun["reload"]["ran"] and rerun["changed"], rerun       # ... and reloaded anyway
    assert any("stopped before its reload" in w for w in rerun["warnings"]), rerun["warnings"]
    assert calls.read_text().split() == ["reload"]
    assert not list(backups.glob("pending-reload-*.json")), "the note was not cleared"

    third = StaplingChange(request(conf, backups, reload)).run()
    assert not third["changed"] and not third["reload"]["ran"], third
    assert calls.read_text().split() == ["reload"]


def test_a_completed_run_leaves_no_note(tmp_path):
    conf = tmp_path / "server.conf"
    conf.write_text("SSLUseStapling On\n")
    reload = tmp_path / "reload.sh"
    reload.write_text("#!/bin/sh\nexit 0\n")
    reload.chmod(0o755)
    result = StaplingChange(request(conf, tmp_path / "backups", reload)).run()
    assert result["changed"] and result["reload"]["ran"]
    assert not list((tmp_path / "backups").glob("pending-reload-*.json"))
