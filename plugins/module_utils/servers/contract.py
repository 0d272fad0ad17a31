# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dialect contract: what every server (apache, nginx, litespeed) provides, the one
plan shape the change engine runs, the guards written once, and the one result.

Host side, standard library only.

A dialect is a module ``servers/<name>/dialect.py`` exposing :data:`NAME` and
``plan(params, check_mode, diff) -> ServerPlan``; optionally ``finish(plan, result)`` (its
own bookkeeping once the change is live, LiteSpeed's record of the operator's values).
``plan`` reads the sites in scope and returns files + links + commands + health checks +
endpoints (a :class:`~change.engine.ChangeRequest`) with the sites it read; it never writes.
:func:`apply` runs the guards (Must-Staple), hands the plan to
:func:`change.engine.apply_plan` and returns :func:`result` in the one schema.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeError,
    ChangeRequest,
    Endpoint,
    VerifySpec,
    apply_plan,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.der import certificate_info, pem_blocks, read_chain
from ansible_collections.ocsp.stapling.plugins.module_utils.probe import tls

SERVERS = ("apache", "nginx", "litespeed")
#: ``restored`` gives back exactly what a disable replaced; ``absent`` also removes what
#: the collection wrote. Each dialect says which it supports (``STATES`` in its module).
STATES = ("enabled", "disabled", "restored", "absent")


class ContractError(ChangeError):
    """A plan problem or a guard: an operator-facing sentence, nothing was changed;
    ``result`` holds what is known, in the one schema."""


@dataclass
class Site:
    """One TLS site a dialect read: its name, where it is defined, what the plan does to it
    (``enable``, ``disable``, ``restore``, ``skip``...), the certificate files it serves,
    its server names and where it answers (``{host, port, server_name}``, for the guards)."""
    name: str
    action: str | None = None
    file: str | None = None
    certificates: list[str] = field(default_factory=list)
    must_staple: bool = False
    names: list[str] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "file": self.file,
                "certificates": list(self.certificates), "must_staple": self.must_staple}


@dataclass
class ServerPlan:
    """A dialect's plan: what the engine runs and what the runbook reports."""
    server: str
    state: str
    #: files, links, configtest/reload/start commands, verification (health checks, endpoints)
    change: ChangeRequest
    sites: list[Site] = field(default_factory=list)
    #: the dialect's own plan details (edits, placement, vhost overrides...), reported as ``plan``
    summary: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: a dialect step between the swap and the reload (see StaplingChange)
    post_swap: Callable[[dict[str, Any]], list[str] | None] | None = None
    #: why a configtest that exits 0 fails (nginx: "ssl_stapling" ignored for a site being enabled)
    configtest_check: Callable[[str], list[str]] | None = None
    #: the dialect's bookkeeping once the change is live; receives the result
    finish: Callable[[dict[str, Any]], None] | None = None
    #: a disable that takes stapling off every site of the server, named in the plan or not
    #: (Apache): the Must-Staple guard then also asks each verified endpoint no site names
    server_wide: bool = False

    @property
    def endpoints(self) -> list[dict[str, Any]]:
        verify = self.change.verify
        return [{"host": e.host, "port": e.port, "server_name": e.server_name}
                for e in (verify.endpoints if verify else [])]


def dialect(server: str):
    """The dialect module of ``server`` (``servers/<server>/dialect.py``)."""
    if server not in SERVERS:
        raise ContractError(f"server is {server!r}, but this collection has dialects for "
                            f"{', '.join(SERVERS)} only. Use one of those.")
    return importlib.import_module(
        f"ansible_collections.ocsp.stapling.plugins.module_utils.servers.{server}.dialect")


# --------------------------------------------------------------------------- shared inputs

def verify_spec(params: dict[str, Any], defaults: VerifySpec | None = None) -> VerifySpec:
    """The module's ``verify`` option over the dialect's defaults (patterns, log, pid file)."""
    spec = defaults or VerifySpec()
    raw = {k: v for k, v in (params.get("verify") or {}).items() if v is not None}
    if "endpoints" in raw:
        raw["endpoints"] = [Endpoint(**{k: v for k, v in e.items() if v is not None}) for e in raw["endpoints"]]
    for key, value in raw.items():
        setattr(spec, key, value)
    return spec


