"""Compact stapling facts: small per site, and the runbook decides the same as on full facts."""
from __future__ import annotations

import json
import sys

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook import verdict
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import facts as facts_mod
from tests.unit.paths import FIXTURES as UNIT_FIXTURES

sys.path.insert(0, str(UNIT_FIXTURES))
import gen_cpanel_tree  # noqa: E402

FIXTURES = UNIT_FIXTURES / "configs"
BYTES_PER_SITE = 300


@pytest.fixture(scope="module")
def ea4_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ea4")
    conf = gen_cpanel_tree.write_tree(str(root), gen_cpanel_tree.domains(300), 4)
    return str(root), conf


def gather(tree, detail):
    root, conf = tree
    return facts_mod.gather_facts(root=root, apache_config=conf, run_binaries=False, detail=detail)


def test_compact_sites_fit_the_budget_and_carry_no_directive_detail(ea4_tree):
    compact = gather(ea4_tree, "compact")
    full = gather(ea4_tree, "full")
    assert compact["detail"] == "compact" and full["detail"] == "full"
    assert len(compact["sites"]) == len(full["sites"]) == 300
    per_site = len(json.dumps(compact["sites"])) / len(compact["sites"])
    assert per_site <= BYTES_PER_SITE, per_site
    # The full result is what it was: every directive with its arguments and conditions.
    assert len(json.dumps(full["sites"])) / len(full["sites"]) > 4 * per_site
    assert all("certificates" not in site and "file" not in site for site in compact["sites"])
    assert all("args" not in entry for site in compact["sites"] for entry in site["stapling"].values())
    inherited = compact["servers"]["apache"]["stapling_inherited"]
    assert inherited["SSLUseStapling"]["value"] == "On"
    assert inherited["SSLStaplingCache"]["line"] == full["sites"][0]["stapling"]["SSLStaplingCache"]["line"]


def test_site_stapling_puts_compact_sites_back_together(ea4_tree):
    compact = gather(ea4_tree, "compact")
    full = gather(ea4_tree, "full")
    for small, big in zip(compact["sites"], full["sites"]):
        merged = facts_mod.site_stapling(small, compact)
        assert {k: (v["value"], v["file"], v["line"]) for k, v in merged.items()} == \
               {k: (v["value"], v["file"], v["line"]) for k, v in big["stapling"].items()}, big["names"]


def test_the_verdict_is_the_same_on_compact_and_full_facts(ea4_tree):
    compact = gather(ea4_tree, "compact")
    full = gather(ea4_tree, "full")
    assert verdict.check_certificates(compact) == verdict.check_certificates(full)
    small, big = verdict.decide(compact, {}, {}), verdict.decide(full, {}, {})
    assert [row["stapling_configured"] for row in small["sites"]] == [row["stapling_configured"] for row in big["sites"]]
    # Every third generated certificate has no OCSP URL and cPanel writes SSLUseStapling off there.
    assert sum(row["stapling_configured"] is False for row in small["sites"]) == 100
    assert small["previous"] == big["previous"]
    assert (small["verdict"], small["endpoints"]) == (big["verdict"], big["endpoints"])


def test_compact_warnings_quote_a_few_and_count_all(tmp_path):
    # 40 missing includes, each a warning of its own.
    conf_dir = tmp_path / "etc" / "httpd" / "conf"
    conf_dir.mkdir(parents=True)
    (conf_dir / "httpd.conf").write_text("".join("Include conf.d/missing-%02d/*.conf\n" % i for i in range(40)))
    compact = facts_mod.gather_facts(root=str(tmp_path), apache_config="/etc/httpd/conf/httpd.conf",
                                     apache_server_root="/etc/httpd", run_binaries=False, detail="compact")
    full = facts_mod.gather_facts(root=str(tmp_path), apache_config="/etc/httpd/conf/httpd.conf",
                                  apache_server_root="/etc/httpd", run_binaries=False, detail="full")
    assert len(full["warnings"]) == full["warnings_total"] >= 40
    assert len(compact["warnings"]) == facts_mod.WARNING_EXAMPLES
    assert compact["warnings_total"] == full["warnings_total"]
    assert compact["warnings"] == full["warnings"][:facts_mod.WARNING_EXAMPLES]


def test_an_unknown_detail_is_refused():
    with pytest.raises(ValueError, match="expected one of compact, full"):
        facts_mod.gather_facts(root=str(FIXTURES / "rhel"), run_binaries=False, detail="brief")


def test_the_probe_is_sent_endpoints_not_facts(ea4_tree):
    from ansible_collections.ocsp.stapling.plugins.filter.stapling_verdict import stapling_endpoints

    compact = gather(ea4_tree, "compact")
    full = gather(ea4_tree, "full")
    endpoints = stapling_endpoints(compact)
    assert stapling_endpoints(full) == endpoints
    assert len(endpoints) == 300
    assert endpoints[0] == {"host": "192.0.2.1", "port": 443, "server_name": "site00000.example"}
    # A few dozen bytes per site go back to the host, not the facts it sent (full facts
    # were what the probe received before).
    assert len(json.dumps(endpoints)) * 3 < len(json.dumps(compact["sites"]))
    assert len(json.dumps(endpoints)) * 20 < len(json.dumps(full["sites"]))
    # The verdict matches every probed endpoint back to its site.
    status = {"endpoints": [dict(e, verdict="good", handshake_ok=True) for e in endpoints]}
    rows = verdict.decide(compact, status, {})["sites"]
    assert {row["verdict"] for row in rows} == {"good"}


@pytest.mark.parametrize("tree", sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()))
def test_compact_and_full_facts_give_the_same_decision_on_every_fixture(tree):
    """Apache, nginx and LiteSpeed layouts alike: the runbook reads the same from both."""
    compact = facts_mod.gather_facts(root=str(FIXTURES / tree), run_binaries=False, detail="compact")
    full = facts_mod.gather_facts(root=str(FIXTURES / tree), run_binaries=False, detail="full")
    small, big = verdict.decide(compact, {}, {}), verdict.decide(full, {}, {})
    assert [r["stapling_configured"] for r in small["sites"]] == [r["stapling_configured"] for r in big["sites"]]
    assert small["previous"] == big["previous"]
    assert verdict.check_certificates(compact) == verdict.check_certificates(full)
