"""The check runbook run through ansible-runner, the way AWX runs a job template.

AWX hands ansible-runner a private data directory: ``project/`` (the project checkout,
here the collection's ``playbooks/``), ``inventory/`` (the job's inventory), ``env/``
(settings such as the job timeout) and extra vars and environment from the job template
and its survey. The collection itself comes from ``ANSIBLE_COLLECTIONS_PATH``, as it does
from the execution environment. This test builds that layout around a lab (apache2 +
OCSP responder on 127.0.0.1), turns the responder off, and reads the verdict back from the
job's events, where AWX reads it too.
"""
from __future__ import annotations

import json
import os
import shutil

import ansible_runner
import pytest

from tests.integration.ansible_run import BIN, COLLECTIONS, REPO
from tests.lab import inventory as lab_inventory
from tests.lab.lab import Lab


@pytest.fixture
def apache_lab(tmp_path):
    """One apache2 and the responder: all a check run needs."""
    with Lab.start(tmp_path / "lab", servers=("apache",)) as running:
        yield running


def private_data_dir(root, record: dict) -> str:
    """env/, inventory/ and project/ as AWX lays them out for a job."""
    (root / "env").mkdir(parents=True)
    (root / "inventory").mkdir()
    # AWX's job timeout; ansible-runner kills the run after it.
    (root / "env" / "settings").write_text(json.dumps({"job_timeout": 300, "suppress_ansible_output": True}))
    (root / "inventory" / "hosts.json").write_text(json.dumps(lab_inventory.inventory(record, host="web-lab")))
    shutil.copytree(REPO / "playbooks", root / "project")
    return str(root)


def test_check_stapling_job_through_ansible_runner(apache_lab, tmp_path):
    apache_lab.responder.set_mode("down")
    data_dir = private_data_dir(tmp_path / "job", apache_lab.record())

    run = ansible_runner.run(
        private_data_dir=data_dir,
        playbook="check_stapling.yml",
        inventory=os.path.join(data_dir, "inventory", "hosts.json"),
        envvars={
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_PIPELINING": "True",
            # The job's ansible-playbook is the one of this venv, as the EE's is its own.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        extravars={"target": "web-lab", "serial": 1, "ticket": "AWX-42"},
        quiet=True,
    )
    stdout = run.stdout.read() if run.stdout else ""

    assert run.status == "successful" and run.rc == 0, (
        f"the job ended {run.status} (rc {run.rc}); expected successful. Output:\n{stdout[-5000:]}")
    assert run.stats["ok"].get("web-lab"), run.stats
    assert not run.stats["failures"] and not run.stats["dark"], run.stats

    events = list(run.events)
    assert events[0]["event"] == "playbook_on_start" and events[-1]["event"] == "playbook_on_stats", [
        (e["event"], e.get("stdout")) for e in events[:3]]
    ok = [e["event_data"] for e in events if e["event"] == "runner_on_ok"]

    # Read-only: no task on the web host changed anything.
    assert not [e["task"] for e in ok if e.get("host") == "web-lab" and e["res"].get("changed")]

    # The diagnosis asked the responder from the host and found it unreachable.
    checks = [e["res"]["check"] for e in ok if e.get("task_action", "").endswith("stapling_diagnose")]
    assert checks, "no stapling_diagnose result among the job events"
    failures = {cert["failure"] for result in checks for cert in result["certificates"] if cert["ocsp_urls"]}
    assert failures == {"connection_refused"}, failures
    # The controller-side summary carries the structured report AWX keeps with the job.
    reports = [e["res"]["report"] for e in ok if "report" in e["res"]]
    assert reports, "no stapling_report result among the job events"
    host = reports[-1]["hosts"]["web-lab"]
    assert reports[-1]["action"] == "check" and host["error"] is None, host
    # The lab serves a Must-Staple certificate: disabling would not save it, so the check
    # says so instead of recommending a plain disable.
    assert host["verdict"] == "must_staple_at_risk", host["verdict"]
    assert "force=true" in host["recommendation"], host["recommendation"]
    good = [site for site in host["sites"] if site["site"] == "good.lab.test"]
    assert good and good[0]["responder_reachable"] is False, good
    summary = [e["res"]["msg"] for e in ok if e.get("task") == "Print the summary"]
    assert summary and any("web-lab" in line for line in summary[0]), summary
