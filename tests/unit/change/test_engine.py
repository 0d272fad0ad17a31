"""change: the one change shape (validate candidate, back up, swap, reload, verify, roll back).

No web server here: a "server" is a ``sleep`` process we start with a pid file, and the
reload/start commands are small shell scripts that read the live config the way a
server would. Namespace validation runs for real (the tests run as root).
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change import engine as change_module
from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    Backup,
    ChangeError,
    ChangeRequest,
    Endpoint,
    FileSpec,
    LinkSpec,
    StaplingChange,
    VerifySpec,
    pid_alive,
    request_from_params,
    unshare_available,
    verify_server,
)

BEGIN = "# BEGIN ocsp.stapling managed block"

needs_namespace = pytest.mark.skipif(not unshare_available()[0],
                                     reason="private mount namespaces need root and unshare(1)")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tree(tmp_path):
    conf = tmp_path / "etc" / "server"
    (conf / "conf.d").mkdir(parents=True)
    (conf / "sub" / "deep").mkdir(parents=True)
    (conf / "main.conf").write_text("Include conf.d/*.conf\nSSLUseStapling On\n")
    (conf / "conf.d" / "operator.conf").write_text("# operator's own\nKeepAlive Off\n")
    (conf / "sub" / "deep" / "leaf.conf").write_text("leaf\n")
    return tmp_path


class FakeServer:
    """A ``sleep`` with a pid file, an error log, and reload/start scripts.

    The reload script "parses" every ``*.conf`` under the config dir: a line ``FATAL``
    makes it log AH00020 and kill the parent (Apache's graceful with a broken stapling
    cache); otherwise it logs AH00489 like Apache's "resuming normal operations".
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "etc" / "server"
        self.pid_file = root / "run" / "server.pid"
        self.log = root / "logs" / "error.log"
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text("[old] AH00020: something long ago\n")
        self.started: list[int] = []
        self.reload = root / "reload.sh"
        self.reload.write_text(f"""#!/bin/sh
echo reload >> {root}/calls
if grep -rqs '^FATAL' {self.conf}; then
  echo "[ssl:emerg] AH01872: Could not initialize stapling cache. Exiting." >> {self.log}
  echo "[core:emerg] AH00020: Configuration Failed, exiting" >> {self.log}
  kill -9 $(cat {self.pid_file})
else
  echo "[mpm_event:notice] AH00489: configured -- resuming normal operations" >> {self.log}
fi
""")
        self.start_script = root / "start.sh"
        self.start_script.write_text(f"""#!/bin/sh
echo start >> {root}/calls
if grep -rqs '^FATAL' {self.conf}; then exit 1; fi
setsid sleep 300 </dev/null >/dev/null 2>&1 &
echo $! > {self.pid_file}
echo "[mpm_event:notice] AH00489: configured -- resuming normal operations" >> {self.log}
""")
        self.reload.chmod(0o755)
        self.start_script.chmod(0o755)

    def start(self) -> int:
        proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
        self.started.append(proc.pid)
        self._proc = proc
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def calls(self) -> list[str]:
        path = self.root / "calls"
        return path.read_text().split() if path.exists() else []

    def verify(self, **extra) -> VerifySpec:
        return VerifySpec(pid_file=str(self.pid_file), error_log=str(self.log),
                          ready_patterns=["AH00489"], timeout=5, settle=0.2, **extra)

    def stop(self) -> None:
        pids = set(self.started)
        if self.pid_file.exists() and self.pid_file.read_text().strip().isdigit():
            pids.add(self.pid)
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if hasattr(self, "_proc"):
            self._proc.wait(timeout=5)


@pytest.fixture
def server(tree):
    fake = FakeServer(tree)
    fake.start()
    yield fake
    fake.stop()


def request(tree: Path, server: FakeServer | None = None, **kwargs) -> ChangeRequest:
    defaults = dict(backup_dir=str(tree / "backups"), candidate_validation="namespace")
    if server is not None:
        defaults.update(reload_command=str(server.reload), start_command=str(server.start_script),
                        verify=server.verify())
    defaults.update(kwargs)
    return ChangeRequest(**defaults)


# --------------------------------------------------------------------------- plan / idempotence

