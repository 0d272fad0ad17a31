"""The lab itself: it must reproduce what servers do during a responder outage."""
from __future__ import annotations

import base64
import http.client
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from tests.lab.lab import Lab
from tests.lab.processes import pid_alive


def ocsp_request(lab: Lab, name: str) -> bytes:
    leaf = lab.pki.leaves[name]
    return (ocsp.OCSPRequestBuilder().add_certificate(leaf.cert, lab.pki.intermediate.cert, hashes.SHA1())
            .build().public_bytes(serialization.Encoding.DER))


def ask(lab: Lab, body: bytes, method: str = "POST", timeout: float = 5.0):
    conn = http.client.HTTPConnection("127.0.0.1", lab.responder.port, timeout=timeout)
    try:
        if method == "POST":
            conn.request("POST", "/", body, {"Content-Type": "application/ocsp-request"})
        else:
            conn.request("GET", "/" + urllib.parse.quote(base64.b64encode(body).decode(), safe=""))
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def signed_by(response: ocsp.OCSPResponse, cert) -> bool:
    try:
        cert.public_key().verify(response.signature, response.tbs_response_bytes,
                                 ec.ECDSA(response.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return True


# -- the responder --------------------------------------------------------------------------

def test_aia_leaf_is_extra_and_its_ca_issuers_url_serves_the_intermediate(tmp_path):
    """The optional ``aia`` leaf: apart from LEAF_NAMES, reloaded by the responder, answered good."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    from tests.lab.pki import LEAF_HOSTS, LEAF_NAMES, LabPKI
    with Lab.start(tmp_path / "lab", servers=(), aia_leaf=True) as lab:
        assert "aia" not in LEAF_NAMES and "aia" not in LEAF_HOSTS and "aia" not in lab.pki.leaves
        leaf = lab.pki.extra_leaves["aia"]
        access = leaf.cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        urls = {d.access_method: d.access_location.value for d in access}
        assert urls[AuthorityInformationAccessOID.OCSP] == lab.pki.ocsp_url
        assert urls[AuthorityInformationAccessOID.CA_ISSUERS] == lab.pki.ca_issuers_url
        assert lab.pki.ca_issuers_url == f"{lab.responder.url}ca/intermediate.der"
        assert leaf.chain_path.exists() and leaf.fullchain_path.exists()
        reloaded = LabPKI.load(lab.pki.directory)
        assert reloaded.extra_leaves["aia"].serial == leaf.serial
        assert reloaded.ca_issuers_url == lab.pki.ca_issuers_url and set(reloaded.leaves) == set(LEAF_NAMES)
        conn = http.client.HTTPConnection("127.0.0.1", lab.responder.port, timeout=5)
        try:
            conn.request("GET", "/ca/intermediate.der")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.getheader("Content-Type") == "application/pkix-cert"
            assert x509.load_der_x509_certificate(resp.read()) == lab.pki.intermediate.cert
        finally:
            conn.close()
        request = (ocsp.OCSPRequestBuilder().add_certificate(leaf.cert, lab.pki.intermediate.cert, hashes.SHA1())
                   .build().public_bytes(serialization.Encoding.DER))
        status, dummy, body = ask(lab, request)
        assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
        counts = lab.responder.state()["counts"]
        assert (counts["ca_issuers"], counts["GET"], counts["POST"]) == (1, 0, 1)


def test_default_pki_has_no_extra_leaf(responder_lab):
    assert responder_lab.pki.extra_leaves == {} and responder_lab.pki.ca_issuers_url is None
    assert not (responder_lab.pki.directory / "aia.crt").exists()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name,expected", [("good", ocsp.OCSPCertStatus.GOOD),
                                           ("revoked", ocsp.OCSPCertStatus.REVOKED)])
def test_responder_answers_both_methods(responder_lab, method, name, expected):
    status, content_type, body = ask(responder_lab, ocsp_request(responder_lab, name), method)
    assert (status, content_type) == (200, "application/ocsp-response")
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == expected
    assert response.serial_number == responder_lab.pki.leaves[name].serial
    assert signed_by(response, responder_lab.pki.ocsp_signer.cert)
    assert responder_lab.responder.state()["counts"][method] == 1


def test_fault_modes_are_what_they_say(responder_lab):
    lab, request = responder_lab, ocsp_request(responder_lab, "good")

    lab.responder.set_mode("trylater")
    assert ocsp.load_der_ocsp_response(ask(lab, request)[2]).response_status == ocsp.OCSPResponseStatus.TRY_LATER

    lab.responder.set_mode("badsig")
    response = ocsp.load_der_ocsp_response(ask(lab, request)[2])
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert not signed_by(response, lab.pki.ocsp_signer.cert)
    assert signed_by(response, lab.pki.rogue.cert)

    lab.responder.set_mode("expired")
    response = ocsp.load_der_ocsp_response(ask(lab, request)[2])
    assert response.next_update_utc.timestamp() < time.time()

    lab.responder.set_mode("garbage")
    status, content_type, body = ask(lab, request)
    assert status == 200 and content_type == "application/ocsp-response"
    with pytest.raises(ValueError):
        ocsp.load_der_ocsp_response(body)

    lab.responder.set_mode("http500")
    assert ask(lab, request)[0] == 500

    lab.responder.set_mode("down")
    with pytest.raises(ConnectionRefusedError):
        ask(lab, request)

    lab.responder.set_mode("good")
    assert ask(lab, request)[0] == 200


def test_hang_and_slow_are_bounded_by_the_client(responder_lab):
    lab, request = responder_lab, ocsp_request(responder_lab, "good")
    lab.responder.set_mode("hang")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        ask(lab, request, timeout=0.5)
    assert time.monotonic() - started < 2.0
    lab.responder.control("set?delay=0.3")
    lab.responder.set_mode("slow")
    started = time.monotonic()
    assert ask(lab, request)[0] == 200
    assert time.monotonic() - started >= 0.3


def test_openssl_agrees_with_the_responder(responder_lab):
    """``openssl ocsp`` as the client: the reference implementation accepts our answers."""
    pki = responder_lab.pki
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(pki.intermediate.cert_path),
         "-cert", str(pki.leaves["good"].cert_path), "-url", responder_lab.responder.url, "-CAfile", str(pki.ca_bundle), "-timeout", "5"],
        capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL, check=False)
    assert f"{pki.leaves['good'].cert_path}: good" in result.stdout, result.stdout + result.stderr
    assert "Response verify OK" in result.stderr + result.stdout


@pytest.mark.parametrize("name,word", [("good", "good"), ("revoked", "revoked")])
def test_openssl_engine_and_client_cross_check(tmp_path, name, word):
    """``openssl ocsp`` as the responder engine and as the client, on the same PKI."""
    with Lab.start(tmp_path / "lab", servers=(), engine="openssl") as lab:
        pki = lab.pki
        result = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(pki.intermediate.cert_path),
             "-cert", str(pki.leaves[name].cert_path), "-url", lab.responder.url,
             "-CAfile", str(pki.ca_bundle), "-timeout", "5"],
            capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL, check=False)
        assert f"{pki.leaves[name].cert_path}: {word}" in result.stdout, result.stdout + result.stderr
        assert "Response verify OK" in result.stderr + result.stdout


# -- the web servers --------------------------------------------------------------------------

def test_both_servers_staple_good_and_apache_staples_revoked(shared_lab):
    lab = shared_lab
    assert lab.probe("apache", "good").verdict == "good"
    assert lab.wait_for_verdict("nginx", "good", "good").cert_status == "good"
    # Apache staples a revoked answer; nginx (ssl_stapling_verify on) refuses to.
    assert lab.probe("apache", "revoked").verdict == "revoked"
    lab.wait_for_verdict("nginx", "revoked", "none")
    counts = lab.responder.state()["counts"]
    assert counts["GET"] >= 1, "nginx asks with GET"
    assert counts["POST"] >= 1, "Apache asks with POST"


def test_no_url_certificate_gets_no_staple_and_nginx_warns(shared_lab):
    lab = shared_lab
    assert lab.probe("apache", "nourl").verdict == "none"
    assert lab.probe("nginx", "nourl").verdict == "none"
    warnings = lab.nginx.configtest().stderr
    assert '"ssl_stapling" ignored, no OCSP responder URL in the certificate' in warnings
    assert "AH02218" in Path(lab.apache.error_log).read_text()


def test_outage_makes_apache_staple_trylater(lab):
    """The incident: responder unreachable, cache expired, Apache staples tryLater."""
    assert lab.probe("apache", "good").verdict == "good"
    lab.wait_for_verdict("nginx", "good", "good")
    lab.responder.set_mode("down")
    staple = lab.wait_for_verdict("apache", "good", "error_stapled", timeout=30)
    assert staple.response_status == "trylater"
    log = Path(lab.apache.error_log).read_text()
    assert "AH01974" in log and "AH01941" in log
    # nginx keeps its good staple until nextUpdate.
    assert lab.wait_for_verdict("nginx", "good", "good").cert_status == "good"


def test_lab_listens_on_loopback_only_and_stops_everything(tmp_path):
    with Lab.start(tmp_path / "lab") as lab:
        pids = [lab.nginx.pid, lab.apache.pid, lab.responder.pid]
        ports = {lab.nginx.port, lab.apache.port, lab.responder.port, lab.responder.control_port}
        listening = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port = local.rsplit(":", 1)
                if state == "0A" and int(port, 16) in ports:
                    listening.setdefault(int(port, 16), set()).add(address)
        assert set(listening) == ports
        assert all(addresses == {"0100007F"} for addresses in listening.values()), listening
    assert not any(pid_alive(pid) for pid in pids)
