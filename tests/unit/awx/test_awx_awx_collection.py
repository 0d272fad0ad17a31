"""awx/configure_awx.yml checked by AWX's own collection and by AWX's own rules.

awx.awx comes from the ``ansible`` package's wheel (tests/bin/install-awx-collection, run by
``make deps``) into .cache/collections. With it:

- ``ansible-lint`` (production profile) passes on awx/configure_awx.yml, which it cannot
  even syntax-check without the collection;
- every ``awx.awx.*`` task, once per loop item and templated as Ansible would, passes the
  argument spec its module builds (tests/unit/awx/awx_module_args.py);
- each survey the job templates send passes the checks AWX's API makes on a survey spec
  (JobTemplateSurveySpec._validate_spec_data: fields and their types, allowed question
  types, default of the question's type, integer min/max, choices), every default is an
  answer AWX's survey validation accepts (in the choices, within min/max), and every
  variable is one the playbook's header documents;
- the schedule's RRULE passes AWX's schedule serializer checks and parses with
  ``dateutil.rrule.rrulestr`` as AWX's ``Schedule.rrulestr`` calls it (forceset, UTC zone
  names, a DTSTART with a time zone), and its extra_data are answers the survey accepts.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.paths import REPO

AWX = REPO / "awx"
COLLECTIONS = REPO / ".cache" / "collections"
AWX_COLLECTION = COLLECTIONS / "ansible_collections" / "awx" / "awx"
BIN = Path(sys.executable).parent
# JobTemplateSurveySpec.ALLOWED_TYPES: question type -> the type of its default.
ALLOWED_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                 "integer": int, "float": float}


def env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
                ANSIBLE_NOCOLOR="1", NO_COLOR="1")


@pytest.fixture(scope="module")
def awx_collection() -> Path:
    if not (AWX_COLLECTION / "plugins" / "modules" / "job_template.py").is_file():
        pytest.fail(f"awx.awx is not in {AWX_COLLECTION}: run tests/bin/install-awx-collection (make deps does)")
    return AWX_COLLECTION


def module_args(playbook: Path) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "tests.unit.awx.awx_module_args", str(playbook)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, env=env(), check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def tasks(awx_collection) -> list[dict]:
    return module_args(AWX / "configure_awx.yml")


def test_configure_awx_passes_ansible_lint_with_awx_awx_installed(awx_collection):
    result = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--nocolor", "awx/configure_awx.yml"], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=env(), check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_every_awx_task_passes_its_modules_argument_spec(tasks):
    templates = [task for task in tasks if task["module"] == "awx.awx.job_template"]
    schedules = [task for task in tasks if task["module"] == "awx.awx.schedule"]
    assert [task["module"] for task in tasks][:2] == ["awx.awx.execution_environment", "awx.awx.project"]
    assert len(templates) == 5 and len(schedules) == 1, [task["module"] for task in tasks]
    for task in tasks:
        assert not task["errors"], f"{task['module']} ({task['task']}, item {task['item']}): {task['errors']}"
    # Templated to the types the module wants, not strings that happen to convert.
    assert all(isinstance(task["params"]["forks"], int) for task in templates)
    assert all(isinstance(task["params"]["survey_spec"], dict) for task in templates)
    assert isinstance(schedules[0]["params"]["extra_data"], dict)


def test_the_argument_check_rejects_what_awx_awx_rejects(awx_collection, tmp_path):
    copy = tmp_path / "awx"
    shutil.copytree(AWX, copy)
    playbook = copy / "configure_awx.yml"
    text = playbook.read_text()
    for old, new in (("        pull: missing", "        pull: sometimes"),
                     ("        survey_enabled: true", "        survey_enable: true")):
        assert old in text
        text = text.replace(old, new)
    playbook.write_text(text)
    errors = {task["module"]: task["errors"] for task in module_args(playbook)}
    assert any("pull must be one of" in error for error in errors["awx.awx.execution_environment"])
    assert any(error.startswith("survey_enable. Supported parameters include") for error in errors["awx.awx.job_template"])


def spec_errors(spec: dict) -> list[str]:
    """What AWX's API says about a survey spec (JobTemplateSurveySpec._validate_spec_data)."""
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(spec.get(field), kind):
            errors.append(f"field {field!r} missing or not {kind.__name__}")
    if errors:
        return errors
    if not spec["spec"]:
        errors.append("'spec' doesn't contain any items")
    variables = set()
    for index, item in enumerate(spec["spec"]):
        where = f"question {index} ({item.get('variable')})"
        if not isinstance(item, dict):
            errors.append(f"{where}: not a dictionary")
            continue
        for field in ("type", "question_name", "variable", "required"):
            if field not in item:
                errors.append(f"{where}: {field!r} missing")
            elif not isinstance(item[field], bool if field == "required" else str):
                errors.append(f"{where}: {field!r} has the wrong type")
        if item.get("variable") in variables:
            errors.append(f"{where}: variable duplicated")
        variables.add(item.get("variable"))
        kind = item.get("type")
        if kind not in ALLOWED_TYPES:
            errors.append(f"{where}: type {kind!r} is not one of {sorted(ALLOWED_TYPES)}")
            continue
        default = item.get("default")
        if "default" in item and default != "" and not isinstance(default, ALLOWED_TYPES[kind]):
            errors.append(f"{where}: default {default!r} is not {ALLOWED_TYPES[kind].__name__}")
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                errors.append(f"{where}: {key} is not an integer")
        if kind in ("multiplechoice", "multiselect"):
            choices = item.get("choices")
            if choices is None:
                errors.append(f"{where}: no choices")
                continue
            choices = choices.splitlines() if isinstance(choices, str) else choices
            defaults = default.splitlines() if isinstance(default, str) else list(default or [])
            if kind == "multiplechoice" and len(defaults) > 1:
                errors.append(f"{where}: a multiple choice question has one default")
            if any(value not in choices for value in defaults):
                errors.append(f"{where}: default {default!r} is not among the choices {choices}")
    return errors