def test_unchanged_files_do_nothing(tree, server):
    conf = tree / "etc" / "server" / "conf.d" / "zz.conf"
    req = request(tree, server, files=[FileSpec(path=str(conf), content="SSLUseStapling off\n")],
                  configtest_command=["true"])
    assert StaplingChange(req).run()["changed"] is True
    assert server.calls() == ["reload"]
    again = StaplingChange(request(tree, server, files=[FileSpec(path=str(conf), content="SSLUseStapling off\n")],
                                   configtest_command=["false"])).run()
    assert again["changed"] is False
    assert again["configtest"] == {"ran": False}
    assert server.calls() == ["reload"]


def test_reload_always_reloads_unchanged_config(tree, server):
    result = StaplingChange(request(tree, server, reload="always")).run()
    assert result["changed"] is True
    assert result["reload"]["rc"] == 0
    assert result["verification"]["ok"] is True
    assert server.calls() == ["reload"]


def test_check_mode_writes_nothing_and_reports_diff(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    before = digest(main)
    req = request(tree, server, files=[FileSpec(path=str(main), block="SSLUseStapling off")],
                  configtest_command=["true"], check_mode=True, diff=True)
    result = StaplingChange(req).run()
    assert result["changed"] is True
    assert digest(main) == before
    assert "SSLUseStapling off" in result["diff"][0]["after"]
    assert "SSLUseStapling off" not in result["diff"][0]["before"]
    assert not (tree / "backups").exists() or not any((tree / "backups").iterdir())
    assert server.calls() == []


# --------------------------------------------------------------------------- namespace validation

@needs_namespace
def test_configtest_sees_candidate_while_live_file_stays(tree):
    conf = tree / "etc" / "server"
    main = conf / "main.conf"
    before = digest(main)
    # A "configtest" that prints what it reads at the live paths, then fails.
    test = ["sh", "-c", f"cat {main} {conf}/conf.d/new.conf {conf}/sub/deep/leaf.conf; "
                        f"ls {conf}/conf.d; exit 3"]
    req = request(tree, files=[FileSpec(path=str(main), block="SSLUseStapling off"),
                               FileSpec(path=str(conf / "conf.d" / "new.conf"), content="NEW FILE\n")],
                  configtest_command=test, reload_command=["false"])
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    output = info.value.result["configtest"]["output"]
    assert "SSLUseStapling off" in output          # the candidate was what configtest read
    assert "NEW FILE" in output                    # new files exist in the candidate view
    assert "leaf" in output                        # untouched subtrees are still visible
    assert "operator.conf" in output
    assert digest(main) == before                  # ... and the live tree never changed
    assert not (conf / "conf.d" / "new.conf").exists()
    assert "No live file was changed" in info.value.message
    assert "live configuration passes configtest" not in info.value.message  # live test also rc 3
    assert not (tree / "backups").exists() or not list((tree / "backups").glob("2*"))


@needs_namespace
def test_namespace_handles_nested_changed_dirs_links_and_missing_parents(tree):
    conf = tree / "etc" / "server"
    files = [FileSpec(path=str(conf / "main.conf"), block="TOP"),
             FileSpec(path=str(conf / "sub" / "deep" / "leaf.conf"), block="DEEP"),
             FileSpec(path=str(conf / "includes" / "more" / "x.conf"), content="MISSING-PARENTS\n")]
    links = [LinkSpec(path=str(conf / "conf.d" / "zz.conf"), src="../main.conf")]
    test = ["sh", "-c", f"cat {conf}/main.conf {conf}/sub/deep/leaf.conf {conf}/includes/more/x.conf "
                        f"{conf}/conf.d/zz.conf && grep -q TOP {conf}/main.conf"]
    req = request(tree, files=files, links=links, configtest_command=test, reload="never")
    result = StaplingChange(req).run()
    out = result["configtest"]["output"]
    assert result["configtest"]["method"] == "namespace"
    assert out.count("TOP") == 2 and "DEEP" in out and "MISSING-PARENTS" in out
    assert os.readlink(conf / "conf.d" / "zz.conf") == "../main.conf"
    assert "DEEP" in (conf / "sub" / "deep" / "leaf.conf").read_text()


def test_auto_falls_back_to_swap_with_a_warning(tree):
    main = tree / "etc" / "server" / "main.conf"
    before = main.read_bytes()
    req = request(tree, files=[FileSpec(path=str(main), block="BROKEN")],
                  configtest_command=["sh", "-c", f"! grep -q BROKEN {main}"],
                  candidate_validation="auto", reload_command=["true"])
    change = StaplingChange(req, namespace_probe=lambda env: (False, "not root"))
    with pytest.raises(ChangeError) as info:
        change.run()
    assert main.read_bytes() == before
    assert info.value.result["configtest"]["method"] == "swap"
    assert "old files are back" in info.value.message
    assert any("not root" in w for w in info.value.result["warnings"])


def test_swap_validation_success_keeps_candidate(tree):
    main = tree / "etc" / "server" / "main.conf"
    req = request(tree, files=[FileSpec(path=str(main), block="GOOD")],
                  configtest_command=["sh", "-c", f"grep -q GOOD {main}"],
                  candidate_validation="swap", reload="never")
    result = StaplingChange(req).run()
    assert result["configtest"]["passed"] is True
    assert "GOOD" in main.read_text()
    assert result["files"][0]["backup"] and Path(result["files"][0]["backup"]).read_text().startswith("Include")


def test_namespace_required_but_missing_is_an_actionable_error(tree):
    req = request(tree, files=[FileSpec(path=str(tree / "etc" / "server" / "main.conf"), block="X")],
                  configtest_command=["true"])
    with pytest.raises(ChangeError, match="candidate_validation=swap"):
        StaplingChange(req, namespace_probe=lambda env: (False, "no CAP_SYS_ADMIN")).run()


# --------------------------------------------------------------------------- reload, verify, roll back

def test_good_change_is_backed_up_swapped_reloaded_verified(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    original = main.read_bytes()
    os.chmod(main, 0o640)
    req = request(tree, server, files=[FileSpec(path=str(main), block="SSLUseStapling off")],
                  configtest_command=["true"])
    result = StaplingChange(req).run()
    assert result["changed"] and not result["rolled_back"]
    assert result["verification"]["ok"] and result["verification"]["ready"]
    assert result["verification"]["fatal_lines"] == []     # the old AH00020 is before the offset
    assert Path(result["files"][0]["backup"]).read_bytes() == original
    assert (Path(result["backup_dir"]) / "manifest.json").exists()
    assert oct(main.stat().st_mode & 0o777) == "0o640"      # mode preserved across the swap
    assert main.read_text().startswith(original.decode())


def test_dead_parent_after_reload_is_restored_and_started(tree, server):
    """The AH01872 case: configtest passes, the graceful reload kills the server."""
    main = tree / "etc" / "server" / "main.conf"
    original = main.read_bytes()
    old_pid = server.pid
    req = request(tree, server, files=[FileSpec(path=str(main), block="FATAL")],
                  configtest_command=["true"])
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    server.started.append(server.pid)
    result = info.value.result
    assert main.read_bytes() == original
    assert result["rolled_back"] is True
    assert result["recovery"]["action"] == "started"
    assert result["recovery"]["verification"]["ok"] is True
    assert server.pid != old_pid and pid_alive(server.pid)
    assert server.calls() == ["reload", "start"]
    assert "AH01872" in info.value.message
    assert "old configuration was restored" in info.value.message
    assert "running and answering TLS again" in info.value.message


def test_reload_command_failure_restores_and_reloads(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    original = main.read_bytes()
    flaky = tree / "flaky.sh"
    # Fails the first time (the change), succeeds the second (the recovery reload).
    flaky.write_text(f"#!/bin/sh\nif [ -e {tree}/once ]; then exec {server.reload}; fi\n"
                     f"touch {tree}/once; echo 'graceful: signal refused' >&2; exit 1\n")
    flaky.chmod(0o755)
    req = request(tree, server, files=[FileSpec(path=str(main), block="X")],
                  configtest_command=["true"], reload_command=str(flaky))
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    assert main.read_bytes() == original
    assert info.value.result["recovery"]["action"] == "reloaded"
    assert "signal refused" in info.value.message
    assert "exited 1" in info.value.message


def test_unrecoverable_server_says_it_may_be_down(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    # FATAL in an untouched file too: the restored config cannot start either.
    (tree / "etc" / "server" / "conf.d" / "operator.conf").write_text("FATAL\n")
    req = request(tree, server, files=[FileSpec(path=str(main), block="X")], configtest_command=["true"])
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    assert "may be DOWN" in info.value.message
    assert "start.sh" in info.value.message


def test_endpoint_that_does_not_answer_tls_triggers_rollback(tree, server):
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                                          # nothing listens there
    main = tree / "etc" / "server" / "main.conf"
    original = main.read_bytes()
    req = request(tree, server, files=[FileSpec(path=str(main), block="X")], configtest_command=["true"],
                  verify=server.verify(endpoints=[Endpoint(port=port, server_name="a.test")]))
    req.verify.timeout = 1
    req.verify.ready_patterns = []
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    assert main.read_bytes() == original
    assert "TLS handshakes failed" in info.value.message
    assert "could not be reloaded" in info.value.message  # the restored config cannot pass either
    # No fatal line: the message quotes what the server last logged instead.
    assert f"last lines in the error log ({server.log}) since the reload" in info.value.message
    assert "AH00489" in info.value.message


def test_request_from_module_params(tree):
    params = {"files": [{"path": "/x", "block": "b", "content": None, "state": "present",
                         "marker": None, "insert_before": None, "insert_after": None,
                         "mode": "0644", "owner": None, "group": None}],
              "links": None, "configtest_command": "apache2ctl -t", "reload_command": None,
              "start_command": None, "environment": {"A": "b"}, "candidate_validation": None,
              "backup_dir": None, "reload": None,
              "verify": {"pid_file": "/p", "endpoints": [{"host": "127.0.0.1", "port": 8443,
                                                         "server_name": None}],
                         "error_log": None, "fatal_patterns": None, "warning_patterns": None,
                         "ready_patterns": None, "timeout": None, "settle": None}}
    req = request_from_params(params, check_mode=True)
    assert req.files[0].marker == "# {mark} ocsp.stapling managed block"
    assert req.verify.endpoints[0].port == 8443
    assert "AH01872" in req.verify.fatal_patterns
    assert req.candidate_validation == "auto" and req.check_mode


# --------------------------------------------------------------------------- dialect additions

@needs_namespace
def test_bytes_content_is_validated_and_written_byte_for_byte(tree, server):
    conf = tree / "etc" / "server" / "conf.d" / "latin1.conf"
    conf.write_bytes(b"# caf\xe9 (Latin-1)\nenableStapling 0\n")
    candidate = b"# caf\xe9 (Latin-1)\nenableStapling 1\n"
    seen = tree / "seen"
    req = request(tree, server, files=[FileSpec(path=str(conf), content=candidate)],
                  configtest_command=["sh", "-c", f"cp {conf} {seen}"], diff=True)
    result = StaplingChange(req).run()
    assert result["changed"] is True and result["configtest"]["passed"] is True
    assert seen.read_bytes() == candidate              # the configtest read the exact bytes
    assert conf.read_bytes() == candidate
    assert Path(result["files"][0]["backup"]).read_bytes() == b"# caf\xe9 (Latin-1)\nenableStapling 0\n"
    assert "enableStapling 1" in result["diff"][0]["after"]
    # the same bytes again: nothing to do
    again = StaplingChange(request(tree, server, files=[FileSpec(path=str(conf), content=candidate)])).run()
    assert again["changed"] is False and server.calls() == ["reload"]


def test_post_swap_runs_between_swap_and_reload(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    seen = {}

    def step(result):
        seen["live"] = main.read_text()
        seen["backup"] = result["files"][0]["backup"]
        seen["calls"] = server.calls()
        return ["cache cleared"]

    req = request(tree, server, files=[FileSpec(path=str(main), block="NEW")], configtest_command=["true"])
    result = StaplingChange(req, post_swap=step).run()
    assert "NEW" in seen["live"] and seen["calls"] == []     # after the swap, before the reload
    assert seen["backup"] and Path(seen["backup"]).exists()
    assert "cache cleared" in result["warnings"] and server.calls() == ["reload"]


def test_post_swap_runs_before_a_forced_reload_without_change(tree, server):
    order = []
    StaplingChange(request(tree, server, reload="always"),
                   post_swap=lambda result: order.append(server.calls()) or []).run()
    assert order == [[]] and server.calls() == ["reload"]


def test_post_swap_not_run_in_check_mode_or_without_work(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    ran = []
    StaplingChange(request(tree, server, files=[FileSpec(path=str(main), block="X")], check_mode=True),
                   post_swap=ran.append).run()
    StaplingChange(request(tree, server), post_swap=ran.append).run()   # nothing to do
    assert ran == [] and server.calls() == []


def test_post_swap_failure_restores_and_does_not_reload(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    original = main.read_bytes()

    def step(result):
        raise OSError("disk full")

    req = request(tree, server, files=[FileSpec(path=str(main), block="X")], configtest_command=["true"])
    with pytest.raises(ChangeError) as info:
        StaplingChange(req, post_swap=step).run()
    assert main.read_bytes() == original
    assert info.value.result["rolled_back"] is True
    assert "disk full" in info.value.message and "old files are back" in info.value.message
    assert server.calls() == []


def test_configtest_absent_reason_replaces_the_warning(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    result = StaplingChange(request(tree, server, files=[FileSpec(path=str(main), block="X")],
                                    configtest_absent_reason="no config test on this server")).run()
    assert result["configtest"] == {"ran": False, "skipped": "no config test on this server"}
    assert not any("not validated" in w for w in result["warnings"])
    plain = StaplingChange(request(tree, server, files=[FileSpec(path=str(main), block="Y")])).run()
    assert any("not validated" in w for w in plain["warnings"])


# --------------------------------------------------------------------------- the server's last words

FATAL_WORDS = ("[ssl:emerg] AH01872: Could not initialize stapling cache. Exiting.\n"
               "[core:emerg] AH00020: Configuration Failed, exiting\n")


def die(server: FakeServer, words: str = FATAL_WORDS) -> None:
    """What Apache does when a graceful restart fails: log why, then exit."""
    with open(server.log, "a") as handle:
        handle.write(words)
    server._proc.kill()
    server._proc.wait(timeout=5)          # reaped: no zombie, the pid is gone
    assert not pid_alive(server._proc.pid)


@pytest.fixture
def dies_right_after_a_log_read(server, monkeypatch):
    """The interleaving behind the flaky AH01872 run, made exact: the parent logs AH00020
    and exits just after verify_server's first read of the log, before its pid check."""
    real = change_module.read_log_since
    calls = []

    def read_then_die(path, offset):
        text = real(path, offset)
        calls.append(path)
        if len(calls) == 1:
            die(server)
        return text

    monkeypatch.setattr(change_module, "read_log_since", read_then_die)
    return calls


def test_line_logged_between_the_log_read_and_the_pid_check_is_not_lost(server, dies_right_after_a_log_read):
    spec = server.verify()
    spec.settle = 0                      # no settle time: the first dead look is the verdict
    result = verify_server(spec, server.log.stat().st_size)
    assert result["ok"] is False and result["pid_alive"] is False
    assert any("AH00020" in line for line in result["fatal_lines"]), result
    assert any("AH01872" in line for line in result["fatal_lines"]), result
    assert "is not running" in result["problem"] and "fatal line" in result["problem"]
    assert len(dies_right_after_a_log_read) >= 2      # it did read the log again after the pid check


def test_rollback_message_quotes_the_fatal_line_of_a_parent_that_died_between_reads(
        tree, server, dies_right_after_a_log_read):
    main = tree / "etc" / "server" / "main.conf"
    original = main.read_bytes()
    req = request(tree, server, files=[FileSpec(path=str(main), block="X")], configtest_command=["true"],
                  reload_command=["true"])     # the reload itself logs nothing: the parent dies on its own
    req.verify.settle = 0
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    server.started.append(server.pid)
    result = info.value.result
    assert main.read_bytes() == original
    assert any("AH01872" in line for line in result["verification"]["fatal_lines"])
    assert f"the error log ({server.log}): " in info.value.message
    assert "AH01872: Could not initialize stapling cache" in info.value.message
    assert result["recovery"]["action"] == "started" and result["recovery"]["verification"]["ok"]


def test_dead_parent_waits_briefly_for_lines_flushed_after_it_exited(server):
    """A piped ErrorLog's logger can write the parent's last line after the parent is gone;
    the injectable sleep plays that logger: the line lands during the bounded wait."""
    die(server, words="")
    slept = []

    def logger_flushes_late(seconds):
        slept.append(seconds)
        if len(slept) == 2:
            with open(server.log, "a") as handle:
                handle.write(FATAL_WORDS)

    spec = server.verify()
    spec.settle = 0
    result = verify_server(spec, server.log.stat().st_size, sleep=logger_flushes_late)
    assert any("AH00020" in line for line in result["fatal_lines"]), result
    assert len(slept) == 2                # stopped reading as soon as the fatal line showed up


def test_the_wait_for_late_lines_is_bounded_and_the_last_lines_are_kept(server):
    with open(server.log, "a") as handle:
        offset = handle.tell()
        handle.write("[mpm_event:notice] AH00493: SIGUSR1 received.  Doing graceful restart\n\n")
    die(server, words="[core:alert] AH00050: Child 4242 returned a Fatal error... exiting.\n")
    spec = server.verify()
    spec.settle = 0
    began = time.monotonic()
    result = verify_server(spec, offset, flush_wait=0.3)
    assert 0.3 <= time.monotonic() - began < 2
    assert result["fatal_lines"] == [] and "is not running" in result["problem"]
    assert result["last_lines"] == ["[mpm_event:notice] AH00493: SIGUSR1 received.  Doing graceful restart",
                                    "[core:alert] AH00050: Child 4242 returned a Fatal error... exiting."]


def test_message_quotes_the_last_lines_when_no_fatal_line_was_logged(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    dies = tree / "dies.sh"
    dies.write_text(f"#!/bin/sh\necho '[core:alert] AH00050: Child returned a Fatal error... exiting.' >> {server.log}\n"
                    f"kill -9 $(cat {server.pid_file})\n")
    dies.chmod(0o755)
    req = request(tree, server, files=[FileSpec(path=str(main), block="X")], configtest_command=["true"],
                  reload_command=str(dies))
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    server.started.append(server.pid)
    assert f"last lines in the error log ({server.log}) since the reload: " in info.value.message
    assert "AH00050: Child returned a Fatal error" in info.value.message
    assert info.value.result["recovery"]["action"] == "started"


def test_reload_command_failure_quotes_the_error_log_too(tree, server):
    main = tree / "etc" / "server" / "main.conf"
    refuses = tree / "refuses.sh"
    refuses.write_text(f"#!/bin/sh\necho '[core:error] AH00052: child pid 7 exit signal Segmentation fault' >> {server.log}\n"
                       "echo 'graceful: refused' >&2; exit 1\n")
    refuses.chmod(0o755)
    req = request(tree, server, files=[FileSpec(path=str(main), block="X")], configtest_command=["true"],
                  reload_command=str(refuses))
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    assert "exited 1: graceful: refused" in info.value.message
    assert "AH00052: child pid 7 exit signal Segmentation fault" in info.value.message


def test_rollback_reads_the_log_again_before_choosing_reload_or_start(tree, server, monkeypatch):
    """Verification gave up (no ready line) with the parent alive; the parent logs AH00020
    only afterwards and is gone a moment later. A reload sent to it would be lost: the
    rollback must read the log again, let the parent go and start the server."""
    main = tree / "etc" / "server" / "main.conf"
    real_restore = Backup.restore

    def restore_then_parent_fails(self):
        problems = real_restore(self)
        with open(server.log, "a") as handle:
            handle.write(FATAL_WORDS)
        threading.Timer(0.3, lambda: (server._proc.kill(), server._proc.wait(timeout=5))).start()
        return problems

    monkeypatch.setattr(Backup, "restore", restore_then_parent_fails)
    req = request(tree, server, files=[FileSpec(path=str(main), block="X")], configtest_command=["true"],
                  reload_command=["true"])     # logs nothing: no ready line, verification times out
    req.verify.timeout = 0.5
    with pytest.raises(ChangeError) as info:
        StaplingChange(req).run()
    server.started.append(server.pid)
    result = info.value.result
    assert "none of ['AH00489'] appeared" in result["verification"]["problem"]
    assert result["verification"]["fatal_lines"] == []
    assert result["recovery"]["action"] == "started", info.value.message
    assert result["recovery"]["verification"]["ok"] is True, info.value.message
