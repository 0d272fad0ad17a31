"""runbook.decide: one verdict per host from facts, staples, responder checks and the record."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.verdict import (
    RECOMMENDATIONS, check_certificates, decide, site_rows, stapling_configured)

URL = "http://ocsp.example.test/"


def site(server, name, cert, stapling="on", port=443):
    switch = {"apache": "SSLUseStapling", "nginx": "ssl_stapling", "litespeed": "enableStapling"}[server]
    stapling_dict = {} if stapling is None else {switch: {"value": stapling, "file": "/x", "line": 1}}
    return {"server": server, "names": [name], "listen": [{"address": "127.0.0.1", "port": str(port)}],
            "certificate": [cert], "stapling": stapling_dict, "file": f"/etc/{name}.conf", "line": 1}


def endpoint(name, verdict, port=443, status="successful", seconds=3600):
    return {"host": "127.0.0.1", "port": port, "server_name": name, "handshake_ok": verdict != "handshake_failed",
            "verdict": verdict, "ocsp_response_status": status, "seconds_until_expiry": seconds,
            "certificate": {"ocsp_urls": [URL], "must_staple": False}, "message": f"{name} {verdict}"}


def cert(path, reachable=True, must_staple=False, url=URL, failure=None):
    return {"path": path, "ocsp_urls": [url] if url else [], "must_staple": must_staple,
            "responder_url": url, "reachable": reachable if url else None,
            "failure": failure if url else "no_ocsp_url"}


def check(certs, reachable=True, attempts=None):
    responders = [{"url": URL, "reachable": reachable, "failure": None if reachable else "timeout", "detail": "",
                   "certificates": [c["path"] for c in certs if c["ocsp_urls"]],
                   "attempts": attempts or [{"ip_version": "4", "failure": None if reachable else "timeout"}]}]
    return {"certificates": certs, "responders": responders,
            "all_reachable": reachable}


@pytest.fixture
def healthy():
    facts = {"sites": [site("apache", "a.test", "/c/a.pem"), site("nginx", "n.test", "/c/n.pem", port=8443),
                       site("apache", "nourl.test", "/c/nourl.pem")],
             "errors": [{"path": "/l", "classes": {"AH02218": {"count": 2}}}]}
    status = {"endpoints": [endpoint("a.test", "good"), endpoint("n.test", "good", port=8443),
                            endpoint("nourl.test", "not_applicable")]}
    responder = check([cert("/c/a.pem"), cert("/c/n.pem"), cert("/c/nourl.pem", url=None)])
    return facts, status, responder


def test_healthy_host(healthy):
    decision = decide(*healthy)
    assert decision["verdict"] == "healthy" and decision["recommendation"] == "nothing to do"
    assert decision["servers"] == ["apache", "nginx"]
    assert decision["errors"] == {"AH02218": 2}
    assert decision["responders_reachable"] is True
    rows = {row["site"]: row for row in decision["sites"]}
    assert rows["n.test"]["port"] == 8443 and rows["n.test"]["verdict"] == "good"
    assert rows["nourl.test"]["has_ocsp_url"] is False


def test_unreachable_responder_recommends_disable(healthy):
    facts, status = healthy[:2]
    responder = check([cert("/c/a.pem", False, failure="timeout"), cert("/c/n.pem", False, failure="timeout"),
                       cert("/c/nourl.pem", url=None)], reachable=False)
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "disable_recommended"
    assert "timeout" in decision["reasons"][0] and URL in decision["reasons"][0]
    assert decision["responders_reachable"] is False


def test_must_staple_site_on_unreachable_responder_blocks(healthy):
    facts, status = healthy[:2]
    responder = check([cert("/c/a.pem", False, must_staple=True), cert("/c/n.pem", False),
                       cert("/c/nourl.pem", url=None)], reachable=False)
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "must_staple_at_risk"
    assert decision["must_staple_sites"] == ["a.test"]
    assert "force=true" in " ".join(decision["reasons"])


def test_error_stapled_while_responder_answers_recommends_reload(healthy):
    facts, status, responder = healthy
    status = copy.deepcopy(status)
    status["endpoints"][0].update(verdict="error_stapled", ocsp_response_status="tryLater")
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "reload_recommended"
    assert decision["reload_servers"] == ["apache"]
    assert "SSLStaplingStandardCacheTimeout" in decision["reasons"][0]


def test_error_stapled_during_outage_is_not_a_reload_case(healthy):
    facts, status = healthy[:2]
    status = copy.deepcopy(status)
    status["endpoints"][0].update(verdict="error_stapled")
    responder = check([cert("/c/a.pem", False), cert("/c/n.pem", False), cert("/c/nourl.pem", url=None)], False)
    assert decide(facts, status, responder)["verdict"] == "disable_recommended"


def test_record_wins_over_everything(healthy):
    record = {"disabled_by": "ocsp.stapling", "disabled_at": "2025-01-01T00:00:00Z", "disabled_at_timestamp": 1735689600,
              "run_id": "r1", "reason": "outage", "observations": {"consecutive_good": 1}}
    decision = decide(*healthy, record)
    assert decision["verdict"] == "disabled_by_collection"
    assert decision["disabled_since"] == 1735689600
    assert "1 consecutive good" in decision["reasons"][0]


def test_stapling_off_by_hand_is_left_alone(healthy):
    facts, status, responder = healthy
    facts = copy.deepcopy(facts)
    for item in facts["sites"]:
        item["stapling"]["SSLUseStapling" if item["server"] == "apache" else "ssl_stapling"]["value"] = "off"
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "stapling_off"
    assert "operator" in decision["reasons"][0]


def test_no_ocsp_url_anywhere_is_not_applicable():
    facts = {"sites": [site("nginx", "n.test", "/c/n.pem")]}
    decision = decide(facts, {"endpoints": [endpoint("n.test", "not_applicable")]},
                      check([cert("/c/n.pem", url=None)]))
    assert decision["verdict"] == "not_applicable"


def test_no_sites_is_not_applicable():
    assert decide({"sites": []}, {}, {})["verdict"] == "not_applicable"


def test_handshake_failure_is_tls_failing(healthy):
    facts, status, responder = healthy
    status = copy.deepcopy(status)
    status["endpoints"][1].update(verdict="handshake_failed", handshake_ok=False)
    assert decide(facts, status, responder)["verdict"] == "tls_failing"


def test_revoked_is_noted_but_host_stays_healthy(healthy):
    facts, status, responder = healthy
    status = copy.deepcopy(status)
    status["endpoints"][0].update(verdict="revoked")
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "healthy"
    assert "a.test" in decision["reasons"][-1] and "replace" in decision["reasons"][-1]


def test_broken_ipv6_beside_working_ipv4_is_shown_per_family_and_is_no_outage(healthy):
    facts, status = healthy[:2]
    attempts = [{"ip_version": "4", "failure": None}, {"ip_version": "6", "failure": "network_unreachable"}]
    # What ocsp_responder_check reports: reachable, the IPv6 attempt failed.
    responder = check([cert("/c/a.pem"), cert("/c/n.pem"), cert("/c/nourl.pem", url=None)], attempts=attempts)
    decision = decide(facts, status, responder)
    assert decision["responders"][0]["ipv4"] is True and decision["responders"][0]["ipv6"] is False
    assert decision["verdict"] == "healthy" and decision["responders_reachable"] is True
    [note] = [reason for reason in decision["reasons"] if "IPv6" in reason]
    assert note.startswith(f"IPv6 to {URL} is broken from this host") and "not a responder outage" in note


def test_an_ipv6_only_responder_with_broken_ipv6_is_unreachable_over_ipv6(healthy):
    facts, status = healthy[:2]
    attempts = [{"ip_version": "4", "failure": "dns_failure", "no_address": True},
                {"ip_version": "6", "failure": "network_unreachable"}]
    responder = check([cert("/c/a.pem", False, failure="network_unreachable"),
                       cert("/c/n.pem", False, failure="network_unreachable"), cert("/c/nourl.pem", url=None)],
                      reachable=False, attempts=attempts)
    decision = decide(facts, status, responder)
    row = decision["responders"][0]
    assert row["ipv4"] is None and row["ipv6"] is False and row["reachable"] is False
    assert decision["verdict"] == "disable_recommended"
    assert (f"cannot get a correct answer from {URL} (network_unreachable over IPv6, the only address family "
            "its name has here)") in decision["reasons"][0]


def test_stapling_configured_reads_each_dialect():
    assert stapling_configured(site("apache", "a", "/a", "On")) is True
    assert stapling_configured(site("nginx", "a", "/a", "off")) is False
    assert stapling_configured(site("litespeed", "a", "/a", "1")) is True
    assert stapling_configured(site("apache", "a", "/a", None)) is None


def test_site_matching_needs_port_and_name():
    facts = {"sites": [site("apache", "a.test", "/c/a.pem", port=443), site("nginx", "a.test", "/c/a.pem", port=8443)]}
    status = {"endpoints": [endpoint("a.test", "error_stapled", port=443), endpoint("a.test", "good", port=8443)]}
    rows = site_rows(facts, status, {})
    assert [(r["server"], r["verdict"]) for r in rows] == [("apache", "error_stapled"), ("nginx", "good")]


def test_previous_settings_choose_what_reenable_restores(healthy):
    facts, status, responder = healthy
    facts = copy.deepcopy(facts)
    facts["sites"][1]["stapling"]["ssl_stapling"]["file"] = "/etc/nginx/conf.d/zz-ocsp-stapling.conf"
    decision = decide(facts, status, responder)
    assert decision["previous"]["apache"]["restore_state"] == "absent"
    assert decision["previous"]["apache"]["sites"]["a.test"] == {"SSLUseStapling": "on", "file": "/x", "line": 1}
    assert decision["previous"]["nginx"]["restore_state"] == "enabled"
    assert decision["stapling_servers"] == ["apache", "nginx"]


def test_good_servers_and_staple_errors(healthy):
    facts, status, responder = healthy
    status = copy.deepcopy(status)
    status["endpoints"][0].update(verdict="error_stapled")
    decision = decide(facts, status, responder)
    assert decision["good_servers"] == ["nginx"]
    assert decision["staple_errors"] == ["apache a.test: error_stapled"]
    assert decision["sites"][0]["address"] == "127.0.0.1"


def test_endpoints_per_server_for_verification(healthy):
    decision = decide(*healthy)
    assert decision["endpoints"]["nginx"] == [{"host": "127.0.0.1", "port": 8443, "server_name": "n.test"}]
    assert [e["server_name"] for e in decision["endpoints"]["apache"]] == ["a.test", "nourl.test"]


def test_staples_ok_needs_a_good_staple_per_stapling_server(healthy):
    assert decide(*healthy)["staples_ok"] is True
    facts, status, responder = healthy
    status = copy.deepcopy(status)
    status["endpoints"][1].update(verdict="missing")
    assert decide(facts, status, responder)["staples_ok"] is False


# --------------------------------------------------------------------------- never "healthy" on a guess


def unchecked(path, must_staple=False):
    """The check's record for a certificate whose issuer was not found (nothing was asked)."""
    return {"path": path, "ocsp_urls": [URL], "must_staple": must_staple, "responder_url": URL,
            "reachable": None, "failure": "issuer_not_found",
            "detail": f"No issuer certificate for {path}: put the intermediate into the chain file."}


