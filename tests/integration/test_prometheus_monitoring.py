"""Monitoring end to end: a real runbook run's textfile, node_exporter, Prometheus, an alert.

The lab's nginx staples from the lab responder; the responder goes down and
``disable_stapling`` runs as an operator runs it, writing its Prometheus textfile into a
directory that Debian's ``prometheus-node-exporter`` reads with its textfile collector
(127.0.0.1, every other collector off). Debian's ``prometheus`` scrapes node_exporter every
second and evaluates prometheus/alerts.yml every second, rendered with a threshold of 0
hours for "stapling disabled for more than N hours" (the real thresholds are pinned by the
promtool unit tests in prometheus/alerts_test.yml). The test polls Prometheus' alerts API
until that alert fires for the lab host, with a deadline. Every process is started here and
stopped by PID.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.ansible_run import run_playbook
from tests.lab import inventory as lab_inventory
from tests.lab.lab import Lab
from tests.lab.nginx import NginxInstance
from tests.lab.processes import LabError, port_open, stop_pid, wait_until
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "prometheus" / "alerts.yml"
NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")
PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
HOST = "lab"
THRESHOLD = "time() - ocsp_stapling_disabled_since_timestamp_seconds > 12 * 3600"


def fetch(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback only)
        return response.read().decode()


def start(command: list[str], log: Path, port: int, what: str) -> subprocess.Popen:
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle.close()
    try:
        wait_until(lambda: port_open(port) or process.poll() is not None, 30, f"{what} on 127.0.0.1:{port}", 0.1)
    except LabError:
        stop_pid(process.pid)
        raise
    if process.poll() is not None:
        raise AssertionError(f"{what} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
    return process


def rendered_alerts(directory: Path) -> Path:
    """alerts.yml with the disabled-too-long threshold at 0 hours; nothing else changed."""
    text = ALERTS.read_text()
    assert text.count(THRESHOLD) == 1, f"{ALERTS} no longer holds {THRESHOLD!r}: update this test"
    path = directory / "alerts.yml"
    path.write_text(text.replace(THRESHOLD, THRESHOLD.replace("12 * 3600", "0 * 3600")))
    return path


@pytest.fixture
def nginx_lab(tmp_path):
    for binary in (NODE_EXPORTER, PROMETHEUS, PROMTOOL):
        if not binary.exists():
            pytest.fail(f"{binary} not found: install Debian's prometheus and prometheus-node-exporter "
                        "packages (tests/bin/install-system-deps)")
    lab = Lab.start(tmp_path / "lab", servers=())
    try:
        lab.nginx = NginxInstance(tmp_path / "lab" / "nginx", free_port(), lab_sites(lab.pki, ("good",)),
                                  lab.pki.trusted_chain, stapling=True)
        lab.nginx.start()
        lab.write_record()
    except BaseException:
        lab.stop()
        raise
    with lab:
        yield lab


def test_a_disable_run_fires_the_disabled_too_long_alert_through_node_exporter_and_prometheus(nginx_lab, tmp_path):
    lab = nginx_lab
    lab.wait_for_verdict("nginx", "good", "good", timeout=30)
    lab.responder.set_mode("down")

    textfiles = tmp_path / "textfile_collector"
    textfiles.mkdir()
    prom_file = textfiles / "ocsp_stapling.prom"
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(lab_inventory.inventory(lab.record(), host=HOST, python=sys.executable)))
    completed = run_playbook("ocsp.stapling.disable_stapling", inventory=str(inventory), timeout=300,
                             extra_vars={"target": HOST, "report_prometheus": str(prom_file),
                                         "reason": "responder down"},
                             env={"ANSIBLE_PIPELINING": "1"})
    (tmp_path / "disable.log").write_text(completed.stdout + completed.stderr)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-2000:]
    text = prom_file.read_text()
    assert f'ocsp_stapling_host_verdict{{host="{HOST}",verdict="disabled_by_collection"}} 1' in text, text
    lint = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=30, check=False)
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr

    processes: list[subprocess.Popen] = []
    try:
        exporter_port = free_port()
        processes.append(start([str(NODE_EXPORTER), f"--web.listen-address=127.0.0.1:{exporter_port}",
                                "--collector.disable-defaults", "--collector.textfile",
                                f"--collector.textfile.directory={textfiles}"],
                               tmp_path / "node_exporter.log", exporter_port, "node_exporter"))
        exposed = fetch(f"http://127.0.0.1:{exporter_port}/metrics")
        # node_exporter read the file whole (a bad line makes it drop the file and set the error).
        assert "node_textfile_scrape_error 0" in exposed, exposed[-3000:]
        assert f'ocsp_stapling_disabled_since_timestamp_seconds{{host="{HOST}"}}' in exposed

        prometheus_port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rendered_alerts(tmp_path))],
            "scrape_configs": [{"job_name": "node", "static_configs": [
                {"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }))
        processes.append(start([str(PROMETHEUS), f"--config.file={config}",
                                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                f"--web.listen-address=127.0.0.1:{prometheus_port}"],
                               tmp_path / "prometheus.log", prometheus_port, "prometheus"))

        seen: list[list[dict]] = []

        def firing() -> dict | None:
            try:
                alerts = json.loads(fetch(f"http://127.0.0.1:{prometheus_port}/api/v1/alerts"))["data"]["alerts"]
            except OSError:
                return None
            seen.append(alerts)
            return next((alert for alert in alerts if alert["labels"].get("alertname") == "OCSPStaplingDisabledTooLong"
                         and alert["state"] == "firing"), None)

        started = time.monotonic()
        try:
            alert = wait_until(firing, 60, "Prometheus to fire OCSPStaplingDisabledTooLong", 0.5)
        except LabError as exc:
            raise AssertionError(f"{exc}; alerts seen last: {seen[-1:]}\n"
                                 f"{(tmp_path / 'prometheus.log').read_text()[-3000:]}") from None
        assert time.monotonic() - started < 60
        assert alert["labels"]["host"] == HOST and alert["labels"]["instance"] == f"127.0.0.1:{exporter_port}"
        assert f"disabled on {HOST}" in alert["annotations"]["summary"]
        # The same run found the responder down from the host: that alert fires from the same file.
        families = {item["labels"].get("ip_family") for item in seen[-1]
                    if item["labels"]["alertname"] == "OCSPResponderUnreachable" and item["labels"]["host"] == HOST}
        assert "any" in families, seen[-1]
    finally:
        for process in reversed(processes):
            stop_pid(process.pid)
            process.wait(timeout=10)
