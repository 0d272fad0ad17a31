"""stapling_facts reports where mod_md keeps its responses (MDStoreDir, relative to ServerRoot),
and the runbook reads held responses from there before the usual defaults."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.filter.stapling_verdict import FilterModule
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import facts as facts_mod

DEFAULTS = ["/etc/apache2/md", "/etc/httpd/md", "/var/lib/apache2/md"]


def rhel_tree(tmp_path, *lines: str) -> dict:
    conf_dir = tmp_path / "etc" / "httpd" / "conf"
    conf_dir.mkdir(parents=True)
    (tmp_path / "etc" / "httpd" / "conf.d").mkdir()
    (conf_dir / "httpd.conf").write_text('ServerRoot "/etc/httpd"\nIncludeOptional conf.d/*.conf\n')
    (tmp_path / "etc" / "httpd" / "conf.d" / "md.conf").write_text("".join(line + "\n" for line in lines))
    return facts_mod.gather_facts(root=str(tmp_path), apache_config="/etc/httpd/conf/httpd.conf",
                                  apache_server_root="/etc/httpd", run_binaries=False)


@pytest.mark.parametrize("lines,store,configured", [
    ((), "/etc/httpd/md", False),                                        # mod_md's default: ServerRoot/md
    (("MDStoreDir state/md",), "/etc/httpd/state/md", True),             # relative to ServerRoot
    (("MDStoreDir /srv/md-store/",), "/srv/md-store", True),
    (("MDStoreDir /first", "MDStoreDir /second"), "/second", True),      # the last one wins
    (("<VirtualHost *:443>", "MDStoreDir /in-a-vhost", "</VirtualHost>"), "/etc/httpd/md", False),  # server scope only
])
def test_the_facts_report_the_servers_own_md_store(tmp_path, lines, store, configured):
    facts = rhel_tree(tmp_path, *lines)
    apache = facts["servers"]["apache"]
    assert apache["config_error"] is None, apache["config_error"]
    assert (apache["md_store_dir"], apache["md_store_dir_configured"]) == (store, configured)


def test_the_runbook_reads_the_servers_store_first_then_the_defaults(tmp_path):
    facts = rhel_tree(tmp_path, "MDStoreDir /srv/md-store")
    md_store_dirs = FilterModule().filters()["stapling_md_store_dirs"]
    assert md_store_dirs(facts, DEFAULTS) == ["/srv/md-store"] + DEFAULTS
    assert md_store_dirs(facts) == ["/srv/md-store"]
    # The default store is one of the defaults: listed once, where the server has it.
    default = rhel_tree(tmp_path / "default")
    assert md_store_dirs(default, DEFAULTS) == ["/etc/httpd/md", "/etc/apache2/md", "/var/lib/apache2/md"]


def test_without_apache_only_the_defaults_are_read(tmp_path):
    facts = facts_mod.gather_facts(root=str(tmp_path), run_binaries=False)
    assert facts["servers"]["apache"].get("md_store_dir") is None
    assert facts_mod.md_store_dirs(facts, DEFAULTS) == DEFAULTS


def test_the_filter_says_what_it_expected(tmp_path):
    md_store_dirs = FilterModule().filters()["stapling_md_store_dirs"]
    with pytest.raises(AnsibleFilterError, match="Run ocsp.stapling.stapling_facts first"):
        md_store_dirs("not facts")
    with pytest.raises(AnsibleFilterError, match="a list of directories"):
        md_store_dirs({"servers": {}}, "/etc/apache2/md")
