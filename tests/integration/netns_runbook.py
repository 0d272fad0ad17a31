"""Run inside a ``tests.lab.netns`` namespace: the lab, the responder check and the runbook.

    ip netns exec NAME python -m tests.integration.netns_runbook --dir DIR --ocsp-host ocsp6.lab.test --out R.json

Starts a lab whose certificates name ``--ocsp-host`` in their OCSP URL (the responder
listens on 127.0.0.1 only), with nginx and apache2 serving ``good`` and ``nourl`` with
stapling on; with ``--wait-good`` waits until both servers staple a good response (they
resolve the name themselves, in the namespace). Then it runs ``ocsp_responder_check``
(``ip_version: both``) on the good certificate through Ansible and plays
``ocsp.stapling.check_stapling`` on the lab as an operator does, and writes what it saw
to ``--out``: the module's result, the run's exit code and JSON report, the responder's
request counters before the checks, the addresses the name resolves to here (in
``getaddrinfo``'s order), how many IPv6 packets the namespace sent while each server
fetched its first staple, and what each site staples (the lab's own probe).
The lab is stopped by PID before it exits.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

from tests.integration.ansible_run import run_module
from tests.integration.runbook_play import SITES, play, start_lab
from tests.lab.lab import Lab
from tests.lab.netns import ipv6_packets_sent


def start(directory: Path, ocsp_host: str) -> Lab:
    """runbook_play.start_lab's lab (good + nourl, stapling on), its OCSP URLs naming ``ocsp_host``."""
    return start_lab(directory, stapling=True, ocsp_host=ocsp_host)


def observe(lab: Lab, work: Path, wait_good: bool) -> dict:
    seen: dict = {"ocsp_url": lab.pki.ocsp_url, "ipv6_packets_while_fetching": {}}
    host = lab.pki.ocsp_url.split("//", 1)[1].rsplit(":", 1)[0]
    seen["resolved"] = [info[4][0] for info in socket.getaddrinfo(host, 80, 0, socket.SOCK_STREAM)]
    if wait_good:
        # One server at a time, and nothing else here speaks IPv6 meanwhile (the probe and
        # the responder's control port are 127.0.0.1): the counter's rise is that server's.
        for server in ("apache", "nginx"):
            before = ipv6_packets_sent()
            lab.wait_for_verdict(server, "good", "good", timeout=30)
            seen["ipv6_packets_while_fetching"][server] = ipv6_packets_sent() - before
    seen["counts_before_checks"] = lab.responder.state()["counts"]
    seen["module"] = run_module("ocsp.stapling.ocsp_responder_check", {
        "certificates": [str(lab.pki.leaves["good"].fullchain_path)], "ip_version": "both", "timeout": 3})
    run = play(lab, work, "check_stapling", "check")
    seen["runbook"] = {"rc": run.rc, "report": run.report, "tail": run.tail()}
    seen["probes"] = {f"{server} {site}": lab.probe(server, site).as_dict()
                      for server in ("apache", "nginx") for site in SITES}
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.netns_runbook", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the lab directory (created)")
    parser.add_argument("--ocsp-host", required=True, help="the host the certificates' OCSP URLs name")
    parser.add_argument("--out", required=True, help="where to write what was seen (JSON)")
    parser.add_argument("--wait-good", action="store_true", help="wait until both servers staple good first")
    args = parser.parse_args(argv)
    directory = Path(args.dir)
    work = directory / "runbook"
    work.mkdir(parents=True, exist_ok=True)
    lab = start(directory / "lab", args.ocsp_host)
    try:
        seen = observe(lab, work, args.wait_good)
    finally:
        lab.stop()
    Path(args.out).write_text(json.dumps(seen, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
