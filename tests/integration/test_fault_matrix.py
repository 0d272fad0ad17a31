"""The fault matrix: faults and bad inputs the runbook meets on a production host, each
played through the real playbooks against the loopback lab (nginx and apache2 stapling
``good`` and ``nourl``).

Every case asserts what an operator relies on when things go wrong: the run says what
it found and what to do next; nothing that fails configtest is reloaded; every lab site
still completes a TLS handshake; the state record is intact; and the servers' files are
byte-identical wherever nothing should have changed. ``docs/safety.md`` maps each
guarantee to its test.

All cases share one lab (starting one costs most of a minute). Each case starts from the
lab's baseline, which the ``lab`` fixture asserts first (so a case that leaked a change
fails the next one loudly, naming what differs), and puts it back afterwards
(``tests.lab.baseline``: files, state directory, responder mode, a graceful reload of both
servers, good staples again), asserting that too.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.ansible_run import BIN, REPO, ansible_env
from tests.integration.runbook_play import HOST, Run, conf_digest, play, start_lab
from tests.lab import inventory as lab_inventory
from tests.lab.baseline import LabBaseline
from tests.lab.lab import Lab
from tests.lab.processes import wait_until


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    with start_lab(tmp_path_factory.mktemp("matrix") / "lab", stapling=True) as running:
        running.wait_for_verdict("nginx", "good", "good")
        yield LabBaseline(running)


@pytest.fixture
def lab(matrix):
    left = matrix.differences()
    assert not left, "the previous case left the shared lab changed: " + "; ".join(left)
    yield matrix.lab
    matrix.restore()


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


def assert_no_record_and_no_lock(lab: Lab) -> None:
    assert not (state_dir(lab) / "state.json").exists(), "a state record was written although nothing changed"
    assert not (state_dir(lab) / "run.lock").exists(), "the lock was not released"


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
    logs = [Path(lab.server(name).error_log) for name in ("nginx", "apache")]
    for log in logs:
        log.rename(log.with_name(log.name + ".1"))
    try:
        lab.responder.set_mode("down")

        run = play(lab, tmp_path, "disable_stapling", "disable-rotated")
        assert run.rc == 0, run.tail()
        for server in ("nginx", "apache"):
            lab.wait_for_verdict(server, "good", "none", timeout=30)
        assert_every_site_answers_tls(lab)
    finally:
        # A reload reopens the log at its path; a server not reloaded still writes to the
        # renamed file, which goes back to its path (the lab's baseline has both logs there).
        for log in logs:
            rotated = log.with_name(log.name + ".1")
            if not log.exists() and rotated.exists():
                rotated.rename(log)


# -- 4: a configuration file that cannot be written -------------------------------------------

def chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True, timeout=10, check=False).returncode == 0


#: per server, the path made immutable: the second thing its disable writes, so the first
#: one is already swapped in when the write fails and must be put back.
READ_ONLY_TARGETS = {"apache": ("conf-enabled", "conf-enabled/zz-ocsp-stapling.conf"),
                     "nginx": ("sites-available/nourl", "sites-available/nourl")}


@pytest.mark.parametrize("server", sorted(READ_ONLY_TARGETS))
def test_a_read_only_config_file_stops_the_disable_and_puts_back_what_was_written(lab, tmp_path, server):
    """chattr +i: the runbook runs as root, for which mode bits alone (chmod 0444) do not stop
    a write, so an immutable attribute (or a read-only mount) is how a file is read-only here."""
    immutable, named = (lab.server(server).conf_dir / part for part in READ_ONLY_TARGETS[server])
    if not chattr("+i", immutable):
        pytest.skip(f"chattr +i is not supported on the file system of {immutable}")
    try:
        lab.responder.set_mode("down")
        before = conf_digest(lab)
        servers = Servers(lab)

        run = play(lab, tmp_path, "disable_stapling", f"disable-read-only-{server}", stapling_servers=[server])
        assert run.rc != 0, run.tail()
        error = run.host["error"] or ""
        assert f"{named} could not be written (Operation not permitted)" in error, error
        assert "chattr -i" in error and "remount,rw" in error, error
        assert "put back" in error and "not reloaded" in error, error
        assert conf_digest(lab) == before, "a file written before the failing one was left in place"
        servers.assert_untouched()
        assert_every_site_answers_tls(lab)
        assert_no_record_and_no_lock(lab)
    finally:
        chattr("-i", immutable)


def test_a_record_that_cannot_be_written_after_the_change_says_the_disable_is_live_and_how_back(lab, tmp_path):
    """The lock can be taken, the change goes live, then the state record cannot be written
    (its directory immutable): the run fails saying stapling is off, where the backup is and
    how to give it back without the record; the other server is left alone."""
    records = tmp_path / "records"
    records.mkdir()
    if not chattr("+i", records):
        pytest.skip(f"chattr +i is not supported on the file system of {records}")
    try:
        lab.responder.set_mode("down")
        servers = Servers(lab)
        others_before = {name: tree_digest(lab.server(name).conf_dir) for name in ("apache", "nginx")}
        run = play(lab, tmp_path, "disable_stapling", "disable-unrecorded", stapling_servers=["apache", "nginx"],
                   stapling_record_path=str(records / "state.json"), stapling_lock_path=str(tmp_path / "run.lock"))
        assert run.rc != 0, run.tail()
        error = run.host["error"] or ""
        # The first server the runbook disables (either may come first) is off; the other untouched.
        first = next((name for name in ("apache", "nginx") if f"Stapling is now OFF on {name} " in error), None)
        assert first, error
        other = "nginx" if first == "apache" else "apache"
        assert f"{records / 'state.json'} could not be written" in error, error
        assert str(state_dir(lab)) in error, error                       # the backup, by path
        assert f"{first}_stapling_state: {'restored' if first == 'apache' else 'absent'}" in error, error
        assert not (records / "state.json").exists() and not (tmp_path / "run.lock").exists()
        # The first change is live (the reload it verified); the other server was not touched.
        if first == "apache":
            assert lab.probe("apache", "good").verdict == "none"
        else:
            assert all(verdict == "none" for verdict in (lab.probe("nginx", "good").verdict for dummy in range(4)))
        assert tree_digest(lab.server(other).conf_dir) == others_before[other]
        assert servers.read_pids()[other] == servers.pids[other]
        assert not any(marker in servers.since(other) for marker in RELOAD_LINES[other]), servers.since(other)
        assert_every_site_answers_tls(lab)
    finally:
        chattr("-i", records)


# -- 5: disk full while writing ------------------------------------------------------------------

#: Mount a tmpfs at $1 in this (private) mount namespace, fill it, run the command, then list
#: what the run left on it into $2: the mount goes away with the namespace.
FULL_DISK_SHELL = r"""
full=$1; listing=$2; shift 2
mount -t tmpfs -o size=64k tmpfs "$full" || exit 97
head -c 1048576 /dev/zero > "$full/filler" 2>/dev/null
"$@"; rc=$?
(cd "$full" && find . -mindepth 1 ! -name filler | sort) > "$listing"
exit $rc
"""


def play_on_a_full_disk(lab: Lab, tmp_path: Path, full: Path, tag: str, **extra) -> tuple[Run, list[str]]:
    """``disable_stapling`` with a full tmpfs mounted at ``full`` for the run only."""
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(lab_inventory.inventory(lab.record(), host=HOST, python=sys.executable)))
    report, listing = tmp_path / f"{tag}.json", tmp_path / f"{tag}.left"
    full.mkdir(parents=True, exist_ok=True)
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", FULL_DISK_SHELL, "sh",
               str(full), str(listing), str(BIN / "ansible-playbook"), "ocsp.stapling.disable_stapling",
               "-i", str(inventory), "-e", json.dumps({"target": HOST, "report_json": str(report), **extra})]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO,
                               stdin=subprocess.DEVNULL, env=ansible_env({"ANSIBLE_PIPELINING": "1"}), check=False)
    (tmp_path / f"{tag}.log").write_text(completed.stdout + completed.stderr)
    assert completed.returncode != 97, f"could not mount a tmpfs at {full}: {completed.stderr}"
    assert not any(str(full) in line for line in Path("/proc/self/mounts").read_text().splitlines())
    left = listing.read_text().split() if listing.exists() else []
    return Run(completed, json.loads(report.read_text()) if report.exists() else None), left


@pytest.mark.parametrize("where", ["state-directory", "backup-directory"])
def test_a_full_disk_stops_the_disable_before_any_change(lab, tmp_path, where):
    """/var full: the state directory (record, lock, backups) or only the backups on a full
    file system. Either way nothing is swapped or reloaded, nothing half-written is left
    there (an empty lock would block every later run), and the message says the disk is full."""
    lab.responder.set_mode("down")
    before = conf_digest(lab)
    servers = Servers(lab)
    if where == "state-directory":
        full = state_dir(lab)
        run, left = play_on_a_full_disk(lab, tmp_path, full, "disable-full-state")
        expected = str(full / "run.lock")
    else:
        full = tmp_path / "full"
        backups = str(full / "backups")
        run, left = play_on_a_full_disk(lab, tmp_path, full, "disable-full-backups",
                                        apache_stapling_backup_dir=backups, nginx_stapling_backup_dir=backups)
        expected = backups
    assert run.rc != 0, run.tail()
    error = run.host["error"] or ""
    assert "No space left on device" in error and expected in error, error
    assert "Free space" in error or "file system is full" in error, error
    assert "nothing was changed" in error.lower(), error
    assert conf_digest(lab) == before
    servers.assert_untouched()
    assert_every_site_answers_tls(lab)
    assert not [name for name in left if name.endswith(("run.lock", "state.json", "manifest.json"))], left
    if where == "backup-directory":
        assert_no_record_and_no_lock(lab)
    else:
        full.rmdir()  # the mount point: empty outside the run's namespace


# -- 8: responder blackholed ---------------------------------------------------------------------

def test_a_blackholed_responder_is_reported_with_the_handshake_latency_it_causes(lab, tmp_path):
    """A responder that accepts and never answers: Apache (mod_ssl) fetches inside the
    handshake, so once its cached staple is gone (a graceful restart re-creates the cache,
    as the cache timeout does) every new handshake waits SSLStaplingResponderTimeout (10 s
    in the lab). The check reports that latency as the symptom; nginx fetches in the
    background and stays fast. A check changes nothing."""
    lab.responder.set_mode("hang")
    log = Path(lab.apache.error_log)
    offset = log.stat().st_size
    lab.apache.graceful()
    wait_until(lambda: "resuming normal operations" in log.read_bytes()[offset:].decode("utf-8", "replace"), 30,
               "apache to finish its graceful restart")
    before = conf_digest(lab)
    servers = Servers(lab)

    run = play(lab, tmp_path, "check_stapling", "check-hang")
    assert run.rc == 0, run.tail()
    host = run.host
    assert host["verdict"] == "disable_recommended", host["verdict"]
    assert host["responders"] and not host["responders"][0]["reachable"], host["responders"]
    rows = {(row["server"], row["site"].split(".")[0]): row for row in host["sites"]}
    slow = rows[("apache", "good")]["slowest_handshake_seconds"]
    assert slow is not None and 8 <= slow < 15, rows[("apache", "good")]
    assert (rows[("nginx", "good")]["slowest_handshake_seconds"] or 0) < 3, rows[("nginx", "good")]
    reasons = " ".join(host["reasons"])
    assert "handshakes are slow" in reasons and "apache good" in reasons, reasons
    assert "SSLStaplingResponderTimeout" in reasons and "nginx good" not in reasons, reasons
    assert host["slow_handshake_sites"] == ["good.lab.test"], host["slow_handshake_sites"]
    assert conf_digest(lab) == before
    servers.assert_untouched()
    assert_no_record_and_no_lock(lab)


# -- 15: oversized response through the runbook --------------------------------------------------

def test_an_oversized_responder_answer_is_cut_off_and_reported(lab, tmp_path):
    """8 MiB with no Content-Length: the host reads at most its bound (256 KiB + headers),
    says the answer is not an OCSP response, and the check counts the responder as not
    answering; nothing on the host changes."""
    lab.responder.set_mode("oversized")
    before = conf_digest(lab)
    servers = Servers(lab)

    run = play(lab, tmp_path, "check_stapling", "check-oversized")
    assert run.rc == 0, run.tail()
    host = run.host
    (responder,) = host["responders"]
    assert not responder["reachable"], responder
    assert "exceeds 262144 bytes" in responder["detail"], responder
    assert host["verdict"] == "disable_recommended", host["verdict"]
    assert conf_digest(lab) == before
    servers.assert_untouched()
    assert_every_site_answers_tls(lab)
    assert_no_record_and_no_lock(lab)


# -- 21: a run killed between swap and reload, then a rerun ---------------------------------------

#: Stands in for the reload command: kills the module process that runs it (its parent), so
#: the run dies after the swap and before any reload, deterministically.
KILL_PARENT = "#!/bin/sh\nkill -KILL $PPID\n"


@pytest.mark.parametrize("server", ["apache", "nginx"])
def test_a_run_killed_between_swap_and_reload_then_a_rerun_converges(lab, tmp_path, server):
    killer = tmp_path / "kill-the-run.sh"
    killer.write_text(KILL_PARENT)
    killer.chmod(0o755)
    reload_var = {"apache": "apache_stapling_debian_reload_command", "nginx": "nginx_stapling_reload_command"}[server]
    lab.responder.set_mode("down")
    servers = Servers(lab)

    killed = play(lab, tmp_path, "disable_stapling", f"disable-killed-{server}",
                  stapling_servers=[server], **{reload_var: [str(killer)]})
    assert killed.rc != 0, killed.tail()
    assert not (state_dir(lab) / "run.lock").exists(), "the killed run's lock was left behind"
    servers.assert_untouched()       # killed before its reload: still the old configuration live
    assert_every_site_answers_tls(lab)

    rerun = play(lab, tmp_path, "disable_stapling", f"disable-rerun-{server}")
    assert rerun.rc == 0, rerun.tail()
    assert rerun.host["error"] is None, rerun.host
    servers.assert_reloaded()
    for name in ("nginx", "apache"):
        lab.wait_for_verdict(name, "good", "none", timeout=30)
    assert_every_site_answers_tls(lab)
    record = json.loads((state_dir(lab) / "state.json").read_text())
    assert sorted(item["server"] for item in record["servers"]) == ["apache", "nginx"], record
    assert oct(os.stat(state_dir(lab) / "state.json").st_mode & 0o777) == "0o640"
