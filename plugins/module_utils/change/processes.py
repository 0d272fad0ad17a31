# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A server's processes as /proc shows them: its pid file, whether a pid lives, its workers.

A graceful reload only signals the master: nginx starts a new worker generation and tells
the old one to quit, and the old workers keep accepting handshakes with the old
configuration until they have handled that. A change is in effect only once the previous
generation is gone, so callers take :func:`workers` before the reload and
:func:`wait_gone` after it.
"""
from __future__ import annotations

import os
import time


def read_pid(pid_file: str | None) -> int | None:
    if not pid_file:
        return None
    try:
        with open(pid_file) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], start time [19])."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` exists and is not a zombie (a killed parent lingers as Z)."""
    if not pid:
        return False
    fields = _stat_fields(pid)
    if fields is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return fields[0] not in ("Z", "X")


def workers(parent: int | None) -> set[tuple[int, str]]:
    """The live children of ``parent`` as (pid, start time): a reused pid is not the same worker."""
    if not parent:
        return set()
    found = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields and len(fields) > 19 and fields[1] == str(parent) and fields[0] not in ("Z", "X"):
            found.add((int(entry), fields[19]))
    return found


def still_running(generation: set[tuple[int, str]]) -> list[int]:
    """The pids of ``generation`` that still run (same pid, same start time)."""
    left = []
    for pid, started in sorted(generation):
        fields = _stat_fields(pid)
        if fields and len(fields) > 19 and fields[19] == started and fields[0] not in ("Z", "X"):
            left.append(pid)
    return left


def wait_gone(generation: set[tuple[int, str]], timeout: float, interval: float = 0.05,
              clock=time.monotonic, sleep=time.sleep) -> list[int]:
    """Wait (at most ``timeout`` seconds) until every process of ``generation`` has exited.

    Returns the pids still running when time ran out (empty: the old generation is gone).
    """
    deadline = clock() + timeout
    left = still_running(generation)
    while left and clock() < deadline:
        sleep(interval)
        left = still_running(generation)
    return left
