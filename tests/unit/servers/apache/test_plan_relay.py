"""The Apache plan's protected mode through the relay: mod_ssl asks the loopback relay, undone exactly."""
from __future__ import annotations

import os

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import plan as apache_plan

from tests.unit.ocsp_helpers import make_pki
from tests.unit.servers.apache.test_plan import apply, conf, cpanel_tree, request, site, snapshot, tree, write  # noqa: F401  pylint: disable=unused-import

SNIPPET = "etc/apache2/conf-available/zz-ocsp-stapling.conf"
RELAY = "http://127.0.0.1:8088/"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def certificates(tree, pki, names=("a.example", "b.example"), fullchain=False):
    """The files VHOST names: /etc/ssl/<name>.pem (the leaf, or leaf + intermediate) and chain.pem."""
    leaf = pki.leaves["good"]
    for name in names:
        write(tree / "etc/ssl" / f"{name}.pem",
              (leaf.fullchain_path if fullchain else leaf.cert_path).read_text())
    write(tree / "etc/ssl/chain.pem", pki.intermediate.cert_path.read_text())


def relay(tree, **kwargs):
    kwargs.setdefault("server_version", "2.4.37")
    kwargs.setdefault("mechanism", "relay")
    return apache_plan.plan(request(tree, "enabled", mode="protected", keeper_dir="/etc/ocsp-stapling/apache",
                                    ca_bundle="/etc/ssl/ca.pem", **kwargs))


def keeper_files(tree, result):
    for item in result["keeper_files"]:
        write(tree / item["path"].lstrip("/"), item["content"])


def snippet_of(result):
    return next(f["content"] for f in result["files"] if f["path"].endswith("zz-ocsp-stapling.conf"))


def test_relay_points_every_stapling_vhost_at_the_relay_and_lists_the_keepers_certificates(tree, pki):
    certificates(tree, pki, ("a.example", "b.example", "c.example"))
    a = site(tree, "a.example", "\t\tSSLStaplingForceURL http://ocsp.elsewhere.example/\n")
    b = site(tree, "b.example", "\t\tSSLStaplingFakeTryLater on\n")
    site(tree, "c.example", "\t\tSSLUseStapling off\n")   # the operator's own off: left alone, no keeper entry
    conf(tree, "stapling", "SSLStaplingCache shmcb:/run/ocsp(128000)\n")
    before = snapshot(tree)

    result = relay(tree)

    assert result["problems"] == []
    assert result["mode"] == "protected" and result["mechanism"] == "relay" and result["relay_url"] == RELAY
    assert result["links"][0]["state"] == "present" and "md.load" not in str(result["links"])
    snippet = snippet_of(result)
    for line in (apache_plan.RELAY_NOTE, "    SSLStaplingForceURL %s\n" % RELAY, "    SSLStaplingFakeTryLater off\n",
                 "    SSLUseStapling On\n"):
        assert line in snippet, snippet
    assert "MDStapling" not in snippet
    on = {s["names"][0]: s["stapling"] for s in result["sites"]}
    assert on == {"a.example": "on", "b.example": "on", "c.example": "off"}

    keepers = {k["name"]: k for k in result["keeper_certificates"]}
    assert sorted(keepers) == ["a.example", "b.example"]
    assert keepers["a.example"]["cert"] == str(tree / "etc/ssl/a.example.pem")
    assert keepers["a.example"]["issuer"] == str(tree / "etc/ocsp-stapling/apache/a.example.issuer.pem")
    assert keepers["a.example"]["ca_file"] == "/etc/ssl/ca.pem"
    issuer = {f["path"]: f["content"] for f in result["keeper_files"]}
    assert issuer["/etc/ocsp-stapling/apache/a.example.issuer.pem"].strip() == pki.intermediate.cert_path.read_text().strip()

    apply(tree, result)
    keeper_files(tree, result)
    assert ("\t\t# ocsp.stapling replaced: SSLStaplingForceURL http://ocsp.elsewhere.example/\n"
            "\t\tSSLStaplingForceURL %s\n" % RELAY) in a.read_text()
    assert "\t\t# ocsp.stapling replaced: SSLStaplingFakeTryLater on\n\t\tSSLStaplingFakeTryLater off\n" in b.read_text()
    relayed = snapshot(tree)

    again = relay(tree)   # idempotent: the same files, so stapling_change changes nothing
    assert again["problems"] == [] and again["keeper_stale_files"] == []
    apply(tree, again)
    assert snapshot(tree) == relayed
    assert again["keeper_certificates"] == result["keeper_certificates"]

    gone = apache_plan.plan(request(tree, "absent", keeper_dir="/etc/ocsp-stapling/apache"))
    assert sorted(gone["keeper_stale_files"]) == ["/etc/ocsp-stapling/apache/a.example.issuer.pem",
                                                  "/etc/ocsp-stapling/apache/b.example.issuer.pem"]
    apply(tree, gone)
    for path in gone["keeper_stale_files"]:
        os.unlink(tree / path.lstrip("/"))
    os.rmdir(tree / "etc/ocsp-stapling/apache")
    os.rmdir(tree / "etc/ocsp-stapling")
    assert snapshot(tree) == before


