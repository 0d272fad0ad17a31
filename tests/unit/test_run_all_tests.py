"""tests/bin/run-all-tests, the command CI runs: every stage runs even after one fails, the
summary names each stage's result, wall time and CPU, and the exit code is non-zero when any
stage failed. ``make`` is a stand-in here that passes or fails the stage it is given."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from tests.unit.paths import REPO

MAKE = """#!/bin/sh
# The last argument is the target; 'fail' fails, 'five' exits 5 as pytest does with no tests.
for target; do :; done
echo "stand-in make $target" >> "{log}"
case "$target" in fail) exit 1 ;; five) exit 5 ;; esac
exit 0
"""


def run(tmp_path: Path, lanes: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "make.log"
    (bin_dir / "make").write_text(MAKE.format(log=log))
    (bin_dir / "make").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", TEST_LANES=lanes,
               TEST_LOG_DIR=str(tmp_path / "logs"))   # never the logs of a real run around this one
    done = subprocess.run([str(REPO / "tests/bin/run-all-tests")], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)
    return done, log.read_text().splitlines()


def row(stdout: str, stage: str) -> list[str]:
    summary = stdout.split("================ summary ================", 1)[1]
    return next(line.split() for line in summary.splitlines() if line.startswith(stage + " "))


def test_every_stage_runs_and_one_failure_fails_the_run(tmp_path):
    done, calls = run(tmp_path, "ok fail;five ok2")
    assert done.returncode != 0, done.stdout
    # deps once, first; then every stage, the lanes side by side (so in any order).
    assert calls[0] == "stand-in make deps"
    assert sorted(line.split()[-1] for line in calls[1:]) == ["fail", "five", "ok", "ok2"]
    assert row(done.stdout, "ok")[1] == "passed" and row(done.stdout, "ok2")[1] == "passed"
    assert row(done.stdout, "fail")[1] == "FAILED" and row(done.stdout, "five")[1] == "FAILED"
    assert all(value.endswith("s") for value in row(done.stdout, "ok")[2:5]), row(done.stdout, "ok")
    assert "stages: 2 passed, 2 failed" in done.stdout and "CPU" in done.stdout


def test_all_stages_passing_pass_the_run(tmp_path):
    done, calls = run(tmp_path, "ok;ok2")
    assert done.returncode == 0, done.stdout
    assert "stages: 2 passed, 0 failed" in done.stdout
