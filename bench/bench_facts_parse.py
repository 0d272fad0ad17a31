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
import tests.conftest  # noqa: E402,F401  (makes ansible_collections.ocsp.stapling importable)
import gen_cpanel_tree  # noqa: E402

from ansible_collections.ocsp.stapling.plugins.module_utils import dialect_apache, facts  # noqa: E402

SIZES = (1000, 5000, 10000)
TARGET_SIZE, TARGET_SECONDS = 5000, 2.0


def parse_once(root: str, conf: str) -> tuple[float, int]:
    start = time.perf_counter()
    config = dialect_apache.load_apache_config(conf, server_root="/etc/apache2", root=root)
    sites = facts.apache_sites(config)
    return time.perf_counter() - start, len(sites)


def main() -> int:
    results = []
    for size in SIZES:
        root = tempfile.mkdtemp(prefix="bench-cpanel-%d-" % size)
        try:
            conf = gen_cpanel_tree.write_tree(root, gen_cpanel_tree.domains(size), 4)
            lines = sum(1 for _ in open(os.path.join(root, conf.lstrip("/")), encoding="utf-8"))
            best, sites = min(parse_once(root, conf) for _ in range(3))
        finally:
            shutil.rmtree(root)
        results.append((size, best, sites, lines))
    base_per_vhost = results[0][1] / results[0][2]
    print("%8s %10s %9s %10s %14s %8s" % ("domains", "tls_sites", "lines", "seconds", "us/tls_vhost", "ratio"))
    for size, seconds, sites, lines in results:
        per = seconds / sites
        print("%8d %10d %9d %10.3f %14.1f %8.2f" % (size, sites, lines, seconds, per * 1e6, per / base_per_vhost))
    target = next(r for r in results if r[0] == TARGET_SIZE)
    verdict = "PASS" if target[1] < TARGET_SECONDS else "MISS"
    print("target: %d TLS vhosts (%d VirtualHost sections) parsed in %.3f s (< %.1f s): %s"
          % (target[2], 2 * target[0], target[1], TARGET_SECONDS, verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
