# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apache (Debian, RHEL, cPanel EA3/EA4, LiteSpeed reading cPanel's config) behind the
dialect contract (:mod:`servers.contract`). Host side, standard library only."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    DEFAULT_FATAL_PATTERNS,
    FileSpec,
    LinkSpec,
    VerifySpec,
    file_fields,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache.plan import (
    RESILIENT,
    STATES,
    ApachePlanRequest,
    PlanError,
    plan as plan_apache,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.config_tree import host_path
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.contract import (
    ContractError,
    ServerPlan,
    Site,
    change_request,
    verify_spec,
)

NAME = "apache"
__all__ = ["NAME", "STATES", "plan"]
#: AH00489 "resuming normal operations" ends a graceful restart: before it the old
#: children still answer and would make the TLS check pass against the old config.
READY_PATTERNS = ("AH00489",)
_REQUEST_FIELDS = {f.name for f in fields(ApachePlanRequest)}
#: counts a role passes templated (a string on some ansible-core versions)
_INT_FIELDS = {f.name for f in fields(ApachePlanRequest) if f.type in (int, "int")}


def plan(params: dict[str, Any]) -> ServerPlan:
    """``params``: the shared options plus ``options`` (ApachePlanRequest's fields)."""
    options = {k: v for k, v in (params.get("options") or {}).items() if v is not None}
    unknown = sorted(set(options) - _REQUEST_FIELDS)
    if unknown:
        raise ContractError(f"options {', '.join(unknown)} are not Apache plan options; expected some of "
                            f"{', '.join(sorted(_REQUEST_FIELDS - {'state', 'tuning', 'reason', 'endpoints'}))}.")
    try:
        options.update({k: int(options[k]) for k in _INT_FIELDS & set(options)})
    except ValueError as exc:
        raise ContractError(f"An Apache plan count is not a whole number ({exc}): "
                            f"{', '.join(sorted(_INT_FIELDS))} take one.") from None
    options.setdefault("resilient", dict(RESILIENT))
    endpoints = list((params.get("verify") or {}).get("endpoints") or [])
    request = dict(options, state=params["state"], tuning=params.get("tuning") or "resilient",
                   reason=params.get("reason") or "", endpoints=endpoints)
    try:
        planned = plan_apache(ApachePlanRequest(**request))
    except PlanError as exc:
        raise ContractError(str(exc)) from None
    litespeed = planned["server"] == "litespeed"
    verify = verify_spec(params, VerifySpec(
        fatal_patterns=[] if litespeed else list(DEFAULT_FATAL_PATTERNS),
        ready_patterns=[] if litespeed else list(READY_PATTERNS)))
    # The plan names paths as httpd sees them; under ``root`` (a private prefix) they are
    # written there, never to the host's own /etc.
    root = options.get("root") or "/"
    files = [FileSpec(**dict(file_fields(f), path=host_path(root, f["path"]))) for f in planned["files"]]
    links = [LinkSpec(**dict({k: v for k, v in link.items() if v is not None}, path=host_path(root, link["path"])))
             for link in planned["links"]]
    change = change_request(params, files=files, links=links, verify=verify)
    action = {"disabled": "disable", "enabled": "enable"}.get(params["state"], "restore")
    sites = [Site(name=(s["names"] or [s["file"]])[0], action=action, file=f"{s['file']}:{s['line']}",
                  names=list(s["names"])) for s in planned["sites"]]
    # Everything else the plan found (mode, mechanism, the relay's keeper, cPanel's missing
    # includes...) is the role's to act on between the plan and the change.
    summary = {k: v for k, v in planned.items() if k not in ("files", "links", "problems", "warnings")}
    return ServerPlan(server=NAME, state=params["state"], change=change, sites=sites, summary=summary,
                      problems=list(planned["problems"]), warnings=list(planned["warnings"]),
                      # A disable is server-wide: every verified endpoint loses its staple.
                      server_wide=params["state"] == "disabled")
