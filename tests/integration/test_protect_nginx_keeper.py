"""nginx in protected mode on the lab: the plan puts each site on the keeper's include, the
keeper serves its held response with ssl_stapling_file, and a real ``openssl s_client
-status`` handshake sees ``good`` through a responder outage and a reload, a newer response
once the responder is back, and no held staple once it is about to expire."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import Keeper, parse_openssl_time
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx.plan import PlanRequest, plan
from tests.lab.lab import Lab
from tests.lab.processes import wait_until
from tests.unit.servers.nginx.plan_helpers import apply, pending


@pytest.fixture
def nginx_lab(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("nginx",)) as running:
        yield running


def protected_plan(lab) -> dict:
    etc = lab.nginx.conf_dir
    return plan(PlanRequest(config=str(lab.nginx.conf), managed_dir=str(etc / "ocsp-stapling"),
                            http_include_file=str(etc / "conf.d" / "zz-ocsp-stapling.conf"),
                            ca_bundle=str(lab.pki.ca_bundle), mode="protected",
                            tuning={"ssl_stapling_verify": True}))


def make_keeper(lab, planned, tmp_path, **extra) -> Keeper:
    commands = lab.nginx.commands()
    return Keeper(planned["keeper_certificates"], state_dir=str(tmp_path / "keeper-state"), timeout=3, rand=0.0,
                  configtest_command=shlex.split(commands["configtest"]),
                  reload_command=shlex.split(commands["reload"]), pid_file=str(lab.nginx.pid_file), **extra)


def staple_next_update(lab, site="good") -> float:
    staple = lab.probe("nginx", site)
    assert staple.verdict == "good", staple
    return parse_openssl_time(staple.next_update)


def test_protected_plan_puts_each_stapling_site_on_the_keeper_include(nginx_lab):
    planned = protected_plan(nginx_lab)
    assert planned["problems"] == [] and planned["mode"] == "protected" and planned["placement"] == "server"
    names = {entry["name"] for entry in planned["keeper_certificates"]}
    assert names == {"good.lab.test", "muststaple.lab.test", "revoked.lab.test"}  # nourl: nothing to staple
    apply(planned)
    assert nginx_lab.nginx.configtest().returncode == 0
    again = protected_plan(nginx_lab)
    assert pending(again) == []          # idempotent
    site = Path(nginx_lab.nginx.conf_dir / "sites-available" / "good").read_text()
    assert "# ocsp.stapling replaced: ssl_stapling on;" in site


def test_nginx_keeps_stapling_the_held_response_through_an_outage_and_a_reload(nginx_lab, tmp_path):
    planned = protected_plan(nginx_lab)
    apply(planned)
    nginx_lab.nginx.reload()
    keeper = make_keeper(nginx_lab, planned, tmp_path)
    result = keeper.refresh()
    assert result["reload"]["ok"], result["reload"]
    good = next(entry for entry in result["certificates"] if entry["name"] == "good.lab.test")
    assert good["served"] == "file" and good["cert_status"] == "good"
    held_next = good["next_update"]
    # ssl_stapling_file is loaded with the configuration: the first handshake has the staple.
    assert staple_next_update(nginx_lab) == held_next
    nginx_lab.responder.set_mode("down")
    nginx_lab.nginx.reload()
    wait_until(lambda: nginx_lab.probe("nginx", "good").verdict == "good", 10, "nginx after the reload")
    for _attempt in range(3):  # every handshake during the outage, after the reload
        assert staple_next_update(nginx_lab) == held_next
    during = keeper.refresh(force=True)
    assert not during["changed"] and not during["reload"]["ran"]
    assert staple_next_update(nginx_lab) == held_next
    nginx_lab.responder.set_mode("good")

    def newer():
        keeper.refresh(force=True)
        staple = nginx_lab.probe("nginx", "good")
        return staple.verdict == "good" and parse_openssl_time(staple.next_update) > held_next
    wait_until(newer, 15, "nginx to staple a newer response (thisUpdate has one-second precision)", interval=0.3)


def test_a_held_response_about_to_expire_is_taken_off_before_it_expires(nginx_lab, tmp_path):
    planned = protected_plan(nginx_lab)
    apply(planned)
    keeper = make_keeper(nginx_lab, planned, tmp_path)
    assert keeper.refresh()["reload"]["settled"] is True
    assert nginx_lab.probe("nginx", "good").verdict == "good"
    state = keeper.read_state("good.lab.test")
    nginx_lab.responder.set_mode("down")
    # The keeper runs 30 s before nextUpdate with the responder still down: inside the margin.
    late = make_keeper(nginx_lab, planned, tmp_path, clock=lambda: state["next_update"] - 30)
    result = late.refresh()
    good = next(entry for entry in result["certificates"] if entry["name"] == "good.lab.test")
    assert result["reload"]["ok"] and good["served"] == "fetch"
    assert result["reload"]["settled"] is True, result["reload"]
    snippet = Path(good["snippet"]).read_text()
    assert "ssl_stapling_file" not in snippet
    # The keeper reports the switch once the workers from before its reload are gone: from the
    # first handshake on, nginx fetches itself and its responder is down, so no staple at all,
    # never the held one.
    for _attempt in range(4):
        assert nginx_lab.probe("nginx", "good").verdict == "none"
    # The responder returns: the keeper holds a new response and puts the site back on it.
    nginx_lab.responder.set_mode("good")
    back = keeper.refresh(force=True)
    assert next(e for e in back["certificates"] if e["name"] == "good.lab.test")["served"] == "file"
    assert back["reload"]["settled"] is True
    assert nginx_lab.probe("nginx", "good").verdict == "good"
    assert staple_next_update(nginx_lab) >= state["next_update"]


def test_the_nginx_role_in_protected_mode_is_idempotent_and_staples_the_held_response(nginx_lab, tmp_path):
    import json as _json
    import re

    from tests.integration.test_nginx_role import run_role
    extra = {"nginx_stapling_mode": "protected",
             "nginx_stapling_keeper_state_dir": str(tmp_path / "keeper-state"),
             "nginx_stapling_keeper_config": str(tmp_path / "keeper.json")}
    first = run_role(nginx_lab, tmp_path, **extra)
    assert first.returncode == 0, first.stdout[-4000:]
    config = _json.loads((tmp_path / "keeper.json").read_text())
    good = next(c for c in config["certificates"] if c["name"] == "good.lab.test")
    assert "ssl_stapling_file" in Path(good["snippet"]).read_text()
    held = _json.loads((tmp_path / "keeper-state" / "good.lab.test.json").read_text())
    assert staple_next_update(nginx_lab) == held["next_update"]
    second = run_role(nginx_lab, tmp_path, **extra)
    assert second.returncode == 0, second.stdout[-4000:]
    recap = re.search(r"changed=(\d+)", second.stdout.rsplit("PLAY RECAP", 1)[-1])
    assert recap and recap.group(1) == "0", second.stdout[-4000:]
    nginx_lab.responder.set_mode("down")
    nginx_lab.nginx.reload()
    assert staple_next_update(nginx_lab) == held["next_update"]