def change_request(params: dict[str, Any], **fields: Any) -> ChangeRequest:
    """A ChangeRequest from the options every server shares, then the dialect's ``fields``."""
    base = dict(
        configtest_command=params.get("configtest_command"),
        reload_command=params.get("reload_command"),
        start_command=params.get("start_command"),
        environment=params.get("environment") or {},
        candidate_validation=params.get("candidate_validation") or "auto",
        check_mode=bool(params.get("_check_mode")),
        diff=bool(params.get("_diff")),
    )
    if params.get("backup_dir"):
        base["backup_dir"] = params["backup_dir"]
    base.update(fields)
    return ChangeRequest(**base)


# --------------------------------------------------------------------------- guards

def certificate_must_staple(path: str) -> bool | None:
    """Whether the leaf in ``path`` carries the TLS Feature status_request (Must-Staple);
    None when the file cannot be read as PEM."""
    try:
        chain = read_chain(path)
    except OSError:
        return None
    if not chain:
        return None
    try:
        return bool(certificate_info(chain[0])["must_staple"])
    except (ValueError, IndexError, KeyError):
        return None


def served_must_staple(sites: list[Site], openssl: str | None, timeout: float = 10) -> list[str]:
    """Sites whose served leaf carries Must-Staple, one handshake each (a certificate file
    renewed on disk but not yet loaded, or one the configuration names through a variable,
    is caught here). No openssl, no handshake: nothing is found."""
    targets = [(site, tls.Endpoint(host=str(site.endpoints[0]["host"]), port=int(site.endpoints[0].get("port") or 443),
                                   server_name=site.endpoints[0].get("server_name")))
               for site in sites if site.endpoints]
    if not targets or not openssl:
        return []
    found = []
    for (site, _endpoint), probed in zip(targets, tls.probe_all(openssl, [e for _s, e in targets], timeout, 16)):
        leaf = next(iter(pem_blocks(probed.chain[0].encode())), None) if probed.chain else None
        try:
            if leaf is not None and certificate_info(leaf)["must_staple"]:
                found.append(site.name)
        except (ValueError, KeyError):
            continue
    return found


def must_staple_sites(plan: ServerPlan, certificates: list[str] | None = None, known: list[str] | None = None,
                      probe_served: bool = False, openssl: str | None = None) -> list[str]:
    """Sites that lose their staple under ``plan`` while their certificate requires one.

    Disabling stapling for a Must-Staple certificate breaks the site for Firefox
    (MOZILLA_PKIX_ERROR_REQUIRED_TLS_FEATURE_MISSING) and curl --cert-status, so a disable
    stops here for every server alike. ``certificates`` are extra files named by the caller
    (the front door's diagnosis) for dialects whose sites do not name theirs; ``known`` the
    Must-Staple sites the caller has just found (by name, any of a site's names; all of them
    when the disable is ``server_wide``), in which case neither those files are read again
    nor anything probed; otherwise ``probe_served`` asks each site being disabled (and, when
    ``server_wide``, each verified endpoint no site names) what it serves now.
    """
    if plan.state != "disabled":
        return []
    found = []
    losing = [site for site in plan.sites if site.action in (None, "disable")]
    for site in losing:
        if site.must_staple or any(certificate_must_staple(c) for c in site.certificates):
            found.append(site.name)
    if known is not None:
        # Every known site is at risk when the disable is server-wide (Apache), whether a
        # site of the plan names it or not; otherwise those the plan disables.
        wanted = set(known)
        found.extend(known if plan.server_wide else
                     [site.name for site in losing if wanted & set([site.name] + site.names)])
        return list(dict.fromkeys(found))
    # The caller's known list comes from reading these same files: only without it are they read.
    named = {c for s in plan.sites for c in s.certificates}
    found.extend(c for c in certificates or [] if c not in named and certificate_must_staple(c))
    if probe_served:
        named_endpoints = [e for site in losing for e in site.endpoints]
        unnamed = [Site(name=e["server_name"] or f"{e['host']}:{e['port']}", endpoints=[e])
                   for e in (plan.endpoints if plan.server_wide else []) if e not in named_endpoints]
        found.extend(served_must_staple([site for site in losing + unnamed if site.name not in found], openssl))
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- the one result

