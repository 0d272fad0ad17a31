"""Start, wait for and stop the lab's daemons: bounded waits, PIDs only, never names."""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path


class LabError(RuntimeError):
    """Something in the lab did not come up or go down as expected."""


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (killed daemons linger as Z briefly)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(pid_file: Path) -> int | None:
    try:
        text = Path(pid_file).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def stop_pid(pid: int | None, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Stop one process we started, by PID; escalate to SIGKILL after ``timeout``."""
    if not pid or not pid_alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    try:
        wait_until(lambda: not pid_alive(pid), timeout, f"pid {pid} to exit")
    except LabError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not pid_alive(pid), 5.0, f"pid {pid} to exit after SIGKILL")
