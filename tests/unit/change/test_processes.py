"""A server's worker generation as /proc shows it, and the keeper waiting for it after a reload.

The "server" is a master process the test starts with one worker child; a reload that
does not end the old worker must be reported as not settled."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change.processes import (
    read_pid, still_running, wait_gone, workers)
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import Keeper
from tests.unit.ocsp_helpers import make_pki

MASTER = ("import subprocess, sys, time\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
          "print(child.pid, flush=True)\n"
          "time.sleep(60)\n")


@dataclass
class Server:
    master: subprocess.Popen
    worker: int
    pid_file: str


@pytest.fixture
def server(tmp_path):
    master = subprocess.Popen([sys.executable, "-c", MASTER], stdout=subprocess.PIPE, text=True)
    worker = int(master.stdout.readline())
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{master.pid}\n")
    yield Server(master, worker, str(pid_file))
    for pid in (worker, master.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    master.wait(timeout=10)
    master.stdout.close()


def test_the_workers_are_the_live_children_of_the_master(server):
    assert {pid for pid, _started in workers(server.master.pid)} == {server.worker}
    assert workers(None) == set()


def test_a_generation_is_gone_once_its_workers_exit_even_before_they_are_reaped(server):
    generation = workers(server.master.pid)
    assert still_running(generation) == [server.worker]
    os.kill(server.worker, signal.SIGKILL)               # the master never reaps it: a zombie
    assert wait_gone(generation, timeout=10) == []


def test_a_reused_pid_is_not_the_old_worker(server):
    (pid, started), = workers(server.master.pid)
    assert still_running({(pid, started + "0")}) == []


def test_the_wait_is_bounded_and_names_what_still_runs(server):
    ticks = iter(range(100))
    left = wait_gone(workers(server.master.pid), timeout=3, clock=lambda: next(ticks), sleep=lambda _seconds: None)
    assert left == [server.worker]


def test_read_pid_reads_only_a_number(tmp_path):
    (tmp_path / "ok").write_text("123\n")
    (tmp_path / "bad").write_text("12a\n")
    assert read_pid(str(tmp_path / "ok")) == 123
    assert read_pid(str(tmp_path / "bad")) is None
    assert read_pid(str(tmp_path / "missing")) is None and read_pid(None) is None


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("settle"))


def keeper_with(pki, tmp_path, pid_file, reload_command):
    spec = {"name": "good", "cert": str(pki.leaves["good"].cert_path), "issuer": str(pki.intermediate.cert_path),
            "url": "http://127.0.0.1:9/"}
    return Keeper([spec], state_dir=str(tmp_path / "state"), reload_command=reload_command,
                  pid_file=pid_file, settle_timeout=0.3)


def test_the_keeper_reports_a_reload_settled_once_the_old_workers_are_gone(pki, tmp_path, server):
    keeper = keeper_with(pki, tmp_path, server.pid_file, ["kill", str(server.worker)])
    result = keeper._apply_server([])   # pylint: disable=protected-access
    assert result["ok"] and result["settled"] is True and "warning" not in result


def test_the_keeper_warns_when_old_workers_outlive_the_wait(pki, tmp_path, server):
    keeper = keeper_with(pki, tmp_path, server.pid_file, ["true"])
    result = keeper._apply_server([])   # pylint: disable=protected-access
    assert result["ok"] and result["settled"] is False
    assert str(server.worker) in result["warning"] and "worker_shutdown_timeout" in result["warning"]


def test_without_a_pid_file_the_keeper_does_not_claim_the_reload_settled(pki, tmp_path):
    spec = {"name": "good", "cert": str(pki.leaves["good"].cert_path), "issuer": str(pki.intermediate.cert_path)}
    keeper = Keeper([spec], state_dir=str(tmp_path / "state"), reload_command=["true"])
    assert keeper._apply_server([])["settled"] is None   # pylint: disable=protected-access
