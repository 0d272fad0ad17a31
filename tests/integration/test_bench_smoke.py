"""Each part of bench/bench_fleet.py at a tiny size, so the benchmarks cannot rot.

Nothing here asserts a timing (benches print, tests do not time); each test asserts that the
part ran its baseline and its measurement on real parts and recorded both.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.ansible_run import REPO, ansible_env


def run_part(part: str, tmp_path) -> list[dict]:
    output = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_fleet.py"), "--smoke", "--only", part,
                           "--output", str(output)], capture_output=True, text=True, timeout=1200, cwd=REPO,
                          stdin=subprocess.DEVNULL, env=ansible_env(), check=False)
    assert done.returncode == 0, f"bench {part} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    record = json.loads(output.read_text())
    assert record["smoke"] is True
    rows = [row for row in record["rows"] if row["part"] == part]
    assert rows, record
    for row in rows:
        for key in ("baseline_s", "measured_s"):
            assert row[key]["runs"] >= 1 and row[key]["min"] > 0, row
        assert row["ratio"] and row["ratio"] > 0, row
        # The table printed names every row.
        assert row["what"][:46] in done.stdout, done.stdout
    return rows


@pytest.mark.parametrize("part,done,count", [("P1", "serial_answered", "certificates"),
                                             ("P2", "serial_stapled", "vhosts"),
                                             ("P5", "manual_answered_good", "vhosts")])
def test_probe_parts_run_their_loop_and_the_collection(part, done, count, tmp_path):
    rows = run_part(part, tmp_path)
    for row in rows:
        # The lab answers correctly: the baseline loop got every answer, so it did real work.
        assert row[done] == row[count], row
    if part == "P1":
        assert rows[0]["bound_s"] == round(rows[0]["certificates"] / rows[0]["concurrency"] * rows[0]["delay_s"], 3)


def test_discovery_part_reports_compact_bytes_below_full(tmp_path):
    rows = run_part("P3", tmp_path)
    sized = [row for row in rows if "vhosts" in row]
    assert len(sized) == 2 and any(row["what"].startswith("growth") for row in rows)
    for row in sized:
        assert row["bytes_compact"] * 3 < row["bytes_full"], row


def test_fleet_part_counts_tasks_and_cpu_per_host(tmp_path):
    rows = run_part("P4", tmp_path)
    assert [row["what"].split(",")[0] for row in rows] == ["check_stapling", "disable_stapling"]
    for row in rows:
        assert row["tasks_per_host"] > 0 and row["cpu_s_per_host_n"] > 0, row
