# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run summary: one line per host, a JSON report and a Prometheus textfile.

Input is one *outcome* per host, the dictionary the front-door role leaves in the host's
``stapling_outcome`` fact: ``host``, ``action``, ``verdict``, ``recommendation``,
``reasons``, ``servers``, ``sites`` (rows from ``runbook.site_rows``), ``responders``,
``changes`` (sentences), ``disabled_since`` (epoch seconds or null), ``reenable``
(``consecutive_good``, ``required_good``) and ``error`` (why the host failed, or null).
Standard library only; unit tested in ``tests/unit/runbook/test_report.py``.
"""
from __future__ import annotations

import datetime as _dt
import json
import re

from ansible_collections.ocsp.stapling.plugins.module_utils.change.atomic_write import write_atomic as _write_atomic

METRIC_PREFIX = "ocsp_stapling_"
SHORT_VERDICTS = {"not_applicable": "n/a", "error_stapled": "error", "must_staple_missing": "ms-missing",
                  "handshake_failed": "tls-fail", "not_probed": "?"}


def _sites_cell(outcome: dict) -> str:
    sites = outcome.get("sites") or []
    if not sites:
        return "0"
    counts: dict[str, int] = {}
    for row in sites:
        verdict = row.get("verdict") or "?"
        counts[verdict] = counts.get(verdict, 0) + 1
    parts = [f"{SHORT_VERDICTS.get(name, name)} {count}" for name, count in
             sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    return f"{len(sites)}: {', '.join(parts)}"


def _changed_cell(outcome: dict) -> str:
    if outcome.get("error"):
        return f"FAILED: {outcome['error']}"
    changes = outcome.get("changes") or []
    if changes:
        return ("would change (check mode): " if outcome.get("check_mode") else "") + "; ".join(changes)
    notes = outcome.get("notes") or []
    return "nothing: " + "; ".join(notes) if notes else "nothing"


def host_row(host: str, outcome: dict | None) -> list[str]:
    """The summary's cells for one host; a host without an outcome failed before the end."""
    if not outcome:
        return [host, "-", "-", "no_result", "no result: unreachable (see the errors above), or its batch has not run yet"]
    verdict = outcome.get("verdict") or "?"
    reenable = outcome.get("reenable") or {}
    if verdict == "disabled_by_collection" and reenable.get("required_good"):
        verdict += f" ({reenable.get('consecutive_good', 0)}/{reenable['required_good']} good)"
    if verdict in ("protected", "protected_expiring") and outcome.get("protected_until"):
        verdict += f" (until {outcome['protected_until']})"
    return [host, ",".join(outcome.get("servers") or []) or "-", _sites_cell(outcome), verdict,
            _changed_cell(outcome)]


def summary_lines(outcomes: dict, hosts: list[str] | None = None, title: str = "") -> list[str]:
    """A table a person reads at a glance: host, servers, sites, verdict, what changed."""
    order = list(hosts) if hosts else sorted(outcomes)
    header = ["HOST", "SERVERS", "SITES (by staple verdict)", "VERDICT", "CHANGED"]
    rows = [host_row(host, outcomes.get(host)) for host in order]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(4)]
    lines = [title] if title else []
    for row in [header] + rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    for host in order:
        outcome = outcomes.get(host) or {}
        if outcome.get("verdict") not in (None, "healthy", "not_applicable") and outcome.get("recommendation"):
            lines.append(f"{host}: next: {outcome['recommendation']}")
    return lines


