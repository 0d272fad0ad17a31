"""Command line for the loopback lab (used by the demo, molecule and people).

    python -m tests.lab up --dir /tmp/lab [--servers nginx,apache] [--apache-cache-timeout 5]
    python -m tests.lab status --dir /tmp/lab        # what every site staples, as a table
    python -m tests.lab status --dir /tmp/lab --json
    python -m tests.lab mode --dir /tmp/lab down     # good down hang garbage http500 trylater ...
    python -m tests.lab down --dir /tmp/lab
    python -m tests.lab demo                          # the incident, end to end

``up`` returns once everything answers; the daemons keep running until ``down``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from pathlib import Path

from tests.lab.lab import Lab, stop_recorded
from tests.lab.pki import LEAF_HOSTS
from tests.lab.probe import probe


def _record(directory: str) -> dict:
    path = Path(directory) / "lab.json"
    if not path.exists():
        sys.exit(f"No lab at {directory}: {path} is missing. Start one with "
                 f"'python -m tests.lab up --dir {directory}'.")
    return json.loads(path.read_text())


def status_rows(record: dict) -> list[dict]:
    rows = []
    for server, info in sorted(record["servers"].items()):
        for name, host in LEAF_HOSTS.items():
            staple = probe(info["port"], host)
            rows.append(dict(staple.as_dict(), server=server, site=name))
    return rows


def print_table(rows: list[dict], out=sys.stdout) -> None:
    out.write(f"{'server':8} {'site':11} {'verdict':16} {'response':11} {'cert':8}\n")
    for row in rows:
        out.write(f"{row['server']:8} {row['site']:11} {row['verdict']:16} "
                  f"{row['response_status'] or '-':11} {row['cert_status'] or '-':8}\n")


def cmd_up(args) -> int:
    apache_options = {}
    if args.apache_cache_timeout:
        apache_options = {"standard_cache_timeout": args.apache_cache_timeout,
                          "error_cache_timeout": args.apache_cache_timeout}
    lab = Lab.start(args.dir, servers=tuple(s for s in args.servers.split(",") if s),
                    apache_options=apache_options, validity=args.validity)
    print(json.dumps(lab.record(), indent=2))
    return 0


def cmd_down(args) -> int:
    stop_recorded(Path(args.dir))
    print(f"lab at {args.dir} stopped")
    return 0


def cmd_status(args) -> int:
    rows = status_rows(_record(args.dir))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    return 0


def cmd_mode(args) -> int:
    record = _record(args.dir)
    url = f"http://127.0.0.1:{record['responder']['control_port']}/mode/{args.mode}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        print(resp.read().decode())
    return 0


def cmd_demo(args) -> int:
    from tests.lab.demo import run_demo
    with tempfile.TemporaryDirectory(prefix="ocsp-stapling-demo-") as tmp:
        return run_demo(Path(args.dir) if args.dir else Path(tmp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description="ocsp.stapling loopback lab")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the lab and return")
    up.add_argument("--dir", required=True)
    up.add_argument("--servers", default="nginx,apache")
    up.add_argument("--apache-cache-timeout", type=int, default=0,
                    help="SSLStaplingStandardCacheTimeout/ErrorCacheTimeout (0: Apache's defaults)")
    up.add_argument("--validity", type=int, default=3600, help="OCSP response validity, seconds")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop a lab started with up")
    down.add_argument("--dir", required=True)
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="what every lab site staples")
    status.add_argument("--dir", required=True)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    mode = sub.add_parser("mode", help="switch the responder's fault mode")
    mode.add_argument("--dir", required=True)
    mode.add_argument("mode")
    mode.set_defaults(func=cmd_mode)
    demo = sub.add_parser("demo", help="play the responder outage end to end")
    demo.add_argument("--dir", help="keep the demo's files here (default: a temp dir)")
    demo.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
