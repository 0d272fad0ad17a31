"""The apache role's protected mode through the relay, on the lab's real apache2.

Two apache2 on one lab, both with 2 s stapling cache timeouts: the lab's own keeps mod_ssl
asking the responder; the other is switched by the role to ``apache_stapling_mode:
protected`` with ``apache_stapling_protected_mechanism: relay`` (forcing the path httpd
without mod_md takes). The role refuses while no relay answers, naming how to start one; a
relay started here (by PID) on the keeper configuration the role wrote is then accepted,
check mode changes nothing, a second run changes nothing. With the responder down, real
handshakes see the relayed site staple the held good response for several cache lifetimes
while the direct site staples tryLater; ``state: absent`` gives every file back byte for byte.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import parse_openssl_time
from tests.integration.ansible_run import ansible_env
from tests.integration.test_apache_faults import role_vars, run_role, tree_digest
from tests.integration.test_apache_protected import run_role_check
from tests.lab.apache import ApacheInstance
from tests.lab.lab import Lab
from tests.lab.probe import probe
from tests.lab.processes import stop_pid, wait_until
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites

CACHE_TIMEOUT = 2   # SSLStaplingStandardCacheTimeout / ErrorCacheTimeout of both apache2
SITE = "good.lab.test"
RELAY_MODULE = "ansible_collections.ocsp.stapling.plugins.module_utils.protect.relay"


@pytest.fixture
def two_apaches(tmp_path):
    options = {"standard_cache_timeout": CACHE_TIMEOUT, "error_cache_timeout": CACHE_TIMEOUT}
    with Lab.start(tmp_path / "lab", servers=("apache",), apache_options=options) as lab:
        relayed = ApacheInstance(tmp_path / "relayed", free_port(), lab_sites(lab.pki, ("good",)), **options)
        relayed.start()
        try:
            yield lab, relayed
        finally:
            relayed.stop()


class Relay:
    """The relay's own command line on the role's keeper configuration, stopped by its PID."""

    def __init__(self, config: Path, port: int, log: Path):
        self.port = port
        self.log = log.open("wb")
        env = dict(ansible_env(), PYTHONPATH=ansible_env()["ANSIBLE_COLLECTIONS_PATH"])
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", RELAY_MODULE, "--config", str(config), "--listen", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env)
        wait_until(self.state, 20, f"the relay on 127.0.0.1:{port}", interval=0.1)

    def state(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/state", timeout=2) as answer:
                return json.loads(answer.read())
        except OSError:
            return None

    def stop(self) -> None:
        stop_pid(self.process.pid)
        self.process.wait(10)
        self.log.close()


def relay_vars(instance, tmp_path: Path, lab: Lab, relay_port: int, **extra) -> dict:
    variables = role_vars(types.SimpleNamespace(apache=instance), tmp_path,
                          apache_stapling_mode="protected", apache_stapling_protected_mechanism="relay",
                          apache_stapling_relay_url=f"http://127.0.0.1:{relay_port}/",
                          apache_stapling_relay_keeper_dir=str(tmp_path / "keeper-issuers"),
                          apache_stapling_relay_keeper_config=str(tmp_path / "etc" / "keeper-apache.json"),
                          apache_stapling_relay_keeper_state_dir=str(tmp_path / "keeper-state"),
                          apache_stapling_relay_ca_bundle=str(lab.pki.trusted_chain),
                          # keep the instance's 2 s cache timeouts: the relay, not a long cache, must carry the outage
                          apache_stapling_tuning="server_default",
                          apache_stapling_warmup_timeout=30, **extra)
    variables["apache_stapling_endpoints"] = [{"host": "127.0.0.1", "port": instance.port, "server_name": SITE}]
    return variables


def test_the_role_points_apache_at_the_relay_which_staples_good_through_an_outage(two_apaches, tmp_path):
    lab, relayed = two_apaches
    direct = lab.apache
    relay_port = free_port()
    variables = relay_vars(relayed, tmp_path, lab, relay_port)
    keeper_config = Path(variables["apache_stapling_relay_keeper_config"])
    before = tree_digest(relayed.conf_dir)

    # No relay yet: refused before Apache changes, naming how to start it; the keeper
    # configuration the relay is to be started with is written.
    refused = run_role(tmp_path, variables)
    assert refused["failed"], refused
    assert "did not answer" in refused["msg"] and "schedule_relay: true" in refused["msg"], refused["msg"]
    assert str(keeper_config) in refused["msg"]
    assert tree_digest(relayed.conf_dir) == before
    config = json.loads(keeper_config.read_text())
    assert [c["name"] for c in config["certificates"]] == [SITE]

    relay = Relay(keeper_config, relay_port, tmp_path / "relay.log")
    try:
        assert [c["name"] for c in relay.state()["certificates"]] == [SITE]

        checked = run_role_check(tmp_path, variables)
        assert checked["rc"] == 0, checked["out"][-3000:]
        assert f"SSLStaplingForceURL http://127.0.0.1:{relay_port}/" in checked["out"], checked["out"][-3000:]
        assert tree_digest(relayed.conf_dir) == before, "check mode changed files"

        outcome = run_role(tmp_path, variables)
        assert not outcome["failed"], "%s\n%s" % (outcome.get("msg"), relayed.error_log.read_text()[-3000:])
        result = outcome["result"]
        assert result["mode"] == "protected" and result["mechanism"] == "relay" and result["changed"], result
        snippet = (relayed.conf_dir / "conf-available" / "zz-ocsp-stapling.conf").read_text()
        assert f"SSLStaplingForceURL http://127.0.0.1:{relay_port}/" in snippet and "SSLStaplingFakeTryLater off" in snippet
        assert result["protected_until"], result

        again = run_role(tmp_path, variables)
        assert not again["failed"] and not again["result"]["changed"], again   # idempotent

        held_next = json.loads((tmp_path / "keeper-state" / f"{SITE}.json").read_text())["next_update"]
        staple = wait_until(lambda: (s := probe(relayed.port, SITE)).verdict == "good" and s, 30,
                            "the relayed apache to staple good", interval=0.2)
        assert parse_openssl_time(staple.next_update) == held_next   # the keeper's response, through the relay
        wait_until(lambda: probe(direct.port, SITE).verdict == "good", 30, "the direct apache to staple good", interval=0.2)

        lab.responder.set_mode("down")
        asked_before = relay.state()["counters"]["held"]
        failing = wait_until(lambda: (s := probe(direct.port, SITE)).verdict == "error_stapled" and s, 30,
                             "the direct apache to staple tryLater", interval=0.5)
        assert failing.response_status.lower() == "trylater", failing
        # Several cache lifetimes with the responder down: every handshake staples the held response.
        end = time.monotonic() + 4 * CACHE_TIMEOUT
        seen = []
        while time.monotonic() < end:
            seen.append(probe(relayed.port, SITE))
        assert {s.verdict for s in seen} == {"good"}, [s.verdict for s in seen]
        assert {parse_openssl_time(s.next_update) for s in seen} == {held_next}
        asked = relay.state()["counters"]["held"] - asked_before
        assert asked >= 2, f"apache asked the relay {asked} time(s) over {4 * CACHE_TIMEOUT} s: its cache, not the relay, served"
        assert probe(direct.port, SITE).verdict == "error_stapled"
        print(f"outage: {len(seen)} relayed handshakes over {4 * CACHE_TIMEOUT} s all good; "
              f"apache asked the relay {asked} times; the direct site stapled tryLater")
        lab.responder.set_mode("good")

        gone = run_role(tmp_path, dict(variables, apache_stapling_state="absent", apache_stapling_mode="standard"))
        assert not gone["failed"], gone
        assert gone["result"]["keeper_pruned"] == [SITE], gone["result"]
    finally:
        relay.stop()
    assert tree_digest(relayed.conf_dir) == before, "state=absent did not give the files back"
    assert not keeper_config.exists()
    assert not list((tmp_path / "keeper-issuers").glob("*.issuer.pem"))
    assert probe(relayed.port, SITE).handshake_ok
