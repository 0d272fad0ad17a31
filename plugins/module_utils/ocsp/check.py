# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller-side logic of ``ocsp_responder_check`` (needs ``cryptography``).

The action plugin runs three steps, with host round trips in between:

1. :func:`load_entries` turns the files the host read into certificates and issuers;
2. :func:`plan_requests` builds one OCSP request per (responder, issuer), or one per
   certificate with ``per_certificate``, and :func:`ca_issuer_jobs` the AIA downloads
   for certificates whose issuer is nowhere on the host;
3. :func:`judge` verifies what the host brought back and rolls it up per certificate
   and per responder.

Nothing here does I/O, so it is unit tested without Ansible or a network.
"""
from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass, field

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import certificates
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.check_args import CheckError, normalize_certificates
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import wire as ocsp_wire
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.verify import verify_response

FAILURES = ("no_ocsp_url", "dns_failure", "connection_refused", "network_unreachable", "timeout",
            "tls_error", "http_error", "malformed_response", "responder_error", "signature_invalid",
            "certid_mismatch", "stale_response", "issuer_not_found")


# Where Apache's SSLCACertificatePath / LiteSpeed's CACertPath keep certificates: c_rehash
# links (<hash>.N, what the servers look up) and, in hand-kept directories, plain files.
_HASHED_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
_PLAIN_SUFFIXES = (".pem", ".crt", ".cer")
# A directory without hash links is read whole, up to this many files (Debian's
# /etc/ssl/certs holds about 150 certificates).
MAX_DIR_FILES = 300


@dataclass
class Entry:
    """One certificate file to check."""

    path: str
    cert: object                                  # cryptography x509.Certificate
    chain: list = field(default_factory=list)     # the other certificates in the same file
    issuer: object = None                         # x509.Certificate or None
    issuer_source: str | None = None              # chain | issuer_file | issuer_files | issuer_dirs | aia
    issuer_path: str | None = None                # the file the issuer came from (or the URL)
    responder_url: str | None = None
    job_id: str | None = None
    representative: bool = False
    request_nonce: bytes | None = None
    issuer_option: str | None = None              # the issuer option's path, when given
    issuer_files: list = field(default_factory=list)   # the site's own issuer files, in server order
    issuer_dirs: list = field(default_factory=list)    # the site's CA directories
    issuer_notes: list = field(default_factory=list)   # what the site's own sources held, when no issuer
    ca_issuer_note: str | None = None             # why the AIA caIssuers URL gave no issuer


def _decode(file_result: dict) -> bytes:
    return base64.b64decode(file_result.get("content") or "")


def _load_candidates(path: str, files: dict[str, dict]) -> tuple[list, str | None]:
    """Certificates in one issuer file the host read, or (``[]``, why not)."""
    read = files.get(path) or {"error": f"{path} was not read."}
    if read.get("error"):
        return [], read["error"]
    try:
        found = certificates.load_certificates(_decode(read))
    except ValueError as exc:
        return [], f"{path} holds a corrupt PEM certificate ({exc})"
    return found, (None if found else f"{path} holds no certificate")


def load_entries(paths: list, files: dict[str, dict], issuer_path: str | None = None,
                 responder_url: str | None = None) -> list[Entry]:
    """Certificates from the host's file reads; raises CheckError naming every bad file.

    ``paths`` holds paths or :func:`normalize_certificates` dicts. The issuer is looked for
    where the web server looks: the certificate file's own chain, the ``issuer`` option, then
    the site's ``issuer_files`` in order (chain file, CA file). A per-site issuer file that
    cannot be read does not fail the check: it is named in the ``issuer_not_found`` detail.
    """
    problems = []
    issuer_candidates: list = []
    if issuer_path:
        read = files.get(issuer_path) or {"error": f"{issuer_path} was not read."}
        if read.get("error"):
            problems.append(f"issuer: {read['error']}")
        else:
            try:
                issuer_candidates = certificates.load_certificates(_decode(read))
            except ValueError as exc:
                problems.append(f"issuer: {issuer_path} holds a corrupt PEM certificate ({exc}). "
                                "Point issuer at the intermediate CA certificate in PEM.")
            else:
                if not issuer_candidates:
                    problems.append(f"issuer: {issuer_path} holds no certificate. Point issuer at the "
                                    "intermediate CA certificate (PEM), e.g. the chain file.")
    entries = []
    for item in normalize_certificates(paths):
        path = item["path"]
        read = files.get(path) or {"error": f"{path} was not read."}
        if read.get("error"):
            problems.append(read["error"])
            continue
        try:
            found = certificates.load_certificates(_decode(read))
        except ValueError as exc:
            problems.append(f"{path} holds a corrupt PEM certificate block ({exc}). Check the file "
                            "is not truncated.")
            continue
        if not found:
            problems.append(f"{path} holds no certificate (expected a PEM certificate, a fullchain "
                            "file or a cPanel combined file). Point certificates at the site's "
                            "certificate file, not its key or CSR.")
            continue
        entry = Entry(path=path, cert=found[0], chain=found[1:], issuer_files=list(item["issuer_files"]),
                      issuer_dirs=list(item["issuer_dirs"]))
        entry.responder_url = responder_url or next(iter(certificates.ocsp_urls(entry.cert)), None)
        entry.issuer_option = issuer_path
        entry.issuer = certificates.find_issuer(entry.cert, entry.chain)
        if entry.issuer is not None:
            entry.issuer_source, entry.issuer_path = "chain", path
        elif issuer_candidates:
            entry.issuer = certificates.find_issuer(entry.cert, issuer_candidates)
            if entry.issuer is not None:
                entry.issuer_source, entry.issuer_path = "issuer_file", issuer_path
        if entry.issuer is None:
            for candidate_path in entry.issuer_files:
                candidates, note = _load_candidates(candidate_path, files)
                entry.issuer = certificates.find_issuer(entry.cert, candidates)
                if entry.issuer is not None:
                    entry.issuer_source, entry.issuer_path = "issuer_files", candidate_path
                    break
                entry.issuer_notes.append(note or f"{candidate_path} holds no certificate that issued it")
        entries.append(entry)
    if problems:
        raise CheckError(" ".join(problems))
    return entries


def needs_issuer_dirs(entry: Entry) -> bool:
    return entry.issuer is None and entry.responder_url is not None and bool(entry.issuer_dirs)


def issuer_dirs_to_list(entries: list[Entry]) -> list[str]:
    """The CA directories the host must list for certificates still without an issuer."""
    return list(dict.fromkeys(d for e in entries if needs_issuer_dirs(e) for d in e.issuer_dirs))


def _in_dir(directory: str, path: str) -> bool:
    return path.rsplit("/", 1)[0].rstrip("/") == directory.rstrip("/")


def issuer_dir_files(entries: list[Entry], listings: dict[str, list[str]]) -> list[str]:
    """Which files of the listed directories to read: the ``<hash>.N`` links named after each
    certificate's issuer, as OpenSSL's lookup does; in a directory without such links, its
    ``*.pem`` / ``*.crt`` / ``*.cer`` files (at most :data:`MAX_DIR_FILES`)."""
    wanted: list[str] = []
    for entry in entries:
        if not needs_issuer_dirs(entry):
            continue
        issuer_hash = certificates.subject_hash(entry.cert.issuer)
        for directory in entry.issuer_dirs:
            names = listings.get(directory) or []
            hashed = [p for p in names if _HASHED_NAME.match(p.rsplit("/", 1)[-1])]
            if hashed:
                chosen = sorted(p for p in hashed if p.rsplit("/", 1)[-1].split(".")[0] == issuer_hash)
            else:
                chosen = sorted(p for p in names if p.lower().endswith(_PLAIN_SUFFIXES))[:MAX_DIR_FILES]
            wanted.extend(p for p in chosen if p not in wanted)
    return wanted


def apply_issuer_dirs(entries: list[Entry], listings: dict[str, list[str]], files: dict[str, dict],
                      listing_errors: dict[str, str] | None = None) -> None:
    """Look for each remaining issuer in the files read from its site's CA directories."""
    listing_errors = listing_errors or {}
    for entry in entries:
        if not needs_issuer_dirs(entry):
            continue
        for directory in entry.issuer_dirs:
            if directory in listing_errors:
                entry.issuer_notes.append(f"the CA directory {directory} could not be listed ({listing_errors[directory]})")
                continue
            in_dir = [p for p in issuer_dir_files([entry], listings) if _in_dir(directory, p)]
            for candidate_path in in_dir:
                candidates, _note = _load_candidates(candidate_path, files)
                entry.issuer = certificates.find_issuer(entry.cert, candidates)
                if entry.issuer is not None:
                    entry.issuer_source, entry.issuer_path = "issuer_dirs", candidate_path
                    break
            if entry.issuer is not None:
                break
            entry.issuer_notes.append(
                f"the CA directory {directory} holds no certificate that issued it (looked for "
                f"{certificates.subject_hash(entry.cert.issuer)}.N hash links, else *.pem / *.crt files)")


