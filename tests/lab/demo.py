"""``make demo``: the OCSP responder outage played end to end with the runbook playbooks.

healthy -> responder down -> Apache staples tryLater -> check_stapling says disable ->
disable_stapling -> sites serve with no staple -> responder up -> reenable_stapling waits
for N good answers -> a good staple again. The summary is printed after every playbook;
each playbook's full output goes to ``<dir>/logs/``. The lab is stopped at the end, also
on failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.lab.__main__ import print_table, status_rows
from tests.lab.inventory import inventory
from tests.lab.lab import REPO, Lab
from tests.lab.processes import LabError

COLLECTIONS = REPO / ".cache" / "collections"
REQUIRED_GOOD = 2


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _summary_lines(report: dict, title: str) -> list[str]:
    if str(COLLECTIONS) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.report import summary_lines
    hosts = report.get("hosts") or {}
    return summary_lines(hosts, list(hosts), title)


class Runbook:
    """Runs the collection's playbooks against the lab and prints their summaries."""

    def __init__(self, directory: Path, record: dict):
        self.directory = directory
        self.logs = directory / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.inventory = directory / "inventory.json"
        self.inventory.write_text(json.dumps(inventory(record, python=sys.executable), indent=2))
        self.count = 0
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_PIPELINING="1",
                        ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
                        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

    def play(self, name: str, expect_failure: bool = False, **extra) -> dict:
        self.count += 1
        tag = f"{self.count:02d}-{name}"
        report_path = self.directory / f"{tag}.json"
        command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.inventory),
                   f"ocsp.stapling.{name}", "-e", f"report_json={report_path}"]
        if extra:
            command += ["-e", json.dumps(extra)]
        shown = " ".join(["ansible-playbook", "ocsp.stapling." + name] + [f"-e {k}={v!r}" for k, v in extra.items()])
        print(f"$ {shown}", flush=True)
        started = time.monotonic()
        log = self.logs / f"{tag}.log"
        with open(log, "w") as out:
            result = subprocess.run(command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, timeout=300, check=False)
        elapsed = time.monotonic() - started
        if not report_path.exists():
            tail = log.read_text().splitlines()[-25:]
            raise LabError(f"{name} ended (exit {result.returncode}) without a report; last lines of {log}:\n"
                           + "\n".join(tail))
        report = json.loads(report_path.read_text())
        for line in _summary_lines(report, f"[{name}: exit {result.returncode}, {elapsed:.0f}s, log {log}]"):
            print("  " + line)
        for host, outcome in report["hosts"].items():
            for reason in outcome.get("reasons") or []:
                print(f"  {host}: {reason}")
        if (result.returncode != 0) != expect_failure:
            raise LabError(f"{name} exited {result.returncode}, expected {'a failure' if expect_failure else 0}; "
                           f"see {log}")
        return report


def verdict(report: dict) -> str:
    return next(iter(report["hosts"].values()))["verdict"]


def expect(what: str, found: str, wanted: str) -> None:
    if found != wanted:
        raise LabError(f"demo: expected {what} to be {wanted!r}, found {found!r}")


def run_demo(directory: Path) -> int:
    started = time.monotonic()
    directory = Path(directory)
    banner(f"Starting the loopback lab in {directory} (CA, OCSP responder, nginx, apache2 with a 5 s stapling cache)")
    lab = Lab.start(directory, apache_options={"standard_cache_timeout": 5, "error_cache_timeout": 5})
    try:
        runbook = Runbook(directory, lab.record())
        lab.wait_for_verdict("nginx", "good", "good")
        banner("1. Healthy: what each site staples, and what check_stapling says")
        print_table(status_rows(lab.record()))
        expect("the healthy verdict", verdict(runbook.play("check_stapling")), "healthy")

        banner("2. The CA's OCSP responder becomes unreachable")
        lab.responder.set_mode("down")
        staple = lab.wait_for_verdict("apache", "good", "error_stapled", timeout=30)
        banner(f"3. Apache's cache expired: it staples '{staple.response_status}' (Firefox fails these sites)")
        print_table(status_rows(lab.record()))

        banner("4. check_stapling from the web server: the responder is unreachable")
        found = verdict(runbook.play("check_stapling"))
        expect("the outage verdict", found, "must_staple_at_risk")
        banner("5. disable_stapling refuses while a Must-Staple site depends on the responder ...")
        runbook.play("disable_stapling", expect_failure=True, ticket="INC-4711")
        banner("   ... the on-call engineer decides to force it, with a reason and a ticket")
        runbook.play("disable_stapling", force=True, ticket="INC-4711", reason="CA OCSP responder unreachable")
        banner("6. Sites serve with no staple (the Must-Staple one stays broken until stapling is back)")
        print_table(status_rows(lab.record()))
        state = json.loads((directory / "runbook" / "state.json").read_text())
        print(f"  state record: disabled_by={state['disabled_by']} at {state['disabled_at']}, ticket {state['ticket']}, "
              f"servers {[item['server'] for item in state['servers']]}, run {state['run_id']}")

        banner("7. The scheduled reenable_stapling while the responder is still down changes nothing")
        report = runbook.play("reenable_stapling", required_good=REQUIRED_GOOD)
        expect("the verdict during the outage", verdict(report), "disabled_by_collection")

        banner("8. The responder is back; reenable_stapling waits for "
               f"{REQUIRED_GOOD} consecutive good answers")
        lab.responder.set_mode("good")
        report = runbook.play("reenable_stapling", required_good=REQUIRED_GOOD)
        expect("the verdict after one good answer", verdict(report), "disabled_by_collection")
        report = runbook.play("reenable_stapling", required_good=REQUIRED_GOOD)
        expect("the verdict after re-enabling", verdict(report), "healthy")

        banner("9. A good staple again")
        print_table(status_rows(lab.record()))
        if (directory / "runbook" / "state.json").exists():
            raise LabError("demo: the state record is still there after the re-enable")
    finally:
        lab.stop()
        banner(f"Lab stopped ({time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo(Path(sys.argv[1])))
