"""ocsp_check: the issuer found where the web server finds it (per-certificate issuer sources)."""
from __future__ import annotations

import base64
import glob
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import certificates
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import check as ocsp_check
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import check_args
from tests.unit.ocsp_helpers import make_pki, respond


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("issuers"))


def read(*paths) -> dict:
    """What ocsp_fetch brings back for these host paths (missing files as errors)."""
    out = {}
    for path in map(str, paths):
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                out[path] = {"path": path, "content": base64.b64encode(handle.read()).decode(), "error": None}
        else:
            out[path] = {"path": path, "content": None, "error": f"{path} does not exist on this host."}
    return out


def answer(job, der):
    return {"id": job["id"], "url": job["url"], "ip_version": "any", "address": "127.0.0.1", "http_status": 200,
            "content_type": "application/ocsp-response", "response": base64.b64encode(der).decode(),
            "latency_ms": 1.0, "timings": {}, "failure": None, "detail": ""}


def openssl_hash(path) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", str(path)], capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()


def test_subject_hash_is_openssls(pki):
    paths = [pki.intermediate.cert_path, pki.root.cert_path] + sorted(glob.glob("/etc/ssl/certs/*.pem"))[:40]
    for path in paths:
        with open(path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        assert certificates.subject_hash(cert.subject) == openssl_hash(path), path


def test_plain_paths_and_dicts_are_normalized_and_merged():
    items = check_args.normalize_certificates([
        "/a.pem", {"path": "/b.pem", "issuer_files": ["/chain.pem"]},
        {"path": "/a.pem", "issuer_files": ["/ca.pem"], "issuer_dirs": ["/certs"]}, {"path": "/b.pem", "issuer_files": ["/chain.pem"]}])
    assert items == [{"path": "/a.pem", "issuer_files": ["/ca.pem"], "issuer_dirs": ["/certs"]},
                     {"path": "/b.pem", "issuer_files": ["/chain.pem"], "issuer_dirs": []}]
    with pytest.raises(check_args.CheckError, match="unknown key.*chain"):
        check_args.normalize_certificates([{"path": "/a.pem", "chain": "/c.pem"}])
    with pytest.raises(check_args.CheckError, match=r"certificates\[0\]"):
        check_args.normalize_certificates([{"issuer_files": ["/c.pem"]}])


def test_leaf_only_file_with_a_separate_chain_file_is_checked(pki):
    """Debian default-ssl.conf: SSLCertificateFile holds the leaf, SSLCertificateChainFile the intermediate."""
    leaf, chain = pki.leaves["good"].cert_path, pki.leaves["good"].chain_path
    item = {"path": str(leaf), "issuer_files": [str(chain)]}
    [entry] = ocsp_check.load_entries([item], read(leaf, chain))
    assert entry.issuer_source == "issuer_files" and entry.issuer_path == str(chain)
    [job] = ocsp_check.plan_requests([entry])
    record = ocsp_check.judge([entry], [answer(job, respond(pki))])["certificates"][0]
    assert record["reachable"] is True and record["cert_status"] == "good"
    assert record["issuer_source"] == "issuer_files" and record["issuer_path"] == str(chain)
    # The same certificate given as a plain path (the old call) is left unchecked.
    [bare] = ocsp_check.load_entries([str(leaf)], read(leaf))
    assert bare.issuer is None and ocsp_check.plan_requests([bare]) == []


def test_sources_are_tried_in_order_and_unreadable_ones_do_not_fail(pki, tmp_path):
    leaf = pki.leaves["good"].cert_path
    wrong = tmp_path / "wrong-ca.pem"
    wrong.write_bytes(pki.root.cert.public_bytes(serialization.Encoding.PEM))
    missing = tmp_path / "missing.pem"
    ca_file = pki.leaves["good"].chain_path
    item = {"path": str(leaf), "issuer_files": [str(missing), str(wrong), str(ca_file)]}
    [entry] = ocsp_check.load_entries([item], read(leaf, missing, wrong, ca_file))
    assert entry.issuer_path == str(ca_file)
    assert entry.issuer_notes[0].startswith(f"{missing} does not exist") and str(wrong) in entry.issuer_notes[1]


def test_no_fitting_source_names_every_place_looked_at(pki, tmp_path):
    leaf = pki.leaves["good"].cert_path
    wrong = tmp_path / "root-only.pem"
    wrong.write_bytes(pki.root.cert.public_bytes(serialization.Encoding.PEM))
    entries = ocsp_check.load_entries([{"path": str(leaf), "issuer_files": [str(wrong)]}], read(leaf, wrong))
    ocsp_check.apply_ca_issuers(entries, [], [])
    record = ocsp_check.judge(entries, [])["certificates"][0]
    assert record["failure"] == "issuer_not_found"
    assert f"{wrong} holds no certificate that issued it" in record["detail"]
    assert "SSLCertificateChainFile" in record["detail"]


def hashed_dir(tmp_path, pki):
    """A c_rehash-style directory: the root and the intermediate under <hash>.0 links."""
    directory = tmp_path / "hashed"
    directory.mkdir()
    for issued in (pki.root, pki.intermediate):
        os.symlink(issued.cert_path, directory / f"{openssl_hash(issued.cert_path)}.0")
    (directory / "README").write_text("not a certificate\n")
    return directory


def listing(directory) -> dict[str, list[str]]:
    return {str(directory): sorted(str(directory / name) for name in os.listdir(directory))}


def test_hashed_ca_directory_reads_only_the_issuers_hash_link(pki, tmp_path):
    """Apache's SSLCACertificatePath: OpenSSL looks up <issuer hash>.N, so does the check."""
    leaf = pki.leaves["good"].cert_path
    directory = hashed_dir(tmp_path, pki)
    entries = ocsp_check.load_entries([{"path": str(leaf), "issuer_dirs": [str(directory)]}], read(leaf))
    assert ocsp_check.issuer_dirs_to_list(entries) == [str(directory)]
    lists = listing(directory)
    wanted = ocsp_check.issuer_dir_files(entries, lists)
    assert wanted == [str(directory / f"{openssl_hash(pki.intermediate.cert_path)}.0")]
    ocsp_check.apply_issuer_dirs(entries, lists, read(*wanted))
    assert entries[0].issuer_source == "issuer_dirs" and entries[0].issuer_path == wanted[0]
    assert ocsp_check.plan_requests(entries)


def test_plain_ca_directory_reads_its_pem_files(pki, tmp_path):
    leaf = pki.leaves["good"].cert_path
    directory = tmp_path / "plain"
    directory.mkdir()
    (directory / "root.pem").write_bytes(pki.root.cert_path.read_bytes())
    (directory / "intermediate.crt").write_bytes(pki.intermediate.cert_path.read_bytes())
    (directory / "notes.txt").write_text("x\n")
    entries = ocsp_check.load_entries([{"path": str(leaf), "issuer_dirs": [str(directory)]}], read(leaf))
    lists = listing(directory)
    wanted = ocsp_check.issuer_dir_files(entries, lists)
    assert sorted(wanted) == sorted([str(directory / "root.pem"), str(directory / "intermediate.crt")])
    ocsp_check.apply_issuer_dirs(entries, lists, read(*wanted))
    assert entries[0].issuer_path == str(directory / "intermediate.crt")


def test_unlisted_or_empty_directory_is_named_in_the_detail(pki, tmp_path):
    leaf = pki.leaves["good"].cert_path
    empty = tmp_path / "empty"
    empty.mkdir()
    entries = ocsp_check.load_entries([{"path": str(leaf), "issuer_dirs": ["/nonexistent", str(empty)]}], read(leaf))
    ocsp_check.apply_issuer_dirs(entries, {str(empty): []}, {}, {"/nonexistent": "not a directory"})
    record = ocsp_check.judge(entries, [])["certificates"][0]
    assert record["failure"] == "issuer_not_found"
    assert "/nonexistent could not be listed (not a directory)" in record["detail"]
    assert f"the CA directory {empty} holds no certificate that issued it" in record["detail"]


def test_the_certificate_files_own_chain_comes_first(pki, tmp_path):
    full = pki.leaves["good"].fullchain_path
    entries = ocsp_check.load_entries([{"path": str(full), "issuer_files": ["/never/read.pem"]}], read(full))
    assert entries[0].issuer_source == "chain" and not entries[0].issuer_notes
    assert ocsp_check.issuer_dirs_to_list(entries) == []