def needs_ca_issuer(entry: Entry) -> bool:
    return entry.issuer is None and entry.responder_url is not None


def ca_issuer_jobs(entries: list[Entry]) -> list[dict]:
    """GET jobs for the AIA caIssuers URLs of certificates whose issuer was not found."""
    urls = []
    for entry in entries:
        if needs_ca_issuer(entry):
            for url in certificates.ca_issuer_urls(entry.cert):
                if url.lower().startswith(("http://", "https://")) and url not in urls:
                    urls.append(url)
    return [{"id": f"aia{i}", "url": url, "body": None, "method": "GET"} for i, url in enumerate(urls)]


def apply_ca_issuers(entries: list[Entry], jobs: list[dict], results: list[dict]) -> None:
    """Use the downloaded caIssuers certificates as issuers where they fit.

    Where none fits, ``ca_issuer_note`` says why (the download's failure, or what it held)
    for the ``issuer_not_found`` message.
    """
    by_url: dict[str, list] = {}
    problems: dict[str, str] = {}
    for job, result in zip(jobs, results):
        if result.get("failure") or not result.get("response"):
            problems[job["url"]] = (f"downloading its AIA caIssuers URL {job['url']} failed "
                                    f"({result.get('failure') or 'empty answer'}: {result.get('detail') or 'no content'})")
            continue
        try:
            by_url[job["url"]] = certificates.load_certificates(base64.b64decode(result["response"]))
        except ValueError as exc:
            problems[job["url"]] = f"its AIA caIssuers URL {job['url']} served a corrupt certificate ({exc})"
            continue
        if not by_url[job["url"]]:
            problems[job["url"]] = f"its AIA caIssuers URL {job['url']} served no certificate (PEM, DER or PKCS#7)"
    for entry in entries:
        if needs_ca_issuer(entry):
            urls = certificates.ca_issuer_urls(entry.cert)
            candidates = [c for url in urls for c in by_url.get(url, [])]
            entry.issuer = certificates.find_issuer(entry.cert, candidates)
            if entry.issuer is not None:
                entry.issuer_source = "aia"
                entry.issuer_path = next((url for url in urls if entry.issuer in by_url.get(url, [])), None)
            else:
                notes = [problems.get(url) or f"its AIA caIssuers URL {url} served no certificate that issued it"
                         for url in urls if url in problems or url in by_url]
                entry.ca_issuer_note = "; ".join(notes) or None


