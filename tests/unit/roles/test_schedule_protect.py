"""The schedule role's protected-mode jobs: the keeper timer and the relay service (systemd)
or their cron lines, rendered into a private prefix by a real ansible-playbook run, checked
with systemd-analyze, and the installed commands run the way systemd and cron would run
them (the system python, the role's copy of the code on PYTHONPATH, nothing else)."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.lab.processes import port_open, stop_pid, wait_until
from tests.lab.responder import free_port
from tests.unit.paths import REPO

PLAYBOOK_BIN = Path(sys.executable).parent / "ansible-playbook"
SYSTEM_PYTHON = "/usr/bin/python3"


def play(tmp_path: Path, variables: dict, check: bool = False) -> dict:
    """Play the role on localhost; returns the recap's counts for localhost."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"name": "Schedule", "hosts": "localhost", "gather_facts": False,
                                     "roles": [{"role": "ocsp.stapling.schedule"}]}]))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    argv = [str(PLAYBOOK_BIN), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"@{extra}", str(playbook)] + (["--check"] if check else [])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCALHOST_WARNING="False")
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    recap = [line for line in result.stdout.splitlines() if line.startswith("localhost") and "ok=" in line][-1]
    return {key: int(value) for key, value in (part.split("=") for part in recap.split(":", 1)[1].split())}


def private_vars(root: Path, **extra) -> dict:
    base = {
        "schedule_reenable": False,
        "schedule_keeper": True,
        "schedule_relay": True,
        "schedule_systemd_reload": False,
        "schedule_systemd_unit_dir": str(root / "etc/systemd/system"),
        "schedule_keeper_config": str(root / "etc/ocsp-stapling/keeper-nginx.json"),
        "schedule_keeper_cron_file": str(root / "etc/cron.d/ocsp-stapling-keeper"),
        "schedule_keeper_cron_log_file": str(root / "var/log/ocsp-stapling-keeper.log"),
        "schedule_keeper_lock_file": str(root / "run/keeper.lock"),
        "schedule_relay_cron_file": str(root / "etc/cron.d/ocsp-stapling-relay"),
        "schedule_relay_cron_log_file": str(root / "var/log/ocsp-stapling-relay.log"),
        "schedule_relay_lock_file": str(root / "run/relay.lock"),
        "schedule_protect_python": SYSTEM_PYTHON,
        "schedule_protect_pythonpath": str(root / "usr/local/lib/ocsp-stapling"),
        # The re-enable job's paths, private too, although it is not installed here.
        "schedule_cron_file": str(root / "etc/cron.d/ocsp-stapling-reenable"),
        "schedule_cron_log_file": str(root / "var/log/ocsp-stapling-reenable.log"),
        "schedule_config_dir": str(root / "etc/ocsp-stapling"),
        "schedule_working_dir": str(root / "var/lib/ocsp-stapling"),
        "schedule_lock_file": str(root / "run/reenable.lock"),
    }
    base.update(extra)
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    (root / "etc/cron.d").mkdir(parents=True, exist_ok=True)
    (root / "run").mkdir(parents=True, exist_ok=True)
    return base


def every_file(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def unit_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def unit_command(text: str) -> tuple[list[str], dict]:
    """ExecStart's argv and Environment= of a unit, as systemd reads them (no % or $ used here)."""
    env = dict(shlex.split(value)[0].split("=", 1) for value in unit_values(text, "Environment"))
    return shlex.split(unit_values(text, "ExecStart")[0]), env


def write_empty_keeper_config(path: Path, state_dir: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"certificates": [], "state_dir": str(state_dir)}))


@pytest.fixture(scope="module")
def systemd_root(tmp_path_factory):
    """One systemd install (check mode first, then for real, then again) shared by the tests."""
    tmp = tmp_path_factory.mktemp("schedule-systemd")
    root = tmp / "root"
    port = free_port()
    variables = private_vars(root, schedule_method="systemd", schedule_relay_port=port, schedule_keeper_interval=2)
    before = every_file(root)
    checked = play(tmp, variables, check=True)
    after_check = every_file(root)
    first = play(tmp, variables)
    second = play(tmp, variables)
    return {"tmp": tmp, "root": root, "vars": variables, "port": port, "before": before,
            "after_check": after_check, "checked": checked, "first": first, "second": second}


def test_check_mode_writes_nothing_and_a_second_run_changes_nothing(systemd_root):
    assert systemd_root["checked"]["changed"] > 0, "check mode should report the units it would write"
    assert systemd_root["after_check"] == systemd_root["before"]
    assert systemd_root["first"]["changed"] > 0
    assert systemd_root["second"]["changed"] == 0, systemd_root["second"]


