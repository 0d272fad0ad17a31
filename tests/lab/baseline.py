"""A lab shared by several tests: what it looked like at start, what differs now, and how
to put it back.

    baseline = LabBaseline(lab)          # once, right after the lab started
    assert baseline.differences() == []  # before each test: a leak fails loudly here
    baseline.restore()                   # after each test

Compared and restored: every file (bytes and mode) and symlink under both servers' config
trees, the runbook's state directory (record, lock, backups: absent at start), the error
logs at their paths, the responder's mode, and the servers' master processes (the same
pids: a test that restarted or killed a server is a difference, not something to hide).
``restore`` reloads both servers gracefully, so a staple cached during a fault (Apache's
tryLater) is gone, and waits until each has logged that reload and staples ``good`` again.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from tests.lab.lab import Lab
from tests.lab.processes import LabError, pid_alive, wait_until

#: what each server logs once a reload is in effect (nginx at info level, Apache at any level)
RELOADED = {"nginx": "reconfiguring", "apache": "resuming normal operations"}


def tree_state(*roots: Path) -> dict[str, tuple]:
    """Every file (content, mode) and link (target) under ``roots``."""
    state: dict[str, tuple] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                state[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                state[str(path)] = ("file", path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
            elif path.is_dir():
                state[str(path)] = ("dir", stat.S_IMODE(path.stat().st_mode))
    return state


class LabBaseline:
    def __init__(self, lab: Lab, sites: tuple[str, ...] = ("good",)):
        self.lab = lab
        self.sites = sites
        self.roots = [lab.nginx.conf_dir, lab.apache.conf_dir]
        self.state_dir = lab.directory / "runbook"
        self.tree = tree_state(*self.roots)
        self.pids = self.master_pids()
        self.logs = {name: Path(lab.server(name).error_log) for name in RELOADED}

    def master_pids(self) -> dict[str, int | None]:
        return {"nginx": self.lab.nginx.pid, "apache": self.lab.apache.pid}

    def differences(self) -> list[str]:
        """What is not as it was at start (empty: the lab is at its baseline)."""
        found = []
        now = tree_state(*self.roots)
        for path in sorted(set(self.tree) | set(now)):
            if self.tree.get(path) != now.get(path):
                was = self.tree.get(path, ("absent",))[0]
                found.append(f"{path}: {was} -> {now.get(path, ('absent',))[0]}"
                             + (" (content or mode changed)" if was == now.get(path, ("absent",))[0] else ""))
        if self.state_dir.exists():
            left = sorted(str(p.relative_to(self.state_dir)) for p in self.state_dir.rglob("*"))
            found.append(f"the runbook state directory {self.state_dir} holds {left or 'nothing'}")
        for name, log in self.logs.items():
            if not log.exists():
                found.append(f"{name}'s error log {log} is missing")
        pids = self.master_pids()
        for name, pid in self.pids.items():
            if pids[name] != pid or not pid_alive(pid):
                found.append(f"{name}'s master process changed: pid {pid} -> {pids[name]} "
                             f"(alive: {bool(pids[name]) and pid_alive(pids[name])})")
        mode = self.lab.responder.state()["mode"]
        if mode != "good":
            found.append(f"the responder is in mode {mode!r}, not 'good'")
        return found

    def restore(self) -> None:
        """Put the files, state directory and responder back, reload both servers, and wait
        until each staples ``good`` again. Raises LabError when something cannot be put back."""
        self.lab.responder.set_mode("good")
        now = tree_state(*self.roots)
        for path in sorted(set(now) - set(self.tree), reverse=True):
            target = Path(path)
            if now[path][0] == "dir":
                shutil.rmtree(target)
            else:
                target.unlink()
        for path, entry in sorted(self.tree.items()):
            if now.get(path) == entry:
                continue
            target = Path(path)
            if entry[0] == "dir":
                target.mkdir(exist_ok=True)
                target.chmod(entry[1])
                continue
            if target.is_symlink() or target.exists():
                target.unlink()
            if entry[0] == "link":
                target.symlink_to(entry[1])
            else:
                target.write_bytes(entry[1])
                target.chmod(entry[2])
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        offsets = {name: log.stat().st_size if log.exists() else 0 for name, log in self.logs.items()}
        self.lab.apache.graceful()
        self.lab.nginx.reload()
        for name, marker in RELOADED.items():
            wait_until(lambda name=name, marker=marker: marker in self._since(name, offsets[name]), 30,
                       f"{name} to log {marker!r} after the baseline reload")
        for server in ("nginx", "apache"):
            for site in self.sites:
                self.lab.wait_for_verdict(server, site, "good", timeout=30)
        left = self.differences()
        if left:
            raise LabError("the shared lab could not be put back: " + "; ".join(left))

    def _since(self, name: str, offset: int) -> str:
        log = self.logs[name]
        if not log.exists():
            return ""
        with open(log, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
