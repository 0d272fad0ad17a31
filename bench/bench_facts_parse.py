"""Benchmark: parse generated cPanel EA4 trees of 1k, 5k and 10k domains.

Each domain is rendered like cPanel does: a port-80 and a port-443 <VirtualHost>, so
N domains means 2N VirtualHost sections and N TLS sites. The parse covers reading
httpd.conf and its includes, evaluating <IfModule>, and listing every TLS site with
its stapling settings (the work stapling_facts does for Apache).

Prints the time per size and per TLS vhost; growth is linear when the per-vhost time
stays flat. The target (5,000 TLS vhosts under 2 s) is reported, not asserted: benches
print, they do not fail CI. Run: python bench/bench_facts_parse.py
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "unit", "fixtures"))
sys.path.insert(0, REPO)
# tests.conftest makes ansible_collections.ocsp.stapling importable from a checkout.
import tests.conftest  # noqa: E402,F401  pylint: disable=unused-import
import gen_cpanel_tree  # noqa: E402

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import config as dialect_apache  # noqa: E402
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import facts  # noqa: E402

SIZES = (1000, 5000, 10000)
TARGET_SIZE, TARGET_SECONDS = 5000, 2.0


def parse_once(root: str, conf: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, TLS sites). CPU time is what to compare on a busy box."""
    start, cpu = time.perf_counter(), time.process_time()
    config = dialect_apache.load_apache_config(conf, server_root="/etc/apache2", root=root)
    sites = facts.apache_sites(config)
    return time.perf_counter() - start, time.process_time() - cpu, len(sites)


def main() -> int:
    results = []
    for size in SIZES:
        root = tempfile.mkdtemp(prefix="bench-cpanel-%d-" % size)
        try:
            conf = gen_cpanel_tree.write_tree(root, gen_cpanel_tree.domains(size), 4)
            with open(os.path.join(root, conf.lstrip("/")), encoding="utf-8") as handle:
                lines = sum(1 for line in handle)
            wall, cpu, sites = min(parse_once(root, conf) for attempt in range(3))
        finally:
            shutil.rmtree(root)
        results.append((size, wall, cpu, sites, lines))
    base_per_vhost = results[0][2] / results[0][3]
    print("load average: %.1f (wall time suffers on a busy machine; CPU time much less)" % os.getloadavg()[0])
    print("%8s %10s %9s %9s %9s %14s %8s" % ("domains", "tls_sites", "lines", "wall_s", "cpu_s", "cpu_us/vhost", "ratio"))
    for size, wall, cpu, sites, lines in results:
        per = cpu / sites
        print("%8d %10d %9d %9.3f %9.3f %14.1f %8.2f" % (size, sites, lines, wall, cpu, per * 1e6, per / base_per_vhost))
    target = next(r for r in results if r[0] == TARGET_SIZE)
    verdict = "PASS" if target[2] < TARGET_SECONDS else "MISS"
    print("target: %d TLS vhosts (%d VirtualHost sections) parsed in %.3f s CPU, %.3f s wall (< %.1f s): %s"
          % (target[3], 2 * target[0], target[2], target[1], TARGET_SECONDS, verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
