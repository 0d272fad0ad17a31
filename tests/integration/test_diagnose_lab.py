"""stapling_diagnose against the lab: one task says what the four separate steps say.

One play runs the diagnosis both ways on the lab's running Apache and nginx, its responder
answering: ``stapling_diagnose`` (one survey of the host, then the OCSP requests) and the
steps it replaces (``stapling_facts``, ``ocsp_responder_check`` on the certificates the
facts name, ``stapling_status`` on their endpoints, the ``stapling_verdict`` filter). The
verdict, every site's row and every responder's row must be the same; and a diagnosis
after a change, given the check from before, keeps those answers exactly (timings included).
"""
from __future__ import annotations

import base64
import json
import re
import tempfile
from pathlib import Path

import pytest

from tests.integration.ansible_run import RESULT_MARK, run_playbook
from tests.lab.pki import LEAF_HOSTS

# Rows the two paths must agree on (timings and the time of the answers differ by nature).
SITE_KEYS = ("site", "server", "verdict", "handshake_ok", "must_staple", "responder_reachable", "has_ocsp_url")
RESPONDER_KEYS = ("url", "reachable", "failure")


def facts_args(lab) -> dict:
    return {"apache_binary": "/usr/sbin/apache2", "apache_config": str(lab.apache.conf),
            "apache_server_root": str(lab.apache.conf_dir), "nginx_config": str(lab.nginx.conf),
            "error_logs": [str(lab.apache.error_log), str(lab.nginx.error_log)]}


@pytest.fixture(scope="module")
def both_ways(shared_lab, tmp_path_factory):
    args = facts_args(shared_lab)
    record = str(tmp_path_factory.mktemp("diagnose") / "state.json")
    tasks = [
        {"name": "Diagnose in one task", "ocsp.stapling.stapling_diagnose": dict(args, record_path=record, warmup=True),
         "register": "one"},
        {"name": "Diagnose again as after a change", "ocsp.stapling.stapling_diagnose": dict(
            args, record_path=record, warmup=True, check="{{ one.check }}"), "register": "again"},
        {"name": "Facts", "ocsp.stapling.stapling_facts": args},
        {"name": "Responders", "ocsp.stapling.ocsp_responder_check": {
            "certificates": "{{ ansible_facts.ocsp_stapling | ocsp.stapling.stapling_check_certificates }}"},
         "register": "check"},
        {"name": "Staples", "ocsp.stapling.stapling_status": {
            "endpoints": "{{ ansible_facts.ocsp_stapling | ocsp.stapling.stapling_endpoints }}", "warmup": True},
         "register": "status"},
        {"name": "Print", "ansible.builtin.debug": {"msg": RESULT_MARK + "{{ {'one': one, 'again': again, "
                                                    "'steps': ansible_facts.ocsp_stapling | ocsp.stapling.stapling_verdict("
                                                    "status, check, none)} | to_json | b64encode }}"}},
    ]
    with tempfile.TemporaryDirectory(prefix="diagnose-") as tmp:
        playbook = Path(tmp) / "play.yml"
        playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                                         "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                                         "tasks": tasks}]))
        completed = run_playbook(playbook, inventory="localhost,", env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"})
    encoded = re.search(re.escape(RESULT_MARK) + r"([A-Za-z0-9+/=]+)", completed.stdout)
    assert encoded, completed.stdout[-4000:] + completed.stderr[-2000:]
    return json.loads(base64.b64decode(encoded.group(1)))


def rows(decision: dict, key: str, keys: tuple[str, ...]) -> list[dict]:
    return sorted(({k: row.get(k) for k in keys} for row in decision[key]), key=json.dumps)


def test_one_task_decides_what_the_four_steps_decide(both_ways):
    one, steps = both_ways["one"], both_ways["steps"]
    assert not one.get("failed"), one.get("msg")
    decision = one["decision"]
    assert decision["verdict"] == steps["verdict"] == "healthy", (decision["reasons"], steps["reasons"])
    assert rows(decision, "sites", SITE_KEYS) == rows(steps, "sites", SITE_KEYS)
    assert rows(decision, "responders", RESPONDER_KEYS) == rows(steps, "responders", RESPONDER_KEYS)
    # Every lab site, on both servers, was probed for real and judged on the controller.
    probed = {(e["server_name"], e["port"]) for e in one["status"]["endpoints"]}
    assert {name for name, _port in probed} == set(LEAF_HOSTS.values())
    assert one["status"]["summary"] and one["ansible_facts"]["ocsp_stapling"]["sites"]
    # No disable is recorded on this host, and the record was read, not assumed.
    assert one["record"] == {"record": None, "exists": False, "record_path": one["record"]["record_path"]}


def test_a_diagnosis_after_a_change_reuses_the_responders_answers(both_ways):
    one, again = both_ways["one"], both_ways["again"]
    assert not again.get("failed"), again.get("msg")
    assert again["check"] == one["check"]
    assert again["decision"]["verdict"] == one["decision"]["verdict"]
    assert rows(again["decision"], "sites", SITE_KEYS) == rows(one["decision"], "sites", SITE_KEYS)
