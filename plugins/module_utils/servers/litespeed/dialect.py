# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LiteSpeed native (OpenLiteSpeed, LSWS) behind the dialect contract (:mod:`servers.contract`).

Host side, standard library only. The plan is :class:`LiteSpeedStaplingChange`'s
(lossless edits of the native files, the references checked); its own steps ride along:
removing the OCSP cache files between the swap and the restart (``post_swap``) and the
record of the operator's values once the change is live (``finish``).
"""
from __future__ import annotations

from typing import Any

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.contract import (
    ContractError,
    ServerPlan,
    Site,
    verify_spec,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed.change import (
    LiteSpeedChangeError,
    LiteSpeedStaplingChange,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed.keeper import keeper_entries

NAME = "litespeed"
STATES = ("enabled", "disabled", "absent")
__all__ = ["NAME", "STATES", "plan"]
OPTIONS = ("server_root", "flavor", "state_file", "listeners", "vhosts", "clear_cache", "cache_dirs",
           "restart", "backup", "error_log", "verify_listeners", "keeper")
#: stapling_apply's tuning keys for LiteSpeed
TUNING = ("max_age", "responder", "ca_certs")


def plan(params: dict[str, Any]) -> ServerPlan:
    options = {k: v for k, v in (params.get("options") or {}).items() if v is not None}
    # Protected mode (the relay): {keeper_dir, ca_bundle}; the plan lists the keeper's certificates.
    keeper = options.pop("keeper", None) or None
    tuning = params.get("tuning") if isinstance(params.get("tuning"), dict) else {}
    unknown = sorted(set(options) - set(OPTIONS)) + sorted(set(tuning) - set(TUNING))
    if unknown:
        raise ContractError(f"{', '.join(unknown)} are not LiteSpeed options; expected options among "
                            f"{', '.join(OPTIONS)} and tuning among {', '.join(TUNING)}.")
    state = "absent" if params["state"] == "restored" else params["state"]
    verify = verify_spec(params)
    own = dict(options, **{k: v for k, v in tuning.items() if v is not None}, state=state,
               configtest_command=params.get("configtest_command"),
               restart_command=params.get("reload_command"),
               candidate_validation=params.get("candidate_validation"),
               backup_dir=params.get("backup_dir"),
               verify_endpoints=[{"host": e.host, "port": e.port, "server_name": e.server_name}
                                 for e in verify.endpoints],
               verify_timeout=verify.timeout)
    own.setdefault("server_root", "/usr/local/lsws")
    runner = LiteSpeedStaplingChange(own, check_mode=bool(params.get("_check_mode")), diff=bool(params.get("_diff")))
    try:
        request = runner.prepare()
    except LiteSpeedChangeError as exc:
        raise ContractError(str(exc), exc.result) from None
    if params.get("environment"):
        request.environment = dict(params["environment"])
    # A listener answers on its own address (probed without SNI by the Must-Staple guard);
    # a virtual host's certificate is judged by its files and the caller's list.
    listening = {e["listener"]: {"host": e["host"], "port": e["port"], "server_name": None}
                 for e in runner.result["probe_endpoints"]}
    sites = [Site(name=t["name"], action={"enabled": "enable", "disabled": "disable"}.get(state, "restore"),
                  file=t["file"], certificates=list(t["certificates"]), names=list(t.get("names") or []),
                  endpoints=[listening[t["name"]]] if t["kind"] == "listener" and t["name"] in listening else [])
             for t in runner.result["targets"]]

    def finish(outcome: dict[str, Any]) -> None:
        runner.result.update({k: outcome[k] for k in ("reload", "rolled_back", "backup_dir") if k in outcome})
        runner.finish(outcome)

    summary = {"flavor": runner.result.get("flavor"), "targets": runner.result["targets"],
               "probe_endpoints": runner.result["probe_endpoints"],
               "cache_files_removed": runner.cache_files, "backups": runner.result["backups"]}
    if keeper and state == "enabled":
        enabled = [t for t in runner.result["targets"] if t["kind"] != "template" or t.get("certificates")]
        certificates, files, problems = keeper_entries(enabled, keeper["keeper_dir"], keeper.get("ca_bundle") or "")
        if problems:
            raise ContractError("LiteSpeed was not pointed at the relay: " + " | ".join(problems))
        summary.update(keeper_certificates=certificates, keeper_files=files)
    return ServerPlan(server=NAME, state=state, change=request, sites=sites, summary=summary,
                      warnings=runner.warnings, post_swap=runner._post_swap, finish=finish)
