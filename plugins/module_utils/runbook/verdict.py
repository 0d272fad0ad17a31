# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook's diagnosis: one verdict per host from what the modules found.

A pure function over the results of ``stapling_facts`` (configuration, sites, error log),
``stapling_status`` (what each site staples now), ``ocsp_responder_check`` (can this host
reach the responders) and ``stapling_record`` (did this collection disable stapling here).
No I/O; unit tested in ``tests/unit/runbook/test_decide.py``. The front-door role calls it through
the ``ocsp.stapling.stapling_verdict`` filter.

Verdicts, first match wins:

``disabled_by_collection``  our state record is on the host: the re-enable job owns it.
``not_applicable``          no TLS site, or no certificate with an OCSP URL.
``protected``               a responder is unreachable, but every stapling site that depends
                            on it is in protected mode with a valid held response more than
                            ``protected_warn_hours`` from its nextUpdate: "protected until".
``protected_expiring``      the same, but a held response's nextUpdate is less than
                            ``protected_warn_hours`` away: restore the responder before then.
``must_staple_at_risk``     a responder is unreachable and a Must-Staple site depends on it.
``disable_recommended``     a responder a stapling site depends on is unreachable (a held
                            response past its nextUpdate protects nothing: mod_md keeps
                            stapling it, expired).
``reload_recommended``      every stapling site's responder answers, yet a site staples an
                            error or a stale response: Apache keeps the ``tryLater`` it
                            synthesized for up to ``SSLStaplingStandardCacheTimeout``; a
                            graceful reload clears it.
``must_staple_broken``      a Must-Staple site is served without a good staple (stapling off
                            for it, nothing stapled, an error, an unverifiable response):
                            browsers refuse it whatever the responder does.
``stapling_off``            stapling is off everywhere and no record of ours: an operator did it.
``responder_unknown``       a stapling site's responder was not checked (its issuer was not
                            found, the check failed or did not run): nothing says it answers.
``tls_failing``             a site does not complete a TLS handshake (not a stapling problem).
``healthy``                 every stapling site's responder answered correctly and every
                            Must-Staple site staples a good response (revoked certificates are
                            noted per site).

``not_applicable`` (no OCSP URL anywhere) is decided after the Must-Staple check, so a
Must-Staple certificate is never waved through.

