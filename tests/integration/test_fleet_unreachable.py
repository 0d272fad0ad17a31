"""A host that cannot be reached, in the middle of a batch (``serial``), during a disable.

Three local Apache hosts and the lab responder (``tests.lab.fleet``); ``web02`` is reached
over ssh to a port on 127.0.0.1 where nothing listens, so every connection to it fails.
With the responder down, ``disable_stapling`` runs with ``serial: 2`` (``web01`` and
``web02`` in the first batch) and ``max_fail_percentage: 50``. ``web02`` is reported
unreachable and left exactly as it was (its apache2 still runs and staples, its files are
byte-identical, no state record); ``web01`` in its batch and ``web03`` in the next one end
with stapling off, their sites serving, and a record saying why.
"""
from __future__ import annotations

import json
import re

import pytest

from tests.integration.ansible_run import REPO, run_playbook
from tests.integration.test_fleet import FAST, _recap
from tests.lab.fleet import Fleet
from tests.lab.responder import free_port

PLAYBOOK = REPO / "playbooks" / "disable_stapling.yml"
GONE = "web02"


@pytest.fixture
def fleet(tmp_path):
    with Fleet.start(tmp_path / "fleet", count=3, ssh=False, sites=("good",)) as running:
        yield running


def test_an_unreachable_host_mid_batch_fails_alone_and_the_others_are_disabled(fleet, tmp_path):
    names = list(fleet.hosts)
    assert names == ["web01", "web02", "web03"]
    inventory = fleet.inventory()
    closed = free_port()  # nothing listens here: ssh gets "connection refused" at once
    inventory["all"]["children"]["webservers"]["hosts"][GONE].update({
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": closed, "ansible_user": "root",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                   "-o BatchMode=yes -o ConnectTimeout=5 -o ConnectionAttempts=1"})
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inventory))
    report = tmp_path / "report.json"
    before = {name: fleet.config_digest(name) for name in names}
    gone_pid = fleet.host(GONE).instance.pid
    fleet.lab.responder.set_mode("down")

    result = run_playbook(PLAYBOOK, inventory=str(path), timeout=600, env=dict(FAST, ANSIBLE_SSH_RETRIES="0"),
                          extra_vars={"serial": 2, "max_fail_percentage": 50, "reason": "unreachable test",
                                      "ticket": "FLEET-2", "report_json": str(report)})
    output = result.stdout + result.stderr
    (tmp_path / "run.log").write_text(output)
    recap = _recap(result.stdout)

    # ansible-playbook exits 4 when a host was unreachable.
    assert result.returncode == 4, f"expected exit 4 (one host unreachable), got {result.returncode}:\n{output[-5000:]}"
    assert recap[GONE].get("unreachable") == 1, recap
    for name in ("web01", "web03"):
        assert not recap[name].get("failed") and not recap[name].get("unreachable"), (name, recap)
    assert re.search(rf"UNREACHABLE!.*{GONE}|{GONE}.*UNREACHABLE!", output), output[-3000:]
    assert "Connection refused" in output, output[-3000:]
    batches = re.findall(r"^PLAY \[Disable OCSP stapling[^\n]*$", result.stdout, re.M)
    assert len(batches) == 2, f"expected 2 batches, saw {len(batches)}:\n{output[-3000:]}"

    hosts = json.loads(report.read_text())["hosts"]
    assert hosts[GONE]["error"], hosts[GONE]
    gone = fleet.host(GONE)
    assert fleet.config_digest(GONE) == before[GONE], f"{GONE}'s files changed although it was never reached"
    assert fleet.running(GONE) and gone.instance.pid == gone_pid, f"{GONE}'s apache2 was restarted or died"
    staple = fleet.probe(GONE, "good")
    assert staple.handshake_ok and staple.stapled, f"{GONE} should still serve its cached staple: {staple}"
    assert not (gone.root / "runbook" / "state.json").exists()

    for name in ("web01", "web03"):
        assert hosts[name]["error"] is None, (name, hosts[name])
        assert hosts[name]["verdict"] == "disabled_by_collection", (name, hosts[name]["verdict"])
        assert fleet.config_digest(name) != before[name], f"{name}'s config was not changed"
        staple = fleet.probe(name, "good")
        assert staple.handshake_ok and not staple.stapled, f"{name} should serve TLS without a staple: {staple}"
        record = json.loads((fleet.host(name).root / "runbook" / "state.json").read_text())
        assert (record["reason"], record["ticket"]) == ("unreachable test", "FLEET-2"), record