def json_report(outcomes: dict, hosts: list[str] | None = None, meta: dict | None = None,
                now: float | None = None) -> dict:
    """The machine-readable report."""
    order = list(hosts) if hosts else sorted(outcomes)
    stamp = now if now is not None else _dt.datetime.now(_dt.timezone.utc).timestamp()
    verdicts: dict[str, int] = {}
    for host in order:
        verdict = (outcomes.get(host) or {}).get("verdict") or "no_result"
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    return {
        "generated_at": _dt.datetime.fromtimestamp(stamp, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **(meta or {}),
        "verdicts": verdicts,
        "hosts": {host: outcomes.get(host) or {"verdict": "no_result", "error": "failed or unreachable"}
                  for host in order},
    }


def _label(value) -> str:
    text = str(value if value is not None else "")
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# The exposition: every metric family once, in this order. Where ribbybibby/ssl_exporter has
# a series with the same meaning its name is used (so existing dashboards and alerts read
# this file); the runbook's own series are ``ocsp_stapling_*`` with Prometheus' unit suffixes.
METRICS: dict[str, str] = {
    "ssl_ocsp_response_stapled": "1 when the site's TLS handshake carried a stapled OCSP response, else 0.",
    "ssl_ocsp_response_status": "Certificate status in the stapled OCSP response: 0 good, 1 revoked, 2 unknown.",
    "ssl_ocsp_response_this_update": "thisUpdate of the stapled OCSP response, Unix seconds.",
    "ssl_ocsp_response_next_update": "nextUpdate of the stapled OCSP response, Unix seconds.",
    "ssl_ocsp_response_produced_at": "producedAt of the stapled OCSP response, Unix seconds.",
    METRIC_PREFIX + "staple_verdict": ("Always 1: what the site staples (verdict) and whether its configuration "
                                       "turns stapling on (stapling), with the OCSP responder its certificate names."),
    METRIC_PREFIX + "handshake_duration_seconds": "Duration of the TLS handshake that fetched the site's staple.",
    METRIC_PREFIX + "site_protected": ("1 when the site is in protected mode (a held response, from the keeper or "
                                       "mod_md, keeps it stapling through a responder outage), 0 in standard mode."),
    METRIC_PREFIX + "held_response_expiry_timestamp_seconds": (
        "nextUpdate of the response protected mode holds for the site (source: keeper or mod_md), Unix seconds: "
        "the site is protected until then, and mod_md keeps stapling it past then, expired."),
    METRIC_PREFIX + "responder_reachable": ("1 when the host got a correct, current answer from the OCSP responder "
                                            "over this IP family (any: over some family), else 0."),
    METRIC_PREFIX + "disabled_since_timestamp_seconds": ("When ocsp.stapling disabled stapling on the host, "
                                                         "Unix seconds (0: not disabled by it)."),
    METRIC_PREFIX + "reenable_consecutive_good_answers": ("Correct responder answers in a row since the disable, "
                                                          "counted by the re-enable job."),
    METRIC_PREFIX + "reenable_required_good_answers": "Correct answers in a row the re-enable job waits for.",
    METRIC_PREFIX + "host_verdict": "Always 1: the host's runbook verdict (verdict label).",
    METRIC_PREFIX + "last_run_timestamp_seconds": ("When a runbook playbook (action label) last wrote this file, "
                                                   "Unix seconds; other playbooks' last runs are kept."),
}
# ssl_exporter's ssl_ocsp_response_status values.
CERT_STATUS_VALUES = {"good": 0, "revoked": 1, "unknown": 2}
LAST_RUN = METRIC_PREFIX + "last_run_timestamp_seconds"
_LAST_RUN_LINE = re.compile(rf'^{LAST_RUN}\{{action="((?:[^"\\]|\\.)*)"\}} (\d+)$', re.M)


def _timestamp(value) -> int | None:
    """Unix seconds of an ISO 8601 time (the modules' format), or None."""
    if not value:
        return None
    try:
        stamp = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.timezone.utc)
    return int(stamp.timestamp())


