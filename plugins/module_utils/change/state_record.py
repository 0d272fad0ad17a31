# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state record and the run lock this collection keeps on each web server.

Standard library only: this runs on the managed host.

The **record** (default ``/var/lib/ocsp-stapling/state.json``) exists only while stapling
is off *because this collection turned it off*. ``disable_stapling`` writes it (what was
changed, the settings before, when, why, the ticket, the run, the backups);
``reenable_stapling`` adds one responder observation per run (``consecutive_good``
counts answers in a row, a failure resets it) and removes the record once stapling is
back and a good staple is served. An operator who turns stapling off by hand writes no
record, so the scheduled re-enable never touches that host.

The **lock** (default ``run.lock`` next to the record) keeps two runs (the scheduled one
and a manual one) from interleaving on one host. It names its owner (run id, pid, where
it runs from) and expires after a TTL, so a run that crashed does not block the host for
ever: an expired lock is taken over with a warning.

Both are written owner-only or close to it: the record (0640) names the incident, the
ticket and the backup paths, which are the operator's business and their group's
(monitoring), not every local user's; the lock (0600) is only ever read by the runbook.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import time

from ansible_collections.ocsp.stapling.plugins.module_utils.change.atomic_write import write_atomic

RECORD_VERSION = 1
DISABLED_BY = "ocsp.stapling"
HISTORY_LIMIT = 20
#: The record's mode: owner read-write, group read (a monitoring group may read it).
RECORD_MODE = 0o640
#: The lock's mode: only the runbook (root) reads it.
LOCK_MODE = 0o600


class RecordError(Exception):
    """A problem an operator must act on; the message says what and how."""


def utc_iso(timestamp: float) -> str:
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _read_json(path: str, what: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f"The {what} {path} exists but cannot be read ({exc.strerror}). "
                          f"Check its permissions; the runbook must run as the user that owns it.") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"The {what} {path} is not valid JSON ({exc}). It was not written by a complete "
                          f"run of ocsp.stapling; inspect it, move it aside and run again.") from None
    if not isinstance(data, dict):
        raise RecordError(f"The {what} {path} holds {type(data).__name__}, expected a JSON object. "
                          f"Inspect it, move it aside and run again.")
    return data


class StateRecord:
    """Read, write, observe and clear the record at ``path``.

    Every mutating method returns ``(changed, record)``; ``check_mode`` computes the same
    answer and writes nothing.
    """

    def __init__(self, path: str, check_mode: bool = False, mode: int = RECORD_MODE, now=time.time):
        self.path = path
        self.check_mode = check_mode
        self.mode = mode
        self.now = now

    def read(self) -> dict | None:
        record = _read_json(self.path, "state record")
        if record is not None and record.get("disabled_by") != DISABLED_BY:
            raise RecordError(
                f"The state record {self.path} says disabled_by={record.get('disabled_by')!r}, expected "
                f"{DISABLED_BY!r}. Something else writes this path; point the collection's "
                f"'path' elsewhere or move the file aside.")
        return record

    def _save(self, before: dict | None, after: dict | None) -> bool:
        if before == after:
            return False
        if not self.check_mode:
            if after is None:
                os.unlink(self.path)
            else:
                write_atomic(self.path, _dump(after), self.mode)
        return True

    def write(self, run_id: str, reason: str = "", ticket: str = "", servers: list | None = None,
              extra: dict | None = None) -> tuple[bool, dict]:
        """Record a disable. A second disable while the record exists merges into it.

        The first disable's time, run, reason and each server's *previous* settings are
        kept: they describe the state before the incident, which is what re-enable restores.
        Servers not yet in the record are added (and the good-answer count restarts).
        """
        before = self.read()
        stamp = self.now()
        servers = [dict(item) for item in (servers or [])]
        if before is None:
            after = {
                "version": RECORD_VERSION,
                "disabled_by": DISABLED_BY,
                "disabled_at": utc_iso(stamp),
                "disabled_at_timestamp": int(stamp),
                "reason": reason or "",
                "ticket": ticket or "",
                "run_id": run_id,
                "servers": servers,
                "observations": {"consecutive_good": 0, "last": None, "history": []},
            }
            if extra:
                after["extra"] = extra
        else:
            after = json.loads(json.dumps(before))
            known = {item.get("server") for item in after.get("servers", [])}
            added = [item for item in servers if item.get("server") not in known]
            if added:
                after.setdefault("servers", []).extend(added)
                after.setdefault("runs", []).append({"run_id": run_id, "at": utc_iso(stamp),
                                                     "servers": [item.get("server") for item in added]})
                after["observations"] = {"consecutive_good": 0, "last": None, "history": []}
            for key, value in (("reason", reason), ("ticket", ticket)):
                if value and not after.get(key):
                    after[key] = value
        return self._save(before, after), after

    def observe(self, good: bool, detail: str = "", run_id: str = "", required: int = 1) -> tuple[bool, dict | None, bool]:
        """Count one responder observation: ``(changed, record, ready)``.

        ``ready`` is true once ``consecutive_good >= required``. Without a record nothing
        is counted (no disable of ours to undo). A failure while the count is already 0
        rewrites nothing: running the job during an outage changes nothing.
        """
        before = self.read()
        if before is None:
            return False, None, False
        after = json.loads(json.dumps(before))
        obs = after.setdefault("observations", {"consecutive_good": 0, "last": None, "history": []})
        count = int(obs.get("consecutive_good") or 0)
        last = obs.get("last") or {}
        if not good and count == 0 and last.get("good") is False:
            return False, before, False
        stamp = self.now()
        entry = {"at": utc_iso(stamp), "good": bool(good), "detail": detail or "", "run_id": run_id}
        obs["consecutive_good"] = count + 1 if good else 0
        obs["last"] = entry
        obs["history"] = (list(obs.get("history") or []) + [entry])[-HISTORY_LIMIT:]
        ready = obs["consecutive_good"] >= max(int(required), 1)
        return self._save(before, after), after, ready

    def clear(self) -> tuple[bool, dict | None]:
        """Remove the record (stapling is back on); returns what was removed."""
        before = self.read()
        return self._save(before, None), before


