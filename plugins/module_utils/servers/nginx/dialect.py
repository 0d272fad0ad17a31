# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx behind the dialect contract (:mod:`servers.contract`). Host side, standard library only.

The candidate's ``nginx -t`` runs once, in the change engine; ``nginx -t`` exits 0 while
warning ``"ssl_stapling" ignored``, so :func:`classify_configtest` judges its output there
(``configtest_check``) and a warning that leaves a site being enabled without a staple
fails the configtest before anything changes.
"""
from __future__ import annotations

import os

from typing import Any

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    FileSpec,
    VerifySpec,
    file_fields,
    run_command,
    split_command,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.contract import (
    ContractError,
    ServerPlan,
    Site,
    change_request,
    verify_spec,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx.plan import (
    PlanError,
    PlanRequest,
    classify_configtest,
    plan as plan_nginx,
)

NAME = "nginx"
STATES = ("enabled", "disabled", "absent")
__all__ = ["NAME", "STATES", "plan"]
FATAL_PATTERNS = (r"\[emerg\]", r"\[alert\]")
WARNING_PATTERNS = ('"ssl_stapling" ignored', r"OCSP_basic_verify\(\) failed", "no resolver defined")
#: option -> (default); PlanRequest's fields the module takes in ``options``
OPTIONS = {
    "config": "/etc/nginx/nginx.conf", "managed_dir": "/etc/nginx/ocsp-stapling",
    "http_include_file": "/etc/nginx/conf.d/zz-ocsp-stapling.conf", "server_names": [],
    "config_files": [], "placement": "auto", "skip_not_applicable": True,
    "ca_bundle": "/etc/ssl/certs/ca-certificates.crt", "verify_host": "127.0.0.1",
    "version_command": "nginx -v", "fail_on_configtest_warnings": True,
    # protected: sites staple the keeper's verified response (ssl_stapling_file), see docs/protected.md
    "stapling_mode": "standard", "keeper_dir": None,
    # the keeper's configuration: the plan says whether it exists (only then is it pruned)
    "keeper_config": None,
}


def nginx_version(command: Any, environment: dict[str, str]) -> str:
    argv = split_command(command)
    if not argv:
        return ""
    _rc, out = run_command(argv, environment, 30)
    return out.strip()


def plan(params: dict[str, Any]) -> ServerPlan:
    state = params["state"]
    if state == "restored":
        state = "absent"  # nginx's disable is undone by removing what the collection wrote
    options = dict(OPTIONS)
    unknown = sorted(set(params.get("options") or {}) - set(OPTIONS))
    if unknown:
        raise ContractError(f"options {', '.join(unknown)} are not nginx options; expected some of "
                            f"{', '.join(sorted(OPTIONS))}.")
    options.update({k: v for k, v in (params.get("options") or {}).items() if v is not None})
    tuning = params.get("tuning")
    try:
        planned = plan_nginx(PlanRequest(
            config=options["config"], managed_dir=options["managed_dir"],
            http_include_file=options["http_include_file"], state=state,
            server_names=options["server_names"], config_files=options["config_files"],
            tuning=tuning if isinstance(tuning, dict) else {}, placement=options["placement"],
            skip_not_applicable=options["skip_not_applicable"], ca_bundle=options["ca_bundle"],
            nginx_version=nginx_version(options["version_command"], params.get("environment") or {}),
            verify_host=options["verify_host"], mode=options["stapling_mode"] or "standard",
            keeper_dir=options["keeper_dir"]))
    except PlanError as exc:
        raise ContractError(str(exc)) from None
    verify = verify_spec(params, VerifySpec(
        fatal_patterns=list(FATAL_PATTERNS), warning_patterns=list(WARNING_PATTERNS),
        ready_patterns=[], settle=0.5))
    if (params.get("verify") or {}).get("endpoints") is None:  # unset: every TLS server block
        verify.endpoints = verify_spec({"verify": {"endpoints": planned["endpoints"]}}).endpoints
    change = change_request(params, files=[FileSpec(**file_fields(f)) for f in planned["files"]], verify=verify)
    block = bool(options["fail_on_configtest_warnings"])
    # What nginx -t said about each site, filled in when the engine runs the configtest.
    summary = {k: planned[k] for k in ("placement", "why_not_http", "operator_files", "sites", "worker_processes",
                                       "mode", "keeper_certificates")
               if k in planned}
    summary["configtest_warnings"] = []
    summary["keeper_config_present"] = bool(options["keeper_config"]) and os.path.isfile(options["keeper_config"])

    def configtest_check(output: str) -> list[str]:
        found, problems = classify_configtest(output, planned["sites"], block)
        summary["configtest_warnings"] = found
        return problems

    sites = [Site(name=s["key"], action=s.get("action"), file=f"{s['file']}:{s['line']}",
                  certificates=list(s.get("certificates") or []), must_staple=bool(s.get("must_staple")),
                  names=list(s.get("server_names") or []), endpoints=list(s.get("endpoints") or [])[:1])
             for s in planned["sites"]]
    return ServerPlan(server=NAME, state=state, change=change, sites=sites, summary=summary,
                      problems=list(planned["problems"]), warnings=list(planned["warnings"]),
                      configtest_check=configtest_check)