def test_issuer_not_found_with_a_good_cached_staple_is_responder_unknown(healthy):
    """The outage case: Apache still staples its cached good response, the responder was never asked."""
    facts, status = healthy[:2]
    responder = check([unchecked("/c/a.pem"), cert("/c/n.pem"), cert("/c/nourl.pem", url=None)])
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "responder_unknown"
    assert decision["recommendation"] == RECOMMENDATIONS["responder_unknown"]
    assert "a.test" in decision["reasons"][0] and "put the intermediate into the chain file" in decision["reasons"][0]
    assert decision["responders_unchecked"] == ["a.test"]
    row = next(r for r in decision["sites"] if r["site"] == "a.test")
    assert row["responder_failure"] == "issuer_not_found" and row["responder_reachable"] is None


def test_failed_check_is_responder_unknown_and_says_why(healthy):
    facts, status = healthy[:2]
    failed = {"changed": False, "failed_when_result": False, "msg": "/c/a.pem is not readable by this user."}
    decision = decide(facts, status, failed)
    assert decision["verdict"] == "responder_unknown"
    assert "/c/a.pem is not readable by this user." in " ".join(decision["reasons"])
    assert decision["responders_reachable"] is False
    assert {r["responder_failure"] for r in decision["sites"] if r["has_ocsp_url"]} == {"check_failed"}