class RunLock:
    """An exclusive lock file with owner and expiry."""

    def __init__(self, path: str, check_mode: bool = False, now=time.time):
        self.path = path
        self.check_mode = check_mode
        self.now = now

    def holder(self) -> dict | None:
        return _read_json(self.path, "lock file")

    def _describe(self, holder: dict) -> str:
        return (f"run {holder.get('run_id')!r} (pid {holder.get('pid')}, {holder.get('owner') or 'unknown owner'}) "
                f"since {holder.get('acquired_at')}, expiring at {holder.get('expires_at')}")

    def acquire(self, run_id: str, ttl: int, pid: int | None = None, owner: str = "") -> tuple[bool, dict, list[str]]:
        """Take the lock: ``(changed, lock, warnings)``; raise RecordError when another run holds it."""
        warnings: list[str] = []
        stamp = self.now()
        mine = {"run_id": run_id, "pid": pid, "owner": owner or "",
                "acquired_at": utc_iso(stamp), "acquired_at_timestamp": int(stamp),
                "expires_at": utc_iso(stamp + ttl), "expires_at_timestamp": int(stamp + ttl)}
        holder = self.holder()
        if holder is not None:
            if holder.get("run_id") == run_id:
                return False, holder, warnings      # re-entrant: this run already holds it
            expires = holder.get("expires_at_timestamp")
            if isinstance(expires, (int, float)) and expires > stamp:
                raise RecordError(
                    f"Another ocsp.stapling run holds the lock {self.path}: {self._describe(holder)}. "
                    f"Wait for it to finish (or for the lock to expire) and run again. If that run is "
                    f"known to be dead, remove {self.path} by hand.")
            warnings.append(f"Took over the expired lock {self.path} left by {self._describe(holder)}; "
                            f"that run probably crashed. Check the state record before trusting it.")
            if not self.check_mode:
                write_atomic(self.path, _dump(mine), LOCK_MODE)
            return True, mine, warnings
        if self.check_mode:
            return True, mine, warnings
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o755, exist_ok=True)
        try:
            handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, LOCK_MODE)
        except FileExistsError:
            holder = self.holder() or {}
            raise RecordError(f"Another ocsp.stapling run took the lock {self.path} at the same moment: "
                              f"{self._describe(holder)}. Run again once it has finished.") from None
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(_dump(mine))
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            # A full disk creates the file and then refuses its content: an empty lock left
            # behind would stop every later run on "not valid JSON", so take it away again.
            os.unlink(self.path)
            raise RecordError(f"Could not write the lock {self.path} ({exc.strerror}); nothing was changed. "
                              f"Free space on (or fix) the file system holding {os.path.dirname(self.path)} "
                              f"and run again.") from None
        return True, mine, warnings

    def release(self, run_id: str) -> tuple[bool, dict | None, list[str]]:
        """Drop the lock if this run holds it; never remove another run's lock."""
        holder = self.holder()
        if holder is None:
            return False, None, []
        if holder.get("run_id") != run_id:
            return False, holder, [f"Left the lock {self.path} in place: it belongs to {self._describe(holder)}, "
                                   f"not to run {run_id!r}."]
        if not self.check_mode:
            os.unlink(self.path)
        return True, holder, []
