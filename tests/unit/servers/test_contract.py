"""The dialect contract: the three servers planned, guarded and applied the same way, one result."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeError,
    ChangeRequest,
    Endpoint,
    FileSpec,
    StaplingChange,
    VerifySpec,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.probe import tls
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import contract
from tests.unit.ocsp_helpers import make_pki
from tests.unit.servers.apache.test_plan import site as apache_site
from tests.unit.servers.apache.test_plan import tree as apache_tree  # noqa: F401  pylint: disable=unused-import
from tests.unit.servers.litespeed.test_stapling_module import COLLECTIONS, calls, make_tree as litespeed_tree
from tests.unit.servers.nginx.test_plan import make_tree as nginx_tree

TRUE = shutil.which("true") or "/bin/true"
SCHEMA = {"server", "state", "changed", "files", "changed_files", "links", "backup_dir", "configtest",
          "reload", "verification", "rolled_back", "endpoints", "sites", "plan",
          "forced_must_staple_sites", "problems", "warnings"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def shared(tmp_path: Path, **kwargs) -> dict:
    """The options every server takes; real commands that succeed, no configtest."""
    params = dict(reload_command=[TRUE], start_command=[TRUE], candidate_validation="swap",
                  backup_dir=str(tmp_path / "backups"), environment={}, verify={"timeout": 5, "settle": 0})
    params.update(kwargs)
    return params


def apache_params(tree, state, tmp_path):
    # No server runs here: the log's AH00489 ("resuming normal operations") is not awaited.
    return shared(tmp_path, server="apache", state=state, verify={"ready_patterns": [], "settle": 0}, options=dict(
        layout="debian", root=str(tree), main_config="/etc/apache2/apache2.conf",
        snippet="/etc/apache2/conf-available/zz-ocsp-stapling.conf",
        link="/etc/apache2/conf-enabled/zz-ocsp-stapling.conf",
        link_src="../conf-available/zz-ocsp-stapling.conf"))


def nginx_params(conf: Path, pki, state, tmp_path, **kwargs):
    # No nginx runs here: no TLS endpoint is checked after the (stand-in) reload.
    kwargs.setdefault("verify", {"endpoints": [], "settle": 0, "timeout": 2})
    return shared(tmp_path, server="nginx", state=state, options=dict(
        config=str(conf / "nginx.conf"), managed_dir=str(conf / "ocsp-stapling"),
        http_include_file=str(conf / "conf.d" / "zz-ocsp-stapling.conf"), ca_bundle=str(pki.ca_bundle),
        version_command=""), **kwargs)


def litespeed_params(root: Path, state, tmp_path):
    return shared(tmp_path, server="litespeed", state=state, reload_command=str(root / "bin" / "lswsctrl") + " restart",
                  options=dict(server_root=str(root), flavor="openlitespeed",
                               state_file=str(tmp_path / "state" / "litespeed-originals.json")))


def test_apache_disable_then_restore_through_the_contract(apache_tree, tmp_path):  # noqa: F811
    vhost = apache_site(apache_tree, "a", extra="\t\tSSLUseStapling on\n")
    before = vhost.read_bytes()
    result = contract.apply(apache_params(apache_tree, "disabled", tmp_path))
    assert set(result) == SCHEMA
    assert result["changed"] and result["server"] == "apache"
    assert str(vhost) in result["changed_files"]
    assert all(path.startswith(str(apache_tree)) for path in result["changed_files"])
    assert "SSLUseStapling Off" in vhost.read_text() or "SSLUseStapling off" in vhost.read_text().lower()
    assert result["reload"]["ran"] and result["reload"]["rc"] == 0
    assert [s["action"] for s in result["sites"]] == ["disable"]
    again = contract.apply(apache_params(apache_tree, "disabled", tmp_path))
    assert not again["changed"] and again["changed_files"] == []
    contract.apply(apache_params(apache_tree, "restored", tmp_path))
    assert vhost.read_bytes() == before


def test_nginx_disable_refused_for_a_must_staple_certificate_nothing_changes(tmp_path, pki):
    conf = nginx_tree(tmp_path, pki)
    before = {p: p.read_bytes() for p in conf.rglob("*") if p.is_file()}
    with pytest.raises(contract.ContractError) as caught:
        contract.apply(nginx_params(conf, pki, "disabled", tmp_path))
    assert "muststaple.lab.test" in caught.value.message and "Must-Staple" in caught.value.message
    assert set(caught.value.result) == SCHEMA
    assert {p: p.read_bytes() for p in conf.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "backups").exists()


def test_nginx_disable_with_force_reports_the_forced_sites(tmp_path, pki):
    conf = nginx_tree(tmp_path, pki)
    result = contract.apply(nginx_params(conf, pki, "disabled", tmp_path, force=True))
    assert set(result) == SCHEMA
    assert result["changed"] and result["forced_must_staple_sites"] == ["muststaple.lab.test"]
    assert any("force=true" in w for w in result["warnings"])
    assert "ssl_stapling off;" in (conf / "ocsp-stapling" / "sites" / "good.lab.test.conf").read_text()


def test_must_staple_guard_reads_certificates_the_caller_names(tmp_path, pki):
    """Apache's sites name no certificate file: the front door's list is read."""
    plan = contract.ServerPlan(server="apache", state="disabled", change=ChangeRequest(),
                               sites=[contract.Site(name="a", action="disable")])
    must = str(pki.leaves["muststaple"].fullchain_path)
    good = str(pki.leaves["good"].fullchain_path)
    assert contract.must_staple_sites(plan, [good, must]) == [must]
    assert contract.must_staple_sites(plan, [good, str(tmp_path / "missing.pem")]) == []
    plan.state = "enabled"
    assert contract.must_staple_sites(plan, [must]) == []


def test_litespeed_disable_through_the_contract_keeps_its_record_and_restarts_once(tmp_path):
    root = litespeed_tree(tmp_path, "ols")
    result = contract.apply(litespeed_params(root, "disabled", tmp_path))
    assert set(result) == SCHEMA
    assert result["changed"] and result["state"] == "disabled" and result["changed_files"]
    assert calls(root) == ["restart"]
    record = json.loads((tmp_path / "state" / "litespeed-originals.json").read_text())
    assert str(root) in record
    again = contract.apply(litespeed_params(root, "disabled", tmp_path))
    assert not again["changed"] and calls(root) == ["restart"]


def test_an_unknown_server_or_option_is_explained():
    with pytest.raises(contract.ContractError, match="haproxy"):
        contract.dialect("haproxy")
    with pytest.raises(contract.ContractError, match="not nginx options"):
        contract.apply({"server": "nginx", "state": "enabled", "options": {"layout": "debian"}})


@pytest.mark.parametrize("server", ["apache", "nginx", "litespeed"])
def test_a_dialect_that_refuses_before_planning_answers_in_the_one_schema(server, tmp_path):
    params = {"server": server, "state": "disabled", "options": {"no_such_option": 1}}
    if server == "litespeed":       # LiteSpeed's own planning error: no server at that root
        params["options"] = {"server_root": str(tmp_path / "no-lsws")}
    with pytest.raises(contract.ContractError) as caught:
        contract.apply(params)
    result = caught.value.result
    assert set(result) == SCHEMA, sorted(set(result) ^ SCHEMA)
    assert result["server"] == server and result["problems"] == [caught.value.message]
    assert not result["changed"] and result["configtest"] == {"ran": False}
    assert ("no_such_option" if server != "litespeed" else "no-lsws") in caught.value.message


def test_configtest_fail_patterns_fail_a_configtest_that_exits_0(tmp_path):
    target = tmp_path / "site.conf"
    target.write_text("old\n")
    warn = ["sh", "-c", "echo 'nginx: [warn] \"ssl_stapling\" ignored, issuer certificate not found'"]
    request = ChangeRequest(files=[FileSpec(path=str(target), content="new\n")], configtest_command=warn,
                            reload_command=[TRUE], candidate_validation="swap",
                            backup_dir=str(tmp_path / "b"), configtest_fail_patterns=['"ssl_stapling" ignored'])
    with pytest.raises(ChangeError) as caught:
        StaplingChange(request).run()
    assert "configtest_fail_patterns" in caught.value.message
    assert caught.value.result["configtest"]["passed"] is False
    assert not caught.value.result["reload"]["ran"]
    assert target.read_text() == "old\n"
    request.configtest_fail_patterns = []
    StaplingChange(request).run()
    assert target.read_text() == "new\n"


def test_nginx_configtest_check_blocks_an_enable_that_nginx_would_ignore(tmp_path, pki):
    """One configtest, in the engine: the dialect's check judges its output per site."""
    conf = nginx_tree(tmp_path, pki, stapling=False)
    good = pki.leaves["good"].fullchain_path
    said = f'nginx: [warn] "ssl_stapling" ignored, issuer certificate not found for certificate "{good}"'
    params = nginx_params(conf, pki, "enabled", tmp_path, configtest_command=["echo", said], tuning={})
    before = {p: p.read_bytes() for p in conf.rglob("*") if p.is_file()}
    with pytest.raises(ChangeError) as caught:
        contract.apply(params)
    assert "ignores stapling for good.lab.test" in caught.value.message
    assert caught.value.result["configtest"]["passed"] is False
    assert {p: p.read_bytes() for p in conf.rglob("*") if p.is_file()} == before


