"""The state record, the run lock and the change lock are not world-readable.

The record names the incident, the ticket and where the backups of the servers' files
are; the locks name the run and its controller. Each test sets the umask to 0 so the mode
comes from the code and not from the test process's umask.
"""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change import engine
from ansible_collections.ocsp.stapling.plugins.module_utils.change.state_record import (
    LOCK_MODE,
    RECORD_MODE,
    RunLock,
    StateRecord,
)

SERVER = {"server": "nginx", "changes": ["/etc/nginx/conf.d/zz.conf"], "previous": {"ssl_stapling": "on"}}


@pytest.fixture(autouse=True)
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_modes_are_owner_only_or_owner_and_group():
    assert RECORD_MODE == 0o640 and LOCK_MODE == 0o600 and engine.LOCK_MODE == 0o600


def test_record_is_written_0640_and_every_rewrite_keeps_it(tmp_path):
    path = tmp_path / "state.json"
    record = StateRecord(str(path))
    record.write("run-1", "responder down", "INC-1", [SERVER])
    assert mode_of(path) == 0o640
    record.observe(True, "good", "run-2", 3)
    assert mode_of(path) == 0o640


def test_a_record_left_0644_by_an_older_version_is_tightened_on_its_next_write(tmp_path):
    path = tmp_path / "state.json"
    StateRecord(str(path), mode=0o644).write("run-1", "responder down", "", [SERVER])
    assert mode_of(path) == 0o644
    StateRecord(str(path)).observe(True, "good", "run-2", 3)
    assert mode_of(path) == 0o640


def test_run_lock_is_created_0600(tmp_path):
    path = tmp_path / "run.lock"
    RunLock(str(path)).acquire("run-1", 600, pid=4242, owner="cron on ctl01")
    assert mode_of(path) == 0o600


def test_an_expired_lock_taken_over_is_rewritten_0600(tmp_path):
    path = tmp_path / "run.lock"
    path.write_text('{"run_id": "crashed", "expires_at_timestamp": 1}\n')
    os.chmod(path, 0o644)
    changed, held, warnings = RunLock(str(path)).acquire("next", 600)
    assert changed and held["run_id"] == "next" and "expired" in warnings[0]
    assert mode_of(path) == 0o600


def test_change_lock_in_the_backup_directory_is_0600_and_tightened(tmp_path):
    backups = tmp_path / "backups"
    with engine._Lock(str(backups)):  # pylint: disable=protected-access
        assert mode_of(backups / ".lock") == 0o600
    assert mode_of(backups) == 0o700
    os.chmod(backups / ".lock", 0o644)
    with engine._Lock(str(backups)):  # pylint: disable=protected-access
        assert mode_of(backups / ".lock") == 0o600