def test_no_check_result_is_responder_unknown(healthy):
    facts, status = healthy[:2]
    decision = decide(facts, status, {})
    assert decision["verdict"] == "responder_unknown"
    assert {r["responder_failure"] for r in decision["sites"] if r["has_ocsp_url"]} == {"not_checked"}


def test_error_staple_with_an_unchecked_responder_is_no_reload_case(healthy):
    facts, status = healthy[:2]
    status = copy.deepcopy(status)
    status["endpoints"][0].update(verdict="error_stapled", ocsp_response_status="tryLater")
    responder = check([unchecked("/c/a.pem"), cert("/c/n.pem"), cert("/c/nourl.pem", url=None)])
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "responder_unknown"
    assert "no reload is recommended" in " ".join(decision["reasons"])


def test_unreachable_responder_still_wins_over_an_unchecked_one(healthy):
    facts, status = healthy[:2]
    responder = check([unchecked("/c/a.pem"), cert("/c/n.pem", False, failure="timeout"),
                       cert("/c/nourl.pem", url=None)], reachable=False)
    assert decide(facts, status, responder)["verdict"] == "disable_recommended"


def must_staple_host(verdict="good", stapling="on"):
    facts = {"sites": [site("apache", "a.test", "/c/a.pem"), site("apache", "ms.test", "/c/ms.pem", stapling=stapling)]}
    ms = endpoint("ms.test", verdict)
    ms["certificate"]["must_staple"] = True
    status = {"endpoints": [endpoint("a.test", "good"), ms]}
    return facts, status, check([cert("/c/a.pem"), cert("/c/ms.pem", must_staple=True)])


