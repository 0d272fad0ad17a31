"""The stapling_facts module and the facts it assembles, on private trees."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers import facts as facts_mod
from tests.unit.paths import FIXTURES as UNIT_FIXTURES, REPO

FIXTURES = UNIT_FIXTURES / "configs"
sys.path.insert(0, str(UNIT_FIXTURES))
import gen_cpanel_tree  # noqa: E402


def test_ea4_facts_sites_files_and_errors():
    facts = facts_mod.gather_facts(root=str(FIXTURES / "cpanel_ea4"))
    apache = facts["servers"]["apache"]
    assert (apache["layout"], apache["version"], apache["supports_stapling"]) == ("cpanel_ea4", "2.4.62", True)
    assert apache["modules"]["socache_shmcb"]["loaded"] is True
    assert apache["stapling_cache"]["line"] == 57
    assert facts["cpanel"]["ea_version"] == 4
    sites = {s["names"][0]: s for s in facts["sites"]}
    assert sorted(sites) == ["alice.example", "bob.example", "carol.example"]
    carol = sites["carol.example"]
    assert carol["listen"] == [{"address": "192.0.2.12", "port": 443}]
    assert carol["certificate"] == ["/var/cpanel/ssl/apache_tls/carol.example/combined"]
    assert carol["stapling"]["SSLUseStapling"]["value"] == "off"
    assert carol["stapling"]["SSLStaplingCache"]["inherited"] is True
    (log,) = facts["errors"]
    assert log["path"] == "/etc/apache2/logs/error_log"
    assert {k: v["count"] for k, v in log["classes"].items()} == {"AH01941": 1, "AH02218": 1}
    assert [f["path"] for f in facts_mod.stapling_files(facts)] == [
        "/etc/apache2/conf.d/includes/pre_main_global.conf",
        "/etc/apache2/conf.d/includes/pre_virtualhost_global.conf",
        "/etc/apache2/conf.d/includes/pre_virtualhost_2.conf",
    ]


def test_litespeed_on_cpanel_serves_the_apache_config(tmp_path):
    shutil.copytree(FIXTURES / "cpanel_ea4", tmp_path, dirs_exist_ok=True, symlinks=True)
    shutil.copytree(FIXTURES / "lsws", tmp_path, dirs_exist_ok=True, symlinks=True)
    (tmp_path / "etc/apache2/conf.d/includes/pre_main_global.conf").write_text(
        "<IfModule Litespeed>\nSSLStaplingCache shmcb:/tmp/stapling_cache(128000)\n</IfModule>\n")
    facts = facts_mod.gather_facts(root=str(tmp_path), run_binaries=False)
    assert facts["servers"]["litespeed"]["reads_apache_config"] is True
    assert facts["servers"]["apache"]["served_by"] == "litespeed"
    # The <IfModule Litespeed> cache is read first; cPanel's own line 57 comes later and wins.
    assert facts["servers"]["apache"]["stapling_cache"]["line"] == 57
    lscache = facts["servers"]["apache"]["litespeed_files"][0]
    assert lscache["path"] == "/etc/apache2/conf.d/userdata/lscache_vhosts.conf"
    servers = {s["server"] for s in facts["sites"]}
    assert servers == {"litespeed"}
    assert len(facts["sites"]) == 5  # three Apache-config vhosts and the native listener + vhost


def test_nginx_facts_and_explicit_error_logs():
    root = str(FIXTURES / "nginx")
    facts = facts_mod.gather_facts(root=root, error_logs=["/var/log/nginx/error.log"], log_tail_bytes=200)
    nginx = facts["servers"]["nginx"]
    assert nginx["version"] == "1.22.1" and nginx["files_read"] == 8
    assert {tuple(s["names"]) for s in facts["sites"]} == {("shop.example.org", "www.shop.example.org"), ("api.example.org",)}
    (log,) = facts["errors"]
    assert log["bytes_read"] == 200 and log["total"] <= 1


def test_facts_warn_about_old_versions(tmp_path):
    shutil.copytree(FIXTURES / "rhel", tmp_path, dirs_exist_ok=True, symlinks=True)
    (tmp_path / "usr/sbin/httpd").write_text('#!/bin/sh\necho "Server version: Apache/2.2.15 (Unix)"\n')
    facts = facts_mod.gather_facts(root=str(tmp_path))
    assert any("2.2.15 is older than 2.3.3" in w for w in facts["warnings"])


def test_generated_tree_counts_every_tls_vhost(tmp_path):
    conf = gen_cpanel_tree.write_tree(str(tmp_path), gen_cpanel_tree.domains(60), 4)
    facts = facts_mod.gather_facts(root=str(tmp_path), apache_config=conf, run_binaries=False)
    sites = facts["sites"]
    assert len(sites) == 60
    off = [s for s in sites if s["stapling"]["SSLUseStapling"]["value"] == "off"]
    assert len(off) == 20  # every third certificate has no OCSP URL
    forced = [s for s in sites if "SSLStaplingForceURL" in s["stapling"]]
    assert [s["names"][0] for s in forced] == ["site00007.example", "site00057.example"]


def test_module_runs_under_ansible_and_sets_facts():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"),
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    args = "root=%s run_binaries=false" % (FIXTURES / "rhel")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "ocsp.stapling.stapling_facts",
         "-a", args, "-e", "ansible_python_interpreter=%s" % sys.executable, "--check", "-o"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    payload = json.loads(result.stdout.split("=>", 1)[1])
    facts = payload["ansible_facts"]["ocsp_stapling"]
    assert payload["changed"] is False
    assert facts["servers"]["apache"]["layout"] == "rhel"
    # The default is compact: SSLUseStapling is set at server scope in ssl.conf, so it is
    # given once for the server, not in the site.
    assert facts["detail"] == "compact"
    assert "SSLUseStapling" not in facts["sites"][0]["stapling"]
    assert facts["servers"]["apache"]["stapling_inherited"]["SSLUseStapling"]["file"] == "/etc/httpd/conf.d/ssl.conf"


@pytest.mark.parametrize("name", ["stapling_facts", "stapling_survey", "stapling_diagnose"])
def test_module_docs_match_argument_spec(name):
    """Each option documented (in the module or its fragments) as the spec takes it."""
    import importlib

    import yaml

    module = importlib.import_module(f"ansible_collections.ocsp.stapling.plugins.modules.{name}")
    spec = module.DIAGNOSE_ARGUMENT_SPEC if name == "stapling_diagnose" else module.ARGUMENT_SPEC
    documentation = yaml.safe_load(module.DOCUMENTATION)
    assert "ocsp.stapling.facts" in documentation["extends_documentation_fragment"]
    options = {}
    for fragment in documentation["extends_documentation_fragment"]:
        docs = importlib.import_module("ansible_collections.ocsp.stapling.plugins.doc_fragments."
                                       + fragment.rsplit(".", 1)[1]).ModuleDocFragment.DOCUMENTATION
        options.update(yaml.safe_load(docs).get("options") or {})
    options.update(documentation.get("options") or {})
    assert set(options) == set(spec)
    for option, entry in spec.items():
        assert options[option]["type"] == entry["type"], option
        assert options[option].get("default") == entry.get("default"), option
        assert options[option].get("choices", entry.get("choices")) == entry.get("choices"), option
