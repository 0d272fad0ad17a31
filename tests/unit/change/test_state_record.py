"""state_record: the disable record and the run lock on the host."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change.state_record import (
    RecordError,
    RunLock,
    StateRecord,
)
from ansible_collections.ocsp.stapling.plugins.modules.stapling_record import run


class Clock:
    def __init__(self, start: float = 1_700_000_000.0):
        self.value = start

    def __call__(self) -> float:
        return self.value


APACHE = {"server": "apache", "changes": ["/etc/apache2/conf-available/zz-ocsp-stapling.conf"],
          "previous": {"SSLUseStapling": "on"}, "backups": ["/var/backups/ocsp.stapling/x"]}
NGINX = {"server": "nginx", "changes": ["/etc/nginx/conf.d/zz.conf"], "previous": {"ssl_stapling": "on"}}


def test_write_creates_record_with_who_why_when_and_mode_0640(tmp_path):
    path = tmp_path / "sub" / "state.json"
    changed, record = StateRecord(str(path), now=Clock()).write("run-1", "responder down", "INC-1", [APACHE])
    assert changed
    on_disk = json.loads(path.read_text())
    assert on_disk == record
    assert on_disk["disabled_by"] == "ocsp.stapling"
    assert on_disk["disabled_at"] == "2023-11-14T22:13:20Z"
    assert on_disk["reason"] == "responder down" and on_disk["ticket"] == "INC-1" and on_disk["run_id"] == "run-1"
    assert on_disk["servers"][0]["previous"] == {"SSLUseStapling": "on"}
    assert on_disk["observations"]["consecutive_good"] == 0
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".ocsp-stapling-")]


def test_second_write_keeps_first_disable_and_reports_no_change(tmp_path):
    clock = Clock()
    record = StateRecord(str(tmp_path / "state.json"), now=clock)
    record.write("run-1", "responder down", "INC-1", [APACHE])
    clock.value += 600
    changed, again = record.write("run-2", "another reason", "INC-2", [dict(APACHE, previous={"SSLUseStapling": "off"})])
    assert not changed
    assert again["run_id"] == "run-1" and again["reason"] == "responder down"
    assert again["servers"][0]["previous"] == {"SSLUseStapling": "on"}


def test_write_merges_new_server_and_restarts_count(tmp_path):
    record = StateRecord(str(tmp_path / "state.json"), now=Clock())
    record.write("run-1", "r", "", [APACHE])
    record.observe(True, "ok", "run-x", 3)
    changed, merged = record.write("run-2", "", "", [NGINX])
    assert changed
    assert [s["server"] for s in merged["servers"]] == ["apache", "nginx"]
    assert merged["runs"][0]["run_id"] == "run-2"
    assert merged["observations"]["consecutive_good"] == 0


def test_observe_counts_consecutive_good_and_resets_on_failure(tmp_path):
    record = StateRecord(str(tmp_path / "state.json"), now=Clock())
    record.write("run-1", "r", "", [APACHE])
    assert record.observe(True, "", "a", 2)[2] is False
    changed, current, ready = record.observe(True, "", "b", 2)
    assert changed and ready and current["observations"]["consecutive_good"] == 2
    changed, current, ready = record.observe(False, "timeout", "c", 2)
    assert changed and not ready and current["observations"]["consecutive_good"] == 0
    assert current["observations"]["last"]["detail"] == "timeout"
    # Still failing: nothing new to write, the outage run changes nothing.
    changed, current, ready = record.observe(False, "timeout", "d", 2)
    assert not changed and current["observations"]["consecutive_good"] == 0


def test_first_failure_is_written_then_repeated_failures_are_not(tmp_path):
    record = StateRecord(str(tmp_path / "state.json"), now=Clock())
    record.write("run-1", "r", "", [APACHE])
    assert record.observe(False, "down", "a", 2)[0] is True
    assert record.observe(False, "down", "b", 2)[0] is False


def test_observe_without_record_counts_nothing(tmp_path):
    path = tmp_path / "state.json"
    changed, current, ready = StateRecord(str(path)).observe(True, "", "a", 1)
    assert (changed, current, ready) == (False, None, False)
    assert not path.exists()


def test_history_is_bounded(tmp_path):
    record = StateRecord(str(tmp_path / "state.json"), now=Clock())
    record.write("run-1", "r", "", [APACHE])
    for index in range(30):
        record.observe(index % 2 == 0, "", str(index), 100)
    assert len(record.read()["observations"]["history"]) == 20


def test_clear_removes_and_returns_the_record(tmp_path):
    path = tmp_path / "state.json"
    record = StateRecord(str(path), now=Clock())
    record.write("run-1", "r", "", [APACHE])
    changed, removed = record.clear()
    assert changed and removed["run_id"] == "run-1" and not path.exists()
    assert record.clear() == (False, None)


def test_check_mode_reports_and_writes_nothing(tmp_path):
    path = tmp_path / "state.json"
    changed, record = StateRecord(str(path), check_mode=True).write("run-1", "r", "", [APACHE])
    assert changed and record["run_id"] == "run-1" and not path.exists()
    StateRecord(str(path)).write("run-1", "r", "", [APACHE])
    before = path.read_text()
    assert StateRecord(str(path), check_mode=True).observe(True, "", "x", 1)[0] is True
    assert StateRecord(str(path), check_mode=True).clear()[0] is True
    assert path.read_text() == before


def test_foreign_or_corrupt_record_fails_with_next_step(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"disabled_by": "someone-else"}')
    with pytest.raises(RecordError, match="someone-else.*move the file aside"):
        StateRecord(str(path)).read()
    path.write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON.*move it aside"):
        StateRecord(str(path)).read()


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    clock = Clock()
    lock = RunLock(str(tmp_path / "run.lock"), now=clock)
    changed, held, warnings = lock.acquire("scheduled-1", 600, pid=4242, owner="cron on ctl01")
    assert changed and not warnings and held["expires_at"] == "2023-11-14T22:23:20Z"
    with pytest.raises(RecordError) as exc:
        RunLock(str(tmp_path / "run.lock"), now=clock).acquire("manual-2", 600)
    message = str(exc.value)
    assert "scheduled-1" in message and "4242" in message and "cron on ctl01" in message
    assert "2023-11-14T22:23:20Z" in message and "remove" in message


def test_lock_is_reentrant_for_the_same_run(tmp_path):
    lock = RunLock(str(tmp_path / "run.lock"), now=Clock())
    lock.acquire("run-1", 600)
    assert lock.acquire("run-1", 600)[0] is False


def test_stale_lock_is_taken_over_with_a_warning(tmp_path):
    clock = Clock()
    RunLock(str(tmp_path / "run.lock"), now=clock).acquire("crashed", 60, pid=1)
    clock.value += 61
    changed, held, warnings = RunLock(str(tmp_path / "run.lock"), now=clock).acquire("next", 60)
    assert changed and held["run_id"] == "next"
    assert "crashed" in warnings[0] and "expired" in warnings[0]
    assert json.loads((tmp_path / "run.lock").read_text())["run_id"] == "next"


def test_unlock_only_releases_own_lock(tmp_path):
    path = tmp_path / "run.lock"
    lock = RunLock(str(path), now=Clock())
    lock.acquire("owner", 600)
    changed, held, warnings = lock.release("intruder")
    assert not changed and path.exists() and "owner" in warnings[0]
    assert lock.release("owner")[0] is True and not path.exists()
    assert lock.release("owner") == (False, None, [])


def test_check_mode_lock_fails_when_held_and_creates_nothing(tmp_path):
    path = tmp_path / "run.lock"
    assert RunLock(str(path), check_mode=True).acquire("a", 600)[0] is True
    assert not path.exists()
    RunLock(str(path)).acquire("a", 600)
    with pytest.raises(RecordError):
        RunLock(str(path), check_mode=True).acquire("b", 600)


def _params(tmp_path, **kwargs):
    params = dict(action="read", path=str(tmp_path / "state.json"), lock_path=None, run_id="r1", reason="",
                  ticket="", servers=[], good=None, detail="", required_good=2, lock_ttl=600, pid=None, owner="")
    params.update(kwargs)
    return params


def test_module_run_reports_exists_count_and_ready(tmp_path):
    assert run(_params(tmp_path), False)["exists"] is False
    result = run(_params(tmp_path, action="write", servers=[APACHE], reason="down"), False)
    assert result["changed"] and result["exists"]
    run(_params(tmp_path, action="observe", good=True), False)
    result = run(_params(tmp_path, action="observe", good=True), False)
    assert result["ready"] and result["consecutive_good"] == 2 and "2 of 2" in result["message"]
    result = run(_params(tmp_path, action="clear"), False)
    assert result["changed"] and result["exists"] is False


def test_module_lock_defaults_next_to_the_record(tmp_path):
    result = run(_params(tmp_path, action="lock"), False)
    assert (tmp_path / "run.lock").exists() and result["lock"]["run_id"] == "r1"
    assert run(_params(tmp_path, action="unlock"), False)["changed"] is True
    assert not (tmp_path / "run.lock").exists()
    assert os.listdir(tmp_path) == []