@pytest.mark.parametrize("staple", ["must_staple_missing", "unknown", "invalid", "revoked", "not_probed"])
def test_must_staple_site_without_a_good_staple_is_broken(staple):
    facts, status, responder = must_staple_host(staple)
    if staple == "not_probed":
        status["endpoints"] = status["endpoints"][:1]
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "must_staple_broken"
    assert decision["recommendation"] == RECOMMENDATIONS["must_staple_broken"]
    assert "ms.test" in " ".join(decision["reasons"]) and "never disable" in " ".join(decision["reasons"])


def test_must_staple_site_with_stapling_off_is_broken_not_operator_choice():
    facts, status, responder = must_staple_host("must_staple_missing", stapling="off")
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "must_staple_broken"
    assert "ms.test: stapling is off for it" in " ".join(decision["reasons"])
    # Stapling off everywhere: still broken, not "stapling_off".
    facts["sites"][0]["stapling"]["SSLUseStapling"]["value"] = "off"
    assert decide(facts, status, responder)["verdict"] == "must_staple_broken"


def test_must_staple_site_with_a_good_staple_is_healthy():
    assert decide(*must_staple_host("good"))["verdict"] == "healthy"


def test_must_staple_site_with_an_unchecked_responder_is_broken_when_it_staples_nothing():
    facts, status, _check = must_staple_host("must_staple_missing")
    responder = check([cert("/c/a.pem"), unchecked("/c/ms.pem", must_staple=True)])
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "must_staple_broken"
    assert "its responder was not checked (issuer_not_found)" in " ".join(decision["reasons"])


def test_must_staple_error_staple_while_responders_answer_is_a_reload_case_that_names_it():
    facts, status, responder = must_staple_host("error_stapled")
    decision = decide(facts, status, responder)
    assert decision["verdict"] == "reload_recommended"
    assert "Must-Staple certificates served without a good staple (ms.test: it staples error_stapled)" in " ".join(
        decision["reasons"])


def test_check_certificates_carry_each_sites_issuer_sources():
    a = dict(site("apache", "a.test", "/c/a.pem"), issuer_files=["/c/chain.pem", "/c/ca.pem"], issuer_dirs=["/c/certs"])
    b = dict(site("apache", "b.test", "/c/a.pem"), issuer_files=["/c/other.pem"], issuer_dirs=[])
    n = site("nginx", "n.test", "/c/n.pem")  # facts from before issuer sources: plain path
    assert check_certificates({"sites": [a, b, n]}) == [
        {"path": "/c/a.pem", "issuer_files": ["/c/chain.pem", "/c/ca.pem", "/c/other.pem"], "issuer_dirs": ["/c/certs"]},
        {"path": "/c/n.pem", "issuer_files": [], "issuer_dirs": []},
    ]
