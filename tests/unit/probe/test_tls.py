"""tls_probe: the s_client transcript parser (on real lab captures), failures, concurrency, facts."""
from __future__ import annotations

import base64
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils.probe import tls as tls_probe
from ansible_collections.ocsp.stapling.plugins.module_utils.probe.tls import Endpoint, ProbeResult
from tests.unit.paths import FIXTURES as UNIT_FIXTURES

FIXTURES = UNIT_FIXTURES / "s_client"
TRYLATER_DER = bytes.fromhex("30030a0103")  # OCSPResponse { responseStatus tryLater }


def transcript(name: str) -> tuple[str, str]:
    return (FIXTURES / f"{name}.stdout").read_text(), (FIXTURES / f"{name}.stderr").read_text()


def read(name: str, endpoint: Endpoint | None = None) -> ProbeResult:
    endpoint = endpoint or Endpoint("127.0.0.1", 443, "good.lab.test")
    stdout, stderr = transcript(name)
    return tls_probe.fill_result(ProbeResult(endpoint.host, endpoint.port, endpoint.server_name),
                                 endpoint, stdout, stderr)


# -- real transcripts from the lab's apache2 and nginx ------------------------------------

@pytest.mark.parametrize("name, protocol, leaf_cn", [
    ("apache_good_tls1_2", "TLSv1.2", "good.lab.test"),
    ("apache_good_tls1_3", "TLSv1.3", "good.lab.test"),
    ("nginx_good_tls1_3", "TLSv1.3", "good.lab.test"),
    ("apache_revoked_tls1_3", "TLSv1.3", "revoked.lab.test"),
    ("apache_muststaple_tls1_2", "TLSv1.2", "muststaple.lab.test"),
])
def test_staple_is_cut_out_of_the_hex_dump_for_the_served_leaf(name, protocol, leaf_cn):
    result = read(name)
    assert result.handshake_ok and result.error is None
    assert result.protocol == protocol
    assert result.stapled
    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in result.chain]
    assert [c.subject.rfc4514_string() for c in chain] == [
        f"CN={leaf_cn},O=ocsp.stapling lab", "CN=Lab Intermediate CA,O=ocsp.stapling lab"]
    response = ocsp.load_der_ocsp_response(base64.b64decode(result.staple))
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    # The staple answers for the very certificate the server sent.
    assert response.serial_number == chain[0].serial_number


def test_tls12_staple_comes_from_the_certificate_status_message():
    stdout, _stderr = transcript("apache_good_tls1_2")
    seen = tls_probe.parse_transcript(stdout)
    assert "CertificateStatus" in seen.messages
    assert seen.server_status_request  # ServerHello acknowledged status_request
    assert seen.staple is not None and seen.staple[:1] == b"\x30"


def test_tls13_staple_comes_from_the_certificate_entry_extension():
    stdout, _stderr = transcript("apache_good_tls1_3")
    seen = tls_probe.parse_transcript(stdout)
    assert "CertificateStatus" not in seen.messages  # TLS 1.3 has no such message
    assert seen.protocol == "TLSv1.3"
    # The same bytes openssl itself decoded: "OCSP Response Status: successful".
    assert ocsp.load_der_ocsp_response(seen.staple).response_status == ocsp.OCSPResponseStatus.SUCCESSFUL


@pytest.mark.parametrize("name", ["apache_trylater_tls1_2", "apache_trylater_tls1_3"])
def test_trylater_staple_is_returned_verbatim(name):
    result = read(name)
    assert result.stapled
    assert base64.b64decode(result.staple) == TRYLATER_DER


@pytest.mark.parametrize("name, protocol", [("nginx_revoked_tls1_2", "TLSv1.2"),
                                            ("nginx_nourl_tls1_3", "TLSv1.3")])
def test_no_staple_sent_is_a_completed_handshake_without_staple(name, protocol):
    result = read(name)
    assert result.handshake_ok and result.protocol == protocol
    assert not result.stapled and result.staple is None
    assert len(result.chain) == 2


@pytest.mark.parametrize("name, error, words", [
    ("error_refused", "connection_refused", "Nothing accepts connections"),
    ("error_http", "not_tls", "not with TLS"),
    ("error_alert", "handshake_failed", "alert handshake_failure"),
    ("error_eof", "handshake_failed", "closed the connection"),
    ("error_dns", "name_resolution", "does not resolve"),
])
def test_failures_are_classified_with_an_actionable_sentence(name, error, words):
    result = read(name)
    assert not result.handshake_ok and not result.stapled
    assert result.error == error
    assert words in result.error_detail
    assert result.chain == []


