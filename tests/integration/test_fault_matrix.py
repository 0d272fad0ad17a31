"""The fault matrix: faults and bad inputs the runbook meets on a production host, each
played through the real playbooks against the loopback lab (nginx and apache2 stapling
``good`` and ``nourl``).

Every case asserts what an operator relies on when things go wrong: the run says what
it found and what to do next; nothing that fails configtest is reloaded; every lab site
still completes a TLS handshake; the state record is intact; and the servers' files are
byte-identical wherever nothing should have changed. ``docs/safety.md`` maps each
guarantee to its test.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration.runbook_play import conf_digest, play, start_lab
from tests.lab.lab import Lab


@pytest.fixture
def lab(tmp_path):
    with start_lab(tmp_path / "lab", stapling=True) as running:
        running.wait_for_verdict("nginx", "good", "good")
        yield running


def state_dir(lab: Lab) -> Path:
    return lab.directory / "runbook"


def tree_digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file, and the target of every link, under ``roots`` (missing roots are empty)."""
    digest = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                digest[str(path)] = "-> " + str(path.readlink())
            elif path.is_file():
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def assert_every_site_answers_tls(lab: Lab) -> None:
    for server in ("nginx", "apache"):
        for site in ("good", "nourl"):
            staple = lab.probe(server, site)
            assert staple.handshake_ok, f"{server}/{site} no longer completes a TLS handshake: {staple}"


#: what each server logs when it is reloaded (nginx at notice level, Apache at any level)
RELOAD_LINES = {"nginx": ("signal 1 (SIGHUP) received", "reconfiguring"),
                "apache": ("SIGUSR1 received", "Graceful restart requested", "resuming normal operations")}


class Servers:
    """Where each server's master process and error log stood before a run."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.pids = self.read_pids()
        self.offsets = {name: self.log(name).stat().st_size if self.log(name).exists() else 0
                        for name in RELOAD_LINES}

    def log(self, name: str) -> Path:
        return Path(self.lab.server(name).error_log)

    def read_pids(self) -> dict[str, int]:
        return {name: int(Path(self.lab.server(name).pid_file).read_text().split()[0]) for name in RELOAD_LINES}

    def since(self, name: str) -> str:
        log = self.log(name)
        if not log.exists():
            return ""
        with open(log, "rb") as handle:
            handle.seek(self.offsets[name])
            return handle.read().decode("utf-8", "replace")

    def assert_untouched(self) -> None:
        """Neither restarted nor reloaded since this object was made."""
        assert self.read_pids() == self.pids, f"a server was restarted: {self.pids} -> {self.read_pids()}"
        for name, markers in RELOAD_LINES.items():
            logged = self.since(name)
            assert not any(marker in logged for marker in markers), f"{name} was reloaded:\n{logged[-2000:]}"

    def assert_reloaded(self) -> None:
        """The other half of the witness: a run that changed both servers shows in both logs."""
        for name, markers in RELOAD_LINES.items():
            logged = self.since(name)
            assert any(marker in logged for marker in markers), f"no reload of {name} in its log:\n{logged[-2000:]}"


# -- 24: check mode ----------------------------------------------------------------------

@pytest.mark.parametrize("playbook", ["disable_stapling", "tune_stapling", "reenable_stapling", "enable_stapling"])
def test_check_mode_changes_nothing_on_disk(lab, tmp_path, playbook):
    """--check during an outage (disable, tune) or after it (reenable, enable) writes nothing:
    not the servers' files, not the state record, not a backup, and reloads nothing."""
    if playbook in ("disable_stapling", "tune_stapling"):
        lab.responder.set_mode("down")
    before = {**conf_digest(lab), **tree_digest(state_dir(lab))}
    servers = Servers(lab)

    run = play(lab, tmp_path, playbook, f"check-{playbook}", check=True)
    assert run.rc in (0, 2), run.tail()
    assert {**conf_digest(lab), **tree_digest(state_dir(lab))} == before, run.tail()
    servers.assert_untouched()
    assert_every_site_answers_tls(lab)