def run_module(tmp_path: Path, args: dict, check: bool = False) -> dict:
    """The stapling_apply module as Ansible runs it (argument spec, docs' defaults, exit JSON)."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(
        args, _ansible_check_mode=check, _ansible_diff=False, _ansible_tmpdir=str(tmp_path),
        _ansible_remote_tmp=str(tmp_path), _ansible_keep_remote_files=False)}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(COLLECTIONS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.ocsp.stapling.plugins.modules.stapling_apply",
                           str(args_file)], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=120, check=False)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"module printed no JSON: stdout={proc.stdout!r} stderr={proc.stderr!r}")


def test_the_module_returns_the_one_schema_and_fails_with_it(tmp_path, pki):
    root = litespeed_tree(tmp_path, "ols")
    done = run_module(tmp_path, litespeed_params(root, "disabled", tmp_path))
    assert not done.get("failed"), done
    assert SCHEMA - {"warnings"} <= set(done) and done["changed"] and calls(root) == ["restart"]
    conf = nginx_tree(tmp_path / "n", pki)
    refused = run_module(tmp_path, nginx_params(conf, pki, "disabled", tmp_path))
    assert refused["failed"] and "Must-Staple" in refused["msg"] and "Nothing was changed" in refused["msg"]
    assert refused["problems"] == ["Must-Staple: muststaple.lab.test"] and refused["changed"] is False


def test_must_staple_guard_takes_the_callers_sites_and_probes_nothing(monkeypatch):
    """The runbook's diagnosis has just found the Must-Staple sites: the guard takes them
    (by any of a site's names, only for sites losing their staple) and asks nothing."""
    def no_probe(*args, **kwargs):
        raise AssertionError("the guard probed although the caller named the Must-Staple sites")
    monkeypatch.setattr(contract.tls, "probe_all", no_probe)
    served = [{"host": "127.0.0.1", "port": 9, "server_name": "a.example"}]
    plan = contract.ServerPlan(server="nginx", state="disabled", change=ChangeRequest(), sites=[
        contract.Site(name="a", action="disable", names=["a.example", "www.a.example"], endpoints=served),
        contract.Site(name="b", action="disable", names=["b.example"], endpoints=served),
        contract.Site(name="c", action="skip", names=["c.example"], endpoints=served)])
    assert contract.must_staple_sites(plan, known=["www.a.example", "c.example"], probe_served=True) == ["a"]
    assert contract.must_staple_sites(plan, known=[], probe_served=True) == []


def test_a_server_wide_disable_takes_every_known_site_and_reads_no_file_again(monkeypatch, pki):
    """Apache disables every site, named by its plan or not (a default vhost has no
    ServerName): each Must-Staple site the caller found is at risk, reported by name only,
    and the certificate files the caller read are not read, nor reported, a second time."""
    monkeypatch.setattr(contract, "certificate_must_staple", lambda path: pytest.fail(f"read {path} again"))
    must = str(pki.leaves["muststaple"].fullchain_path)
    plan = contract.ServerPlan(server="apache", state="disabled", change=ChangeRequest(), server_wide=True,
                               sites=[contract.Site(name="good.lab.test", action="disable", names=["good.lab.test"])])
    assert contract.must_staple_sites(plan, [must], known=["muststaple.lab.test"]) == ["muststaple.lab.test"]
    plan.server_wide = False
    assert contract.must_staple_sites(plan, [must], known=["muststaple.lab.test"]) == []


@contextlib.contextmanager
def serving_must_staple(pki, accepts: int):
    """openssl s_server on a free loopback port serving the Must-Staple leaf, for ``accepts``
    connections (the readiness check is one); yields the port."""
    from tests.lab.processes import port_open, wait_until
    from tests.lab.responder import free_port
    leaf = pki.leaves["muststaple"]
    port = free_port()
    server = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(leaf.fullchain_path),
                               "-key", str(leaf.key_path), "-quiet", "-naccept", str(accepts)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), 10, f"openssl s_server on 127.0.0.1:{port}")
        yield port
    finally:
        server.kill()
        server.wait(timeout=10)


