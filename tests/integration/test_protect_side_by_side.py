"""Protected mode side by side: one lab, one responder outage, every mechanism at once.

One responder answers with a short validity (300 s: thisUpdate a minute back, nextUpdate
300 s ahead, so that what the roles fetch first outlasts the outage even when a loaded machine
takes three minutes over the roles). On it, each switched by its role the way an operator would:

- ``standard``: the lab's apache2 with default mod_ssl stapling and 3 s cache timeouts;
- ``mod_md``: an apache2 the Apache role switches to ``apache_stapling_mode: protected``
  (mechanism mod_md, store under /tmp);
- ``relay``: an apache2 without mod_md stapling the Apache role points at the relay
  (``apache_stapling_protected_mechanism: relay``), 3 s cache timeouts kept; the relay, started
  by PID before the role on a keeper configuration listing nothing, has to pick up the
  certificate the role adds without a restart;
- ``nginx``: the lab's nginx the nginx role switches to ``nginx_stapling_mode: protected``
  (the keeper's ``ssl_stapling_file``);
- ``expiring``: a second nginx in keeper mode whose timer, just before the outage, fetched a
  response with a 70 s validity (the responder's validity is lowered for that one fetch), so
  that it expires during the outage.

The responder goes down. The standard Apache staples ``tryLater`` once its 3 s cache is gone,
while mod_md, the relay and nginx staple the same held ``good`` response on every handshake of
the outage, across a graceful reload of each. The keeper runs as the schedule role's timer runs
it (its command line, on each keeper configuration); on the expiring host it takes the site
off the held response before nextUpdate, and no handshake sees that response after the
switch, nor once its nextUpdate has passed. Once the responder is back, each protected server
staples a newer response (later thisUpdate and producedAt) with nothing done by hand: mod_md
renews on its own, the relay and the keeper's timer fetch.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import parse_openssl_time
from tests.integration.ansible_run import ansible_env
from tests.integration.test_apache_faults import run_role as run_apache_role
from tests.integration.test_apache_protected import protected_vars
from tests.integration.test_apache_relay_role import Relay, relay_vars
from tests.integration.test_nginx_role import run_role as run_nginx_role
from tests.lab.apache import ApacheInstance
from tests.lab.lab import Lab
from tests.lab.modmd import ModMdApacheInstance
from tests.lab.nginx import NginxInstance
from tests.lab.probe import Staple, probe
from tests.lab.processes import LabError, wait_until
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites

VALIDITY = 300            # the responder's nextUpdate - now; thisUpdate is a minute back
EXPIRING_VALIDITY = 70    # the expiring host's response: the keeper's 60 s margin starts 10 s after its fetch
TIMER_INTERVAL = 3        # how often the test fires the keeper timers (the schedule role: every minute or two)
CACHE_TIMEOUT = 3         # SSLStaplingStandardCacheTimeout / ErrorCacheTimeout of the mod_ssl apache2
MIN_OUTAGE = 6 * CACHE_TIMEOUT
SITE = "good.lab.test"
KEEPER_MODULE = "ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper"
PROTECTED = ("mod_md", "relay", "nginx")


def keeper_timer(config: Path, force: bool = False) -> tuple[int, dict]:
    """One run of the schedule role's keeper timer: its command line on ``config``, bounded
    (``force``: refresh now, due or not)."""
    env = dict(ansible_env(), PYTHONPATH=ansible_env()["ANSIBLE_COLLECTIONS_PATH"])
    run = subprocess.run([sys.executable, "-m", KEEPER_MODULE, "--config", str(config)] + (["--force"] if force else []),
                         capture_output=True,
                         text=True, timeout=90, env=env, stdin=subprocess.DEVNULL, check=False)
    assert run.returncode in (0, 1), f"the keeper timer on {config} exited {run.returncode}: {run.stderr}"
    return run.returncode, json.loads(run.stdout)


def served(result: dict) -> str:
    return next(entry for entry in result["certificates"] if entry["name"] == SITE)["served"]


def stamp(staple: Staple) -> tuple[float, float]:
    """(thisUpdate, producedAt) of a stapled response, POSIX seconds."""
    return parse_openssl_time(staple.this_update), parse_openssl_time(staple.produced_at)


@pytest.fixture
def side_by_side(tmp_path):
    options = {"standard_cache_timeout": CACHE_TIMEOUT, "error_cache_timeout": CACHE_TIMEOUT}
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(Lab.start(tmp_path / "lab", validity=VALIDITY, apache_options=options))
        good_only = lab_sites(lab.pki, ("good",))
        md = ModMdApacheInstance(tmp_path / "md", free_port(), good_only, stapling=True, md_config=False, **options)
        stack.callback(md.remove_store)
        relayed = ApacheInstance(tmp_path / "relayed", free_port(), good_only, **options)
        expiring = NginxInstance(tmp_path / "expiring", free_port(), good_only, lab.pki.trusted_chain)
        for instance in (md, relayed, expiring):
            instance.start()
            stack.callback(instance.stop)
        yield types.SimpleNamespace(lab=lab, md=md, relayed=relayed, expiring=expiring, stack=stack)


def test_protected_mechanisms_side_by_side_through_one_outage(side_by_side, tmp_path):
    env = side_by_side
    lab = env.lab
    began = time.monotonic()
    ports = {"standard": lab.apache.port, "mod_md": env.md.port, "relay": env.relayed.port,
             "nginx": lab.nginx.port, "expiring": env.expiring.port}
    timings: dict[str, float] = {}

    # mod_md, through the Apache role.
    md_role = tmp_path / "md-role"
    md_role.mkdir()
    outcome = run_apache_role(md_role, protected_vars(env.md, md_role, apache_stapling_md_store_dir=str(env.md.md_store)))
    assert not outcome["failed"], "%s\n%s" % (outcome.get("msg"), env.md.error_log.read_text()[-3000:])
    assert outcome["result"]["mode"] == "protected" and outcome["result"]["md_store_dir"] == str(env.md.md_store)

    # The expiring host, on a 70 s response: due for a refresh 5 s later, so its timer fetches
    # again just before the outage, and that response's nextUpdate comes during the outage.
    expiring_role = tmp_path / "expiring-role"
    expiring_role.mkdir()
    expiring_config = expiring_role / "keeper-nginx.json"
    expiring_state = expiring_role / "keeper-state"
    lab.responder.control(f"set?validity={EXPIRING_VALIDITY}")
    done = run_nginx_role(types.SimpleNamespace(nginx=env.expiring, pki=lab.pki, directory=expiring_role),
                          expiring_role, nginx_stapling_mode="protected",
                          nginx_stapling_keeper_state_dir=str(expiring_state),
                          nginx_stapling_keeper_config=str(expiring_config))
    lab.responder.control(f"set?validity={VALIDITY}")
    assert done.returncode == 0, done.stdout[-4000:]

    # The relay runs before the certificate is known to it: the configuration it was started
    # on lists nothing, and the role adds the certificate to that same file.
    relay_role = tmp_path / "relay-role"
    relay_role.mkdir()
    relay_port = free_port()
    variables = relay_vars(env.relayed, relay_role, lab, relay_port)
    relay_config = Path(variables["apache_stapling_relay_keeper_config"])
    relay_config.parent.mkdir(parents=True)
    relay_config.write_text(json.dumps({"state_dir": variables["apache_stapling_relay_keeper_state_dir"],
                                        "certificates": []}))
    relay = Relay(relay_config, relay_port, tmp_path / "relay.log")
    env.stack.callback(relay.stop)
    assert relay.state()["certificates"] == []
    outcome = run_apache_role(relay_role, variables)
    assert not outcome["failed"], "the role did not accept the running relay: %s" % outcome.get("msg")
    assert outcome["result"]["mechanism"] == "relay" and outcome["result"]["changed"], outcome["result"]
    state = relay.state()
    assert [entry["name"] for entry in state["certificates"]] == [SITE], state
    assert state["counters"]["config_reloads"] >= 1 and relay.process.poll() is None   # the same process, no restart

    # nginx, through the nginx role.
    nginx_role = tmp_path / "nginx-role"
    nginx_role.mkdir()
    nginx_config = nginx_role / "keeper-nginx.json"
    done = run_nginx_role(lab, nginx_role, nginx_stapling_mode="protected",
                          nginx_stapling_keeper_state_dir=str(nginx_role / "keeper-state"),
                          nginx_stapling_keeper_config=str(nginx_config))
    assert done.returncode == 0, done.stdout[-4000:]
    timings["roles"] = time.monotonic() - began

    # The expiring host's timer, just before the outage, on a 70 s validity once more.
    lab.responder.control(f"set?validity={EXPIRING_VALIDITY}")
    try:
        _rc, result = keeper_timer(expiring_config)
    finally:
        lab.responder.control(f"set?validity={VALIDITY}")
    assert served(result) == "file" and result["changed"] and result["reload"]["settled"] is True, result
    expiring_next = json.loads((expiring_state / f"{SITE}.json").read_text())["next_update"]

    first: dict[str, Staple] = {}
    for name in ("standard",) + PROTECTED + ("expiring",):
        first[name] = wait_until(lambda port=ports[name]: (s := probe(port, SITE)).verdict == "good" and s, 30,
                                 f"{name} to staple good", interval=0.2)
    assert parse_openssl_time(first["expiring"].next_update) == expiring_next
    for name in PROTECTED:   # what they hold outlasts the outage, which ends after the expiring host's nextUpdate
        assert parse_openssl_time(first[name].next_update) > expiring_next + 5, (
            f"{name} holds a response expiring at {first[name].next_update}, before the outage would end: the roles "
            f"took {timings['roles']:.0f} s, too long for a {VALIDITY} s validity")
    asked_before = relay.state()["counters"]["held"]

    # --- the outage -------------------------------------------------------------------------
    lab.responder.set_mode("down")
    down_at, down_wall = time.monotonic(), time.time()
    held = dict(first)
    changed_in_outage = {name: False for name in PROTECTED}
    seen: dict[str, list[str]] = {name: [] for name in ports}
    standard_failed_at = reloaded_at = switched_at = None
    last_expiring_timer = last_timer = 0.0
    end = None
    while end is None or time.monotonic() < end:
        now = time.monotonic()
        assert now - down_at < EXPIRING_VALIDITY + 60, "the outage loop outlived its bound"
        for name in PROTECTED:
            staple = probe(ports[name], SITE)
            seen[name].append(staple.verdict)
            assert staple.verdict == "good", f"{name} stapled {staple.verdict} {now - down_at:.1f} s into the outage: {staple}"
            if stamp(staple) != stamp(held[name]):
                # Only a refresh that landed between the first probe and the outage may show up
                # (a slow machine reaches the relay's refresh point first): newer, and fetched before.
                assert stamp(staple) > stamp(held[name]) and stamp(staple)[1] <= down_wall + 1, (
                    f"{name} stapled another response during the outage: {staple}, after {held[name]}")
                assert not changed_in_outage[name], f"{name} stapled a third response during the outage: {staple}"
                changed_in_outage[name] = True
                held[name] = staple
        staple = probe(ports["standard"], SITE)
        seen["standard"].append(staple.verdict)
        if standard_failed_at is None and staple.verdict == "error_stapled":
            assert staple.response_status.lower() == "trylater", staple
            standard_failed_at = time.monotonic() - down_at
        if standard_failed_at is None:
            assert now - down_at < 6 * CACHE_TIMEOUT, f"mod_ssl still staples {seen['standard'][-5:]} after {now - down_at:.1f} s down"
        # The expiring host: the timer every 2 s; before its switch it staples the held
        # response, after it nothing (nginx fetches itself and its responder is down).
        staple = probe(ports["expiring"], SITE)
        seen["expiring"].append(staple.verdict)
        if switched_at is None:
            assert time.time() < expiring_next, "the expiring host still stapled its held response at its nextUpdate"
            assert staple.verdict == "good" and stamp(staple) == stamp(first["expiring"]), staple
            if time.monotonic() - last_expiring_timer >= 2:   # its own timer, more often: the switch is the point
                last_expiring_timer = time.monotonic()
                _rc, result = keeper_timer(expiring_config)
                if served(result) != "file":
                    assert result["reload"]["settled"] is True, result["reload"]
                    switched_at = time.time()
                    assert switched_at < expiring_next, "the expiring host left its held response only after nextUpdate"
        else:
            assert staple.verdict == "none", f"the expiring host stapled {staple} after it left its held response"
        # One graceful reload of each protected server, once mod_ssl has failed.
        if reloaded_at is None and standard_failed_at is not None:
            env.md.graceful()
            env.relayed.graceful()
            lab.nginx.reload()
            for name in PROTECTED:
                wait_until(lambda port=ports[name]: probe(port, SITE).handshake_ok, 20, f"{name} after its reload")
            reloaded_at = time.monotonic() - down_at
        # The timers of the other two keeper configurations fire too: a refresh (forced on the
        # first round, due or not) fails, and the held response stays in place.
        if time.monotonic() - last_timer >= TIMER_INTERVAL:
            first_round = last_timer == 0.0
            last_timer = time.monotonic()
            rc, result = keeper_timer(nginx_config, force=first_round)
            assert rc == 0 and served(result) == "file" and not result["changed"], result
            rc, result = keeper_timer(relay_config, force=first_round)
            assert rc == 0 and not result["changed"], result
        if end is None and reloaded_at is not None and switched_at is not None:
            # Past the expiring host's nextUpdate and at least MIN_OUTAGE in all.
            end = max(down_at + MIN_OUTAGE, time.monotonic() + (expiring_next - time.time()) + 1)
    timings["outage"] = time.monotonic() - down_at
    assert time.time() > expiring_next
    assert probe(ports["expiring"], SITE).verdict == "none"   # expired: still never served
    relay_asked = relay.state()["counters"]["held"] - asked_before
    assert relay_asked >= 2, f"apache asked the relay {relay_asked} time(s) during the outage: its cache, not the relay, carried it"

    # --- the responder is back: newer responses, nothing done by hand ---------------------------
    lab.responder.set_mode("good")
    back_at = time.monotonic()
    newer: dict[str, float] = {}
    last_timer = 0.0
    failed_refreshes = {name: json.loads(path.read_text())["consecutive_failures"] for name, path in (
        ("nginx", nginx_role / "keeper-state" / f"{SITE}.json"),
        ("relay", Path(variables["apache_stapling_relay_keeper_state_dir"]) / f"{SITE}.json"))}
    assert all(count >= 1 for count in failed_refreshes.values()), f"no refresh failed during the outage: {failed_refreshes}"
    while len(newer) < len(PROTECTED):
        if time.monotonic() - back_at > 200:
            raise LabError(f"no newer response within 200 s of the responder's return from "
                           f"{sorted(set(PROTECTED) - set(newer))}; mod_md store: {env.md.stored_responses()}")
        if time.monotonic() - last_timer >= TIMER_INTERVAL:     # the schedule role's timer, on both keeper configurations
            last_timer = time.monotonic()
            keeper_timer(nginx_config)
            keeper_timer(relay_config)
        for name in PROTECTED:
            if name in newer:
                continue
            staple = probe(ports[name], SITE)
            assert staple.verdict == "good", f"{name} stapled {staple} after the responder returned"
            if stamp(staple)[0] > stamp(held[name])[0]:
                assert stamp(staple)[1] > stamp(held[name])[1], staple   # producedAt later too
                newer[name] = time.monotonic() - back_at
        time.sleep(0.2)   # between probe rounds while mod_md's renewal comes due; each probe is the check
    timings["total"] = time.monotonic() - began
    print(f"side by side: roles {timings['roles']:.1f} s; outage {timings['outage']:.1f} s "
          f"(mod_ssl tryLater after {standard_failed_at:.1f} s, reloads at {reloaded_at:.1f} s, expiring host off "
          f"its response {expiring_next - switched_at:.1f} s before nextUpdate); handshakes during the outage: "
          + ", ".join(f"{name} {len(seen[name])}" for name in PROTECTED)
          + f"; relay asked {relay_asked} times; failed refreshes in the outage: {failed_refreshes}; newer after the return: "
          + ", ".join(f"{name} {newer[name]:.1f} s" for name in PROTECTED)
          + f"; total {timings['total']:.1f} s")
