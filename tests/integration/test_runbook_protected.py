"""Protected mode through the runbook's front door, end to end on the loopback lab.

One lab: the responder, an nginx and an apache2 that can load mod_md (its tree has
``mods-available/md.load``, as Debian's apache2 has), both serving ``good`` and ``nourl``
with mod_ssl / nginx stapling on and Apache's cache timeouts at 3 s. The playbooks are run as
an operator runs them (``ansible-playbook -i <inventory> ocsp.stapling.<name>``):

1. ``enable_stapling -e stapling_mode=protected`` switches Apache to mod_md and nginx to the
   keeper's ``ssl_stapling_file``; both staple ``good`` and the report says mode protected.
2. The responder goes down, for longer than Apache's 3 s cache. ``check_stapling`` says
   ``protected`` ("protected until <nextUpdate>", the held responses' nextUpdate), not
   ``disable_recommended``, and both servers still staple ``good``.
3. ``disable_stapling`` on that host disables nothing (no file changes); with ``force=true``
   it disables, as docs/protected.md says: mod_md's ``MDStapling`` off, the keeper's includes
   gone and its configuration pruned, and the state record keeps the mode.
4. The responder is back: ``reenable_stapling`` puts the host back into protected mode
   (mod_md stapling, nginx on the keeper's file again) and both staple ``good``.
"""
from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import parse_openssl_time
from tests.integration.runbook_play import SITES, conf_digest, play
from tests.lab.lab import Lab
from tests.lab.modmd import ModMdApacheInstance
from tests.lab.nginx import NginxInstance
from tests.lab.probe import probe
from tests.lab.processes import wait_until
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites

CACHE_TIMEOUT = 3            # Apache's SSLStaplingStandardCacheTimeout / ErrorCacheTimeout
SITE = "good.lab.test"
WARN_HOURS = 0.25            # the responder's responses are valid for an hour: "protected", not "expiring"


@pytest.fixture
def protected_lab(tmp_path):
    options = {"standard_cache_timeout": CACHE_TIMEOUT, "error_cache_timeout": CACHE_TIMEOUT}
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(Lab.start(tmp_path / "lab", servers=()))
        sites = lab_sites(lab.pki, SITES)
        lab.nginx = NginxInstance(tmp_path / "lab" / "nginx", free_port(), sites, lab.pki.trusted_chain, stapling=True)
        lab.nginx.start()
        lab.apache = ModMdApacheInstance(tmp_path / "lab" / "apache", free_port(), sites, stapling=True,
                                         md_config=False, **options)
        stack.callback(lab.apache.remove_store)
        lab.apache.start()
        lab.write_record()
        yield lab


def staples(lab: Lab) -> dict:
    return {name: probe(getattr(lab, name).port, SITE) for name in ("apache", "nginx")}


def wait_good(lab: Lab, name: str, timeout: float = 30):
    port = getattr(lab, name).port
    return wait_until(lambda: (s := probe(port, SITE)).verdict == "good" and s, timeout,
                      f"{name} to staple good for {SITE}", interval=0.2)


def held_next_updates(lab: Lab, state_dir: Path) -> dict[str, float]:
    """The nextUpdate (POSIX) of what protected mode holds: the keeper's state, mod_md's store."""
    keeper = json.loads((state_dir / f"{SITE}.json").read_text())
    stored = [entry for entry in lab.apache.stored_responses().values() if "valid" in entry]
    assert stored, f"mod_md stored no response under {lab.apache.md_store}"
    md_until = parsedate_to_datetime(stored[0]["valid"]["until"]).timestamp()
    return {"nginx": float(keeper["next_update"]), "apache": md_until}


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def site_rows(host: dict, site: str = SITE) -> dict[str, dict]:
    return {row["server"]: row for row in host["sites"] if row["site"] == site}


