# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan an nginx stapling change and configtest the candidate before anything changes.

Host side, standard library only. ``nginx -t`` exits 0 while warning that stapling is
ignored, so its output is matched to sites here and the warnings that make a change
pointless (issuer not found, OCSP host not found) block it.
"""
from __future__ import annotations

from typing import Any

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeError,
    ChangeRequest,
    FileSpec,
    StaplingChange,
    file_fields,
    split_command,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx.plan import (
    PlanRequest,
    classify_configtest,
    plan,
)


def preflight(params: dict, planned: dict) -> tuple[dict, list[str]]:
    """configtest of the candidate (read-only, the shared shape in check mode) or of the
    live config when nothing changes; returns (configtest, warnings)."""
    command = split_command(params["configtest_command"])
    if not command:
        return {"ran": False}, []
    request = ChangeRequest(
        files=[FileSpec(**file_fields(f)) for f in planned["files"]],
        configtest_command=command, environment=params["environment"],
        candidate_validation=params["candidate_validation"], check_mode=True)
    change = StaplingChange(request)
    result = change.run()
    configtest = result.get("configtest") or {"ran": False}
    if not configtest.get("ran") and not result.get("changed"):
        rc, out = change._run(command, "configtest")  # nothing changes: report the live config
        configtest = {"ran": True, "rc": rc, "output": out[-8000:], "method": "live", "passed": rc == 0}
    return configtest, list(change.warnings)


def plan_and_check(params: dict, nginx_version: str) -> dict[str, Any]:
    """The plan, its configtest and every reason not to apply it (``problems``).

    Raises ``PlanError`` when the configuration cannot be planned at all.
    """
    planned = plan(PlanRequest(
        config=params["config"], managed_dir=params["managed_dir"],
        http_include_file=params["http_include_file"], state=params["state"],
        server_names=params["server_names"], config_files=params["config_files"],
        tuning=params["tuning"], placement=params["placement"],
        skip_not_applicable=params["skip_not_applicable"], ca_bundle=params["ca_bundle"],
        nginx_version=nginx_version, verify_host=params["verify_host"],
        mode=params.get("stapling_mode") or "standard", keeper_dir=params.get("keeper_dir")))
    configtest, warnings = {"ran": False}, []
    if not planned["problems"]:
        try:
            configtest, warnings = preflight(params, planned)
        except ChangeError as exc:
            planned["problems"].append(exc.message)
    found, blocking = classify_configtest(configtest.get("output", ""), planned["sites"],
                                          params["fail_on_configtest_warnings"])
    if configtest.get("ran") and not configtest.get("passed"):
        what = "the candidate" if configtest.get("method") != "live" else "the live configuration"
        planned["problems"].append(
            f"{what} fails nginx's configtest ({' '.join(split_command(params['configtest_command']) or [])}): "
            f"{configtest.get('output', '').strip()[-1500:]}. Nothing was changed and nothing was reloaded; "
            f"fix the value named above (nginx_stapling_tuning?) and run again.")
    planned["problems"].extend(blocking)
    planned["plan_warnings"] = planned.pop("warnings") + warnings
    return dict(planned, configtest=configtest, configtest_warnings=found, nginx_version=nginx_version)