def skip_ca_issuers(entries: list[Entry]) -> None:
    """With ``fetch_ca_issuers: false``: note the caIssuers URLs that were not downloaded."""
    for entry in entries:
        if needs_ca_issuer(entry):
            urls = [u for u in certificates.ca_issuer_urls(entry.cert) if u.lower().startswith(("http://", "https://"))]
            if urls:
                entry.ca_issuer_note = (f"fetch_ca_issuers is false, so its AIA caIssuers URL {urls[0]} was not "
                                        "downloaded (set fetch_ca_issuers: true to let the host fetch the issuer)")


def _issuer_not_found_detail(entry: Entry, issuer_name: str) -> str:
    """Why no issuer was found, each place looked at, and what to set."""
    if entry.issuer_option:
        option = f"the issuer option ({entry.issuer_option}) holds no certificate that issued it"
    else:
        option = "no issuer option was given"
    if entry.issuer_notes:
        option += ", the site's own issuer sources do not either (" + "; ".join(entry.issuer_notes) + ")"
    elif not (entry.issuer_files or entry.issuer_dirs):
        option += ", the site names no chain or CA file"
    if entry.ca_issuer_note:
        aia = entry.ca_issuer_note
    elif certificates.ca_issuer_urls(entry.cert):
        aia = ("its AIA caIssuers URLs (" + ", ".join(certificates.ca_issuer_urls(entry.cert))
               + ") are not http:// or https://, so the host cannot download them")
    else:
        aia = "it has no AIA caIssuers URL to download the issuer from"
    return (f"No issuer certificate for {entry.path} (issued by {issuer_name}): the file holds no matching "
            f"chain certificate, {option}, and {aia}. The web server cannot find it either, so it cannot "
            "staple for this site: put the intermediate into the certificate file (fullchain) or the "
            "site's chain file (SSLCertificateChainFile, ssl_trusted_certificate, certChain). Set issuer "
            "to the intermediate CA file to run this check meanwhile.")


