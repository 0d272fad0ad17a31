# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run summary: one line per host, a JSON report and a Prometheus textfile.

Input is one *outcome* per host, the dictionary the front-door role leaves in the host's
``stapling_outcome`` fact: ``host``, ``action``, ``verdict``, ``recommendation``,
``reasons``, ``servers``, ``sites`` (rows from ``runbook.site_rows``), ``responders``,
``changes`` (sentences), ``disabled_since`` (epoch seconds or null), ``reenable``
(``consecutive_good``, ``required_good``) and ``error`` (why the host failed, or null).
Standard library only; unit tested in ``tests/unit/test_report.py``.
"""
from __future__ import annotations

import datetime as _dt
import json

from ansible_collections.ocsp.stapling.plugins.module_utils.atomic_write import write_atomic as _write_atomic

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


def _series(name: str, labels: dict, value) -> str:
    inner = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
    return f"{METRIC_PREFIX}{name}{{{inner}}} {value}"


def prometheus_text(outcomes: dict, hosts: list[str] | None = None, now: float | None = None) -> str:
    """node_exporter textfile-collector format, ``ocsp_stapling_*`` gauges."""
    order = list(hosts) if hosts else sorted(outcomes)
    stamp = now if now is not None else _dt.datetime.now(_dt.timezone.utc).timestamp()
    metrics = {
        "staple_status": ("1 when the site staples a good response, else 0; the verdict label says what it staples.", []),
        "responder_reachable": ("1 when the host got a correct, current answer from the OCSP responder.", []),
        "staple_seconds_until_expiry": ("Seconds until the stapled response's nextUpdate (negative: expired).", []),
        "disabled_since_timestamp_seconds": ("When ocsp.stapling disabled stapling on the host (0: not disabled by it).", []),
        "host_verdict": ("1 for the host's current runbook verdict.", []),
        "last_run_timestamp_seconds": ("When this report was written.", []),
    }
    for host in order:
        outcome = outcomes.get(host)
        if not outcome:
            metrics["host_verdict"][1].append(_series("host_verdict", {"host": host, "verdict": "no_result"}, 1))
            continue
        for row in outcome.get("sites") or []:
            labels = {"host": host, "server": row.get("server"), "site": row.get("site")}
            metrics["staple_status"][1].append(_series(
                "staple_status", dict(labels, verdict=row.get("verdict")), 1 if row.get("verdict") == "good" else 0))
            if isinstance(row.get("seconds_until_expiry"), (int, float)):
                metrics["staple_seconds_until_expiry"][1].append(_series(
                    "staple_seconds_until_expiry", labels, int(row["seconds_until_expiry"])))
        for responder in outcome.get("responders") or []:
            metrics["responder_reachable"][1].append(_series(
                "responder_reachable", {"host": host, "responder": responder.get("url")},
                1 if responder.get("reachable") else 0))
        metrics["disabled_since_timestamp_seconds"][1].append(_series(
            "disabled_since_timestamp_seconds", {"host": host}, int(outcome.get("disabled_since") or 0)))
        metrics["host_verdict"][1].append(_series("host_verdict", {"host": host, "verdict": outcome.get("verdict")}, 1))
    metrics["last_run_timestamp_seconds"][1].append(f"{METRIC_PREFIX}last_run_timestamp_seconds {int(stamp)}")
    lines = []
    for name, (help_text, series) in metrics.items():
        if not series:
            continue
        lines.append(f"# HELP {METRIC_PREFIX}{name} {help_text}")
        lines.append(f"# TYPE {METRIC_PREFIX}{name} gauge")
        lines.extend(series)
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


def dump_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
