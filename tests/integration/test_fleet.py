"""A small fleet in one inventory: the disable runbook in batches, one host failing configtest.

Six local hosts (``ansible_connection: local``, each an apache2 under its own prefix) and
one host reached through a real ``sshd`` on 127.0.0.1 all serve certificates from one lab
PKI and ask one lab OCSP responder (``tests.lab.fleet``). With the responder down,
``playbooks/disable_stapling.yml`` runs in batches of 4 with ``max_fail_percentage: 25``
(one failure per batch carries on). ``web02``, in the first batch, carries an Include of a
missing file, so its configtest fails: it must keep its old configuration byte for byte and
keep serving TLS, while every other host, later batches included, ends with stapling off,
its sites serving, and a state record saying why.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.integration.ansible_run import BIN, REPO, ansible_env, run_playbook
from tests.lab.fleet import SSH_HOST, Fleet
from tests.lab.sshd import SshServer

BROKEN = "web02"
PLAYBOOK = REPO / "playbooks" / "disable_stapling.yml"
# Fewer forks than cores cost more wall time than they save; pipelining halves the
# per-task round trips, over ssh and local alike.
FAST = {"ANSIBLE_PIPELINING": "True", "ANSIBLE_FORKS": "4"}


def _recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {ok: n, changed: n, failed: n, ...}}."""
    recap = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            recap[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap


def test_ssh_host_answers_an_ad_hoc_ping_over_real_sshd(tmp_path):
    """The ssh plumbing alone: a private sshd, key login as root, a module run through it."""
    with SshServer.start(tmp_path / "sshd") as sshd:
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps({"all": {"hosts": {SSH_HOST: sshd.inventory_vars(sys.executable)}}}))
        result = subprocess.run([str(BIN / "ansible"), "-i", str(inventory), SSH_HOST, "-m", "ansible.builtin.ping"],
                                capture_output=True, text=True, timeout=120, cwd=REPO,
                                stdin=subprocess.DEVNULL, env=ansible_env(FAST), check=False)
        assert result.returncode == 0, f"ping over ssh failed:\n{result.stdout}\n{result.stderr}"
        assert '"ping": "pong"' in result.stdout
        logins = sshd.accepted_logins()
        assert logins and "for root from 127.0.0.1" in logins[0], (
            f"sshd logged no accepted key login; its log:\n{sshd.log.read_text()}")


@pytest.fixture
def fleet(tmp_path):
    with Fleet.start(tmp_path / "fleet", count=6, ssh=True, sites=("good",)) as running:
        yield running


def test_disable_in_batches_with_one_host_failing_configtest(fleet, tmp_path):
    names = list(fleet.hosts)
    assert len(names) == 7 and names[-1] == SSH_HOST
    inventory = fleet.write_inventory(tmp_path / "inventory.json")
    report = tmp_path / "report.json"

    fleet.break_configtest(BROKEN)
    before = {name: fleet.config_digest(name) for name in names}
    broken_pid = fleet.host(BROKEN).instance.pid
    logins_before = len(fleet.sshd.accepted_logins())
    fleet.lab.responder.set_mode("down")

    result = run_playbook(PLAYBOOK, inventory=str(inventory), timeout=600, env=FAST, extra_vars={
        "serial": 4, "max_fail_percentage": 25, "reason": "fleet test: responder down",
        "ticket": "FLEET-1", "report_json": str(report)})
    output = result.stdout + result.stderr
    recap = _recap(result.stdout)

    # ansible-playbook exits 2 when a host failed; every host must have been played.
    assert result.returncode == 2, f"expected exit 2 (one host failed), got {result.returncode}:\n{output[-5000:]}"
    assert set(recap) >= set(names), f"hosts missing from PLAY RECAP {sorted(recap)}:\n{output[-5000:]}"
    failed = sorted(name for name in names if recap[name].get("failed") or recap[name].get("unreachable"))
    assert failed == [BROKEN], f"expected only {BROKEN} to fail, failed/unreachable: {failed}:\n{output[-5000:]}"

    # serial 4 over 7 hosts: Ansible prints the play header once per batch (4, 3), and
    # the batch after web02's failure still ran (max_fail_percentage 25 allows one in four).
    batches = re.findall(r"^PLAY \[Disable OCSP stapling[^\n]*$", result.stdout, re.M)
    assert len(batches) == 2, f"expected 2 batches, saw {len(batches)} play headers:\n{output[-3000:]}"

    hosts = json.loads(report.read_text())["hosts"]
    for name in names:
        staple = fleet.probe(name, "good")
        digest = fleet.config_digest(name)
        if name == BROKEN:
            assert hosts[name]["error"] and "configtest" in hosts[name]["error"], hosts[name]
            assert digest == before[name], f"{BROKEN}'s config changed although its configtest failed"
            assert fleet.running(name) and fleet.host(name).instance.pid == broken_pid, (
                f"{BROKEN}'s apache2 (pid {broken_pid}) was restarted or died")
            assert staple.handshake_ok, f"{BROKEN} stopped serving TLS: {staple}"
            assert staple.stapled, f"{BROKEN}'s stapling was turned off although nothing should change: {staple}"
            # No record: the re-enable job must not "re-enable" what was never disabled.
            assert not (fleet.host(name).root / "runbook" / "state.json").exists()
        else:
            assert hosts[name]["error"] is None, f"{name} failed: {hosts[name]['error']}"
            assert hosts[name]["verdict"] == "disabled_by_collection", (name, hosts[name]["verdict"])
            assert digest != before[name], f"{name}'s config was not changed"
            assert "conf-enabled/zz-ocsp-stapling.conf" in digest, sorted(digest)
            assert staple.handshake_ok and not staple.stapled, f"{name} should serve TLS without a staple: {staple}"
            record = json.loads((fleet.host(name).root / "runbook" / "state.json").read_text())
            assert (record["reason"], record["ticket"]) == ("fleet test: responder down", "FLEET-1"), record
            assert [server["server"] for server in record["servers"]] == ["apache"], record

    # The ssh host's modules really went through sshd (key login as root from loopback).
    assert len(fleet.sshd.accepted_logins()) > logins_before, (
        f"sshd logged no login during the run; its log:\n{fleet.sshd.log.read_text()[-3000:]}")