def test_a_standard_enable_gives_back_what_the_relay_replaced(tree, pki):
    certificates(tree, pki, ("a.example",))
    site(tree, "a.example", "\t\tSSLStaplingForceURL http://ocsp.elsewhere.example/\n")
    apply(tree, apache_plan.plan(request(tree, "enabled")))
    standard = snapshot(tree)

    apply(tree, relay(tree))
    assert snapshot(tree) != standard
    back = apache_plan.plan(request(tree, "enabled"))
    assert back["mechanism"] is None and back["keeper_certificates"] == [] and back["relay_url"] is None
    apply(tree, back)
    assert snapshot(tree) == standard


def test_disable_then_restored_on_a_relay_host_points_the_vhosts_at_the_relay_again(tree, pki):
    certificates(tree, pki, ("a.example",))
    site(tree, "a.example", "\t\tSSLUseStapling on\n\t\tSSLStaplingForceURL http://ocsp.elsewhere.example/\n")
    apply(tree, relay(tree))
    relayed = snapshot(tree)

    disabled = apache_plan.plan(request(tree, "disabled"))
    assert disabled["problems"] == [] and all(s["stapling"] == "off" for s in disabled["sites"])
    assert disabled["keeper_stale_files"] == []   # a disable keeps the keeper's files
    apply(tree, disabled)

    restored = apache_plan.plan(request(tree, "restored"))
    assert restored["problems"] == [] and restored["relay_url"] == RELAY
    apply(tree, restored)
    assert snapshot(tree) == relayed


def test_auto_takes_mod_md_where_it_can_and_the_relay_where_it_cannot(tree, pki):
    certificates(tree, pki, ("a.example",))
    site(tree, "a.example")
    old = relay(tree, mechanism="auto", server_version="Apache/2.4.37 (Red Hat)")
    assert old["problems"] == [] and old["mechanism"] == "relay"
    assert any("uses the relay here, not mod_md" in w and "2.4.37" in w for w in old["warnings"]), old["warnings"]

    no_md = relay(tree, mechanism="auto", server_version="2.4.71")   # new httpd, but no mods-available/md.load
    assert no_md["mechanism"] == "relay" and any("md.load" in w for w in no_md["warnings"])

    write(tree / "etc/apache2/mods-available/md.load", "LoadModule md_module /usr/lib/apache2/modules/mod_md.so\n")
    md = relay(tree, mechanism="auto", server_version="2.4.71", md_store_dir="/srv/md")
    assert md["problems"] == [] and md["mechanism"] == "mod_md" and md["keeper_certificates"] == []
    assert "MDStapling on" in snippet_of(md) and "SSLStaplingForceURL" not in snippet_of(md)

    forced = relay(tree, mechanism="relay", server_version="2.4.71")   # an explicit relay on a mod_md host
    assert forced["mechanism"] == "relay" and "SSLStaplingForceURL %s" % RELAY in snippet_of(forced)


def test_mod_md_asked_for_on_old_httpd_still_names_the_relay(tree, pki):
    certificates(tree, pki, ("a.example",))
    site(tree, "a.example")
    result = relay(tree, mechanism="mod_md", server_version="2.4.6")
    assert len(result["problems"]) == 1 and "apache_stapling_protected_mechanism: relay" in result["problems"][0]