def test_a_truncated_dump_is_reported_not_misread():
    stdout, stderr = transcript("apache_good_tls1_2")
    lines = stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.endswith("CertificateStatus"))
    del lines[index + 3]  # lose 16 bytes of the staple
    endpoint = Endpoint("127.0.0.1", 443, "good.lab.test")
    result = tls_probe.fill_result(ProbeResult("127.0.0.1", 443, "good.lab.test"), endpoint,
                                   "\n".join(lines), stderr)
    assert not result.stapled
    assert result.error == "openssl_failed"
    assert "CertificateStatus" in result.error_detail


# -- the TLS 1.3 Certificate message, built by hand -----------------------------------

def _u(n: int, size: int) -> bytes:
    return n.to_bytes(size, "big")


def _entry(cert: bytes, extensions: bytes = b"") -> bytes:
    return _u(len(cert), 3) + cert + _u(len(extensions), 2) + extensions


def _status_ext(der: bytes) -> bytes:
    body = b"\x01" + _u(len(der), 3) + der
    return _u(5, 2) + _u(len(body), 2) + body


def _certificate_message(entries: bytes) -> bytes:
    body = b"\x00" + _u(len(entries), 3) + entries
    return b"\x0b" + _u(len(body), 3) + body


def test_tls13_only_the_leaf_entry_status_counts():
    message = _certificate_message(_entry(b"LEAF") + _entry(b"CA", _status_ext(b"\x30\x00")))
    chain, staple = tls_probe.parse_certificate(message, tls13=True)
    assert chain == [b"LEAF", b"CA"]
    assert staple is None
    message = _certificate_message(_entry(b"LEAF", _status_ext(b"\x30\x01\x00")) + _entry(b"CA"))
    assert tls_probe.parse_certificate(message, tls13=True)[1] == b"\x30\x01\x00"


def test_length_fields_are_bounds_checked():
    message = _certificate_message(_entry(b"LEAF"))
    broken = message[:-1]  # the header promises one byte more than is there
    with pytest.raises(tls_probe.ParseError):
        tls_probe.parse_certificate(broken, tls13=True)


# -- the command and the runs --------------------------------------------------------

def test_command_sni_ipv6_and_versions():
    cmd = tls_probe.build_command("openssl", Endpoint("::1", 8443), ["1.3"])
    assert cmd[cmd.index("-connect") + 1] == "[::1]:8443"
    assert "-noservername" in cmd and "-servername" not in cmd
    assert cmd[cmd.index("-min_protocol") + 1] == cmd[cmd.index("-max_protocol") + 1] == "TLSv1.3"
    cmd = tls_probe.build_command("openssl", Endpoint("www.example.com"), None)
    assert cmd[cmd.index("-servername") + 1] == "www.example.com"
    assert cmd[cmd.index("-min_protocol") + 1] == "TLSv1.2"
    assert cmd[cmd.index("-max_protocol") + 1] == "TLSv1.3"
    assert "-status" in cmd and "-msg" in cmd


class FakeOpenSSL:
    """Replays fixture transcripts in place of subprocess.run; records what was asked."""

    def __init__(self, *names: str, delay: float = 0.0):
        self.names = list(names)
        self.delay = delay
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, command, **kwargs):
        assert kwargs["stdin"] is subprocess.DEVNULL and kwargs["timeout"] > 0
        with self.lock:
            name = self.names[min(self.calls, len(self.names) - 1)]
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        if name == "timeout":
            raise subprocess.TimeoutExpired(command, kwargs["timeout"])
        stdout, stderr = transcript(name)
        return SimpleNamespace(returncode=0, stdout=stdout.encode(), stderr=stderr.encode())


def test_warmup_waits_only_when_the_first_handshake_carried_nothing():
    slept = []
    runner = FakeOpenSSL("nginx_nourl_tls1_3", "nginx_good_tls1_3")
    result = tls_probe.probe("openssl", Endpoint("127.0.0.1", 1, "good.lab.test"), 5, warmup=True,
                             warmup_delay=0.25, runner=runner, sleep=slept.append)
    assert runner.calls == 2 and slept == [0.25]
    assert result.stapled and result.warmup == {"handshake_ok": True, "stapled": False, "error": None,
                                                "handshake_seconds": result.warmup["handshake_seconds"]}
    slept.clear()
    runner = FakeOpenSSL("nginx_good_tls1_3")
    result = tls_probe.probe("openssl", Endpoint("127.0.0.1", 1, "x"), 5, warmup=True, runner=runner,
                             sleep=slept.append)
    assert runner.calls == 2 and slept == [] and result.warmup["stapled"]
    runner = FakeOpenSSL("nginx_good_tls1_3")
    result = tls_probe.probe("openssl", Endpoint("127.0.0.1", 1, "x"), 5, runner=runner)
    assert runner.calls == 1 and result.warmup is None


