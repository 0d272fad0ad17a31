"""What mod_md does with a held response once it passes nextUpdate, and what
``MDStaplingKeepResponse`` does at startup (Debian's apache2 with its built-in mod_md).

Measured on 2.4.71 (docs/protected.md, "Apache with mod_md"): the expired response is
stapled on, unchanged, through the outage and a full stop/start; a keep window shorter than
the time since nextUpdate deletes the stored file at start, after it was loaded, so that
start still staples it and the next one staples nothing.

The responder answers with a short validity (``VALIDITY`` seconds after the fetch), then goes
down for good. The waits below are the response's own lifetime: nothing else can make a
response expire.
"""
from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.lab.lab import Lab
from tests.lab.modmd import ModMdApacheInstance
from tests.lab.probe import probe
from tests.lab.processes import wait_until
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites

VALIDITY = 30        # nextUpdate = fetch + 30 s (the lab's thisUpdate is a minute before the fetch)
PAST_EXPIRY = 20     # how long past nextUpdate the held response is watched
SITE = "good.lab.test"


def next_update(staple) -> dt.datetime:
    """openssl prints ``Dec  2 01:53:06 2026 GMT``."""
    return dt.datetime.strptime(staple.next_update, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.timezone.utc)


def stored(instance) -> list[str]:
    """Responses mod_md holds (``ocsp-<certid>.json`` with a response in it)."""
    return [name for name, data in instance.stored_responses().items()
            if name.startswith("ocsp-") and data.get("response")]


def first_good(instance) -> object:
    def good():
        staple = probe(instance.port, SITE)
        return staple if staple.verdict == "good" else None
    return wait_until(good, 30, f"mod_md apache on {instance.port} to staple good", interval=0.2)


@pytest.fixture
def md_lab(tmp_path):
    with Lab.start(tmp_path / "lab", servers=(), validity=VALIDITY) as lab:
        instance = ModMdApacheInstance(tmp_path / "md-apache", free_port(), lab_sites(lab.pki, ("good",)))
        instance.start()
        try:
            yield lab, instance
        finally:
            instance.stop()
            instance.remove_store()


def restart(instance: ModMdApacheInstance, keep_response: str) -> None:
    instance.stop()
    instance.keep_response = keep_response
    instance.start()


def test_mod_md_staples_its_held_response_past_next_update_and_keep_response_drops_it_at_start(md_lab):
    lab, apache = md_lab
    staple = first_good(apache)
    expires = next_update(staple)
    wait_until(lambda: stored(apache), 10, "mod_md to persist the response under MDStoreDir/ocsp/")
    lab.responder.set_mode("down")

    # Through the outage and past nextUpdate: mod_md keeps stapling the same response, expired.
    seen = []
    deadline = expires + dt.timedelta(seconds=PAST_EXPIRY)
    while dt.datetime.now(dt.timezone.utc) < deadline:
        current = probe(apache.port, SITE)
        seen.append((dt.datetime.now(dt.timezone.utc), current.verdict, current.next_update))
        time.sleep(2)   # the response's lifetime is what is being waited for
    after_expiry = [s for s in seen if s[0] > expires + dt.timedelta(seconds=5)]
    assert after_expiry, seen
    assert all(verdict == "good" and nxt == staple.next_update for _when, verdict, nxt in after_expiry), seen

    # A full stop/start with the default MDStaplingKeepResponse (7d): the stored, expired
    # response is loaded from MDStoreDir and stapled again, with the responder still down.
    restart(apache, "7d")
    again = probe(apache.port, SITE)
    assert (again.verdict, again.next_update) == ("good", staple.next_update), again

    # MDStaplingKeepResponse shorter than the time since nextUpdate: the start deletes the
    # stored file, but only after loading it, so this start still staples the expired
    # response; the next start has nothing to staple until the responder answers again.
    restart(apache, "10s")
    assert stored(apache) == [], apache.stored_responses()
    still = probe(apache.port, SITE)
    assert (still.verdict, still.next_update) == ("good", staple.next_update), still
    restart(apache, "10s")
    dropped = probe(apache.port, SITE)
    assert dropped.verdict == "none", dropped
