"""Side by side on one lab: mod_ssl stapling versus the apache role's protected mode (mod_md).

One apache2 keeps the lab's mod_ssl stapling with a 3 s SSLStaplingStandardCacheTimeout;
the other, built the same way, is switched to ``apache_stapling_mode: protected`` by the
role. The responder answers with a one-minute validity, then goes down: the mod_ssl one
staples tryLater within seconds, the protected one keeps stapling good through the outage
and a graceful reload; once the responder is back the protected one serves a newer response
with no manual step. Before that: a store httpd's User cannot enter is refused, check mode
changes nothing, a second run changes nothing; after it ``state: absent`` gives every file
back byte for byte.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from tests.integration.ansible_run import ansible_env
from tests.integration.test_apache_faults import role_vars, run_role, tree_digest
from tests.lab.lab import Lab
from tests.lab.modmd import ModMdApacheInstance
from tests.lab.probe import probe
from tests.lab.processes import wait_until
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites

VALIDITY = 60   # nextUpdate = fetch + 60 s; mod_md renews with 33% (40 s) of the 120 s window left
SITE = "good.lab.test"


@pytest.fixture
def side_by_side(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("apache",), validity=VALIDITY, sites=None,
                   apache_options={"standard_cache_timeout": 3, "error_cache_timeout": 3}) as lab:
        protected = ModMdApacheInstance(tmp_path / "protected", free_port(), lab_sites(lab.pki, ("good",)),
                                        stapling=True, md_config=False)
        protected.start()
        try:
            yield lab, protected
        finally:
            protected.stop()
            protected.remove_store()


def verdict_is(port: int, wanted: str):
    staple = probe(port, SITE)
    return staple if staple.verdict == wanted else None


def protected_vars(instance, tmp_path: Path, **extra) -> dict:
    variables = role_vars(types.SimpleNamespace(apache=instance), tmp_path, apache_stapling_mode="protected",
                          apache_stapling_warmup_timeout=30, **extra)
    variables["apache_stapling_endpoints"] = [{"host": "127.0.0.1", "port": instance.port, "server_name": SITE}]
    return variables


def run_role_check(tmp_path: Path, variables: dict) -> dict:
    """The role in check mode with --diff: what would change, nothing written or reloaded."""
    playbook = tmp_path / "role-check.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars": dict(variables, ansible_python_interpreter=sys.executable),
        "tasks": [{"name": "Apache role", "ansible.builtin.include_role": {"name": "ocsp.stapling.apache"}}],
    }]))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "--check",
                           "--diff", str(playbook)], capture_output=True, text=True, env=ansible_env(), timeout=300,
                          check=False)
    return {"rc": proc.returncode, "out": proc.stdout + proc.stderr}


def test_protected_keeps_stapling_good_through_an_outage_and_a_reload(side_by_side, tmp_path):
    lab, protected = side_by_side
    standard = lab.apache
    conf_before = tree_digest(protected.conf_dir)

    # Apache's default store (ServerRoot/md) sits under pytest's root-only tmp dir, where
    # mod_md's watchdog (User www-data) could not write: refused before anything changes.
    refused = run_role(tmp_path, protected_vars(protected, tmp_path))
    assert refused["failed"] and "cannot be reached by httpd's User www-data" in refused["msg"], refused
    assert tree_digest(protected.conf_dir) == conf_before

    store = str(protected.md_store)
    checked = run_role_check(tmp_path, protected_vars(protected, tmp_path, apache_stapling_md_store_dir=store))
    assert checked["rc"] == 0, checked["out"][-3000:]
    assert "MDStapling on" in checked["out"] and "changed=" in checked["out"], checked["out"][-3000:]
    assert tree_digest(protected.conf_dir) == conf_before, "check mode changed files"

    outcome = run_role(tmp_path, protected_vars(protected, tmp_path, apache_stapling_md_store_dir=store))
    assert not outcome["failed"], "%s\n%s" % (outcome.get("msg"), protected.error_log.read_text()[-3000:])
    result = outcome["result"]
    assert result["mode"] == "protected" and result["changed"]
    assert (protected.conf_dir / "mods-enabled" / "md.load").is_symlink()
    assert result["md_store_dir"] == store

    again = run_role(tmp_path, protected_vars(protected, tmp_path, apache_stapling_md_store_dir=store))
    assert not again["failed"] and not again["result"]["changed"], again   # idempotent

    wait_until(lambda: verdict_is(standard.port, "good"), 30, "mod_ssl apache to staple good", interval=0.2)
    first = wait_until(lambda: verdict_is(protected.port, "good"), 30, "mod_md apache to staple good", interval=0.2)
    started = time.monotonic()
    wait_until(lambda: list(protected.md_store.glob("ocsp/**/ocsp-*.json")), 10, "mod_md to store the response")

    lab.responder.set_mode("down")

    def not_good():
        staple = probe(standard.port, SITE)
        return staple if staple.verdict in ("error_stapled", "none") else None
    failing = wait_until(not_good, 30, "mod_ssl apache to stop stapling good", interval=0.5)
    assert failing.verdict == "error_stapled" and failing.response_status.lower() == "trylater", failing
    assert probe(protected.port, SITE).verdict == "good"

    protected.graceful()   # a reload during the outage: mod_ssl would staple tryLater for every site
    wait_until(lambda: verdict_is(protected.port, "good"), 10, "mod_md apache after the graceful", interval=0.2)
    during = [probe(protected.port, SITE) for _attempt in range(3)]
    assert [s.verdict for s in during] == ["good"] * 3, during
    # Past mod_md's renew point (fetch + 20 s) with the responder still down: its failed
    # renewal never replaces the held response.
    renew_point = time.monotonic() + 25 - (time.monotonic() - started)
    while time.monotonic() < renew_point:
        assert probe(protected.port, SITE).verdict == "good"
        time.sleep(2)   # the renew point comes with the response's age; probing is the check

    lab.responder.set_mode("good")

    def newer_good():
        staple = probe(protected.port, SITE)
        return staple if staple.verdict == "good" and staple.next_update != first.next_update else None
    newer = wait_until(newer_good, 150, "mod_md apache to staple a newer response", interval=1.0)
    assert newer.next_update != first.next_update

    back = run_role(tmp_path, dict(protected_vars(protected, tmp_path), apache_stapling_mode="standard",
                                   apache_stapling_state="absent"))
    assert not back["failed"], back
    assert tree_digest(protected.conf_dir) == conf_before, "state=absent did not give the files back"
    assert not (protected.conf_dir / "mods-enabled" / "md.load").exists()
