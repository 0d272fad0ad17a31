"""runbook.decide reports slow handshakes as the symptom they are: a blackholed responder
holds Apache's handshakes for SSLStaplingResponderTimeout (the warm-up handshake pays it)."""
from __future__ import annotations

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.verdict import SLOW_HANDSHAKE_SECONDS, decide
from tests.unit.runbook.test_decide import cert, check, endpoint, site


def inputs(apache_warmup: float, apache_measured: float = 0.02):
    facts = {"sites": [site("apache", "a.test", "/c/a.pem"), site("nginx", "n.test", "/c/n.pem", port=8443)]}
    apache = dict(endpoint("a.test", "error_stapled"), handshake_seconds=apache_measured,
                  warmup={"handshake_ok": True, "stapled": True, "error": None, "handshake_seconds": apache_warmup})
    nginx = dict(endpoint("n.test", "no_staple", port=8443), handshake_seconds=0.01,
                 warmup={"handshake_ok": True, "stapled": False, "error": None, "handshake_seconds": 0.02})
    responder = check([cert("/c/a.pem", False, failure="timeout"), cert("/c/n.pem", False, failure="timeout")],
                      reachable=False)
    return facts, {"endpoints": [apache, nginx]}, responder


def test_a_stalled_warmup_handshake_is_reported_with_its_latency():
    decision = decide(*inputs(apache_warmup=10.06))
    assert decision["verdict"] == "disable_recommended"
    rows = {row["site"]: row for row in decision["sites"]}
    assert rows["a.test"]["slowest_handshake_seconds"] == 10.06
    assert rows["a.test"]["handshake_seconds"] == 0.02
    assert decision["slow_handshake_sites"] == ["a.test"]
    (reason,) = [r for r in decision["reasons"] if "handshakes are slow" in r]
    assert "apache a.test took up to 10.1 s" in reason and "SSLStaplingResponderTimeout" in reason
    assert "n.test" not in reason


def test_fast_handshakes_add_no_latency_reason():
    decision = decide(*inputs(apache_warmup=SLOW_HANDSHAKE_SECONDS - 0.5))
    assert decision["slow_handshake_sites"] == []
    assert not [r for r in decision["reasons"] if "handshakes are slow" in r]