def _number(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def previous_last_runs(text: str) -> dict[str, int]:
    """Each playbook's last run as the previous textfile recorded it (action -> Unix seconds)."""
    return {match.group(1).replace('\\"', '"').replace("\\\\", "\\"): int(match.group(2))
            for match in _LAST_RUN_LINE.finditer(text or "")}


def _site_series(host: str, row: dict, add) -> None:
    labels = {"host": host, "server": row.get("server"), "site": row.get("site")}
    configured = row.get("stapling_configured")
    add(METRIC_PREFIX + "staple_verdict",
        dict(labels, responder=row.get("responder_url") or "", verdict=row.get("verdict") or "not_probed",
             stapling={True: "on", False: "off"}.get(configured, "default")), 1)
    add(METRIC_PREFIX + "site_protected", labels, 1 if row.get("mode") == "protected" else 0)
    until = row.get("protected_until_timestamp")
    if row.get("mode") == "protected" and isinstance(until, (int, float)):
        add(METRIC_PREFIX + "held_response_expiry_timestamp_seconds",
            dict(labels, source=row.get("protection_source") or ""), int(until))
    if not row.get("handshake_ok"):
        # ssl_exporter has no OCSP series for a target whose handshake failed.
        return
    if isinstance(row.get("handshake_seconds"), (int, float)):
        add(METRIC_PREFIX + "handshake_duration_seconds", labels, float(row["handshake_seconds"]))
    add("ssl_ocsp_response_stapled", labels, 1 if row.get("stapled") else 0)
    if not row.get("stapled") or row.get("response_status") != "successful":
        # An error response (tryLater) carries no certificate status nor times.
        return
    if row.get("cert_status") in CERT_STATUS_VALUES:
        add("ssl_ocsp_response_status", labels, CERT_STATUS_VALUES[row["cert_status"]])
    for field in ("this_update", "next_update", "produced_at"):
        stamp = _timestamp(row.get(field))
        if stamp is not None:
            add(f"ssl_ocsp_response_{field}", labels, stamp)


def prometheus_text(outcomes: dict, hosts: list[str] | None = None, now: float | None = None,
                    action: str | None = None, previous: str = "") -> str:
    """node_exporter textfile-collector format (gauges); see METRICS and docs/monitoring.md.

    ``action`` is the playbook's (``check``, ``disable``, ``reenable``, ...): it labels this
    run's ``last_run_timestamp_seconds``; the other actions' last runs are carried over from
    ``previous`` (the file being replaced), so "the re-enable job has not run" can be told
    from a file that a check run wrote last.
    """
    order = list(hosts) if hosts else sorted(outcomes)
    stamp = now if now is not None else _dt.datetime.now(_dt.timezone.utc).timestamp()
    series: dict[str, dict[str, str]] = {name: {} for name in METRICS}

    def add(name: str, labels: dict, value) -> None:
        inner = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
        # One sample per series: node_exporter rejects a file with a duplicate. Two
        # configuration blocks may serve one name (an IPv4 and an IPv6 server block): the first wins.
        series[name].setdefault(inner, f"{name}{{{inner}}} {_number(value)}")

    for host in order:
        outcome = outcomes.get(host)
        if not outcome:
            add(METRIC_PREFIX + "host_verdict", {"host": host, "verdict": "no_result"}, 1)
            continue
        for row in outcome.get("sites") or []:
            _site_series(host, row, add)
        for responder in outcome.get("responders") or []:
            labels = {"host": host, "responder": responder.get("url")}
            add(METRIC_PREFIX + "responder_reachable", dict(labels, ip_family="any"),
                1 if responder.get("reachable") else 0)
            for family in ("ipv4", "ipv6"):
                if responder.get(family) is not None:
                    add(METRIC_PREFIX + "responder_reachable", dict(labels, ip_family=family),
                        1 if responder[family] else 0)
        add(METRIC_PREFIX + "disabled_since_timestamp_seconds", {"host": host}, int(outcome.get("disabled_since") or 0))
        reenable = outcome.get("reenable") or {}
        if reenable.get("required_good"):
            add(METRIC_PREFIX + "reenable_consecutive_good_answers", {"host": host},
                int(reenable.get("consecutive_good") or 0))
            add(METRIC_PREFIX + "reenable_required_good_answers", {"host": host}, int(reenable["required_good"]))
        add(METRIC_PREFIX + "host_verdict", {"host": host, "verdict": outcome.get("verdict")}, 1)
    last_runs = previous_last_runs(previous)
    last_runs[action or "unknown"] = int(stamp)
    for name in sorted(last_runs):
        add(LAST_RUN, {"action": name}, last_runs[name])
    lines = []
    for name, help_text in METRICS.items():
        if not series[name]:
            continue
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(series[name].values())
    return "\n".join(lines) + "\n"


def write_atomic(path: str, text: str, mode: int = 0o644) -> bool:
    """Write ``text`` by rename (node_exporter must never read half a file); True if it changed."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except OSError:
        pass
    _write_atomic(path, text, mode)
    return True


def read_text(path: str) -> str:
    """The file's text, or "" when it does not exist yet (or cannot be read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return ""


def dump_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