def answer_errors(item: dict, value) -> list[str]:
    """What AWX's survey validation says about one answer (SurveyJobTemplateMixin._survey_element_validation)."""
    kind, name = item["type"], item["variable"]
    low, high = item.get("min"), item.get("max")
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"{name}: {value!r} is not a string"]
        if low not in ("", None) and len(value) < int(low):
            return [f"{name}: {value!r} is shorter than {low}"]
        if high not in ("", None) and len(value) > int(high):
            return [f"{name}: {value!r} is longer than {high}"]
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{name}: {value!r} is not an integer"]
        if low not in ("", None) and value < int(low) or high not in ("", None) and value > int(high):
            return [f"{name}: {value} is outside {low}..{high}"]
    elif kind == "float":
        if type(value) not in (int, float):
            return [f"{name}: {value!r} is not a number"]
    elif kind in ("multiplechoice", "multiselect"):
        choices = item["choices"].splitlines() if isinstance(item["choices"], str) else item["choices"]
        values = value if kind == "multiselect" else [value]
        if kind == "multiselect" and not isinstance(value, list) or any(v not in choices for v in values):
            return [f"{name}: {value!r} is not among {choices}"]
    return []


def documented_variables(playbook: Path) -> str:
    """The playbook's header comment from its "Variables:" line to the end of the header."""
    header = []
    for line in playbook.read_text().splitlines()[1:]:
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# "))
    text = " ".join(header)
    assert "Variables:" in text, f"{playbook} documents no variables in its header"
    return text.split("Variables:", 1)[1]


def test_the_surveys_sent_pass_awxs_survey_rules(tasks):
    for task in (task for task in tasks if task["module"] == "awx.awx.job_template"):
        survey = task["params"]["survey_spec"]
        where = f"{task['item']['survey']} ({task['params']['name']})"
        assert spec_errors(survey) == [], where
        documented = documented_variables(REPO / task["params"]["playbook"])
        for item in survey["spec"]:
            if item.get("default") not in (None, ""):
                assert answer_errors(item, item["default"]) == [], f"{where}: default of {item['variable']}"
            assert re.search(rf"\b{re.escape(item['variable'])}\b", documented), (
                f"{where}: {task['params']['playbook']} does not document {item['variable']!r} in its header")


