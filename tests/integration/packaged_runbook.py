"""The outage runbook played end to end on a packaged-config lab (tests/lab/packaged.py).

check (healthy) -> responder down -> check (disable recommended) -> disable -> responder
back -> reenable, each through the real playbooks with the inventory tests.lab.inventory
builds (the same ``play`` the other runbook tests use), and judged at every step by what
each site staples in a real handshake (``openssl s_client -status``, tests/lab/probe.py),
by the stapling directives the server reads, and at the end by the operator's files.
"""
from __future__ import annotations

import re
from pathlib import Path

from tests.integration.runbook_play import Run, play
from tests.lab.lab import Lab
from tests.lab.packaged import tree_digest
from tests.lab.processes import LabError, wait_until

# Files the collection itself owns (its snippet, its managed dir): not the operator's.
COLLECTION_NAMES = ("ocsp-stapling", "ocsp_stapling")
# What a site staples, as tests/lab/probe.py names it.
GOOD, NONE, ERROR = "good", "none", "error_stapled"


def staples(lab: Lab, server: str) -> dict[str, str]:
    """One handshake per site: server_name -> verdict."""
    return {site.server_name: lab.probe(server, site.server_name).verdict for site in lab.server(server).sites}


def wait_for_all(lab: Lab, server: str, verdict: str, timeout: float = 30.0) -> dict[str, str]:
    """Probe every site until each staples ``verdict``; fail with what was seen."""
    seen: dict[str, str] = {}

    def every_site():
        seen.update(staples(lab, server))
        return all(value == verdict for value in seen.values())
    try:
        wait_until(every_site, timeout, f"every {server} site to staple {verdict}", interval=0.2)
    except LabError as exc:
        raise AssertionError(f"{exc}; last verdicts: {seen}") from None
    return seen


def never_staples(lab: Lab, server: str, handshakes: int = 5) -> dict[str, list[str]]:
    """A few rounds of handshakes per site (bounded): every one must succeed without a staple."""
    seen: dict[str, list[str]] = {}
    for _round in range(handshakes):
        for name, verdict in staples(lab, server).items():
            seen.setdefault(name, []).append(verdict)
    return seen


def apache_read_files(conf_dir: Path) -> list[Path]:
    """The files Debian's apache2.conf reads, in its order (symlinks followed, as Apache does)."""
    files = [conf_dir / "apache2.conf", conf_dir / "ports.conf"]
    for pattern in ("mods-enabled/*.load", "mods-enabled/*.conf", "conf-enabled/*.conf", "sites-enabled/*.conf"):
        files += sorted(conf_dir.glob(pattern))
    return [path for path in files if path.exists()]


def apache_directives(conf_dir: Path, name: str) -> list[str]:
    """Every uncommented ``name`` line Apache reads, as ``file: line``."""
    pattern = re.compile(rf"^\s*{re.escape(name)}\s+(.*)$", re.I | re.M)
    return [f"{path.relative_to(conf_dir)}: {match.group(0).strip()}"
            for path in apache_read_files(conf_dir) for match in pattern.finditer(path.read_text())]


def one_cache(lab: Lab, step: str) -> list[str]:
    """Apache must read exactly one SSLStaplingCache (the operator's) at every step."""
    if lab.apache is None:
        return []
    caches = apache_directives(lab.apache.conf_dir, "SSLStaplingCache")
    if len(caches) == 1:
        return []
    return [f"after {step}: expected the operator's one SSLStaplingCache, Apache reads {caches}"]


def unstapled(seen: dict[str, list[str]], step: str) -> list[str]:
    if all(verdicts == [NONE] * len(verdicts) for verdicts in seen.values()):
        return []
    return [f"{step}: every site must answer TLS without a staple; seen {seen}"]


