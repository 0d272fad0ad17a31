"""Benchmark: stapling_status's concurrent probe of a host with 200+ vhosts, against a serial
``openssl s_client -status`` loop measured in the same run.

Starts the loopback lab with 200 extra vhosts (``good0.lab.test`` ... serving the good leaf)
on both apache2 and nginx, warms every vhost once (nginx staples lazily, per server
block), then for each server times:

- baseline: a serial shell-style loop, one ``openssl s_client -status`` per vhost;
- module probe: ``tls_probe.run_module_probe`` (exactly what the module runs on the host)
  at the given concurrency; it also dumps ``-msg -showcerts`` for every handshake, and
  skips loading the system CA store (the controller verifies), which is most of the gain
  on a machine with few CPUs: ``probe_conc1_s`` is the module probe at concurrency 1, to
  tell the two effects apart;
- the whole module through ``ansible`` (action plugin judging included), once.

Best of ``--rounds`` for each. Prints the table and the ratio serial / concurrent, and
records them in ``bench/results/status_concurrency.json``. Benches print; they do not fail.
Run: python bench/bench_status_concurrency.py [--vhosts 200] [--concurrency 16]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# tests.conftest makes ansible_collections.ocsp.stapling importable.
import tests.conftest  # noqa: E402,F401  pylint: disable=unused-import

from ansible_collections.ocsp.stapling.plugins.module_utils.probe import tls as tls_probe  # noqa: E402
from tests.integration.ansible_run import run_module  # noqa: E402
from tests.lab.lab import Lab  # noqa: E402
from tests.lab.pki import LEAF_HOSTS  # noqa: E402

RESULTS = REPO / "bench" / "results" / "status_concurrency.json"


def serial_loop(openssl: str, port: int, names: list[str], timeout: float) -> tuple[float, int]:
    """The baseline an operator would write: for each vhost, s_client -status, one after another."""
    stapled = 0
    start = time.perf_counter()
    for name in names:
        done = subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
                               "-status"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if "OCSP Response Status: successful" in done.stdout:
            stapled += 1
    return time.perf_counter() - start, stapled


def run_command(command):
    """AnsibleModule.run_command's shape, for the module body."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def module_probe(openssl: str, endpoints, concurrency: int, timeout: float) -> tuple[float, int]:
    """Exactly what the module runs on the host (tls_probe.run_module_probe), timed."""
    params = {"endpoints": [{"host": e.host, "port": e.port, "server_name": e.server_name} for e in endpoints],
              "facts": None, "timeout": timeout, "concurrency": concurrency,
              "tls_versions": ["1.2", "1.3"], "warmup": False, "warmup_delay": 0.5}
    start = time.perf_counter()
    found = tls_probe.run_module_probe(params, openssl, run_command)
    return time.perf_counter() - start, sum(1 for r in found["endpoints"] if r["stapled"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vhosts", type=int, default=200, help="extra vhosts per server")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()
    openssl = shutil.which("openssl")
    if not openssl:
        print("openssl is not on PATH; install it (apt-get install openssl) and run again.")
        return 1
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        with Lab.start(Path(tmp) / "lab", extra_sites=args.vhosts) as lab:
            names = list(LEAF_HOSTS.values()) + [f"good{i}.lab.test" for i in range(args.vhosts)]
            for server in ("apache", "nginx"):
                port = lab.server(server).port
                endpoints = [tls_probe.Endpoint("127.0.0.1", port, name) for name in names]
                # Warm every vhost (nginx fetches lazily per server block; Apache per certificate).
                tls_probe.probe_all(openssl, endpoints, timeout=args.timeout,
                                    concurrency=args.concurrency, warmup=True, warmup_delay=0.5)
                serial, conc, one = [], [], []
                # Interleaved rounds, best of each: other load on the machine hits both alike.
                for round_number in range(args.rounds):
                    if round_number % 2:
                        conc.append(module_probe(openssl, endpoints, args.concurrency, args.timeout))
                        serial.append(serial_loop(openssl, port, names, args.timeout))
                    else:
                        serial.append(serial_loop(openssl, port, names, args.timeout))
                        conc.append(module_probe(openssl, endpoints, args.concurrency, args.timeout))
                    one.append(module_probe(openssl, endpoints, 1, args.timeout))
                module_start = time.perf_counter()
                result = run_module("ocsp.stapling.stapling_status", {
                    "endpoints": [{"host": "127.0.0.1", "port": port, "server_name": n} for n in names],
                    "concurrency": args.concurrency, "timeout": args.timeout}, timeout=600)
                module_seconds = time.perf_counter() - module_start
                verdicts = result.get("summary", {}).get("verdicts", {})
                best_serial, best_conc, best_one = min(serial), min(conc), min(one)
                rows.append({
                    "server": server, "vhosts": len(names), "concurrency": args.concurrency,
                    "serial_seconds": round(best_serial[0], 3), "serial_stapled": best_serial[1],
                    "probe_seconds": round(best_conc[0], 3), "probe_stapled": best_conc[1],
                    "ratio": round(best_serial[0] / best_conc[0], 2),
                    "module_probe_concurrency_1_seconds": round(best_one[0], 3),
                    "ratio_from_concurrency": round(best_one[0] / best_conc[0], 2),
                    "module_seconds": round(module_seconds, 3),
                    "module_verdicts": {k: v for k, v in verdicts.items() if v},
                })
    header = ("server", "vhosts", "conc", "serial_loop_s", "module_probe_s", "ratio",
              "probe_conc1_s", "ansible_module_s", "module verdicts")
    print("%-7s %6s %5s %14s %14s %7s %14s %16s  %s" % header)
    for row in rows:
        print("%-7s %6d %5d %14.3f %14.3f %6.1fx %14.3f %16.3f  %s" % (
            row["server"], row["vhosts"], row["concurrency"], row["serial_seconds"],
            row["probe_seconds"], row["ratio"], row["module_probe_concurrency_1_seconds"],
            row["module_seconds"], row["module_verdicts"]))
    record = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "openssl": subprocess.run([openssl, "version"], capture_output=True, text=True,
                                        check=False).stdout.strip(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "rounds": args.rounds, "results": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print("cpus %s, load average %.1f before, %.1f after; ratio = serial loop / module probe"
          % (os.cpu_count(), load_before[0], record["load_average_after"][0]))
    print(f"recorded in {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
