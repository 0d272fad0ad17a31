"""ocsp_responder_check through real Ansible against the lab responder, in every fault mode.

The managed host's Python in these runs is a venv made with ``--without-pip`` and no
system site-packages: it cannot import ``cryptography``, which proves the host side needs
only the standard library. The controller (ansible itself) runs from the project venv.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.ansible_run import BIN, REPO, AnsibleRunError, ansible_env
from tests.lab.lab import Lab
from tests.lab.proxy import ForwardProxy

TIMEOUT = 2.0


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> str:
    """A Python interpreter for the managed host that cannot import cryptography."""
    venv = tmp_path_factory.mktemp("bare-host-python") / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import cryptography"], capture_output=True, timeout=30, check=False)
    assert probe.returncode != 0, "the bare host Python can import cryptography; the proof would be void"
    return python


def run_check(args: dict, python: str, check: bool = False, timeout: float = 120) -> tuple[dict, float]:
    """Run the module ad hoc on localhost with ``python`` as the host interpreter."""
    with tempfile.TemporaryDirectory(prefix="ansible-run-") as tmp:
        tree = Path(tmp) / "tree"
        command = [str(BIN / "ansible"), "localhost", "-c", "local", "-m",
                   "ocsp.stapling.ocsp_responder_check", "-a", json.dumps(args),
                   "-e", json.dumps({"ansible_python_interpreter": python})]
        if check:
            command.append("--check")
        start = time.monotonic()
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                                   stdin=subprocess.DEVNULL, check=False,
                                   env=ansible_env({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                                                    "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
                                                    "ANSIBLE_CALLBACK_TREE_DIR": str(tree)}))
        elapsed = time.monotonic() - start
        output = tree / "localhost"
        if not output.exists():
            raise AnsibleRunError(f"no result (exit {completed.returncode}):\n{completed.stdout[-3000:]}\n"
                                  f"{completed.stderr[-3000:]}")
        result = json.loads(output.read_text())
        result["_rc"] = completed.returncode
        return result, elapsed


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.start(tmp_path_factory.mktemp("ocsp-check") / "lab", servers=(), aia_leaf=True) as running:
        yield running


@pytest.fixture
def mode(lab):
    """Set a responder mode for one test, back to good afterwards."""
    def set_mode(name):
        lab.responder.set_mode(name)
    yield set_mode
    lab.responder.set_mode("good")
    lab.responder.control("set?delay=3")


def leaf_args(lab, *names, **extra) -> dict:
    return dict({"certificates": [str(lab.pki.leaves[n].fullchain_path) for n in names],
                 "timeout": TIMEOUT}, **extra)


def only(result: dict) -> dict:
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    return result["certificates"][0]


def test_good(lab, bare_python):
    result = run_check(leaf_args(lab, "good", "revoked", "muststaple", "nourl"), bare_python)[0]
    good, revoked, must, nourl = result["certificates"]
    assert good["reachable"] is True and good["failure"] is None, good["detail"]
    assert good["cert_status"] == "good" and good["response_status"] == "successful"
    assert good["address"] == "127.0.0.1" and good["latency_ms"] < TIMEOUT * 1000
    assert good["subject"] == "CN=good.lab.test,O=ocsp.stapling lab"
    assert good["serial"] == format(lab.pki.leaves["good"].serial, "X").rjust(len(good["serial"]), "0")
    assert good["ocsp_urls"] == [lab.pki.ocsp_url] and good["issuer_source"] == "chain"
    assert good["this_update"] and good["next_update"]
    # One request per (responder, issuer): the others ride on it.
    assert revoked["checked_by"] == good["path"] and revoked["cert_status"] is None
    assert revoked["reachable"] is True
    assert must["must_staple"] is True and good["must_staple"] is False
    assert nourl["failure"] == "no_ocsp_url" and nourl["reachable"] is None
    assert result["all_reachable"] is True
    [responder] = result["responders"]
    assert responder["url"] == lab.pki.ocsp_url and responder["reachable"] is True
    assert len(responder["certificates"]) == 3
    assert lab.responder.state()["counts"]["answered"] >= 1


def test_per_certificate_status(lab, bare_python):
    before = lab.responder.state()["counts"]["POST"]
    result = run_check(leaf_args(lab, "good", "revoked", "muststaple", per_certificate=True,
                                 concurrency=3), bare_python)[0]
    statuses = [c["cert_status"] for c in result["certificates"]]
    assert statuses == ["good", "revoked", "good"]
    assert all(c["checked_by"] is None for c in result["certificates"])
    assert lab.responder.state()["counts"]["POST"] - before == 3


@pytest.mark.parametrize("mode_name, failure", [
    ("down", "connection_refused"),
    ("garbage", "malformed_response"),
    ("http500", "http_error"),
    ("trylater", "responder_error"),
    ("badsig", "signature_invalid"),
    ("expired", "stale_response"),
])
def test_fault_modes(lab, mode, bare_python, mode_name, failure):
    mode(mode_name)
    result = run_check(leaf_args(lab, "good"), bare_python)[0]
    cert = only(result)
    assert cert["failure"] == failure, cert["detail"]
    assert cert["reachable"] is False and cert["cert_status"] is None
    assert result["all_reachable"] is False
    assert result["responders"][0]["failure"] == failure
    if mode_name == "trylater":
        assert cert["response_status"] == "tryLater"
    if mode_name == "http500":
        assert cert["attempts"][0]["http_status"] == 500


def test_hang_costs_no_more_than_the_timeout(lab, mode, bare_python):
    baseline = run_check(leaf_args(lab, "good"), bare_python)[1]
    mode("hang")
    result, elapsed = run_check(leaf_args(lab, "good"), bare_python)
    cert = only(result)
    assert cert["failure"] == "timeout"
    assert TIMEOUT * 1000 <= cert["attempts"][0]["latency_ms"] < TIMEOUT * 1000 + 500
    # The whole ansible run: the usual overhead plus the timeout. Ansible's own start-up
    # time varies with machine load, hence a margin proportional to the baseline.
    assert elapsed - baseline < TIMEOUT + 1.5 + 0.5 * baseline, (elapsed, baseline)


def test_slow_within_and_beyond_the_timeout(lab, mode, bare_python):
    mode("slow")
    lab.responder.control("set?delay=1")
    cert = only(run_check(leaf_args(lab, "good"), bare_python)[0])
    assert cert["reachable"] is True and cert["latency_ms"] >= 1000
    lab.responder.control("set?delay=4")
    cert = only(run_check(leaf_args(lab, "good"), bare_python)[0])
    assert cert["failure"] == "timeout"


def test_get_method_and_responder_url_override(lab, bare_python):
    before = lab.responder.state()["counts"]["GET"]
    # The nourl certificate has no AIA OCSP URL; forcing the responder checks it anyway.
    cert = only(run_check(dict(leaf_args(lab, "nourl"), responder_url=lab.responder.url, method="GET"),
                          bare_python)[0])
    assert cert["reachable"] is True and cert["cert_status"] == "good", cert["detail"]
    assert cert["responder_url"] == lab.responder.url
    assert lab.responder.state()["counts"]["GET"] == before + 1


def test_both_families_report_broken_ipv6(lab, bare_python):
    # The lab listens on 127.0.0.1 only, so over IPv6 ([::1]) nothing listens: the
    # "broken IPv6" outage in miniature. Each family is asked separately.
    url4 = lab.responder.url
    url6 = url4.replace("127.0.0.1", "[::1]")
    four = only(run_check(dict(leaf_args(lab, "good"), responder_url=url4, ip_version="both"), bare_python)[0])
    assert [a["ip_version"] for a in four["attempts"]] == ["4"] and four["reachable"] is True
    six = only(run_check(dict(leaf_args(lab, "good"), responder_url=url6, ip_version="6"), bare_python)[0])
    assert six["failure"] in ("connection_refused", "network_unreachable"), six["detail"]


def test_issuer_option_combined_file_and_issuer_not_found(lab, bare_python):
    leaves = lab.pki.leaves
    args = {"certificates": [str(leaves["good"].cert_path), str(leaves["revoked"].combined_path)],
            "issuer": str(leaves["good"].chain_path), "per_certificate": True, "timeout": TIMEOUT}
    result = run_check(args, bare_python)[0]
    plain, combined = result["certificates"]
    assert plain["issuer_source"] == "issuer_file" and plain["cert_status"] == "good"
    assert combined["issuer_source"] == "chain" and combined["cert_status"] == "revoked"
    assert "PRIVATE KEY" not in json.dumps(result)
    # Leaf alone, no issuer, no AIA caIssuers URL: nothing to build a request with.
    result = run_check({"certificates": [str(leaves["good"].cert_path)]}, bare_python)[0]
    cert = only(result)
    assert cert["failure"] == "issuer_not_found" and "issuer" in cert["detail"]
    assert result["all_reachable"] is False


@pytest.fixture
def proxy():
    """A forward proxy on 127.0.0.1 (SSLOCSPProxyURL's kind) that records every request line."""
    with ForwardProxy() as running:
        yield running


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_proxy_carries_the_request(lab, proxy, bare_python, method):
    before = lab.responder.state()["counts"][method]
    result = run_check(leaf_args(lab, "good", proxy=proxy.url, method=method), bare_python)[0]
    cert = only(result)
    assert cert["reachable"] is True and cert["cert_status"] == "good", cert["detail"]
    # Absolute URI to the proxy (not origin form, which this proxy rejects with 400).
    [line] = proxy.requests
    assert line.startswith(f"{method} {lab.responder.url}") and line.endswith(" HTTP/1.0"), line
    assert lab.responder.state()["counts"][method] == before + 1
    assert result["all_reachable"] is True


def test_proxy_refusing_connections_is_named(lab, bare_python):
    before = lab.responder.state()["counts"]["POST"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: the kernel refuses
        port = sock.getsockname()[1]
        result = run_check(leaf_args(lab, "good", proxy=f"http://127.0.0.1:{port}"), bare_python)[0]
    cert = only(result)
    assert cert["failure"] == "connection_refused" and cert["reachable"] is False, cert["detail"]
    assert f"proxy 127.0.0.1:{port}" in cert["detail"] and "refused" in cert["detail"]
    assert result["responders"][0]["failure"] == "connection_refused"
    assert f"proxy 127.0.0.1:{port}" in result["responders"][0]["detail"]
    assert lab.responder.state()["counts"]["POST"] == before


def test_proxy_that_cannot_reach_the_responder(lab, mode, proxy, bare_python):
    mode("down")
    cert = only(run_check(leaf_args(lab, "good", proxy=proxy.url), bare_python)[0])
    # The proxy is up, so this is its 502, not a refused connection.
    assert cert["failure"] == "http_error" and cert["attempts"][0]["http_status"] == 502
    assert f"through proxy 127.0.0.1:{proxy.port}" in cert["detail"], cert["detail"]
    assert len(proxy.requests) == 1


def aia_args(lab, **extra) -> dict:
    """The aia leaf's own file: no chain in it, no issuer option."""
    return dict({"certificates": [str(lab.pki.extra_leaves["aia"].cert_path)], "timeout": TIMEOUT}, **extra)


def test_fetch_ca_issuers_downloads_the_issuer(lab, bare_python):
    before = lab.responder.state()["counts"]
    result = run_check(aia_args(lab, fetch_ca_issuers=True), bare_python)[0]
    cert = only(result)
    assert cert["issuer_source"] == "aia", cert["detail"]
    assert cert["reachable"] is True and cert["cert_status"] == "good" and cert["failure"] is None
    assert cert["subject"] == "CN=aia.lab.test,O=ocsp.stapling lab"
    assert result["all_reachable"] is True
    after = lab.responder.state()["counts"]
    assert after.get("ca_issuers", 0) == before.get("ca_issuers", 0) + 1
    assert after["POST"] == before["POST"] + 1


def test_fetch_ca_issuers_goes_through_the_proxy(lab, proxy, bare_python):
    cert = only(run_check(aia_args(lab, proxy=proxy.url), bare_python)[0])  # fetch_ca_issuers defaults to true
    assert cert["issuer_source"] == "aia" and cert["cert_status"] == "good", cert["detail"]
    assert proxy.requests == [f"GET {lab.pki.ca_issuers_url} HTTP/1.0", f"POST {lab.responder.url} HTTP/1.0"]


def test_without_fetch_ca_issuers_the_issuer_is_not_found(lab, bare_python):
    before = lab.responder.state()["counts"]
    result = run_check(aia_args(lab, fetch_ca_issuers=False), bare_python)[0]
    cert = only(result)
    assert cert["failure"] == "issuer_not_found" and cert["reachable"] is None and cert["issuer_source"] is None
    detail = cert["detail"]
    assert str(lab.pki.extra_leaves["aia"].cert_path) in detail
    assert "fetch_ca_issuers is false" in detail and lab.pki.ca_issuers_url in detail, detail
    assert "Set issuer to the intermediate CA file" in detail and "no issuer option was given" in detail
    assert result["all_reachable"] is False and result["responders"] == []
    after = lab.responder.state()["counts"]
    assert (after.get("ca_issuers", 0), after["POST"]) == (before.get("ca_issuers", 0), before["POST"])


def test_bad_paths_fail_with_the_file_named(lab, bare_python, tmp_path):
    not_cert = tmp_path / "notes.txt"
    not_cert.write_text("hello\n")
    result = run_check({"certificates": [str(tmp_path / "missing.pem"), str(not_cert),
                                         str(lab.pki.leaves["good"].key_path)]}, bare_python)[0]
    # The tree callback drops the ``failed`` key; ansible's exit code says it.
    assert result["_rc"] == 2 and result.get("failed", True) is True
    msg = result["msg"]
    assert f"{tmp_path / 'missing.pem'} does not exist" in msg
    assert f"{not_cert} holds no certificate" in msg
    assert f"{lab.pki.leaves['good'].key_path} holds no certificate" in msg


def test_check_mode(lab, bare_python):
    result = run_check(leaf_args(lab, "good"), bare_python, check=True)[0]
    cert = only(result)
    assert cert["cert_status"] == "good"


def test_host_with_the_project_python_too(lab):
    cert = only(run_check(leaf_args(lab, "good"), sys.executable)[0])
    assert cert["reachable"] is True


def test_openssl_responder_cross_check(tmp_path, bare_python):
    """`openssl ocsp` (the reference implementation) answers; our verification must agree."""
    with Lab.start(tmp_path / "lab", servers=(), engine="openssl") as lab:
        result = run_check(leaf_args(lab, "good", "revoked", per_certificate=True), bare_python)[0]
        good, revoked = result["certificates"]
        assert (good["cert_status"], revoked["cert_status"]) == ("good", "revoked"), good["detail"]
        assert good["attempts"][0]["signer"] == "delegated"
        assert lab.responder.state()["engine"] == "openssl"
        # And openssl as the client agrees with our reading of the same responder.
        leaf = lab.pki.leaves["revoked"]
        out = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(lab.pki.intermediate.cert_path), "-cert", str(leaf.cert_path),
             "-url", lab.responder.url, "-CAfile", str(lab.pki.ca_bundle), "-timeout", "10"],
            capture_output=True, text=True, timeout=30, check=False)
        assert f"{leaf.cert_path}: revoked" in out.stdout, out.stdout + out.stderr


