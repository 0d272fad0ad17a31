"""Broken IPv6 end to end, in a network namespace of our own (case 23 of the fault matrix).

Inside a ``tests.lab.netns`` namespace (loopback only; the responder's IPv6 address has an
unreachable route; a private hosts file names the responder) the whole lab runs — the
responder on 127.0.0.1, nginx and apache2 resolving the certificates' OCSP URL themselves —
then ``ocsp_responder_check`` (``ip_version: both``) and the ``check_stapling`` playbook,
all through ``ip netns exec`` (``tests/integration/netns_runbook.py``):

- an IPv6-only responder name: unreachable, the cause named per family ("over IPv6, the
  only address family its name has here", no route) — neither ``healthy`` nor a timeout —
  and nothing reached the responder;
- a dual-stack name whose IPv6 is broken: reachable over IPv4 with IPv6 reported broken,
  both servers staple ``good`` through IPv4, and the verdict is ``healthy`` with a reason
  naming the broken family, not a responder outage (no ``disable_recommended``);
- a dual-stack name whose IPv6 address is sorted first and refuses: each server tries it
  first (the namespace's IPv6 counter rises while that server fetches its first staple),
  moves on to IPv4 and staples ``good`` — the fallback the verdict above relies on, seen
  happen in mod_ssl and in nginx — and the verdict is again ``healthy`` with IPv6 named
  as broken.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab import netns

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(netns.unavailable() is not None, reason=f"no network namespace: {netns.unavailable()}")


@pytest.fixture(scope="module")
def namespace():
    with netns.BrokenIPv6Namespace.create() as ns:
        yield ns


def run_inside(ns: netns.BrokenIPv6Namespace, tmp_path: Path, ocsp_host: str, *extra: str) -> dict:
    out = tmp_path / "seen.json"
    command = ns.command([sys.executable, "-m", "tests.integration.netns_runbook", "--dir", str(tmp_path / "run"),
                          "--ocsp-host", ocsp_host, "--out", str(out), *extra])
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=400,
                               stdin=subprocess.DEVNULL, check=False)
    assert completed.returncode == 0 and out.exists(), (
        f"the run inside {ns.name} failed (exit {completed.returncode}):\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return json.loads(out.read_text())


def host_of(seen: dict) -> dict:
    report = seen["runbook"]["report"]
    assert report is not None, f"no JSON report (exit {seen['runbook']['rc']}):\n{seen['runbook']['tail']}"
    return report["hosts"]["lab"]


def test_an_ipv6_only_responder_with_broken_ipv6_is_unreachable_over_ipv6(namespace, tmp_path):
    seen = run_inside(namespace, tmp_path, netns.IPV6_ONLY)
    url = seen["ocsp_url"]
    assert url.startswith(f"http://{netns.IPV6_ONLY}:")
    # Nothing can reach it: neither server's fetch nor the check found a way to 127.0.0.1.
    assert seen["counts_before_checks"]["GET"] == 0 and seen["counts_before_checks"]["POST"] == 0

    [cert] = seen["module"]["certificates"]
    assert cert["reachable"] is False and cert["failure"] == "network_unreachable", cert["detail"]
    assert cert["detail"].startswith("Over IPv6, the only address family the responder's name has on this host: ")
    assert netns.RESPONDER_IPV6 in cert["detail"] and "No route to host" in cert["detail"]
    assert [(a["ip_version"], a["failure"], a["no_address"]) for a in cert["attempts"]] == [
        ("4", "dns_failure", True), ("6", "network_unreachable", False)]
    assert seen["module"]["all_reachable"] is False

    host = host_of(seen)
    assert host["verdict"] == "disable_recommended", (host["verdict"], host["reasons"])
    assert host["reasons"][0].startswith(
        f"This host cannot get a correct answer from {url} (network_unreachable over IPv6, the only address family "
        "its name has here); 2 stapling site(s) depend on it."), host["reasons"]
    [responder] = host["responders"]
    assert (responder["url"], responder["reachable"], responder["ipv4"], responder["ipv6"]) == (url, False, None, False)
    assert responder["failure"] == "network_unreachable" and "timeout" not in json.dumps(host["reasons"])
    good = [row for row in host["sites"] if row["site"] == "good.lab.test"]
    assert [(row["server"], row["responder_reachable"], row["responder_failure"]) for row in good] == [
        ("apache", False, "network_unreachable"), ("nginx", False, "network_unreachable")]
    assert all(seen["probes"][f"{server} good"]["verdict"] != "good" for server in ("apache", "nginx"))


def test_a_dual_stack_responder_with_broken_ipv6_is_reachable_over_ipv4_and_no_outage(namespace, tmp_path):
    seen = run_inside(namespace, tmp_path, netns.DUAL_STACK, "--wait-good")
    url = seen["ocsp_url"]
    assert url.startswith(f"http://{netns.DUAL_STACK}:")
    assert seen["resolved"] == ["127.0.0.1", netns.RESPONDER_IPV6]   # no route: sorted last
    # Both servers resolved the name themselves and fetched over IPv4 (GET: nginx, POST: Apache).
    assert seen["counts_before_checks"]["GET"] >= 1 and seen["counts_before_checks"]["POST"] >= 1

    [cert] = seen["module"]["certificates"]
    assert cert["reachable"] is True and cert["failure"] is None and cert["cert_status"] == "good", cert["detail"]
    assert cert["ip_version"] == "4" and cert["address"] == "127.0.0.1"
    assert [(a["ip_version"], a["failure"]) for a in cert["attempts"]] == [("4", None), ("6", "network_unreachable")]
    [warning] = cert["warnings"]
    assert warning.startswith("IPv6 to this responder is broken from this host (network_unreachable)")
    assert netns.RESPONDER_IPV6 in warning and "answers correctly over IPv4" in warning
    assert seen["module"]["all_reachable"] is True

    host = host_of(seen)
    assert host["verdict"] == "healthy", (host["verdict"], host["reasons"])
    assert host["recommendation"] == "nothing to do"
    [responder] = host["responders"]
    assert (responder["url"], responder["reachable"], responder["ipv4"], responder["ipv6"]) == (url, True, True, False)
    [note] = [reason for reason in host["reasons"] if "IPv6" in reason]
    assert note.startswith(f"IPv6 to {url} is broken from this host, but the responder answers over IPv4") and (
        "not a responder outage" in note), host["reasons"]
    good = [row for row in host["sites"] if row["site"] == "good.lab.test"]
    assert [(row["server"], row["verdict"], row["responder_reachable"]) for row in good] == [
        ("apache", "good", True), ("nginx", "good", True)]
    assert seen["probes"]["apache good"]["verdict"] == "good" and seen["probes"]["nginx good"]["verdict"] == "good"
    assert seen["runbook"]["rc"] == 0


def test_a_dual_stack_responder_whose_ipv6_refuses_first_is_stapled_over_ipv4(namespace, tmp_path):
    seen = run_inside(namespace, tmp_path, netns.DUAL_STACK_REFUSED, "--wait-good")
    url = seen["ocsp_url"]
    assert seen["resolved"] == [netns.REFUSED_IPV6, "127.0.0.1"], seen["resolved"]
    # Each server took the first address, was refused over IPv6 (SYN and RST on the
    # namespace's loopback), moved on to 127.0.0.1 and staples good. A server that sent no
    # IPv6 packet never met the broken family: the fallback would be untested.
    packets = seen["ipv6_packets_while_fetching"]
    assert packets["apache"] > 0 and packets["nginx"] > 0, f"IPv6 packets while each server fetched: {packets}"
    assert seen["counts_before_checks"]["POST"] >= 1 and seen["counts_before_checks"]["GET"] >= 1

    [cert] = seen["module"]["certificates"]
    assert cert["reachable"] is True and cert["cert_status"] == "good", cert["detail"]
    assert [(a["ip_version"], a["failure"]) for a in cert["attempts"]] == [("4", None), ("6", "connection_refused")]
    assert cert["warnings"][0].startswith("IPv6 to this responder is broken from this host (connection_refused)")

    host = host_of(seen)
    assert host["verdict"] == "healthy", (host["verdict"], host["reasons"])
    [responder] = host["responders"]
    assert (responder["url"], responder["reachable"], responder["ipv4"], responder["ipv6"]) == (url, True, True, False)
    assert any(reason.startswith(f"IPv6 to {url} is broken from this host") for reason in host["reasons"]), host["reasons"]
    good = [row for row in host["sites"] if row["site"] == "good.lab.test"]
    assert [(row["server"], row["verdict"]) for row in good] == [("apache", "good"), ("nginx", "good")]