def plan_requests(entries: list[Entry], per_certificate: bool = False, nonce: bool = False,
                  method: str = "POST") -> list[dict]:
    """One OCSP request per (responder, issuer), or per certificate; sets each entry's job_id."""
    jobs: list[dict] = []
    groups: dict[tuple, str] = {}
    for index, entry in enumerate(entries):
        if entry.responder_url is None or entry.issuer is None:
            continue
        key = (entry.responder_url, certificates.fingerprint(entry.issuer))
        if per_certificate:
            key += (index,)
        if key in groups:
            entry.job_id = groups[key]
            continue
        request = ocsp_wire.build_request(entry.cert, entry.issuer, nonce=nonce)
        entry.request_nonce = ocsp_wire.request_nonce(request) if nonce else None
        entry.job_id = groups[key] = f"ocsp{len(jobs)}"
        entry.representative = True
        jobs.append({"id": entry.job_id, "url": entry.responder_url, "method": method,
                     "body": base64.b64encode(request).decode("ascii")})
    return jobs


def _judge_attempt(attempt: dict, entry: Entry, now, skew: int) -> dict:
    verdict = {"ip_version": attempt.get("ip_version"), "address": attempt.get("address"),
               "http_status": attempt.get("http_status"), "latency_ms": attempt.get("latency_ms"),
               "timings": attempt.get("timings") or {}, "failure": attempt.get("failure"),
               "detail": attempt.get("detail") or "", "response_status": None, "cert_status": None,
               "this_update": None, "next_update": None, "signer": None, "warnings": []}
    if verdict["failure"]:
        return verdict
    der = base64.b64decode(attempt.get("response") or "")
    result = verify_response(der, entry.cert, entry.issuer, now=now, skew_seconds=skew,
                             request_nonce=entry.request_nonce)
    verdict.update(failure=result.failure, detail=result.detail,
                   response_status=result.response_status, this_update=result.this_update,
                   next_update=result.next_update, signer=result.signer)
    if result.failure is None:
        verdict["cert_status"] = result.cert_status
    content_type = (attempt.get("content_type") or "").split(";")[0].strip().lower()
    if content_type != "application/ocsp-response":
        # nginx refuses to staple an answer with any other Content-Type.
        verdict["warnings"].append(f"The responder sent Content-Type {content_type or '(none)'!r}, "
                                   "not application/ocsp-response: nginx will not staple it.")
    return verdict


#: Failures before a byte is exchanged: a web server then moves on to the responder name's
#: next address (mod_ssl's OCSP client loops over every address until a connect() succeeds;
#: nginx's tries the next address when one fails).
CONNECT_FAILURES = ("network_unreachable", "connection_refused")
FAMILY_NAMES = {"4": "IPv4", "6": "IPv6"}


def _moves_on(attempt: dict) -> bool:
    """Whether a web server would try the next address after this attempt's failure.

    A timeout counts only before the connection was accepted (no ``address`` yet): once a
    responder has accepted, mod_ssl waits for its answer and tries no other address.
    """
    if attempt["failure"] in CONNECT_FAILURES:
        return True
    return attempt["failure"] == "timeout" and not attempt.get("address")


def _family_detail(failed: list[dict], only_family: bool) -> str:
    """The failures of each family, each named, for ``ip_version: both``."""
    if only_family and len(failed) == 1:
        name = FAMILY_NAMES[failed[0]["ip_version"]]
        return f"Over {name}, the only address family the responder's name has on this host: {failed[0]['detail']}"
    return " ".join(f"Over {FAMILY_NAMES[a['ip_version']]}: {a['detail']}" for a in failed)


def _fallback_warning(attempt: dict, working: list[dict]) -> str:
    name = FAMILY_NAMES[attempt["ip_version"]]
    others = " and ".join(FAMILY_NAMES[a["ip_version"]] for a in working)
    warning = (f"{name} to this responder is broken from this host ({attempt['failure']}): {attempt['detail']} "
               f"It answers correctly over {others}, and web servers move on to the next address when one cannot "
               f"connect, so stapling works; fix {name} on this host (routing, firewall) so it does not depend on "
               f"that fallback.")
    if attempt["failure"] == "timeout":
        warning += (f" Apache waits up to SSLStaplingResponderTimeout on each {name} address it tries first, inside "
                    f"the TLS handshake that fetches the staple, so those handshakes stall that long.")
    return warning