def test_the_units_run_the_keeper_on_a_timer_and_the_relay_on_loopback(systemd_root):
    units = systemd_root["root"] / "etc/systemd/system"
    assert sorted(path.name for path in units.iterdir()) == [
        "ocsp-stapling-keeper.service", "ocsp-stapling-keeper.timer", "ocsp-stapling-relay.service"]
    config = systemd_root["vars"]["schedule_keeper_config"]
    keeper = (units / "ocsp-stapling-keeper.service").read_text()
    timer = (units / "ocsp-stapling-keeper.timer").read_text()
    relay = (units / "ocsp-stapling-relay.service").read_text()
    argv, env = unit_command(keeper)
    assert argv == [SYSTEM_PYTHON, "-m", "ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper",
                    "--config", config]
    assert env == {"PYTHONPATH": systemd_root["vars"]["schedule_protect_pythonpath"]}
    assert unit_values(keeper, "Type") == ["oneshot"]
    assert unit_values(keeper, "ConditionPathExists") == [config]
    assert unit_values(timer, "OnCalendar") == ["*-*-* *:00/2:00"]
    assert unit_values(timer, "Unit") == ["ocsp-stapling-keeper.service"]
    argv, env = unit_command(relay)
    assert argv[-4:] == ["--config", config, "--listen", f"127.0.0.1:{systemd_root['port']}"]
    assert unit_values(relay, "Type") == ["simple"]
    assert unit_values(relay, "Restart") == ["on-failure"]
    assert unit_values(relay, "WantedBy") == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(systemd_root):
    units = sorted(str(path) for path in (systemd_root["root"] / "etc/systemd/system").iterdir())
    result = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units, capture_output=True, text=True,
                            timeout=60, check=False)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "ocsp-stapling" in line and "Failed to" not in line.split(":", 1)[0]]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_the_keeper_unit_command_runs_from_the_installed_code(systemd_root, tmp_path):
    """The system python, the role's copy of the code and nothing else: an import missing from
    the copy fails here."""
    unit = (systemd_root["root"] / "etc/systemd/system/ocsp-stapling-keeper.service").read_text()
    argv, env = unit_command(unit)
    write_empty_keeper_config(Path(systemd_root["vars"]["schedule_keeper_config"]), tmp_path / "state")
    result = subprocess.run(argv, env={"PATH": "/usr/bin:/bin", **env}, cwd="/", capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"certificates": [], "changed": False, "reload": {"ran": False}}


def test_the_relay_unit_command_serves_on_loopback(systemd_root, tmp_path):
    unit = (systemd_root["root"] / "etc/systemd/system/ocsp-stapling-relay.service").read_text()
    argv, env = unit_command(unit)
    # schedule_relay_config defaults to the keeper's configuration.
    write_empty_keeper_config(Path(systemd_root["vars"]["schedule_keeper_config"]), tmp_path / "state")
    process = subprocess.Popen(argv, env={"PATH": "/usr/bin:/bin", **env}, cwd="/", stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        wait_until(lambda: port_open(systemd_root["port"]) or process.poll() is not None, 20, "the relay to listen")
        assert process.poll() is None, process.stderr.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{systemd_root['port']}/-/state", timeout=10) as answer:
            state = json.loads(answer.read())
        assert state["certificates"] == [] and state["counters"]["held"] == 0
    finally:
        stop_pid(process.pid)
        process.wait(10)


def test_cron_lines_replace_the_units_run_the_keeper_and_go_away_when_turned_off(tmp_path):
    root = tmp_path / "root"
    port = free_port()
    variables = private_vars(root, schedule_method="systemd", schedule_relay_port=port)
    play(tmp_path, variables)
    assert (root / "usr/local/lib/ocsp-stapling/ansible_collections/ocsp/stapling").is_dir()
    # Switching to cron removes the units, so the job never runs twice.
    variables = dict(variables, schedule_method="cron")
    assert play(tmp_path, variables)["changed"] > 0
    assert play(tmp_path, variables)["changed"] == 0
    assert not list((root / "etc/systemd/system").iterdir()), "cron hosts get no units"
    keeper_cron = (root / "etc/cron.d/ocsp-stapling-keeper").read_text().splitlines()
    relay_cron = (root / "etc/cron.d/ocsp-stapling-relay").read_text().splitlines()
    pythonpath = variables["schedule_protect_pythonpath"]
    assert f"PYTHONPATH={pythonpath}" in keeper_cron and f"PYTHONPATH={pythonpath}" in relay_cron
    keeper_line = next(line for line in keeper_cron if line.startswith("* * * * * root "))
    assert [line.split()[0] for line in relay_cron if " root " in line] == ["@reboot", "*"]

    # cron hands what follows the user field to /bin/sh (after turning \\% back into %).
    command = keeper_line.split(" root ", 1)[1].replace("\\%", "%")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath, "SHELL": "/bin/sh"}
    log = root / "var/log/ocsp-stapling-keeper.log"
    # No configuration yet (no site in protected mode): the line runs nothing and logs nothing.
    subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert not log.exists() or log.read_text() == ""
    write_empty_keeper_config(Path(variables["schedule_keeper_config"]), tmp_path / "state")
    result = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    logged = json.loads(log.read_text())
    assert logged["certificates"] == [] and logged["reload"] == {"ran": False}

    # Both jobs off: the cron files and the installed code go; logs and configuration stay.
    assert play(tmp_path, dict(variables, schedule_keeper=False, schedule_relay=False))["changed"] > 0
    left = [name for name in every_file(root) if not name.startswith(("etc/ocsp-stapling/", "var/log/", "run/"))]
    assert left == [], left