def operator_files_unchanged(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs between two tree digests, leaving out files the collection owns."""
    problems = []
    for name, digest in before.items():
        if name not in after:
            problems.append(f"{name}: removed")
        elif after[name] != digest:
            problems.append(f"{name}: changed ({digest} -> {after[name]})")
    for name in sorted(set(after) - set(before)):
        if not any(part in name for part in COLLECTION_NAMES):
            problems.append(f"{name}: added ({after[name]})")
    return problems


def outcome(run: Run, what: str, rc: int | None = 0, verdict: str | None = None) -> list[str]:
    """What is wrong with one playbook run (exit code, host verdict), as sentences."""
    problems = []
    if rc is not None and run.rc != rc:
        error = run.host.get("error") if run.report else None
        problems.append(f"{what}: exit {run.rc}, expected {rc} (error: {error})")
    if verdict is not None:
        host = run.host
        if host["verdict"] != verdict:
            problems.append(f"{what}: verdict {host['verdict']!r}, expected {verdict!r} "
                            f"(responders: {host.get('responders')}, "
                            f"sites: {[(row['site'], row['verdict'], row.get('responder_failure')) for row in host.get('sites', [])]})")
    return problems


def responders_asked(run: Run, what: str) -> list[str]:
    """A healthy verdict must rest on the responder's answer for every stapling site."""
    rows = [row for row in run.host.get("sites", []) if row.get("stapling_configured")]
    unasked = [(row["site"], row.get("responder_failure")) for row in rows if row.get("responder_reachable") is not True]
    if rows and not unasked:
        return []
    return [f"{what}: the responder was not confirmed reachable for every stapling site: {unasked or 'no stapling site found'}"]


def play_outage_runbook(lab: Lab, tmp_path: Path, server: str, tune: bool = False) -> None:
    """Play every step even after one goes wrong, and fail at the end with everything seen.

    ``tune``: afterwards, also play tune_stapling (the resilient settings an operator applies
    after an incident) and require one stapling cache and a good staple everywhere.

    Each step's result is judged on its own (the staples, the directives Apache reads, the
    run's exit code and verdict), so one run shows every step that is wrong on a shape.
    """
    instance = lab.server(server)
    etc = instance.conf_dir
    problems: list[str] = []

    # 0. The operator's config as found: every site staples good.
    wait_for_all(lab, server, GOOD)
    problems += one_cache(lab, "start")
    before = tree_digest(etc)

    # 1. Diagnosis while all is well.
    healthy = play(lab, tmp_path, "check_stapling", "1-check-healthy")
    problems += outcome(healthy, "check with the responder up", verdict="healthy")
    problems += responders_asked(healthy, "check with the responder up")

    # 2. The responder goes away. Apache forgets its response after the (short) standard cache
    #    timeout and staples tryLater; nginx keeps its response until nextUpdate.
    lab.responder.set_mode("down")
    wait_for_all(lab, server, ERROR if server == "apache" else GOOD)
    outage = play(lab, tmp_path, "check_stapling", "2-check-outage")
    problems += outcome(outage, "check during the outage", rc=None, verdict="disable_recommended")

    # 3. Disable: every site answers TLS and staples nothing (Apache would staple tryLater
    #    on every handshake if stapling were still on for a site).
    disable = play(lab, tmp_path, "disable_stapling", "3-disable", reason="CA responder outage", ticket="INC-13")
    problems += outcome(disable, "disable during the outage")
    problems += unstapled(never_staples(lab, server), "after disable, responder down")
    problems += one_cache(lab, "disable")

    # 4. The responder is back. A server that still staples would fetch and staple good now:
    #    nginx after a reload (new workers start empty and fetch at once), Apache at once.
    lab.responder.set_mode("good")
    if server == "nginx":
        lab.nginx.reload()
    problems += unstapled(never_staples(lab, server), "after disable, responder back")

    # 5. The scheduled job re-enables (one good answer is enough here) and verifies.
    reenable = play(lab, tmp_path, "reenable_stapling", "5-reenable", required_good=1)
    problems += outcome(reenable, "reenable with the responder back")
    try:
        wait_for_all(lab, server, GOOD)
    except AssertionError as exc:
        problems.append(f"after reenable: {exc}")
    problems += one_cache(lab, "reenable")
    after_check = play(lab, tmp_path, "check_stapling", "6-check-after")
    problems += outcome(after_check, "check after reenable", verdict="healthy")

    # 6. The operator's files are exactly as they were.
    changed = operator_files_unchanged(before, tree_digest(etc))
    if changed:
        problems.append("the operator's files differ after disable + reenable:\n  " + "\n  ".join(changed))

    # 7. Tuning writes the server-scope settings, and the cache only where Apache reads none:
    #    the operator's cache must be found wherever Apache reads it (symlinks, mods-enabled).
    if tune:
        tuned = play(lab, tmp_path, "tune_stapling", "7-tune")
        problems += outcome(tuned, "tune", verdict="healthy")
        problems += one_cache(lab, "tune")
        try:
            wait_for_all(lab, server, GOOD)
        except AssertionError as exc:
            problems.append(f"after tune: {exc}")
    assert not problems, f"{len(problems)} step(s) wrong on this shape:\n- " + "\n- ".join(problems)
