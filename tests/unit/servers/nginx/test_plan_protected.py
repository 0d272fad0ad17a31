"""The nginx plan's protected mode: sites on the keeper's include, issuer files, what is kept and swept."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect import nginx_snippet
from tests.unit.servers.nginx.plan_helpers import apply, effective, nginx_t, pending
from tests.unit.ocsp_helpers import make_pki
from tests.unit.servers.nginx.test_plan import make_tree, request


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def plan(conf, pki, **kwargs):
    from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import plan as ns
    return ns.plan(request(conf, pki, **kwargs))


def test_protected_sites_include_the_keeper_snippet_which_starts_on_nginxs_own_fetch(tmp_path, pki):
    conf = make_tree(tmp_path, pki)
    result = plan(conf, pki, mode="protected")
    assert result["problems"] == [] and result["placement"] == "server" and result["mode"] == "protected"
    keepers = {entry["name"]: entry for entry in result["keeper_certificates"]}
    assert set(keepers) == {"good.lab.test", "muststaple.lab.test"}   # nourl: nothing to keep
    good = keepers["good.lab.test"]
    assert good["cert"] == str(pki.leaves["good"].fullchain_path) and good["ca_file"] == str(pki.trusted_chain)
    apply(result)
    assert Path(good["issuer"]).read_bytes().strip() == pki.intermediate.cert_path.read_bytes().strip()
    assert Path(good["snippet"]).read_text() == nginx_snippet.render("fetch")
    site_file = conf / "ocsp-stapling" / "sites" / "good.lab.test.conf"
    assert f"include {good['snippet']};" in site_file.read_text()
    assert effective(conf / "nginx.conf")["good.lab.test"] == "on"
    assert nginx_t(tmp_path, conf / "nginx.conf").returncode == 0
    assert pending(plan(conf, pki, mode="protected")) == []


def test_a_snippet_the_keeper_switched_is_kept_and_standard_mode_sweeps_the_keeper_files(tmp_path, pki):
    conf = make_tree(tmp_path, pki)
    result = plan(conf, pki, mode="protected")
    apply(result)
    good = next(e for e in result["keeper_certificates"] if e["name"] == "good.lab.test")
    switched = nginx_snippet.render("file", good["response"], "2030-01-01T00:00:00Z")
    Path(good["snippet"]).write_text(switched)
    assert pending(plan(conf, pki, mode="protected")) == []
    assert Path(good["snippet"]).read_text() == switched
    standard = plan(conf, pki)
    swept = {entry["path"] for entry in standard["files"] if entry.get("state") == "absent"}
    assert good["snippet"] in swept and good["issuer"] in swept
    assert standard["keeper_certificates"] == [] and standard["mode"] == "standard"


def test_an_operator_file_in_the_keeper_place_is_replaced_by_the_fallback(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good",))
    first = plan(conf, pki, mode="protected")
    snippet = Path(first["keeper_certificates"][0]["snippet"])
    snippet.parent.mkdir(parents=True, exist_ok=True)
    snippet.write_text("ssl_stapling_file /stale.der;\n")
    entry = next(f for f in plan(conf, pki, mode="protected")["files"] if f["path"] == str(snippet))
    assert entry["content"] == nginx_snippet.render("fetch")


def test_a_site_serving_no_intermediate_is_refused_in_protected_mode(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good",))
    site = conf / "sites-available" / "good"
    site.write_text(site.read_text().replace(str(pki.leaves["good"].fullchain_path), str(pki.leaves["good"].cert_path)))
    result = plan(conf, pki, mode="protected")
    assert any("needs the issuer" in problem and "full chain" in problem for problem in result["problems"])


def test_protected_applies_only_to_enabled(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good",))
    result = plan(conf, pki, mode="protected", state="disabled")
    assert result["mode"] == "standard" and result["keeper_certificates"] == []
    with pytest.raises(Exception, match="standard or protected"):
        plan(conf, pki, mode="sometimes")