# --------------------------------------------------------------------------- the site's own issuer sources


def openssl_hash(path) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", str(path)], capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()


def test_leaf_only_file_with_the_sites_chain_file(lab, bare_python):
    """Debian default-ssl.conf: the leaf alone, the intermediate in SSLCertificateChainFile."""
    leaf = lab.pki.leaves["good"]
    result = run_check({"certificates": [{"path": str(leaf.cert_path), "issuer_files": [str(leaf.chain_path)]}],
                        "timeout": TIMEOUT, "fetch_ca_issuers": False}, bare_python)[0]
    cert = only(result)
    assert cert["reachable"] is True and cert["cert_status"] == "good", cert["detail"]
    assert cert["issuer_source"] == "issuer_files" and cert["issuer_path"] == str(leaf.chain_path)
    assert result["all_reachable"] is True


def test_hashed_ca_directory_on_the_host(lab, bare_python, tmp_path):
    """SSLCACertificatePath / CACertPath: listed on the host, only the issuer's <hash>.N link read."""
    directory = tmp_path / "ssl.crt"
    directory.mkdir()
    for issued in (lab.pki.root, lab.pki.intermediate):
        (directory / f"{openssl_hash(issued.cert_path)}.0").symlink_to(issued.cert_path)
    leaf = lab.pki.leaves["good"]
    result = run_check({"certificates": [{"path": str(leaf.cert_path), "issuer_dirs": [str(directory)]}],
                        "timeout": TIMEOUT, "fetch_ca_issuers": False}, bare_python)[0]
    cert = only(result)
    assert cert["reachable"] is True, cert["detail"]
    assert cert["issuer_source"] == "issuer_dirs"
    assert cert["issuer_path"] == str(directory / f"{openssl_hash(lab.pki.intermediate.cert_path)}.0")


def test_missing_issuer_sources_do_not_fail_the_task(lab, bare_python, tmp_path):
    leaf = lab.pki.leaves["good"]
    missing_file, missing_dir = tmp_path / "nope.pem", tmp_path / "nodir"
    result = run_check({"certificates": [{"path": str(leaf.cert_path), "issuer_files": [str(missing_file)],
                                          "issuer_dirs": [str(missing_dir)]}, str(leaf.fullchain_path)],
                        "timeout": TIMEOUT, "fetch_ca_issuers": False}, bare_python)[0]
    assert not result.get("failed"), result.get("msg")
    unchecked, checked = result["certificates"]
    assert unchecked["failure"] == "issuer_not_found"
    assert f"{missing_file} does not exist" in unchecked["detail"] and str(missing_dir) in unchecked["detail"]
    assert checked["reachable"] is True and result["all_reachable"] is False