def test_the_survey_checks_reject_what_awx_rejects():
    good = {"question_name": "Q", "variable": "serial", "required": True, "type": "text", "default": "25%",
            "min": 1, "max": 8}
    assert spec_errors({"name": "n", "description": "d", "spec": [good]}) == []
    assert spec_errors({"name": "n", "description": "d", "spec": []})
    assert spec_errors({"name": "n", "description": "d", "spec": [dict(good, type="boolean")]})
    assert spec_errors({"name": "n", "description": "d", "spec": [dict(good, type="integer")]})
    assert spec_errors({"name": "n", "description": "d", "spec": [good, good]})
    assert spec_errors({"name": "n", "description": "d", "spec": [dict(good, type="multiplechoice", choices=["a"])]})
    assert answer_errors(dict(good, type="integer", min=1, max=3), 4)
    assert answer_errors(good, "123456789")
    assert answer_errors(dict(good, type="multiplechoice", choices=["false", "true"]), "yes")


RRULE_CHECKS = (
    # AWX's SchedulePreviewSerializer.validate_rrule, the reasons it gives.
    (lambda r: len(re.findall(r".*?(DTSTART(;[^:]+)?\:[0-9]+T[0-9]+Z?)", r)) == 1, "exactly one valid DTSTART"),
    (lambda r: not re.findall(r".*?(DTSTART:[0-9]+T[0-9]+) ", r), "DTSTART cannot be a naive datetime"),
    (lambda r: "rrule:" in r.lower(), "one or more rule required"),
    (lambda r: "exdate:" not in r.lower() and "rdate:" not in r.lower(), "EXDATE / RDATE not allowed"),
    (lambda r: all("interval" in rule.lower() for rule in re.findall(r".*?(RULE\:[^\s]*)", r)), "INTERVAL required"),
    (lambda r: "secondly" not in r.lower(), "SECONDLY is not supported"),
    (lambda r: not re.match(r".*?BYDAY[\:\=][0-9]+[a-zA-Z]{2}", r), "BYDAY with numeric prefix not supported"),
    (lambda r: not ("COUNT" in r and "UNTIL" in r), "RRULE may not contain both COUNT and UNTIL"),
)


def awx_rrule(rrule: str):
    """Parse as AWX's Schedule.rrulestr does; fail with AWX's reason."""
    from dateutil import parser, rrule as dateutil_rrule, tz

    for check, reason in RRULE_CHECKS:
        assert check(rrule), f"AWX rejects {rrule!r}: {reason}"
    utc_zones = {name: tz.tzutc() for name in parser.parserinfo().UTCZONE}
    ruleset = dateutil_rrule.rrulestr(rrule, tzinfos=utc_zones, forceset=True)
    for rule in ruleset._rrule:  # noqa: SLF001 (AWX reads the same attribute)
        assert rule._dtstart is not None and rule._dtstart.tzinfo is not None, (
            f"AWX rejects {rrule!r}: a valid TZID must be provided")
    return ruleset


def test_the_schedule_passes_awxs_rrule_rules_and_answers_its_survey(tasks):
    (schedule,) = [task for task in tasks if task["module"] == "awx.awx.schedule"]
    ruleset = awx_rrule(schedule["params"]["rrule"])
    start = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
    first = ruleset.after(start, inc=True)
    second = ruleset.after(first)
    assert (first, second - first) == (start, dt.timedelta(minutes=15)), (first, second)
    template = next(task for task in tasks if task["module"] == "awx.awx.job_template"
                    and task["params"]["name"] == schedule["params"]["unified_job_template"])
    assert template["params"]["playbook"] == "playbooks/reenable_stapling.yml"
    questions = {item["variable"]: item for item in template["params"]["survey_spec"]["spec"]}
    answers = schedule["params"]["extra_data"]
    assert set(answers) <= set(questions), set(answers) - set(questions)
    for name, item in questions.items():
        value = answers.get(name, item.get("default"))
        if item["required"]:
            assert value not in (None, ""), f"the schedule leaves the required {name!r} unanswered"
        if value not in (None, ""):
            assert answer_errors(item, value) == [], (name, value)


@pytest.mark.parametrize("rrule", [
    "DTSTART:20250101T000000 RRULE:FREQ=MINUTELY;INTERVAL=15",
    "DTSTART;TZID=UTC:20250101T000000 RRULE:FREQ=MINUTELY",
    "DTSTART;TZID=UTC:20250101T000000 RRULE:FREQ=SECONDLY;INTERVAL=5",
    "RRULE:FREQ=MINUTELY;INTERVAL=15",
])
def test_the_rrule_check_rejects_what_awx_rejects(rrule):
    with pytest.raises(AssertionError, match="AWX rejects"):
        awx_rrule(rrule)
