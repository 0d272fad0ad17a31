"""A site that leaves protected mode stops being kept: after the nginx plan's disable, the
keeper CLI (what the timer runs) neither writes the site's include back nor reloads nginx,
and ``prune`` takes the site out of the keeper's configuration with its state.

Real nginx plan on a private tree, the real ``nginx -t`` as the keeper's configtest, the
keeper's real command line; the reload command is a real shell command that records each
call, since no nginx is running here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import prune_config
from tests.lab.responder import free_port
from tests.unit.servers.nginx.plan_helpers import NGINX, apply
from tests.unit.ocsp_helpers import make_pki
from tests.unit.servers.nginx.test_plan import make_tree, request

MODULE = "ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def plan(conf, pki, **kwargs):
    from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import plan as ns
    return ns.plan(request(conf, pki, **kwargs))


def keeper_config(tmp_path: Path, conf: Path, certificates: list[dict]) -> Path:
    """The configuration stapling_keeper writes for the timer, pointing at a closed port (a
    fetch fails fast and is recorded) and a reload that leaves a mark."""
    for sub in ("run", "logs", "tmp"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    closed = f"http://127.0.0.1:{free_port()}/"
    path = tmp_path / "keeper.json"
    path.write_text(json.dumps({
        "certificates": [dict(entry, url=closed) for entry in certificates],
        "state_dir": str(tmp_path / "state"), "openssl": "openssl", "timeout": 2,
        "configtest_command": [NGINX, "-p", str(tmp_path), "-c", str(conf / "nginx.conf"), "-t"],
        "reload_command": ["/bin/sh", "-c", f"echo reload >> {tmp_path / 'reloads'}"],
    }))
    return path


def run_keeper(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", MODULE, "--config", str(config)], capture_output=True, text=True,
                          timeout=120, check=False, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))


def test_after_a_disable_the_keeper_timer_writes_nothing_and_reloads_nothing(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good", "muststaple"))
    protected = plan(conf, pki, mode="protected")
    apply(protected)
    config = keeper_config(tmp_path, conf, protected["keeper_certificates"])
    good = next(entry for entry in protected["keeper_certificates"] if entry["name"] == "good.lab.test")

    # While protected, a run does its work: the responder is down, the failure is recorded.
    first = run_keeper(config)
    assert first.returncode == 1, first.stderr     # nothing valid held: exit 1
    state = json.loads((tmp_path / "state" / "good.lab.test.json").read_text())
    assert state["last_error"] and state["consecutive_failures"] == 1

    # The disable (the plan's stale-file sweep) removes the includes; the timer fires before
    # (or without) the prune, with the configuration still listing both sites.
    apply(plan(conf, pki, state="disabled"))
    assert not Path(good["snippet"]).exists()
    for name in ("good.lab.test", "muststaple.lab.test"):
        # Due again at once, so a run that still kept the sites would fetch and write.
        path = tmp_path / "state" / f"{name}.json"
        path.write_text(json.dumps(dict(json.loads(path.read_text()), next_refresh=0)))
    before = {path.name: path.read_bytes() for path in (tmp_path / "state").iterdir()}
    second = run_keeper(config)
    assert second.returncode == 0, second.stdout + second.stderr
    outcome = json.loads(second.stdout)
    assert outcome["reload"] == {"ran": False}
    assert [entry["active"] for entry in outcome["certificates"]] == [False, False]
    assert not Path(good["snippet"]).exists(), "the keeper wrote the include of a disabled site back"
    assert not (tmp_path / "reloads").exists(), "the keeper reloaded nginx for a site that left protected mode"
    assert {path.name: path.read_bytes() for path in (tmp_path / "state").iterdir()} == before


def test_prune_drops_the_sites_that_left_and_removes_the_configuration_when_none_is_left(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good", "muststaple"))
    protected = plan(conf, pki, mode="protected")
    apply(protected)
    config = keeper_config(tmp_path, conf, protected["keeper_certificates"])
    run_keeper(config)
    names = sorted(entry["name"] for entry in protected["keeper_certificates"])
    assert sorted(path.name for path in (tmp_path / "state").iterdir()) == [f"{name}.json" for name in names]

    # Only good.lab.test stays protected (the plan for it alone still lists it).
    kept = ["good.lab.test"]
    checked = prune_config(str(config), kept, check_mode=True)
    assert checked["pruned"] == ["muststaple.lab.test"] and checked["changed"]
    assert (tmp_path / "state" / "muststaple.lab.test.json").exists(), "check mode removed a file"
    pruned = prune_config(str(config), kept)
    assert pruned["pruned"] == ["muststaple.lab.test"] and pruned["kept"] == kept
    assert [entry["name"] for entry in json.loads(config.read_text())["certificates"]] == kept
    assert not (tmp_path / "state" / "muststaple.lab.test.json").exists()
    assert prune_config(str(config), kept)["changed"] is False            # idempotent

    # Disabled everywhere: the includes are gone, so even a keep list naming the site drops it.
    apply(plan(conf, pki, state="disabled"))
    gone = prune_config(str(config), kept)
    assert gone["pruned"] == kept and str(config) in gone["removed"]
    assert not config.exists() and list((tmp_path / "state").iterdir()) == []
    assert prune_config(str(config), [])["changed"] is False
    # What the timer does then: its unit skips a missing configuration (ConditionPathExists);
    # run by hand, the keeper says what is missing.
    by_hand = run_keeper(config)
    assert by_hand.returncode == 2 and str(config) in by_hand.stderr
