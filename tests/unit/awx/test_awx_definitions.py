"""The AWX definitions (awx/) and the execution environment hold together.

There is no AWX here, so awx/configure_awx.yml never runs in the tests; what it would send
is checked instead: every job template names a playbook that exists, every survey is a
well-formed survey spec whose variables its playbook actually reads, the schedule answers
the re-enable survey, and the execution environment names dependency files that exist.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from tests.unit.paths import REPO

AWX = REPO / "awx"
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
# The questions the runbook's operators are asked (consecutive_good is the re-enable
# playbook's required_good).
RUNBOOK_QUESTIONS = {"target", "serial", "force", "reason", "ticket", "required_good"}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


DEFINITIONS = load_yaml(AWX / "job_templates.yml")
TEMPLATES = DEFINITIONS["ocsp_awx_job_templates"]
SCHEDULES = DEFINITIONS["ocsp_awx_schedules"]


def survey(name: str) -> dict:
    return json.loads((AWX / "surveys" / name).read_text())


def test_every_job_template_names_a_playbook_and_a_survey_that_exist():
    assert len({t["name"] for t in TEMPLATES}) == len(TEMPLATES), "job template names must be unique"
    for template in TEMPLATES:
        playbook = REPO / template["playbook"]
        assert template["playbook"].startswith("playbooks/") and playbook.is_file(), (
            f"job template {template['name']!r} names {template['playbook']}, which is not a file under playbooks/")
        assert (AWX / "surveys" / template["survey"]).is_file(), template["survey"]
        assert template["job_type"] in ("run", "check")
    # Every runbook playbook has a job template (install_schedule is for control nodes without AWX).
    runbooks = {f"playbooks/{p.name}" for p in (REPO / "playbooks").glob("*_stapling.yml")}
    assert runbooks and runbooks <= {t["playbook"] for t in TEMPLATES}, runbooks


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t["survey"])
def test_survey_spec_is_well_formed_and_read_by_its_playbook(template):
    spec = survey(template["survey"])
    assert set(spec) == {"name", "description", "spec"} and spec["name"] and spec["description"]
    questions = spec["spec"]
    assert questions, "a survey with no questions"
    variables = [q["variable"] for q in questions]
    assert len(set(variables)) == len(variables), f"duplicate survey variables: {variables}"
    assert {"target", "serial"} <= set(variables), "every runbook job asks which hosts and how many at a time"
    playbook_text = (REPO / template["playbook"]).read_text()
    for question in questions:
        where = f"{template['survey']}: {question.get('variable')}"
        assert {"question_name", "question_description", "required", "type", "variable"} <= set(question), where
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", question["variable"]), where
        assert question["type"] in SURVEY_TYPES, where
        assert isinstance(question["required"], bool), where
        # An answer nobody reads is a question that silently does nothing.
        assert re.search(rf"\b{question['variable']}\b", playbook_text), (
            f"{where}: {template['playbook']} never reads this variable")
        default = question.get("default")
        if question["type"] in ("multiplechoice", "multiselect"):
            assert isinstance(question["choices"], list) and question["choices"], where
            assert default in question["choices"], f"{where}: default {default!r} is not a choice"
        elif question["type"] == "integer":
            assert isinstance(default, int) and question["min"] <= default <= question["max"], where
        elif question["type"] in ("text", "textarea"):
            assert isinstance(default, str) and len(default) <= question["max"], where
            # A required question may start empty (the operator must type an answer), never too short.
            assert default == "" and question["required"] or question["min"] <= len(default), where
            if question["required"]:
                assert question["min"] >= 1, f"{where}: a required text answer must not be empty"


def test_surveys_ask_the_runbook_questions():
    asked = {q["variable"] for t in TEMPLATES for q in survey(t["survey"])["spec"]}
    assert RUNBOOK_QUESTIONS <= asked, RUNBOOK_QUESTIONS - asked
    force = [q for t in TEMPLATES for q in survey(t["survey"])["spec"] if q["variable"] == "force"]
    # AWX has no boolean question; "false" | bool is False in the playbooks. The safe answer is the default.
    assert force and all(q["choices"] == ["false", "true"] and q["default"] == "false" for q in force)


def test_the_reenable_job_is_scheduled_with_answers_its_survey_accepts():
    by_name = {t["name"]: t for t in TEMPLATES}
    assert SCHEDULES
    for schedule in SCHEDULES:
        template = by_name.get(schedule["job_template"])
        assert template, f"schedule {schedule['name']!r} names an unknown job template {schedule['job_template']!r}"
        assert template["playbook"] == "playbooks/reenable_stapling.yml"
        assert re.match(r"DTSTART(;TZID=[\w/]+)?:\d{8}T\d{6}Z? RRULE:FREQ=(MINUTELY|HOURLY);INTERVAL=\d+$",
                        schedule["rrule"]), schedule["rrule"]
        questions = {q["variable"]: q for q in survey(template["survey"])["spec"]}
        assert set(schedule["extra_data"]) <= set(questions), set(schedule["extra_data"]) - set(questions)
        for variable, question in questions.items():
            if question["required"]:
                answer = schedule["extra_data"].get(variable, question.get("default"))
                assert answer not in (None, ""), f"the schedule leaves the required {variable!r} unanswered"


def test_configure_playbook_reads_these_definitions():
    plays = load_yaml(AWX / "configure_awx.yml")
    assert plays[0]["vars_files"] == ["job_templates.yml"]
    modules = [next(k for k in task if k.startswith("awx.awx.")) for task in plays[0]["tasks"]]
    assert modules == ["awx.awx.execution_environment", "awx.awx.project", "awx.awx.job_template",
                       "awx.awx.schedule"]
    job_template = plays[0]["tasks"][2]["awx.awx.job_template"]
    assert job_template["survey_enabled"] is True and "surveys/" in job_template["survey_spec"]


def test_execution_environment_installs_the_collection_and_its_requirements():
    ee = load_yaml(REPO / "execution-environment.yml")
    assert ee["version"] == 3
    assert ee["images"]["base_image"]["name"]
    dependencies = ee["dependencies"]
    for key in ("python", "system"):
        path = REPO / dependencies[key]
        assert path.is_file(), f"execution-environment.yml names {dependencies[key]} for {key}, which does not exist"
    assert dependencies["python"] == "requirements.txt" and dependencies["system"] == "bindep.txt"
    # The controller-side crypto is what the EE exists for.
    assert re.search(r"^cryptography\b", (REPO / "requirements.txt").read_text(), re.M)
    # The same ansible-core range the tests run.
    tested = re.search(r"^ansible-core\S*", (REPO / "test-requirements.txt").read_text(), re.M).group(0)
    assert dependencies["ansible_core"]["package_pip"] == tested
    galaxy = load_yaml(REPO / "galaxy.yml")
    tarball = f"{galaxy['namespace']}-{galaxy['name']}-"
    steps = " ".join(ee["additional_build_steps"]["append_final"])
    assert "ansible-galaxy collection install" in steps and tarball in steps, steps
    build_files = {item["dest"]: item["src"] for item in ee["additional_build_files"]}
    assert "_build/collection/" in steps and "collection" in build_files, build_files