def test_an_issuer_from_the_certificate_file_itself(tree, pki):
    certificates(tree, pki, ("a.example",), fullchain=True)
    write(tree / "etc/ssl/chain.pem", "")   # nothing there: the issuer comes from the fullchain
    site(tree, "a.example")
    result = relay(tree)
    assert result["problems"] == []
    assert result["keeper_files"][0]["content"].strip() == pki.intermediate.cert_path.read_text().strip()


def test_a_certificate_without_its_issuer_is_refused(tree, pki):
    certificates(tree, pki, ("a.example",))
    write(tree / "etc/ssl/chain.pem", "")
    site(tree, "a.example")
    result = relay(tree)
    assert len(result["problems"]) == 1 and "issuer of" in result["problems"][0], result["problems"]
    assert "SSLCertificateChainFile" in result["problems"][0]


def test_a_chain_that_is_not_the_issuer_is_refused(tree, pki):
    certificates(tree, pki, ("a.example",))
    write(tree / "etc/ssl/chain.pem", pki.root.cert_path.read_text())   # the root did not sign the leaf
    site(tree, "a.example")
    result = relay(tree)
    assert len(result["problems"]) == 1 and "is not its issuer" in result["problems"][0], result["problems"]


def test_a_relay_url_mod_ssl_cannot_ask_is_refused(tree, pki):
    certificates(tree, pki, ("a.example",))
    site(tree, "a.example")
    result = relay(tree, relay_url="https://127.0.0.1:8088/")
    assert len(result["problems"]) == 1 and "plain HTTP" in result["problems"][0]
    assert result["keeper_certificates"] == []


def test_litespeed_is_not_pointed_at_the_relay_through_apache_directives(tree, pki):
    certificates(tree, pki, ("a.example",))
    site(tree, "a.example")
    result = relay(tree, server="litespeed")
    assert any("ocspResponder" in p for p in result["problems"]), result["problems"]


def cpanel_relay(tmp_path, pki, vhost_extra=""):
    req = cpanel_tree(tmp_path)
    if vhost_extra:
        main = tmp_path / "etc/apache2/conf/httpd.conf"
        main.write_text(main.read_text().replace("    SSLUseStapling on\n", "    SSLUseStapling on\n" + vhost_extra))
    write(tmp_path / "var/cpanel/ssl/apache_tls/shop.example/combined", pki.leaves["good"].fullchain_path.read_text())
    req.state, req.mode, req.mechanism, req.server_version = "enabled", "protected", "auto", "2.4.62"
    return req


def test_cpanel_without_mod_md_goes_through_the_relay_in_the_include_block(tmp_path, pki):
    req = cpanel_relay(tmp_path, pki)
    before = snapshot(tmp_path)

    result = apache_plan.plan(req)

    assert result["problems"] == [] and result["mechanism"] == "relay"
    assert any("ea-apache24-mod_md" in w for w in result["warnings"]), result["warnings"]
    files = {f["path"]: f["content"] for f in result["files"]}
    assert "/etc/apache2/conf/httpd.conf" not in files   # cPanel regenerates it
    block = files["/etc/apache2/conf.d/includes/pre_virtualhost_global.conf"]
    for line in (apache_plan.RELAY_NOTE, "SSLStaplingForceURL %s" % RELAY, "SSLStaplingFakeTryLater off", "SSLUseStapling On"):
        assert line in block, block
    assert [s["stapling"] for s in result["sites"]] == ["on"]
    assert [k["name"] for k in result["keeper_certificates"]] == ["shop.example"]
    apply(tmp_path, result)
    applied = snapshot(tmp_path)
    apply(tmp_path, apache_plan.plan(req))   # idempotent
    assert snapshot(tmp_path) == applied
    req.state, req.mode = "absent", "standard"
    apply(tmp_path, apache_plan.plan(req))
    assert snapshot(tmp_path) == before


def test_cpanel_vhost_forcing_another_responder_in_httpd_conf_is_refused(tmp_path, pki):
    req = cpanel_relay(tmp_path, pki, "    SSLStaplingForceURL http://ocsp.elsewhere.example/\n")
    result = apache_plan.plan(req)
    assert len(result["problems"]) == 1, result["problems"]
    assert "cPanel's httpd.conf" in result["problems"][0] and "SSLStaplingForceURL" in result["problems"][0]
    assert result["keeper_certificates"] == []
