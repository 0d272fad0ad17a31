"""Apache without mod_md, pointed at the relay (SSLStaplingForceURL): it keeps stapling the
keeper's good response through a responder outage longer than its cache timeout and a
graceful restart, while a site asking the responder directly staples tryLater."""
from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.keeper import Keeper, parse_openssl_time
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.relay import RelayCore, serve
from tests.lab.lab import Lab
from tests.lab.processes import wait_until
from tests.lab.responder import free_port

CACHE_TIMEOUT = 2  # SSLStaplingStandardCacheTimeout / ErrorCacheTimeout: Apache re-asks every 2 s


@pytest.fixture
def apache_relay(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("apache",),
                   apache_options={"standard_cache_timeout": CACHE_TIMEOUT,
                                   "error_cache_timeout": CACHE_TIMEOUT}) as lab:
        pki = lab.pki
        keeper = Keeper([{"name": "good", "cert": str(pki.leaves["good"].cert_path),
                          "issuer": str(pki.intermediate.cert_path), "ca_file": str(pki.trusted_chain)}],
                        state_dir=str(tmp_path / "keeper"), timeout=3, rand=0.0)
        keeper.refresh()
        server = serve(RelayCore(keeper, refresh_in_background=False), f"127.0.0.1:{free_port()}")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        site = lab.apache.conf_dir / "sites-available" / "good.conf"
        site.write_text(site.read_text().replace(
            "    SSLEngine on\n",
            f"    SSLEngine on\n    SSLStaplingForceURL http://127.0.0.1:{server.server_address[1]}/\n"))
        lab.apache.graceful()
        try:
            yield lab, keeper
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)


def test_apache_through_the_relay_staples_good_through_an_outage_and_a_graceful(apache_relay):
    lab, keeper = apache_relay
    held_next = keeper.read_state("good")["next_update"]
    staple = lab.wait_for_verdict("apache", "good", "good", timeout=30)
    assert parse_openssl_time(staple.next_update) == held_next
    lab.wait_for_verdict("apache", "muststaple", "good", timeout=30)
    lab.responder.set_mode("trylater")
    # The direct site staples tryLater once its cache entry has expired ...
    lab.wait_for_verdict("apache", "muststaple", "error_stapled", timeout=30)
    # ... while the relayed one keeps the held response for several cache lifetimes.
    end = time.monotonic() + 3 * CACHE_TIMEOUT
    seen = []
    while time.monotonic() < end:
        seen.append(lab.probe("apache", "good").verdict)
    assert set(seen) == {"good"}, seen
    lab.responder.set_mode("down")
    lab.apache.graceful()
    wait_until(lambda: lab.probe("apache", "good").handshake_ok, 20, "apache after the graceful restart")
    for _attempt in range(3):
        staple = lab.probe("apache", "good")
        assert staple.verdict == "good" and parse_openssl_time(staple.next_update) == held_next, staple
    lab.responder.set_mode("good")

    def newer():
        keeper.refresh(force=True)
        staple = lab.probe("apache", "good")
        return staple.verdict == "good" and parse_openssl_time(staple.next_update) > held_next
    wait_until(newer, 20, "Apache to staple the keeper's newer response", interval=0.5)
