"""``make demo``: the lab comes up and shows what every site staples, through an outage.

The runbook playbooks grow this into the whole incident story.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tests.lab.lab import Lab
from tests.lab.__main__ import print_table, status_rows


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def run_demo(directory: Path) -> int:
    banner(f"Starting the loopback lab in {directory} (CA, OCSP responder, nginx, apache2)")
    with Lab.start(directory, apache_options={"standard_cache_timeout": 5, "error_cache_timeout": 5}) as lab:
        lab.wait_for_verdict("nginx", "good", "good")
        banner("Healthy: what each site staples")
        print_table(status_rows(lab.record()))
        banner("The CA's OCSP responder becomes unreachable")
        lab.responder.set_mode("down")
        staple = lab.wait_for_verdict("apache", "good", "error_stapled", timeout=30)
        banner(f"Apache's cache expired: it now staples '{staple.response_status}' (sites fail in Firefox)")
        print_table(status_rows(lab.record()))
        banner("The responder is back")
        lab.responder.set_mode("good")
        lab.apache.graceful()
        lab.wait_for_verdict("apache", "good", "good")
        print_table(status_rows(lab.record()))
    banner("Lab stopped")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo(Path(sys.argv[1])))