def result(plan: ServerPlan, change: dict[str, Any] | None, problems: list[str] | None = None,
           forced_must_staple: list[str] | None = None) -> dict[str, Any]:
    """The one result schema, whatever the server."""
    change = change or {}
    files = change.get("files") or []
    verification = change.get("verification") or {}
    return {
        "server": plan.server,
        "state": plan.state,
        "changed": bool(change.get("changed")),
        "files": files,
        "changed_files": [f["path"] for f in files if f.get("changed")],
        "links": change.get("links") or [],
        "backup_dir": change.get("backup_dir"),
        "configtest": change.get("configtest") or {"ran": False},
        "reload": change.get("reload") or {"ran": False},
        "verification": {
            "ran": bool(verification),
            "ok": verification.get("ok") if verification else None,
            "problem": verification.get("problem"),
            "fatal_lines": verification.get("fatal_lines") or [],
            "warning_lines": verification.get("warning_lines") or [],
            "last_lines": verification.get("last_lines") or [],
        },
        "rolled_back": bool(change.get("rolled_back")),
        "endpoints": plan.endpoints,
        "sites": [s.as_dict() for s in plan.sites],
        "plan": plan.summary,
        "forced_must_staple_sites": forced_must_staple or [],
        "problems": list(problems if problems is not None else plan.problems),
        "warnings": list(dict.fromkeys(plan.warnings + list(change.get("warnings") or []))),
        **({"diff": change["diff"]} if "diff" in change else {}),
    }


def unplanned(server: str, state: str, problem: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one result schema for a dialect that refused before it had a plan: nothing ran,
    nothing changed; ``details`` (what the dialect had found) is reported as ``plan``."""
    return {
        "server": server, "state": state, "changed": False, "files": [], "changed_files": [], "links": [],
        "backup_dir": None, "configtest": {"ran": False}, "reload": {"ran": False},
        "verification": {"ran": False, "ok": None, "problem": None, "fatal_lines": [], "warning_lines": [],
                         "last_lines": []},
        "rolled_back": False, "endpoints": [], "sites": [], "plan": dict(details or {}),
        "forced_must_staple_sites": [], "problems": [problem], "warnings": [],
    }


def apply(params: dict[str, Any], check_mode: bool = False, diff: bool = False,
          runner: Callable | None = None) -> dict[str, Any]:
    """Plan ``params['state']`` with ``params['server']``'s dialect, guard, apply, report.

    With ``params['plan_only']`` the plan is returned as it is (problems included, no
    guard, nothing run), for a caller with a step between the plan and the change.
    Raises :class:`ContractError` (nothing changed: a plan problem or a guard) or
    :class:`ChangeError` (the engine's failure, rolled back; ``result`` in the one schema).
    """
    module = dialect(params["server"])
    params = dict(params, _check_mode=check_mode or bool(params.get("plan_only")), _diff=diff)
    try:
        plan: ServerPlan = module.plan(params)
    except ContractError as exc:
        # Whatever the dialect found before it refused stays under ``plan``; the result
        # has the one schema like every other.
        exc.result = unplanned(params["server"], params["state"], exc.message, exc.result)
        raise
    if params.get("plan_only"):
        return result(plan, None)
    if plan.problems:
        raise ContractError(f"{plan.server} stapling was not changed: {' | '.join(plan.problems)}",
                            result(plan, None))
    probe_served = bool(params.get("probe_served")) and params.get("must_staple_sites") is None
    at_risk = must_staple_sites(plan, params.get("certificates"), known=params.get("must_staple_sites"),
                                probe_served=probe_served, openssl=tls.find_openssl() if probe_served else None)
    if at_risk and not params.get("force"):
        raise ContractError(
            f"Not disabling OCSP stapling on {plan.server}: {', '.join(at_risk)} serve a certificate with "
            f"OCSP Must-Staple, and Firefox and curl --cert-status refuse them as soon as no staple is sent "
            f"(MOZILLA_PKIX_ERROR_REQUIRED_TLS_FEATURE_MISSING). Nothing was changed. Leave those sites out, "
            f"replace the certificates, or set force=true if a broken site is better than a stalled one.",
            result(plan, None, problems=[f"Must-Staple: {name}" for name in at_risk]))
    if at_risk:
        plan.warnings.append(f"force=true: disabling stapling although {', '.join(at_risk)} carry "
                             f"Must-Staple; those sites fail for Firefox users until stapling is back on.")
    kwargs = {"runner": runner} if runner is not None else {}
    try:
        outcome = apply_plan(plan, **kwargs)
    except ChangeError as exc:
        exc.result = result(plan, exc.result, problems=[exc.message], forced_must_staple=at_risk)
        raise
    if plan.finish is not None and not check_mode and not outcome.get("rolled_back"):
        plan.finish(outcome)
    return result(plan, outcome, forced_must_staple=at_risk)