def test_endpoints_no_site_names_are_asked_too(tmp_path, pki):
    """A server-wide disable (Apache) probes every verified endpoint no site names, like a
    site, and reports it by its server name."""
    with serving_must_staple(pki, 2) as port:
        verify = VerifySpec(endpoints=[Endpoint(host="127.0.0.1", port=port, server_name="shop.example")])
        plan = contract.ServerPlan(server="apache", state="disabled", change=ChangeRequest(verify=verify),
                                   server_wide=True)
        assert contract.must_staple_sites(plan) == []
        assert contract.must_staple_sites(plan, probe_served=True, openssl=tls.find_openssl()) == ["shop.example"]


def test_must_staple_guard_asks_what_a_site_serves_now(tmp_path, pki):
    """The file on disk is renewed without Must-Staple, the server still serves the old
    Must-Staple certificate: one handshake finds it (openssl s_server stands in for it)."""
    with serving_must_staple(pki, 4) as port:
        site = contract.Site(name="shop", action="disable", names=["shop.example"],
                             certificates=[str(pki.leaves["good"].fullchain_path)],
                             endpoints=[{"host": "127.0.0.1", "port": port, "server_name": "shop.example"}])
        plan = contract.ServerPlan(server="nginx", state="disabled", change=ChangeRequest(), sites=[site])
        assert contract.must_staple_sites(plan) == []                      # the file alone says no
        assert contract.must_staple_sites(plan, probe_served=True, openssl=tls.find_openssl()) == ["shop"]
        assert contract.must_staple_sites(plan, probe_served=True, openssl=None) == []   # no openssl, no handshake
