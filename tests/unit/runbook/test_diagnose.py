"""The diagnosis in one survey: what the host reads (runbook/survey.py) and the round trips the
controller makes (runbook/diagnose.py), with the host side run in-process for real.

``execute`` stands in for Ansible's transport only: each call runs the real host module code
(the survey on a fixture tree, ocsp_fetch's file reads) and is recorded, so the tests can
say how many round trips a diagnosis costs. The lab's runbook tests play the same code
through Ansible against real servers and a real responder (tests/integration/test_diagnose_lab.py).
"""
from __future__ import annotations

import json
import shutil

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import fetch as ocsp_fetch
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook import diagnose
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.survey import DIAGNOSE_ARGUMENT_SPEC, SurveyError, survey
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.verdict import check_certificates
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.facts import gather_facts
from tests.unit.paths import FIXTURES

RHEL = FIXTURES / "configs" / "rhel"


def args(**given) -> dict:
    out = {name: spec.get("default") for name, spec in DIAGNOSE_ARGUMENT_SPEC.items()}
    out.update(root=str(RHEL), run_binaries=False, probe=False)
    out.update(given)
    return out


class Host:
    """Runs the host modules' code in-process and records each round trip."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, module: str, module_args: dict) -> dict:
        self.calls.append((module, dict(module_args)))
        if module == diagnose.SURVEY_MODULE:
            try:
                return survey(dict(args(), **module_args), find_openssl=lambda: shutil.which("openssl"))
            except SurveyError as exc:
                return {"failed": True, "msg": str(exc)}
        if module == "ocsp.stapling.ocsp_fetch":
            return {"files": [ocsp_fetch.read_file(p) for p in module_args.get("paths") or []], "results": []}
        raise AssertionError(f"unexpected module {module}")


def test_the_survey_reads_the_facts_the_record_and_the_checks_files(tmp_path):
    record = tmp_path / "state.json"
    record.write_text(json.dumps({"disabled_by": "ocsp.stapling", "run_id": "r1", "servers": []}))
    found = survey(args(record_path=str(record)), find_openssl=lambda: None)
    facts = gather_facts(root=str(RHEL), run_binaries=False, detail="compact")
    assert found["facts"] == facts
    assert found["record"] == {"record": json.loads(record.read_text()), "exists": True, "record_path": str(record)}
    assert found["certificates"] == check_certificates(facts) != []
    # The certificate and the issuer file its server reads, each once, as ocsp_fetch reads them.
    wanted = [facts_cert["path"] for facts_cert in found["certificates"]] + ["/etc/pki/tls/certs/ca-bundle.crt"]
    assert [f["path"] for f in found["files"]] == wanted
    assert found["files"] == [ocsp_fetch.read_file(path) for path in wanted]
    assert found["status"] is None      # probe off


def test_the_survey_needs_openssl_only_to_probe():
    with pytest.raises(SurveyError, match="openssl was not found"):
        survey(args(probe=True), find_openssl=lambda: None)
    assert survey(args(probe=False), find_openssl=lambda: None)["status"] is None


def test_an_unreadable_certificate_is_a_diagnosis_in_one_round_trip():
    host = Host()
    out = diagnose.diagnose(args(record_path="/nonexistent/state.json"), host)
    # The survey read the facts, the (absent) record and the files; the certificate is not on
    # this machine, so there is nothing to ask a responder: one round trip in all.
    assert [call[0] for call in host.calls] == [diagnose.SURVEY_MODULE]
    assert out["check"]["failed"] is True and "/etc/pki/tls/certs/localhost.crt" in out["check"]["msg"]
    assert out["record"]["record"] is None
    assert out["ansible_facts"]["ocsp_stapling"]["servers"]["apache"]["layout"] == "rhel"
    # The verdict says the responder is unknown rather than healthy.
    assert out["decision"]["verdict"] != "healthy"


def test_after_a_change_the_check_and_the_record_given_are_not_read_again():
    host = Host()
    before = {"changed": False, "certificates": [], "responders": []}
    locked = {"record": None, "exists": False}
    out = diagnose.diagnose(args(record_path="/var/lib/ocsp-stapling/state.json", check=before, record=locked), host)
    assert len(host.calls) == 1
    survey_args = host.calls[0][1]
    assert survey_args["read_check_files"] is False and survey_args["record_path"] is None
    assert out["check"] is before and out["record"] is locked


def test_a_survey_that_fails_fails_the_diagnosis_with_its_reason():
    def broken(module, module_args):
        return {"failed": True, "msg": "the state record says disabled_by='someone else'"}
    with pytest.raises(diagnose.DiagnoseError, match="Surveying the host failed: the state record says"):
        diagnose.diagnose(args(), broken)
