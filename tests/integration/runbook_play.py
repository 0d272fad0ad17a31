"""The runbook played as an operator plays it, for the end-to-end tests.

``start_lab`` builds a lab serving ``good`` and ``nourl`` (no Must-Staple), stapling on or
off; ``play`` runs ``ansible-playbook -i <inventory> ocsp.stapling.<name>`` with the
inventory ``tests.lab.inventory`` builds from the lab and returns a :class:`Run` (exit code,
output, the JSON report); ``conf_digest`` is the byte-for-byte witness of both servers'
configuration trees.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.integration.ansible_run import run_playbook
from tests.lab import inventory as lab_inventory
from tests.lab.apache import ApacheInstance
from tests.lab.lab import Lab
from tests.lab.nginx import NginxInstance
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites

HOST = "lab"
SITES = ("good", "nourl")
RESILIENT = {
    "SSLStaplingFakeTryLater": "off",
    "SSLStaplingReturnResponderErrors": "off",
    "SSLStaplingResponderTimeout": "4",
    "SSLStaplingStandardCacheTimeout": "172800",
    "SSLStaplingErrorCacheTimeout": "60",
}


def start_lab(directory: Path, stapling: bool, ocsp_host: str | None = None) -> Lab:
    """A lab whose nginx and apache2 serve good + nourl (no Must-Staple), stapling on or off.

    ``Lab.start`` creates the PKI itself, so (as tests/lab/fleet.py does) the servers are
    added after it with sites chosen from that PKI.
    """
    lab = Lab.start(directory, servers=(), **({"ocsp_host": ocsp_host} if ocsp_host else {}))
    try:
        sites = lab_sites(lab.pki, SITES)
        lab.nginx = NginxInstance(directory / "nginx", free_port(), sites, lab.pki.trusted_chain,
                                  stapling=stapling)
        lab.nginx.start()
        lab.apache = ApacheInstance(directory / "apache", free_port(), sites, stapling=stapling)
        lab.apache.start()
        lab.write_record()
    except BaseException:
        lab.stop()
        raise
    return lab


class Run:
    def __init__(self, completed: subprocess.CompletedProcess, report: dict | None):
        self.rc = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.report = report

    @property
    def host(self) -> dict:
        assert self.report is not None, f"no JSON report (exit {self.rc}):\n{self.tail()}"
        return self.report["hosts"][HOST]

    def recap(self) -> dict[str, int]:
        match = re.search(rf"^{HOST}\s*:\s*(.*)$", self.stdout.split("PLAY RECAP", 1)[-1], re.M)
        assert match, f"no PLAY RECAP line for {HOST}:\n{self.tail()}"
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}

    def tail(self) -> str:
        return f"{self.stdout[-6000:]}\n{self.stderr[-2000:]}"


def play(lab: Lab, tmp_path: Path, name: str, tag: str, check: bool = False, **extra) -> Run:
    inventory = tmp_path / "inventory.json"
    if not inventory.exists():
        inventory.write_text(json.dumps(lab_inventory.inventory(lab.record(), host=HOST, python=sys.executable)))
    report = tmp_path / f"{tag}.json"
    completed = run_playbook(f"ocsp.stapling.{name}", inventory=str(inventory), timeout=300,
                             extra_vars={"target": HOST, "report_json": str(report), **extra},
                             env={"ANSIBLE_PIPELINING": "1"}, check=check)
    (tmp_path / f"{tag}.log").write_text(completed.stdout + completed.stderr)
    return Run(completed, json.loads(report.read_text()) if report.exists() else None)


def conf_digest(lab: Lab) -> dict[str, str]:
    """sha256 of every file (and the target of every link) under both servers' etc/ trees."""
    digest = {}
    for root in (lab.nginx.conf_dir, lab.apache.conf_dir):
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                digest[str(path)] = "-> " + str(path.readlink())
            elif path.is_file():
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    assert any(key.endswith("apache2.conf") for key in digest) and any(key.endswith("nginx.conf") for key in digest)
    return digest
