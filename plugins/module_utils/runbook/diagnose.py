# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's diagnosis (``stapling_diagnose``): one survey of the host, the staples judged and
the responders asked, then the verdict, in the fewest host round trips.

Controller side (``cryptography``). ``execute(module_name, module_args) -> result`` runs one
host module. The round trips: the survey (``stapling_survey``: facts, state record, the
check's files, the handshakes), then the OCSP requests (``ocsp_fetch``); a CA directory to
list or an issuer to download adds one each, only when a certificate needs it. A diagnosis
after a change takes the check from before (``check``) and asks the responders nothing.
"""
from __future__ import annotations

from typing import Any, Callable

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import check_run
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.check_args import CheckError
from ansible_collections.ocsp.stapling.plugins.module_utils.probe import verdict as staple_verdict
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.survey import ARGUMENT_SPEC as SURVEY_SPEC
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.verdict import decide
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.facts import WARNING_EXAMPLES

SURVEY_MODULE = "ocsp.stapling.stapling_survey"


class DiagnoseError(Exception):
    """The host could not be surveyed (the message says what was found and what to do)."""


def judged_status(raw: dict | None) -> dict:
    """The survey's raw handshakes judged here, as ``stapling_status`` returns them; ``{}``
    when there was no site to probe."""
    if not raw:
        return {}
    judged = [staple_verdict.judge(item, []) for item in raw["endpoints"]]
    return dict(raw, changed=False, endpoints=judged, summary=staple_verdict.summarize(judged))


def responder_check(args: dict, found: dict, execute: Callable[[str, dict], dict]) -> dict:
    """The responders' answers: reused after a change, ``{}`` with no certificate, and a
    failed check (an unreadable file, a host helper that failed) kept as a diagnosis."""
    if args.get("check") is not None:
        return args["check"]
    if not found["certificates"]:
        return {}
    check_args = check_run.default_args(certificates=found["certificates"], ip_version=args["responder_ip_version"],
                                        timeout=args["responder_timeout"])
    try:
        return dict(check_run.run_check(check_args, execute, files=found["files"]), changed=False)
    except (CheckError, RuntimeError) as exc:
        return {"failed": True, "changed": False, "msg": str(exc)}


def facts_warnings(facts: dict) -> list[str]:
    """The first few problems the configuration read showed, and how many more there were."""
    warnings = list(facts.get("warnings") or [])[:WARNING_EXAMPLES]
    more = int(facts.get("warnings_total") or 0) - len(warnings)
    if more > 0:
        warnings.append(f"{more} more problems were found while reading the configuration; run "
                        "ocsp.stapling.stapling_facts with detail=full for every one.")
    return warnings


def diagnose(args: dict, execute: Callable[[str, dict], dict]) -> dict[str, Any]:
    """``{ansible_facts, record, check, status, decision, warnings}`` for the host."""
    survey_args = {name: args[name] for name in SURVEY_SPEC if name in args}
    # The lock (or a write) has just returned the record: the survey need not read it again.
    if args.get("record") is not None:
        survey_args["record_path"] = None
    survey_args["read_check_files"] = args.get("check") is None
    found = execute(SURVEY_MODULE, survey_args)
    if found.get("failed"):
        raise DiagnoseError(f"Surveying the host failed: {found.get('msg') or found.get('module_stderr') or found}")
    facts = found["facts"]
    record = args["record"] if args.get("record") is not None else (found.get("record") or {"record": None})
    status = judged_status(found.get("status"))
    check = responder_check(args, found, execute)
    decision = decide(facts, status, check, record.get("record"), protected_warn_hours=float(args["protected_warn_hours"]))
    return {"ansible_facts": {"ocsp_stapling": facts}, "record": record, "check": check, "status": status,
            "decision": decision, "warnings": facts_warnings(facts) + list(found.get("warnings") or [])}