A responder that answers correctly over one address family while the other cannot connect
(broken IPv6, typically) is reachable: web servers move on to the next address, so it is
no outage, and the reasons name the broken family. A responder whose every address fails
is unreachable, and the reason names the families (an IPv6-only name: "over IPv6, the
only address family its name has here").
"""
from __future__ import annotations

import time

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.facts import site_stapling

ON_VALUES = ("on", "1", "true", "yes")
# Directive that switches stapling on, per server dialect.
STAPLING_SWITCH = {"apache": "SSLUseStapling", "litespeed": "enableStapling", "nginx": "ssl_stapling"}
ERROR_STAPLE_VERDICTS = ("error_stapled", "stale")
# What a site must not staple once stapling is back on and the responder answers.
BAD_STAPLE_VERDICTS = ("error_stapled", "stale", "invalid", "must_staple_missing", "handshake_failed")

RECOMMENDATIONS = {
    "disabled_by_collection": "wait for reenable_stapling",
    "not_applicable": "nothing to do",
    "stapling_off": "none (operator's choice); enable_stapling to turn it on",
    "must_staple_at_risk": "restore responder reachability; disable only with force=true",
    "protected": "nothing now: protected mode serves the held responses; restore the responder before they expire",
    "protected_expiring": ("restore the responder before the held responses expire (past nextUpdate the check "
                           "recommends disable_stapling)"),
    "disable_recommended": "run disable_stapling",
    "reload_recommended": "graceful reload (reenable_stapling recover)",
    "must_staple_broken": ("get a good staple served on the Must-Staple sites (stapling on for them, responder "
                           "reachable from this host); never disable stapling for them"),
    "responder_unknown": ("make the responder check possible (the issuer in the certificate or chain file the "
                          "server reads, or a working check), then run check_stapling again"),
    "tls_failing": "fix the failing sites first",
    "healthy": "nothing to do",
}
# How long before a held response's nextUpdate "protected" turns into a warning.
PROTECTED_WARN_HOURS = 24.0
# A Must-Staple site is fine only with a good staple; a failed handshake is tls_failing's.
MUST_STAPLE_OK = ("good", "handshake_failed")
#: A handshake at least this slow is reported as a symptom: mod_ssl fetches the staple
#: inside the handshake and holds it for up to SSLStaplingResponderTimeout (10 s by default)
#: when the responder accepts and never answers (blackholed).
SLOW_HANDSHAKE_SECONDS = 3.0


def _value(directive) -> str:
    if isinstance(directive, dict):
        return str(directive.get("value") or "")
    return str(directive or "")


def _site_label(site: dict) -> str:
    """The site's first name, else where it is written (full facts), else its certificate."""
    names = site.get("names") or []
    if names:
        return str(names[0])
    if site.get("file"):
        return f"{site.get('file')}:{site.get('line')}"
    return "unnamed site (" + ", ".join(site.get("certificate") or ["no certificate"]) + ")"


def stapling_configured(site: dict, facts: dict | None = None) -> bool | None:
    """Whether the site's configuration turns stapling on (None: the server's default).

    ``facts`` gives the server's inherited settings for compact facts, whose sites carry
    only the directives set in the site itself.
    """
    switch = STAPLING_SWITCH.get(site.get("server") or "")
    stapling = site_stapling(site, facts or {})
    if not switch or switch not in stapling:
        return None
    return _value(stapling[switch]).strip().lower() in ON_VALUES


def _ports(site: dict) -> set[int]:
    ports = set()
    for item in site.get("listen") or []:
        try:
            ports.add(int(item.get("port")))
        except (TypeError, ValueError):
            continue
    return ports


def _match_endpoint(site: dict, endpoints: list[dict]) -> dict | None:
    names = {str(name).lower() for name in site.get("names") or []}
    ports = _ports(site)
    for endpoint in endpoints:
        if str(endpoint.get("server_name") or "").lower() in names and (not ports or endpoint.get("port") in ports):
            return endpoint
    return None


def check_certificates(facts: dict) -> list[dict]:
    """``ocsp_responder_check``'s ``certificates``: every site's certificate with the issuer
    sources its server reads (``issuer_files``, ``issuer_dirs`` from ``stapling_facts``)."""
    out: dict[str, dict] = {}
    for site in (facts or {}).get("sites") or []:
        for path in site.get("certificate") or []:
            if not path:
                continue
            entry = out.setdefault(path, {"path": path, "issuer_files": [], "issuer_dirs": []})
            for key in ("issuer_files", "issuer_dirs"):
                entry[key].extend(p for p in site.get(key) or [] if p and p not in entry[key])
    return list(out.values())


def _iso(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds is not None else "?"


def _check_failed(check: dict) -> str | None:
    """The check task's own failure message, when it failed as a whole.

    The role registers the check with ``failed_when: false``, so a failed run shows as a
    result without ``certificates`` (its ``msg`` says why) rather than as ``failed``.
    """
    if not check or check.get("skipped"):
        return None
    if check.get("failed") or "certificates" not in check:
        return str(check.get("msg") or "the responder check returned no result")
    return None


def _responder_index(check: dict) -> dict[str, dict]:
    """Certificate path -> its entry in the ocsp_responder_check result."""
    return {item.get("path"): item for item in (check or {}).get("certificates") or []}


def responder_rows(check: dict) -> list[dict]:
    """One row per responder URL: reachable overall and per address family."""
    rows = []
    for responder in (check or {}).get("responders") or []:
        families: dict[str, bool | None] = {"ipv4": None, "ipv6": None}
        for attempt in responder.get("attempts") or []:
            key = {"4": "ipv4", "6": "ipv6"}.get(str(attempt.get("ip_version")))
            # A family the responder's name has no address in is not tried by a web server.
            if key and not attempt.get("no_address"):
                ok = attempt.get("failure") is None
                families[key] = ok if families[key] is None else (families[key] and ok)
        rows.append({"url": responder.get("url"), "reachable": bool(responder.get("reachable")),
                     "failure": responder.get("failure"), "detail": responder.get("detail") or "",
                     "ipv4": families["ipv4"], "ipv6": families["ipv6"],
                     "certificates": list(responder.get("certificates") or [])})
    return rows


def _over(row: dict | None) -> str:
    """The address families a responder row failed over, and whether they were its only ones."""
    if not row:
        return ""
    failed = [name for key, name in (("ipv4", "IPv4"), ("ipv6", "IPv6")) if row.get(key) is False]
    if not failed:
        return ""
    if len(failed) == 1 and row.get("ipv4" if failed[0] == "IPv6" else "ipv6") is None:
        return f" over {failed[0]}, the only address family its name has here"
    return " over " + " and ".join(failed)


def _broken_family_notes(responders: list[dict]) -> list[str]:
    """Reachable responders with a family that fails: not an outage, but worth fixing."""
    notes = []
    for row in responders:
        if not row["reachable"]:
            continue
        broken = [name for key, name in (("ipv4", "IPv4"), ("ipv6", "IPv6")) if row.get(key) is False]
        working = [name for key, name in (("ipv4", "IPv4"), ("ipv6", "IPv6")) if row.get(key) is True]
        if broken and working:
            notes.append(f"{' and '.join(broken)} to {row['url']} is broken from this host, but the responder answers "
                         f"over {' and '.join(working)}, and web servers move on to the next address when one cannot "
                         f"connect: this is not a responder outage and stapling needs no change. Fix "
                         f"{' and '.join(broken)} on this host (routing, firewall); the certificates' check results "
                         f"say what failed.")
    return notes


def _serial_key(serial) -> int | None:
    try:
        return int(str(serial), 16)
    except (TypeError, ValueError):
        return None


def _held_for(held: list[dict], server: str | None, names: list[str], label: str, serial) -> dict | None:
    """The held response protecting a site: the keeper's entry named after the site (nginx),
    else one for the served certificate's serial (mod_md, the relay)."""
    if server == "nginx":
        for entry in held:
            if entry.get("source") == "keeper" and entry.get("name") in [label] + names:
                return entry
    key = _serial_key(serial)
    if key is None:
        return None
    matches = [entry for entry in held if _serial_key(entry.get("serial")) == key
               and (entry.get("source") == "mod_md") == (server == "apache")]
    # Several (a response per hash algorithm, an old group): the one that lasts longest.
    return max(matches, key=lambda entry: entry.get("next_update") or 0) if matches else None


def site_rows(facts: dict, status: dict, check: dict) -> list[dict]:
    """One row per TLS site: configuration, what it staples, its responder."""
    endpoints = list((status or {}).get("endpoints") or [])
    held = list((status or {}).get("held_responses") or [])
    by_cert = _responder_index(check)
    check_failure = _check_failed(check)
    rows = []
    for site in (facts or {}).get("sites") or []:
        names = list(site.get("names") or [])
        endpoint = _match_endpoint(site, endpoints) or {}
        cert_paths = list(site.get("certificate") or [])
        cert = next((by_cert[path] for path in cert_paths if path in by_cert), {})
        served = endpoint.get("certificate") or {}
        ocsp_urls = cert.get("ocsp_urls")
        if ocsp_urls is None:
            ocsp_urls = served.get("ocsp_urls") or []
        must_staple = bool(cert.get("must_staple") or served.get("must_staple"))
        failure, detail = cert.get("failure"), cert.get("detail") or ""
        if not cert and ocsp_urls:
            # Nobody asked this certificate's responder: say why rather than leave it blank.
            if check_failure:
                failure, detail = "check_failed", f"The responder check failed on this host: {check_failure}"
            else:
                failure, detail = "not_checked", (f"The responder check did not cover {', '.join(cert_paths) or 'the certificate'}"
                                                  " of this site (no check result for it).")
        protection = _held_for(held, site.get("server"), names, _site_label(site), served.get("serial"))
        rows.append({
            "server": site.get("server"),
            "site": _site_label(site),
            # Protected mode: the held response that keeps this site stapling through an
            # outage, and when it expires (POSIX seconds; null in standard mode).
            "mode": "protected" if protection else "standard",
            "protection_source": (protection or {}).get("source"),
            "protected_until": (protection or {}).get("next_update_iso"),
            "protected_until_timestamp": (protection or {}).get("next_update"),
            "held_valid": (protection or {}).get("valid"),
            "names": names,
            "address": endpoint.get("host") or "127.0.0.1",
            "port": endpoint.get("port") or next(iter(sorted(_ports(site))), None),
            "certificate": cert_paths[0] if cert_paths else None,
            "stapling_configured": stapling_configured(site, facts),
            "has_ocsp_url": bool(ocsp_urls),
            "must_staple": must_staple,
            "responder_url": cert.get("responder_url"),
            "responder_reachable": cert.get("reachable"),
            "responder_failure": failure,
            "responder_detail": detail,
            "issuer_source": cert.get("issuer_source"),
            "verdict": endpoint.get("verdict") or "not_probed",
            "response_status": endpoint.get("ocsp_response_status"),
            "seconds_until_expiry": endpoint.get("seconds_until_expiry"),
            "handshake_ok": endpoint.get("handshake_ok"),
            # What the Prometheus textfile reports, in ssl_exporter's terms.
            "stapled": endpoint.get("stapled"),
            "cert_status": endpoint.get("cert_status"),
            "this_update": endpoint.get("this_update"),
            "next_update": endpoint.get("next_update"),
            "produced_at": endpoint.get("produced_at"),
            "handshake_seconds": endpoint.get("handshake_seconds"),
            # The warm-up handshake is the one that pays for a fetch inside the handshake.
            "slowest_handshake_seconds": _slowest(endpoint),
            "message": endpoint.get("message") or "",
        })
    return rows


def _slowest(endpoint: dict) -> float | None:
    seconds = [value for value in (endpoint.get("handshake_seconds"), (endpoint.get("warmup") or {}).get("handshake_seconds"))
               if isinstance(value, (int, float))]
    return max(seconds) if seconds else None


def error_counts(facts: dict) -> dict[str, int]:
    """Stapling error classes seen in the error logs' recent tail, with counts."""
    counts: dict[str, int] = {}
    for log in (facts or {}).get("errors") or []:
        for name, info in (log.get("classes") or {}).items():
            counts[name] = counts.get(name, 0) + int((info or {}).get("count") or 0)
    return counts


def _stapling_on(row: dict, facts: dict) -> bool:
    if row.get("stapled"):
        # Stapling in force whatever the files say: a server that staples with stapling off
        # on disk has not loaded its files (a run stopped between its swap and its reload).
        return True
    configured = row["stapling_configured"]
    if configured is None:
        # Not set anywhere: Apache, nginx and LiteSpeed all default to off.
        return False
    return configured


def previous_settings(facts: dict) -> dict[str, dict]:
    """Per server, the stapling switch in effect for each site before a change.

    ``restore_state`` is what re-enable asks the server role for: ``enabled`` when the
    switch came from a file this collection manages (its name says ``ocsp-stapling``, so
    the role's own settings, tuning included, were in force), else ``absent`` (remove what
    the role wrote and give the operator's configuration back as it was).
    """
    servers: dict[str, dict] = {}
    for site in (facts or {}).get("sites") or []:
        server = site.get("server")
        switch = STAPLING_SWITCH.get(server or "")
        if not switch:
            continue
        entry = servers.setdefault(server, {"sites": {}, "restore_state": "absent"})
        directive = site_stapling(site, facts).get(switch)
        name = _site_label(site)
        if isinstance(directive, dict):
            entry["sites"][name] = {switch: directive.get("value"), "file": directive.get("file"),
                                    "line": directive.get("line")}
            if "ocsp-stapling" in str(directive.get("file") or ""):
                entry["restore_state"] = "enabled"
        else:
            entry["sites"][name] = {switch: None}
    return servers


def _endpoints(sites: list[dict]) -> dict[str, list[dict]]:
    """Per server, the TLS endpoints to verify after a change (one per site)."""
    endpoints: dict[str, list[dict]] = {}
    for row in sites:
        if row["server"] and row["port"] and row["names"]:
            endpoints.setdefault(row["server"], []).append(
                {"host": row["address"], "port": int(row["port"]), "server_name": row["site"]})
    return endpoints


def _must_staple_problem(row: dict, stapling_on: bool) -> str:
    """Why a Must-Staple site lacks a good staple, in a few words."""
    if not row["has_ocsp_url"]:
        return "its certificate names no OCSP responder, so nothing can ever be stapled"
    if not stapling_on:
        return "stapling is off for it"
    if row["responder_reachable"] is None:
        return f"its responder was not checked ({row['responder_failure'] or 'no result'})"
    if row["verdict"] == "not_probed":
        return "what it staples was not probed"
    return f"it staples {row['verdict']}"


def _protection(rows: list[dict], now: float, warn_hours: float) -> tuple[list[dict], list[dict], list[dict]]:
    """(protected far from expiry, protected but expiring within ``warn_hours``, not protected)."""
    far, expiring, exposed = [], [], []
    for row in rows:
        until = row.get("protected_until_timestamp")
        if row.get("mode") != "protected" or until is None or now >= until or row.get("held_valid") is False:
            exposed.append(row)
        elif until - now < warn_hours * 3600:
            expiring.append(row)
        else:
            far.append(row)
    return far, expiring, exposed


def decide(facts: dict, status: dict, check: dict, record: dict | None = None, now: float | None = None,
           protected_warn_hours: float = PROTECTED_WARN_HOURS) -> dict:
    """The host's verdict, recommendation and the rows the report shows."""
    now = time.time() if now is None else now
    sites = site_rows(facts, status, check)
    responders = responder_rows(check)
    servers = sorted({row["server"] for row in sites if row["server"]})
    stapling_sites = [row for row in sites if _stapling_on(row, facts) and row["has_ocsp_url"]]
    unreachable = [row for row in stapling_sites if row["responder_reachable"] is False]
    # Sites that staple, whose responder nobody could ask: issuer not found, the check failed
    # or did not run. Nothing says these responders answer, so the host is not healthy.
    unchecked = [row for row in stapling_sites if row["responder_reachable"] is None]
    must_staple_bad = [row for row in sites if row["must_staple"] and row["verdict"] not in MUST_STAPLE_OK]
    errored = [row for row in stapling_sites if row["verdict"] in ERROR_STAPLE_VERDICTS]
    reasons: list[str] = []
    if record:
        observations = record.get("observations") or {}
        verdict = "disabled_by_collection"
        reasons.append(f"ocsp.stapling disabled stapling here at {record.get('disabled_at')} "
                       f"(run {record.get('run_id')}, reason: {record.get('reason') or 'none given'}); "
                       f"{observations.get('consecutive_good', 0)} consecutive good responder answers so far.")
    elif not sites:
        verdict = "not_applicable"
        reasons.append("No TLS site was found in the web servers' configuration.")
    elif unreachable:
        urls = sorted({row["responder_url"] or "?" for row in unreachable})
        by_url = {row["url"]: row for row in responders}
        failures = sorted({(row["responder_failure"] or "unknown") + _over(by_url.get(row["responder_url"]))
                           for row in unreachable})
        far, expiring, exposed = _protection(unreachable, now, protected_warn_hours)
        at_risk = sorted({row["site"] for row in exposed if row["must_staple"]})
        reasons.append(f"This host cannot get a correct answer from {', '.join(urls)} ({', '.join(failures)}); "
                       f"{len(unreachable)} stapling site(s) depend on it.")
        until = min((row["protected_until_timestamp"] for row in far + expiring), default=None)
        expired = [row for row in exposed if row.get("mode") == "protected"]
        if expired:
            reasons.append(f"Protected mode no longer covers {', '.join(sorted({r['site'] for r in expired}))}: the held "
                           f"response expired at {', '.join(sorted({r['protected_until'] or '?' for r in expired}))} "
                           f"(mod_md keeps stapling it, expired, which clients reject like no staple).")
        if not exposed and expiring:
            verdict = "protected_expiring"
            reasons.append(f"Protected until {_iso(until)}: {', '.join(sorted({r['site'] for r in expiring}))} "
                           f"staple(s) a held response that expires within {protected_warn_hours:g} hours. "
                           f"Restore the responder from this host (firewall, DNS, IPv6, proxy) before then: once the "
                           f"held response has expired the verdict turns to disable_recommended (mod_md keeps "
                           f"stapling an expired response, which clients reject).")
        elif not exposed:
            verdict = "protected"
            reasons.append(f"Protected until {_iso(until)}: every site that depends on the unreachable responder "
                           f"staples a held response (protected mode), so clients see no outage until then. "
                           f"Restore the responder before that; no disable is needed.")
        elif at_risk:
            verdict = "must_staple_at_risk"
            reasons.append(f"Must-Staple certificates on {', '.join(at_risk)}: browsers refuse these sites without "
                           f"a good staple whatever is done; disabling stapling keeps them broken until it is "
                           f"re-enabled. Restore reachability (firewall, IPv6, DNS, proxy) first; "
                           f"disable_stapling needs force=true.")
        else:
            verdict = "disable_recommended"
            reasons.append("Disable stapling until the responder answers again (disable_stapling); the scheduled "
                           "reenable_stapling turns it back on.")
    elif errored and not unchecked:
        verdict = "reload_recommended"
        reasons.append(f"The responders answer correctly, yet {', '.join(sorted({r['site'] for r in errored}))} "
                       f"staple an error or stale response: Apache keeps the tryLater it synthesized during "
                       f"the outage for up to SSLStaplingStandardCacheTimeout. A graceful reload clears it "
                       f"(reenable_stapling with stapling_mode=recover).")
    elif must_staple_bad:
        verdict = "must_staple_broken"
    elif not any(row["has_ocsp_url"] for row in sites):
        verdict = "not_applicable"
        reasons.append("No certificate served here names an OCSP responder; stapling cannot work and is not needed.")
    elif not stapling_sites:
        verdict = "stapling_off"
        reasons.append("Stapling is off for every site and no disable by ocsp.stapling is recorded: "
                       "an operator turned it off (or it was never on). The runbook leaves it alone.")
    elif unchecked:
        verdict = "responder_unknown"
        details = sorted({row["responder_detail"] or row["responder_failure"] or "no result" for row in unchecked})
        reasons.append(f"The responder of {', '.join(sorted({r['site'] for r in unchecked}))} was not checked from "
                       f"this host, so nothing says it answers; what these sites staple now may be a cached "
                       f"response that runs out during an outage. " + " ".join(details))
        if errored:
            reasons.append(f"{', '.join(sorted({r['site'] for r in errored}))} staple an error or stale response; "
                           "no reload is recommended until every responder is known to answer.")
    else:
        failing = [row for row in sites if row["handshake_ok"] is False]
        if failing:
            verdict = "tls_failing"
            reasons.append(f"{', '.join(r['site'] for r in failing)} do not complete a TLS handshake; "
                           f"that is not a stapling problem. See the sites' messages.")
        else:
            verdict = "healthy"
    if must_staple_bad and verdict != "must_staple_at_risk":
        problems = "; ".join(f"{row['site']}: {_must_staple_problem(row, _stapling_on(row, facts))}"
                             for row in must_staple_bad)
        reasons.append(f"Must-Staple certificates served without a good staple ({problems}): Firefox and "
                       f"curl --cert-status refuse these sites. Turn stapling on for them and make sure their "
                       f"responder answers from this host; never disable stapling for them.")
    unloaded = [row for row in sites if row.get("stapled") and row["stapling_configured"] is not True]
    if unloaded:
        reasons.append(f"{', '.join(row['server'] + ' ' + row['site'] for row in unloaded)} staple a response although "
                       f"the configuration on disk does not turn stapling on: the running server has not loaded "
                       f"its files (a run stopped between its swap and its reload, or an edit not reloaded yet). "
                       f"The runbook counts what the server does, and its next change reloads it.")
    slow = [row for row in sites if (row["slowest_handshake_seconds"] or 0) >= SLOW_HANDSHAKE_SECONDS]
    if slow:
        worst = max(row["slowest_handshake_seconds"] for row in slow)
        names = ", ".join(f"{row['server']} {row['site']}" for row in slow)
        reasons.append(f"TLS handshakes are slow: {names} took up to {worst:.1f} s. That is what visitors feel of "
                       f"this outage: Apache (mod_ssl) fetches "
                       f"the staple inside the handshake and waits up to SSLStaplingResponderTimeout for a responder "
                       f"that accepts and never answers (blackholed); nginx fetches in the background and is not slowed.")
    reasons.extend(_broken_family_notes(responders))
    revoked = [row["site"] for row in sites if row["verdict"] == "revoked"]
    if revoked:
        reasons.append(f"Revoked certificate served on {', '.join(revoked)}: replace it.")
    reload_servers = sorted({row["server"] for row in sites
                             if row["verdict"] in ERROR_STAPLE_VERDICTS and row["server"]}) \
        if verdict == "reload_recommended" else []
    good_servers = sorted({row["server"] for row in sites if row["verdict"] == "good" and row["server"]})
    held_until = [row["protected_until_timestamp"] for row in sites
                  if row["mode"] == "protected" and row["held_valid"] and row["protected_until_timestamp"]]
    staple_errors = [f"{row['server']} {row['site']}: {row['verdict']}" for row in stapling_sites
                     if row["verdict"] in BAD_STAPLE_VERDICTS]
    stapling_servers = sorted({row["server"] for row in stapling_sites if row["server"]})
    return {
        "verdict": verdict,
        "recommendation": RECOMMENDATIONS[verdict],
        "reasons": reasons,
        "servers": servers,
        "sites": sites,
        "responders": responders,
        # Every responder that was asked answered; responders_unchecked lists the stapling
        # sites whose responder could not be asked at all.
        "responders_reachable": bool(check) and not _check_failed(check) and all(row["reachable"] for row in responders),
        "responders_unchecked": sorted({row["site"] for row in unchecked}),
        "must_staple_sites": sorted({row["site"] for row in sites if row["must_staple"]}),
        "reload_servers": reload_servers,
        "errors": error_counts(facts),
        "slow_handshake_sites": sorted({row["site"] for row in slow}),
        "disabled_since": (record or {}).get("disabled_at_timestamp"),
        "good_servers": good_servers,
        "staple_errors": staple_errors,
        # Stapling is on, and every server that staples serves at least one good staple.
        "staples_ok": not staple_errors and not set(stapling_servers) - set(good_servers),
        "endpoints": _endpoints(sites),
        # Protected mode: per site its mode, and the earliest nextUpdate of the held
        # responses the host's stapling sites rely on ("protected until").
        "modes": {row["site"]: row["mode"] for row in sites},
        "protected_until": _iso(min(held_until)) if held_until else None,
        "stapling_servers": stapling_servers,
        "previous": previous_settings(facts),
    }
