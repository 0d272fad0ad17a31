"""stapling_facts against the lab's running servers: what it reports is what they serve."""
from __future__ import annotations

import pytest

from tests.integration.ansible_run import run_module
from tests.lab.pki import LEAF_HOSTS


@pytest.fixture(scope="module")
def facts(shared_lab):
    lab = shared_lab
    result = run_module("ocsp.stapling.stapling_facts", {
        "apache_binary": "/usr/sbin/apache2",
        "apache_config": str(lab.apache.conf),
        "apache_server_root": str(lab.apache.conf_dir),
        "nginx_config": str(lab.nginx.conf),
        "error_logs": [str(lab.apache.error_log), str(lab.nginx.error_log)],
        # Every directive with its file, line and inheritance (the default is compact).
        "detail": "full",
    })
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    return result["ansible_facts"]["ocsp_stapling"]


def sites_of(facts: dict, server: str) -> dict[str, dict]:
    return {site["names"][0]: site for site in facts["sites"] if site["server"] == server}


def test_facts_list_every_lab_site_with_the_port_and_certificate_served(shared_lab, facts):
    lab = shared_lab
    for server in ("apache", "nginx"):
        sites = sites_of(facts, server)
        assert set(sites) == set(LEAF_HOSTS.values()), server
        port = getattr(lab, server).port
        for name, host in LEAF_HOSTS.items():
            site = sites[host]
            assert [entry["port"] for entry in site["listen"]] == [port]
            assert site["certificate"] == [str(lab.pki.leaves[name].fullchain_path)]
            assert site["key"] == [str(lab.pki.leaves[name].key_path)]


def test_stapling_settings_match_what_is_stapled(shared_lab, facts):
    lab = shared_lab
    apache = sites_of(facts, "apache")[LEAF_HOSTS["good"]]["stapling"]
    # Set once in apache2.conf's server scope and inherited by the vhost: file and line say so.
    assert apache["SSLUseStapling"]["value"].lower() == "on"
    assert apache["SSLUseStapling"]["file"] == str(lab.apache.conf)
    assert apache["SSLStaplingStandardCacheTimeout"]["value"] == "2"
    assert lab.probe("apache", "good").verdict == "good"

    nginx = sites_of(facts, "nginx")[LEAF_HOSTS["good"]]["stapling"]
    assert nginx["ssl_stapling"]["value"] == "on"
    assert nginx["ssl_trusted_certificate"]["value"] == str(lab.pki.trusted_chain)
    assert lab.wait_for_verdict("nginx", "good", "good").cert_status == "good"


def test_servers_and_modules_are_detected(facts):
    apache = facts["servers"]["apache"]
    assert apache["modules"]["socache_shmcb"]["loaded"] is True
    assert apache["modules"]["ssl"]["loaded"] is True
    assert facts["servers"]["nginx"]["version"].startswith("1.")


def test_outage_errors_are_classified(lab):
    lab.responder.set_mode("down")
    lab.wait_for_verdict("apache", "good", "error_stapled", timeout=30)
    result = run_module("ocsp.stapling.stapling_facts", {
        "apache_binary": "/usr/sbin/apache2", "apache_config": str(lab.apache.conf),
        "apache_server_root": str(lab.apache.conf_dir), "nginx_config": str(lab.nginx.conf),
        "error_logs": [str(lab.apache.error_log)],
    })
    errors = result["ansible_facts"]["ocsp_stapling"]["errors"]
    classes = {name for log in errors for name in log["classes"]}
    assert {"AH01974", "AH01941"} <= classes, errors
