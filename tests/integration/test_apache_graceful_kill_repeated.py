"""The AH01872 case, 20 times in a row under CPU load, against the lab's real apache2.

``SSLUseStapling On`` with the ``SSLStaplingCache`` line removed passes ``apache2ctl -t``;
the graceful restart then kills Apache (AH01872 "Could not initialize stapling cache",
AH00020 "Configuration Failed, exiting"). Under load the parent can write its last words
and exit between the change engine's read of the error log and its look at the pid: the
race that once left ``verification.fatal_lines`` empty. This test runs the change engine
in-process with the calls the ``stapling_change`` module makes (``request_from_params``,
then ``StaplingChange.run``), so twenty rounds cost seconds each rather than an
``ansible-playbook`` start-up each, and asserts in every round that

- the run fails, rolled back: the live ``apache2.conf`` is byte-identical to the original;
- Apache was started again (a new parent, running) and every lab site completes a TLS
  handshake (``openssl s_client``, the lab's own witness);
- the failure and the message carry Apache's fatal line (or, in a round where Apache
  segfaulted before it logged one, as Debian's apache2 here sometimes does, say it logged none);
- nothing that fails configtest was reloaded or started: right before each reload or
  start the engine runs, the live tree is configtested, and the tree the reload saw is the
  candidate while the one the start saw is the restored original.

Each core gets one busy loop for the whole run (each loop ends by itself after
``conftest.BUSY_SECONDS`` and is stopped by PID when the test ends). ``ROUNDS`` is 20, the
issue's "Done when"; ``tests/integration/test_apache_faults.py`` plays the same case
through Ansible.
"""
from __future__ import annotations

import hashlib
import time

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change import engine
from tests.lab.lab import Lab
from tests.lab.pki import LEAF_HOSTS

ROUNDS = 20


@pytest.fixture
def apache_lab(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("apache",)) as running:
        yield running


class WitnessRunner:
    """The engine's command runner, plus a witness of every reload and start.

    Before the reload or start command runs, the live configuration is configtested and
    its ``apache2.conf`` digest noted: what the server is about to load, and whether it
    passes configtest.
    """

    def __init__(self, commands: dict[str, str], conf) -> None:
        self.configtest = engine.split_command(commands["configtest"])
        self.watched = {"reload": engine.split_command(commands["reload"]),
                        "start": engine.split_command(commands["start"])}
        self.conf = conf
        self.seen: list[dict] = []

    def __call__(self, argv, environment, timeout):
        for name, command in self.watched.items():
            if argv == command:
                rc, out = engine.run_command(self.configtest, environment, timeout)
                self.seen.append({"command": name, "configtest_rc": rc, "configtest": out.strip()[-500:],
                                  "conf": hashlib.sha256(self.conf.read_bytes()).hexdigest()})
        return engine.run_command(argv, environment, timeout)


def params(lab: Lab, content: str, backup_dir: str) -> dict:
    """The stapling_change arguments of the AH01872 case (as test_apache_faults.py passes them)."""
    a = lab.apache
    return {
        "files": [{"path": str(a.conf), "content": content}],
        "configtest_command": a.commands()["configtest"],
        "reload_command": a.commands()["reload"],
        "start_command": a.commands()["start"],
        "environment": a.environment,
        "backup_dir": backup_dir,
        "verify": {"pid_file": str(a.pid_file), "error_log": str(a.error_log),
                   "ready_patterns": ["AH00489"], "timeout": 20,
                   "endpoints": [{"host": "127.0.0.1", "port": a.port, "server_name": "good.lab.test"}]},
    }


def one_round(lab: Lab, backup_dir: str) -> list[str]:
    """Play the case once; return what was wrong (empty when the round passed)."""
    a = lab.apache
    original = a.conf.read_bytes()
    original_digest = hashlib.sha256(original).hexdigest()
    no_cache = "".join(line for line in original.decode().splitlines(keepends=True)
                       if not line.startswith("SSLStaplingCache"))
    assert "SSLUseStapling On" in no_cache and "SSLStaplingCache" not in no_cache
    candidate_digest = hashlib.sha256(no_cache.encode()).hexdigest()
    old_pid = a.pid
    runner = WitnessRunner(a.commands(), a.conf)
    change = engine.StaplingChange(engine.request_from_params(params(lab, no_cache, backup_dir)), runner=runner)
    try:
        change.run()
    except engine.ChangeError as exc:
        result, message = exc.result, exc.message
    else:
        return ["the change went through: Apache survived a graceful restart without a stapling cache"]
    wrong = []
    fatal = (result.get("verification") or {}).get("fatal_lines") or []
    said = a.last_words(old_pid)
    recovery = result.get("recovery") or {}
    checks = {
        "configtest passed the candidate (the case needs a config only the restart rejects)":
            (result.get("configtest") or {}).get("passed") is True,
        # Apache's last words as it wrote them: its fatal line, or (when it segfaulted first)
        # the message's word that it said nothing.
        f"verification.fatal_lines carries AH01872 or AH00020 when Apache logged one (got {fatal}, logged {said})":
            any("AH01872" in line or "AH00020" in line for line in fatal) if said else not fatal,
        "the message quotes Apache's fatal line from its error log, or says it logged none":
            any(quote in message for quote in a.log_quote(said)) and (
                ("AH01872" in message or "AH00020" in message) if said else "logged no reason before it went" in message),
        "rolled_back is true and the message says the old configuration was restored":
            result.get("rolled_back") is True and "old configuration was restored" in message,
        f"recovery started Apache and verified it (got {recovery.get('action')}, "
        f"{(recovery.get('verification') or {}).get('problem')})":
            recovery.get("action") == "started" and (recovery.get("verification") or {}).get("ok") is True,
        "apache2.conf is byte-identical to the original": a.conf.read_bytes() == original,
        f"a new Apache parent runs (old {old_pid}, now {a.pid})": a.pid != old_pid and a.running(),
        f"the engine reloaded the candidate, then started the original, nothing else (saw "
        f"{[(s['command'], s['conf'][:8]) for s in runner.seen]})":
            [(s["command"], s["conf"]) for s in runner.seen] == [("reload", candidate_digest), ("start", original_digest)],
        "every configuration reloaded or started passed configtest (" + "; ".join(
            f"{s['command']}: rc {s['configtest_rc']} {s['configtest']}" for s in runner.seen) + ")":
            all(s["configtest_rc"] == 0 for s in runner.seen),
    }
    wrong.extend(what for what, ok in checks.items() if not ok)
    for name, server_name in LEAF_HOSTS.items():
        staple = lab.probe("apache", name)
        if not staple.handshake_ok:
            wrong.append(f"{server_name} does not complete a TLS handshake: {staple.error}")
    if wrong:
        wrong.append(f"message: {message}")
    return wrong


def test_graceful_that_kills_apache_twenty_times_in_a_row_under_cpu_load(apache_lab, tmp_path, cpu_load):
    durations = []
    for attempt in range(1, ROUNDS + 1):
        assert all(loop.poll() is None for loop in cpu_load), "the CPU load stopped"
        started = time.monotonic()
        wrong = one_round(apache_lab, str(tmp_path / "backups"))
        durations.append(time.monotonic() - started)
        assert not wrong, f"round {attempt} of {ROUNDS} failed:\n- " + "\n- ".join(wrong)
    print(f"{ROUNDS} rounds under load on {len(cpu_load)} busy loop(s): "
          f"{sum(durations):.1f} s, slowest {max(durations):.1f} s")