# -- 6: backup directory missing or unwritable --------------------------------------------

def test_unwritable_backup_directory_stops_the_disable_before_any_change(lab, tmp_path):
    """The backup is taken before the swap: when it can't be, nothing is swapped or reloaded."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file where the backup directory's parent should be\n")
    backups = str(blocker / "backups")
    lab.responder.set_mode("down")
    before = conf_digest(lab)
    servers = Servers(lab)

    run = play(lab, tmp_path, "disable_stapling", "disable-no-backup",
               apache_stapling_backup_dir=backups, nginx_stapling_backup_dir=backups)
    assert run.rc != 0, run.tail()
    error = run.host["error"] or ""
    assert "backup" in error.lower() and str(blocker) in error, error
    assert conf_digest(lab) == before
    servers.assert_untouched()
    assert_every_site_answers_tls(lab)
    assert not (state_dir(lab) / "run.lock").exists(), "the lock was not released"


# -- 20: two runs at once ------------------------------------------------------------------

def test_a_second_run_refuses_while_another_holds_the_lock_then_converges(lab, tmp_path):
    from ansible_collections.ocsp.stapling.plugins.module_utils.change.state_record import RunLock

    lock_path = state_dir(lab) / "run.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    other = RunLock(str(lock_path))
    other.acquire("20261202T000000Z-other", ttl=600, pid=1, owner="the scheduled re-enable job")
    held = lock_path.read_bytes()
    lab.responder.set_mode("down")
    before = conf_digest(lab)
    servers = Servers(lab)

    refused = play(lab, tmp_path, "disable_stapling", "disable-locked")
    assert refused.rc != 0, refused.tail()
    assert "holds the lock" in refused.tail() and "the scheduled re-enable job" in refused.tail(), refused.tail()
    assert lock_path.read_bytes() == held, "the other run's lock was touched"
    assert conf_digest(lab) == before
    servers.assert_untouched()

    other.release("20261202T000000Z-other")
    done = play(lab, tmp_path, "disable_stapling", "disable-after-lock")
    assert done.rc == 0, done.tail()
    servers.assert_reloaded()
    assert (state_dir(lab) / "state.json").exists()
    for server in ("nginx", "apache"):
        lab.wait_for_verdict(server, "good", "none", timeout=30)
    assert not lock_path.exists()


# -- 25: re-enable with a corrupt or foreign state record -----------------------------------

@pytest.mark.parametrize("record", [b"\x00\xff{ not json", b'{"schema": "someone-else/v9", "hosts": []}\n'],
                         ids=["corrupt", "foreign"])
def test_reenable_with_a_bad_state_record_refuses_and_leaves_it(lab, tmp_path, record):
    lab.responder.set_mode("down")
    disabled = play(lab, tmp_path, "disable_stapling", "disable")
    assert disabled.rc == 0, disabled.tail()
    lab.responder.set_mode("good")
    path = state_dir(lab) / "state.json"
    path.write_bytes(record)
    before = conf_digest(lab)
    servers = Servers(lab)

    run = play(lab, tmp_path, "reenable_stapling", "reenable-bad-record")
    assert run.rc != 0, run.tail()
    text = run.tail()
    assert str(path) in text, text
    assert path.read_bytes() == record, "the bad record was overwritten"
    assert conf_digest(lab) == before
    servers.assert_untouched()
    assert_every_site_answers_tls(lab)


# -- 27: the error log rotated or missing during verification --------------------------------

def test_disable_verifies_with_the_error_logs_rotated_away(lab, tmp_path):
    """logrotate moved the logs (the servers still write to the old files): the change
    is still verified by handshakes and the run says so."""
    for name in ("nginx", "apache"):
        log = Path(lab.server(name).error_log)
        log.rename(log.with_name(log.name + ".1"))
    lab.responder.set_mode("down")

    run = play(lab, tmp_path, "disable_stapling", "disable-rotated")
    assert run.rc == 0, run.tail()
    for server in ("nginx", "apache"):
        lab.wait_for_verdict(server, "good", "none", timeout=30)
    assert_every_site_answers_tls(lab)