def test_timeout_is_classified():
    result = tls_probe.probe("openssl", Endpoint("127.0.0.1", 1, "x"), 2, runner=FakeOpenSSL("timeout"))
    assert result.error == "timeout" and not result.handshake_ok
    assert "within 2 s" in result.error_detail


def test_missing_binary_is_reported_per_endpoint(tmp_path):
    result = tls_probe.handshake(str(tmp_path / "no-openssl"), Endpoint("127.0.0.1", 1), 2)
    assert result.error == "openssl_failed" and "no-openssl" in result.error_detail


def test_probe_all_bounds_concurrency_and_keeps_order():
    runner = FakeOpenSSL("apache_good_tls1_2", delay=0.05)
    endpoints = [Endpoint("127.0.0.1", 1000 + i, f"s{i}.test") for i in range(12)]
    results = tls_probe.probe_all("openssl", endpoints, timeout=5, concurrency=4, runner=runner)
    assert [r.port for r in results] == [e.port for e in endpoints]
    assert runner.max_in_flight == 4
    assert all(r.stapled for r in results)


def test_real_openssl_against_a_closed_port():
    """The real binary, end to end, on a port nothing listens on."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = tls_probe.handshake("openssl", Endpoint("127.0.0.1", port, "x.test"), 10)
    assert result.error == "connection_refused", result.error_detail


# -- endpoints from stapling_facts --------------------------------------------------

def test_endpoints_from_facts_tolerates_shapes_and_skips_what_cannot_be_probed():
    facts = {"sites": [
        {"server": "nginx", "names": ["www.example.com", "example.com"],
         "listen": [{"address": "*", "port": "443", "ssl": True},
                    {"address": "*", "port": "80", "ssl": False}]},
        {"server_names": ["_", "*.example.org", "shop.example.org"],
         "listen": [{"address": "[::]", "port": 8443}]},
        {"names": ["~^(?<x>.+)\\.example\\.net$"], "listen": [{"address": "10.0.0.5", "port": 443}],
         "file": "/etc/nginx/sites-enabled/regex"},
        {"server_names": "single.example.com"},                           # no listen: 127.0.0.1:443
        {"names": ["www.example.com"], "listen": [{"address": "0.0.0.0", "port": 443}]},  # duplicate
        {"names": ["sock.example.com"], "listen": [{"address": "unix:/run/x.sock", "port": None}]},
        {"names": ["bad.example.com"], "listen": [{"address": "1.2.3.4", "port": "https"}]},
        "not a dict",
        {},
    ]}
    endpoints, skipped = tls_probe.endpoints_from_facts(facts)
    assert endpoints == [
        Endpoint("127.0.0.1", 443, "www.example.com"),
        Endpoint("::1", 8443, "shop.example.org"),
        Endpoint("127.0.0.1", 443, "single.example.com"),
    ]
    reasons = [s["reason"] for s in skipped]
    assert any("SNI" in r for r in reasons) and any("unix socket" in r for r in reasons)
    assert any("'https' is not a number" in r for r in reasons)
    assert len(skipped) == 4  # regex-only, {} (no names), unix socket, bad port


@pytest.mark.parametrize("facts", [None, {}, {"sites": None}, {"sites": []}, []])
def test_endpoints_from_empty_facts(facts):
    assert tls_probe.endpoints_from_facts(facts) == ([], [])


def test_module_body_merges_endpoints_and_facts_and_validates():
    params = {"endpoints": [{"host": "127.0.0.1", "port": 1, "server_name": "a.test"}],
              "facts": {"sites": []}, "timeout": 5, "concurrency": 2, "tls_versions": ["1.2", "1.3"],
              "warmup": False, "warmup_delay": 0.5}
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        params["endpoints"][0]["port"] = sock.getsockname()[1]
    found = tls_probe.run_module_probe(params, "openssl")
    assert [e["error"] for e in found["endpoints"]] == ["connection_refused"]
    assert found["warnings"] and "lists no TLS site" in found["warnings"][0]
    with pytest.raises(ValueError, match="concurrency must be 1 or more"):
        tls_probe.run_module_probe(dict(params, concurrency=0), "openssl")
    with pytest.raises(ValueError, match="timeout must be a positive"):
        tls_probe.run_module_probe(dict(params, timeout=0), "openssl")


@pytest.mark.parametrize("version, flags", [
    ("OpenSSL 3.0.22 25 Aug 2026 (Library: OpenSSL 3.0.22 25 Aug 2026)",
     ["-no-CAfile", "-no-CApath", "-no-CAstore"]),
    ("OpenSSL 1.1.1k  FIPS 25 Mar 2021", ["-no-CAfile", "-no-CApath"]),
    ("OpenSSL 1.0.2k-fips  26 Jan 2017", []),
    ("LibreSSL 3.3.6", []),
    (None, []),
])
def test_skip_ca_flags_follow_the_openssl_version(version, flags):
    assert tls_probe.skip_ca_flags(version) == flags


def test_skip_ca_flags_are_accepted_by_this_hosts_openssl():
    import socket
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False).stdout
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = tls_probe.handshake("openssl", Endpoint("127.0.0.1", port, "x.test"), 10,
                                 extra_args=tls_probe.skip_ca_flags(version))
    # An unknown option would be "openssl_failed"/usage text, not a refused connection.
    assert result.error == "connection_refused", result.error_detail


def _round_results(stapled_names: set[str], names=("a.test", "b.test")):
    return [tls_probe.ProbeResult("127.0.0.1", 443, name, handshake_ok=True, stapled=name in stapled_names)
            for name in names]


def test_probe_rounds_stops_after_the_round_in_which_every_settle_name_has_stapled():
    # a.test staples in round 1, b.test only in round 2 (its first handshakes reached a cold
    # nginx worker): two rounds, every handshake returned and tagged, one sleep between them.
    rounds = iter([{"a.test"}, {"b.test"}, {"a.test", "b.test"}])
    slept = []
    found = tls_probe.probe_rounds(lambda: _round_results(next(rounds)), rounds=3, delay=2.5,
                                   settle_names=["a.test", "b.test"], sleep=slept.append)
    assert [(r["server_name"], r["round"], r["stapled"]) for r in found] == [
        ("a.test", 1, True), ("b.test", 1, False), ("a.test", 2, False), ("b.test", 2, True)]
    assert slept == [2.5]


def test_probe_rounds_runs_every_round_while_a_settle_name_never_staples():
    slept = []
    found = tls_probe.probe_rounds(lambda: _round_results({"a.test"}), rounds=3, delay=1,
                                   settle_names=["a.test", "b.test"], sleep=slept.append)
    assert [r["round"] for r in found] == [1, 1, 2, 2, 3, 3] and slept == [1, 1]
    # Only the names asked for hold the rounds back: b.test (a revoked site, say) does not.
    assert len(tls_probe.probe_rounds(lambda: _round_results({"a.test"}), rounds=3, settle_names=["a.test"],
                                      sleep=slept.append)) == 2


def test_one_round_returns_the_handshakes_untagged_and_fewer_than_one_is_refused():
    found = tls_probe.probe_rounds(lambda: _round_results(set()), rounds=1, settle_names=["a.test"])
    assert len(found) == 2 and "round" not in found[0]
    # Nothing to wait for: one round whatever rounds says, its handshakes tagged.
    found = tls_probe.probe_rounds(lambda: _round_results(set()), rounds=3, settle_names=[])
    assert [r["round"] for r in found] == [1, 1]
    with pytest.raises(ValueError, match="rounds must be 1 or more, got 0"):
        tls_probe.run_module_probe({"endpoints": [], "rounds": 0}, "/usr/bin/openssl")
    with pytest.raises(ValueError, match="handshakes must be 1 or more, got 0"):
        tls_probe.run_module_probe({"endpoints": [], "handshakes": 0}, "/usr/bin/openssl")


def test_handshakes_sends_each_endpoint_that_many_times_per_round(monkeypatch):
    # endpoints drops duplicates, so a caller that wants several handshakes per site (one per
    # nginx worker, say) asks for them with handshakes; every round sends them all again.
    sent = []

    def probe_all(openssl, endpoints, **kwargs):
        sent.append([e.server_name for e in endpoints])
        return [tls_probe.ProbeResult(e.host, e.port, e.server_name, handshake_ok=True) for e in endpoints]
    monkeypatch.setattr(tls_probe, "probe_all", probe_all)
    monkeypatch.setattr(tls_probe.time, "sleep", lambda seconds: None)
    entries = [{"host": "127.0.0.1", "port": 8443, "server_name": name} for name in ("a.test", "b.test", "a.test")]
    found = tls_probe.run_module_probe({"endpoints": entries, "handshakes": 2, "rounds": 2}, "openssl")
    assert sent == [["a.test", "b.test", "a.test", "b.test"]] * 2
    assert [r["round"] for r in found["endpoints"]] == [1] * 4 + [2] * 4