def test_protected_mode_through_the_runbook(protected_lab, tmp_path):
    lab = protected_lab
    began = time.monotonic()
    timings: dict[str, float] = {}
    state_dir = lab.directory / "runbook" / "keeper"        # the inventory's nginx_stapling_keeper_state_dir
    store = lab.apache.md_store
    extra = {"apache_stapling_md_store_dir": str(store), "stapling_protected_warn_hours": WARN_HOURS}

    # --- 1. enable with stapling_mode=protected ------------------------------------------
    enabled = play(lab, tmp_path, "enable_stapling", "enable", stapling_mode="protected", ticket="CHG-15", **extra)
    timings["enable"] = time.monotonic() - began
    assert enabled.rc == 0, enabled.tail()
    host = enabled.host
    assert host["error"] is None and host["verdict"] == "healthy", host
    changed = " ".join(host["changes"])
    assert "apache: stapling enabled" in changed and "nginx: stapling enabled" in changed, host["changes"]
    snippet = (lab.apache.conf_dir / "conf-available" / "zz-ocsp-stapling.conf").read_text()
    assert re.search(r"^MDStapling on$", snippet, re.M) and re.search(r"^MDStapleOthers on$", snippet, re.M), snippet
    assert (lab.apache.conf_dir / "mods-enabled" / "md.load").exists()
    include = lab.nginx.conf_dir / "ocsp-stapling" / "keeper" / f"{SITE}.conf"
    assert "ssl_stapling_file" in include.read_text(), include.read_text()
    first = {name: wait_good(lab, name) for name in ("apache", "nginx")}
    rows = site_rows(host)
    assert {rows[name]["mode"] for name in ("apache", "nginx")} == {"protected"}, rows
    assert {rows[name]["protection_source"] for name in ("apache", "nginx")} == {"mod_md", "keeper"}, rows
    assert host["modes"][SITE] == "protected" and host["protected_until"], host
    held = held_next_updates(lab, state_dir)
    for name in ("apache", "nginx"):
        assert parse_openssl_time(first[name].next_update) == pytest.approx(held[name], abs=1), (name, first[name], held)

    # Idempotent: the same enable again changes no file.
    digest = conf_digest(lab)
    again = play(lab, tmp_path, "enable_stapling", "enable-2", stapling_mode="protected", ticket="CHG-15", **extra)
    assert again.rc == 0 and again.host["error"] is None, again.tail()
    assert conf_digest(lab) == digest, "a second protected enable changed the configuration"
    timings["enable twice"] = time.monotonic() - began

    # --- 2. the outage ----------------------------------------------------------------------
    lab.responder.set_mode("down")
    down_at = time.monotonic()
    handshakes = 0
    while time.monotonic() - down_at < 2 * CACHE_TIMEOUT + 1:      # bounded: past Apache's cache twice over
        for name, staple in staples(lab).items():
            handshakes += 1
            assert staple.verdict == "good", f"{name} stapled {staple.verdict} {time.monotonic() - down_at:.1f} s into the outage"
    checked = play(lab, tmp_path, "check_stapling", "check-outage", **extra)
    timings["check during the outage"] = time.monotonic() - began
    assert checked.rc == 0, checked.tail()
    host = checked.host
    assert host["verdict"] == "protected", (host["verdict"], host["reasons"])
    assert not host["responders_reachable"], host["responders"]
    earliest = min(held.values())
    assert host["protected_until"] == iso(earliest), (host["protected_until"], held)
    assert any(f"Protected until {iso(earliest)}" in reason for reason in host["reasons"]), host["reasons"]
    assert "disable_stapling" not in host["recommendation"] and "disable" not in host["recommendation"].split(":")[0], host
    assert {row["mode"] for row in site_rows(host).values()} == {"protected"}
    # The default warning window (24 h) makes the one-hour responses "protected_expiring".
    expiring = play(lab, tmp_path, "check_stapling", "check-expiring")
    assert expiring.rc == 0 and expiring.host["verdict"] == "protected_expiring", expiring.host["reasons"]
    assert any(f"Protected until {iso(earliest)}" in reason for reason in expiring.host["reasons"]), expiring.host["reasons"]
    for name, staple in staples(lab).items():
        assert staple.verdict == "good" and staple.next_update == first[name].next_update, (name, staple)

    # --- 3. disable: nothing without force, the documented disable with it -------------------
    digest = conf_digest(lab)
    refused = play(lab, tmp_path, "disable_stapling", "disable", **extra)
    assert refused.rc == 0, refused.tail()
    assert refused.host["changes"] == [] and conf_digest(lab) == digest, refused.host
    assert any("protected" in note.lower() and "Protected until" in note for note in refused.host["notes"]), refused.host["notes"]
    assert not (lab.directory / "runbook" / "state.json").exists() or json.loads(
        (lab.directory / "runbook" / "state.json").read_text()).get("disabled_by") is None
    for name, staple in staples(lab).items():
        assert staple.verdict == "good", (name, staple)

    forced = play(lab, tmp_path, "disable_stapling", "disable-force", force=True, reason="CA OCSP outage",
                  ticket="INC-15", **extra)
    timings["disable"] = time.monotonic() - began
    assert forced.rc == 0, forced.tail()
    assert forced.host["verdict"] == "disabled_by_collection", forced.host
    snippet = (lab.apache.conf_dir / "conf-available" / "zz-ocsp-stapling.conf").read_text()
    assert re.search(r"^MDStapling off", snippet, re.M), snippet
    assert not include.exists(), "the keeper's include survived the disable"
    assert not (lab.directory / "runbook" / "keeper-nginx.json").exists(), "the keeper configuration was not pruned"
    record = json.loads((lab.directory / "runbook" / "state.json").read_text())
    modes = {entry["server"]: entry.get("mode") for entry in record["servers"]}
    assert modes == {"apache": "protected", "nginx": "protected"}, record["servers"]
    for name, staple in staples(lab).items():
        assert staple.verdict == "none", (name, staple)

    # --- 4. the responder is back: reenable puts protected mode back -----------------------------
    lab.responder.set_mode("good")
    back = play(lab, tmp_path, "reenable_stapling", "reenable", required_good=1, **extra)
    timings["reenable"] = time.monotonic() - began
    assert back.rc == 0, back.tail()
    host = back.host
    assert host["error"] is None and host["verdict"] == "healthy", (host["verdict"], host["reasons"], host["notes"])
    snippet = (lab.apache.conf_dir / "conf-available" / "zz-ocsp-stapling.conf").read_text()
    assert re.search(r"^MDStapling on$", snippet, re.M), snippet
    assert "ssl_stapling_file" in include.read_text(), include.read_text()
    assert not (lab.directory / "runbook" / "state.json").exists() or json.loads(
        (lab.directory / "runbook" / "state.json").read_text()).get("disabled_by") is None
    for name in ("apache", "nginx"):
        wait_good(lab, name)
    rows = site_rows(host)
    assert {rows[name]["mode"] for name in ("apache", "nginx")} == {"protected"}, rows
    timings["total"] = time.monotonic() - began
    print(f"\nhandshakes in the first {2 * CACHE_TIMEOUT + 1} s of the outage: {handshakes}; timings (s, cumulative): "
          + ", ".join(f"{key} {value:.0f}" for key, value in timings.items()))