def _rollup(attempts: list[dict]) -> dict:
    """One verdict from the attempts of each address family (``ip_version: both``).

    A web server resolves the responder's name once and tries its addresses in turn, so a
    family that cannot even connect (broken IPv6, the usual case) does not stop stapling
    while another family answers correctly: the responder is reachable, with a warning
    naming the broken family. A family that connects and then answers wrongly is used as
    it is (neither server tries another address then), so it makes the responder
    unreachable. A family whose lookup failed while another family's succeeded is one the
    name has no address in (an IPv6-only responder has no A record): it is marked
    ``no_address`` and not counted, as the web server never sees such an address.
    """
    per_family = len([a for a in attempts if a["ip_version"] in FAMILY_NAMES]) > 1
    resolved = any(a["failure"] != "dns_failure" for a in attempts)
    for attempt in attempts:
        attempt["no_address"] = per_family and resolved and attempt["failure"] == "dns_failure"
    counted = [a for a in attempts if not a["no_address"]]
    working = [a for a in counted if not a["failure"]]
    failed = [a for a in counted if a["failure"]]
    fatal = [a for a in failed if not (working and _moves_on(a))]
    primary = working[0] if working else counted[0]
    warnings = {w for a in attempts for w in a["warnings"]}
    if fatal:
        failure = fatal[0]["failure"]
        detail = _family_detail(fatal, len(counted) < len(attempts)) if per_family else fatal[0]["detail"]
    else:
        failure, detail = None, ""
        warnings.update(_fallback_warning(a, working) for a in failed)
    return {"reachable": not fatal, "failure": failure, "detail": detail,
            "response_status": primary["response_status"], "cert_status": primary["cert_status"],
            "this_update": primary["this_update"], "next_update": primary["next_update"],
            "latency_ms": primary["latency_ms"], "address": primary["address"],
            "ip_version": primary["ip_version"], "signer": primary["signer"],
            "warnings": sorted(warnings), "attempts": attempts}


def judge(entries: list[Entry], results: list[dict], now: dt.datetime | None = None,
          skew: int = 300) -> dict:
    """Per-certificate results, per-responder verdicts and ``all_reachable``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    by_job: dict[str, list[dict]] = {}
    for result in results:
        by_job.setdefault(result["id"], []).append(result)
    representatives = {e.job_id: e for e in entries if e.representative}
    verdicts = {job_id: _rollup([_judge_attempt(a, representatives[job_id], now, skew) for a in attempts])
                for job_id, attempts in by_job.items() if job_id in representatives}

    out, responders = [], {}
    for entry in entries:
        info = certificates.describe(entry.cert)
        record = {"path": entry.path, "subject": info["subject"], "serial": info["serial"],
                  "issuer": info["issuer"], "not_after": info["not_after"],
                  "ocsp_urls": info["ocsp_urls"], "must_staple": info["must_staple"],
                  "responder_url": entry.responder_url, "issuer_source": entry.issuer_source,
                  "issuer_path": entry.issuer_path,
                  "checked_by": None, "reachable": None, "cert_status": None, "response_status": None,
                  "failure": None, "detail": "", "this_update": None, "next_update": None,
                  "latency_ms": None, "address": None, "ip_version": None, "attempts": [],
                  "warnings": []}
        if entry.responder_url is None:
            record["failure"] = "no_ocsp_url"
            record["detail"] = (f"{entry.path} has no OCSP URL (AIA extension), so there is nothing to "
                                "staple; web servers skip stapling for it. Many CAs stopped including "
                                "one in 2025.")
        elif entry.issuer is None:
            record["failure"] = "issuer_not_found"
            record["detail"] = _issuer_not_found_detail(entry, info["issuer"])
        else:
            verdict = verdicts.get(entry.job_id)
            representative = representatives.get(entry.job_id)
            if verdict is not None:
                record.update({k: v for k, v in verdict.items() if k in record})
                if representative is not entry:
                    # Only the certificate actually asked about has a status of its own.
                    record["checked_by"] = representative.path
                    record["cert_status"] = None
                group = responders.setdefault(entry.responder_url, {
                    "url": entry.responder_url, "reachable": True, "failure": None, "detail": "",
                    "certificates": [], "attempts": []})
                group["certificates"].append(entry.path)
                if representative is entry:
                    group["attempts"].extend(verdict["attempts"])
                    if not verdict["reachable"] and group["reachable"]:
                        group.update(reachable=False, failure=verdict["failure"], detail=verdict["detail"])
        out.append(record)
    for group in responders.values():
        latencies = [a["latency_ms"] for a in group["attempts"] if not a["failure"] and a["latency_ms"] is not None]
        group["latency_ms"] = max(latencies) if latencies else None
        group["addresses"] = sorted({a["address"] for a in group["attempts"] if a["address"]})
    responder_list = list(responders.values())
    unchecked = [r for r in out if r["failure"] == "issuer_not_found"]
    return {"certificates": out, "responders": responder_list,
            "all_reachable": all(r["reachable"] for r in responder_list) and not unchecked}
