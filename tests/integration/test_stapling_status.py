"""stapling_status through real Ansible against the lab's nginx and apache2 (and a few bad ports).

The lab's own ``s_client`` probe is the independent witness: readiness checks use it, and
the module's verdicts are cross-checked against it.
"""
from __future__ import annotations

import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from tests.integration.ansible_run import run_module, run_playbook
from tests.lab.lab import Lab
from tests.lab.pki import LEAF_HOSTS
from tests.lab.processes import pid_alive, wait_until
from tests.lab.responder import free_port

MODULE = "ocsp.stapling.stapling_status"
SITES = ("good", "revoked", "nourl", "muststaple")


# -- helpers: servers that are not web servers ---------------------------------------

class _Listener:
    """A loopback TCP listener running ``handle(conn)`` per connection in a thread."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self.handle(conn)
                except OSError:
                    pass

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


def _refuse_with_alert(conn):
    """Read the ClientHello, answer with a fatal handshake_failure alert (what a server
    that cannot serve this client, e.g. Apache's AH02621 case, sends)."""
    conn.recv(16384)
    conn.sendall(bytes.fromhex("15030300020228"))


class _QuietHTTP(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        return


@pytest.fixture(scope="module")
def odd_ports():
    alert = _Listener(_refuse_with_alert)
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHTTP)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    closed = free_port()  # nothing listens here
    try:
        yield {"alert": alert.port, "http": web.server_address[1], "closed": closed}
    finally:
        alert.close()
        web.shutdown()
        web.server_close()


@pytest.fixture(scope="module")
def steady_lab(tmp_path_factory):
    """A lab nobody breaks: every test here only reads it. nginx is warmed up per site."""
    with Lab.start(tmp_path_factory.mktemp("status") / "lab") as lab:
        lab.wait_for_verdict("nginx", "good", "good")
        lab.wait_for_verdict("nginx", "muststaple", "good")
        yield lab


def endpoints(lab: Lab, server: str, sites=SITES) -> list[dict]:
    port = lab.server(server).port
    return [{"host": "127.0.0.1", "port": port, "server_name": LEAF_HOSTS[s]} for s in sites]


def by_name(result: dict) -> dict:
    assert result.get("failed") is not True, result.get("msg")
    return {(e["port"], e["server_name"]): e for e in result["endpoints"]}


def nginx_workers(lab: Lab) -> set[int]:
    master = lab.nginx.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def reload_nginx_and_wait(lab: Lab) -> None:
    """Reload, and wait until only new workers (with empty staple caches) are left."""
    old = nginx_workers(lab)
    lab.nginx.reload()

    def fresh():
        now = nginx_workers(lab)
        return now and not (now & old) and not any(pid_alive(p) for p in old)
    wait_until(fresh, 15, "nginx's old workers to exit after reload")


# -- steady state: both servers, both TLS versions ---------------------------------

@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_every_lab_site_and_bad_port(steady_lab, odd_ports, version):
    lab = steady_lab
    extra = [{"host": "127.0.0.1", "port": odd_ports["alert"], "server_name": "refuse.lab.test"},
             {"host": "127.0.0.1", "port": odd_ports["closed"], "server_name": "closed.lab.test"},
             {"host": "127.0.0.1", "port": odd_ports["http"], "server_name": "http.lab.test"}]
    args = {"endpoints": endpoints(lab, "apache") + endpoints(lab, "nginx") + extra,
            "tls_versions": [version], "timeout": 20, "concurrency": 8,
            "trust_bundle": str(lab.pki.ca_bundle)}
    # The 1.3 run also proves check mode: read-only, same answers.
    result = run_module(MODULE, args, check=(version == "1.3"))
    assert result["changed"] is False
    found = by_name(result)
    assert len(found) == 11
    a, n = lab.apache.port, lab.nginx.port

    def site(port, name):
        return found[(port, LEAF_HOSTS[name])]

    for port in (a, n):
        for name in SITES:
            entry = site(port, name)
            assert entry["handshake_ok"] and entry["protocol"] == f"TLSv{version}", entry
            cert = entry["certificate"]
            assert cert["subject"] == f"CN={LEAF_HOSTS[name]},O=ocsp.stapling lab"
            assert int(cert["serial"], 16) == lab.pki.leaves[name].serial
            assert cert["must_staple"] is (name == "muststaple")
            assert cert["ocsp_urls"] == ([] if name == "nourl" else [lab.responder.url])
            assert entry["chain_trusted"] is True, entry["chain_error"]

    for port in (a, n):
        good = site(port, "good")
        assert good["verdict"] == "good", good["message"]
        assert good["stapled"] and good["verified"] and good["verify_failure"] is None
        assert good["ocsp_response_status"] == "successful" and good["cert_status"] == "good"
        assert 0 < good["seconds_until_expiry"] <= 3600
        assert good["this_update"] < good["next_update"]
        muststaple = site(port, "muststaple")
        assert muststaple["verdict"] == "good" and muststaple["verified"]
        nourl = site(port, "nourl")
        assert nourl["verdict"] == "not_applicable" and not nourl["stapled"]

    # Apache staples the revoked response; nginx (ssl_stapling_verify on) refuses to.
    revoked = site(a, "revoked")
    assert revoked["verdict"] == "revoked" and revoked["verified"]
    assert revoked["cert_status"] == "revoked" and revoked["revocation_time"]
    nginx_revoked = site(n, "revoked")
    assert nginx_revoked["verdict"] == "missing" and not nginx_revoked["stapled"]

    refused = found[(odd_ports["alert"], "refuse.lab.test")]
    assert refused["verdict"] == "handshake_failed" and refused["error"] == "handshake_failed"
    assert "handshake_failure" in refused["message"]
    closed = found[(odd_ports["closed"], "closed.lab.test")]
    assert closed["verdict"] == "handshake_failed" and closed["error"] == "connection_refused"
    plain = found[(odd_ports["http"], "http.lab.test")]
    assert plain["verdict"] == "handshake_failed" and plain["error"] == "not_tls"
    assert plain["certificate"] is None

    summary = result["summary"]
    assert summary["total"] == 11
    assert summary["verdicts"]["good"] == 4 and summary["verdicts"]["not_applicable"] == 2
    assert summary["verdicts"]["revoked"] == 1 and summary["verdicts"]["missing"] == 1
    assert summary["verdicts"]["handshake_failed"] == 3

    # The lab's independent witness (openssl's own parser) agrees on every lab site.
    witness = {"good": "good", "revoked": "revoked", "error_stapled": "error_stapled"}
    for server, port in (("apache", a), ("nginx", n)):
        for name in SITES:
            seen = lab.probe(server, name, tls=f"tls1_{version[-1]}").verdict
            ours = site(port, name)["verdict"]
            assert witness.get(ours, "none") == seen, (server, name, ours, seen)


def test_endpoints_from_stapling_facts(steady_lab, tmp_path):
    """The real stapling_facts output, fed into stapling_status, probes every lab site."""
    lab = steady_lab
    out = tmp_path / "out.json"
    playbook = tmp_path / "facts.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - ocsp.stapling.stapling_facts:
        nginx_config: {lab.nginx.conf}
        apache_config: {lab.apache.conf}
    - ocsp.stapling.stapling_status:
        facts: "{{{{ ansible_facts.ocsp_stapling }}}}"
        warmup: true
      register: status
    - ansible.builtin.copy:
        content: "{{{{ status | to_json }}}}"
        dest: {out}
      check_mode: false
""")
    import json
    import sys
    completed = run_playbook(playbook, extra_vars={"ansible_python_interpreter": sys.executable})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    status = json.loads(out.read_text())
    verdicts = {(e["port"], e["server_name"]): e["verdict"] for e in status["endpoints"]}
    a, n = lab.apache.port, lab.nginx.port
    assert verdicts == {
        (a, "good.lab.test"): "good", (a, "muststaple.lab.test"): "good",
        (a, "nourl.lab.test"): "not_applicable", (a, "revoked.lab.test"): "revoked",
        (n, "good.lab.test"): "good", (n, "muststaple.lab.test"): "good",
        (n, "nourl.lab.test"): "not_applicable", (n, "revoked.lab.test"): "missing",
    }
    assert all(e["warmup"] is not None for e in status["endpoints"])


def test_bad_options_fail_with_a_sentence(steady_lab, tmp_path):
    result = run_module(MODULE, {"endpoints": endpoints(steady_lab, "apache", ("good",)),
                                 "concurrency": 0})
    assert result["failed"] and "concurrency must be 1 or more" in result["msg"]
    result = run_module(MODULE, {"endpoints": endpoints(steady_lab, "apache", ("good",)),
                                 "trust_bundle": str(tmp_path / "missing.pem")})
    assert result["failed"] and "could not be read on the controller" in result["msg"]
    result = run_module(MODULE, {"timeout": 5})
    assert result["failed"] and "endpoints" in result["msg"] and "facts" in result["msg"]


# -- nginx staples lazily: Must-Staple without a staple, and warmup -------------------

def test_nginx_after_reload_must_staple_missing_then_warmup(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("nginx",)) as lab:
        sites = endpoints(lab, "nginx", ("good", "muststaple"))
        reload_nginx_and_wait(lab)
        cold = by_name(run_module(MODULE, {"endpoints": sites}))
        port = lab.nginx.port
        must = cold[(port, "muststaple.lab.test")]
        assert must["verdict"] == "must_staple_missing", must["message"]
        assert must["handshake_ok"] and not must["stapled"] and must["certificate"]["must_staple"]
        assert "Firefox" in must["message"] and "warmup: true" in must["message"]
        assert cold[(port, "good.lab.test")]["verdict"] == "missing"

        reload_nginx_and_wait(lab)
        warm = by_name(run_module(MODULE, {"endpoints": sites, "warmup": True, "warmup_delay": 1.0}))
        for name in ("good.lab.test", "muststaple.lab.test"):
            entry = warm[(port, name)]
            # The warm-up handshake to the fresh worker carried nothing; the measured one did.
            assert entry["warmup"]["handshake_ok"] and entry["warmup"]["stapled"] is False
            assert entry["verdict"] == "good" and entry["verified"], entry["message"]


# -- Apache during a responder outage: tryLater stapled ------------------------------

def test_apache_staples_trylater_during_responder_outage(lab):
    """``lab`` (conftest): Apache forgets staples after 2 s. Graceful while the responder is
    down makes Apache synthesize and staple tryLater for every site (SERVER-BEHAVIOUR.md)."""
    lab.wait_for_verdict("nginx", "good", "good")
    lab.responder.set_mode("down")
    lab.apache.graceful()
    lab.wait_for_verdict("apache", "good", "error_stapled")  # readiness, by the witness
    args = {"endpoints": endpoints(lab, "apache", ("good", "muststaple"))
            + endpoints(lab, "nginx", ("good",)), "timeout": 20}
    for version in ("1.2", "1.3"):
        found = by_name(run_module(MODULE, dict(args, tls_versions=[version])))
        for name in ("good.lab.test", "muststaple.lab.test"):
            entry = found[(lab.apache.port, name)]
            assert entry["protocol"] == f"TLSv{version}"
            assert entry["verdict"] == "error_stapled", entry["message"]
            assert entry["stapled"] and entry["ocsp_response_status"] == "tryLater"
            assert entry["verified"] is False and entry["cert_status"] is None
            assert "SSLStaplingFakeTryLater off" in entry["message"]
        # nginx keeps stapling its cached good response until nextUpdate.
        assert found[(lab.nginx.port, "good.lab.test")]["verdict"] == "good"


def test_cryptography_missing_on_the_controller_is_explained(steady_lab, tmp_path):
    """Hide cryptography from the controller's Python: the action plugin says what to install."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "cryptography").mkdir()
    (blocker / "cryptography" / "__init__.py").write_text(
        "raise ImportError('No module named cryptography (hidden by the test)')\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))}
    result = run_module(MODULE, {"endpoints": endpoints(steady_lab, "apache", ("good",))}, env=env)
    assert result["failed"]
    assert "needs the Python package 'cryptography'" in result["msg"]
    assert "pip install" in result["msg"]
