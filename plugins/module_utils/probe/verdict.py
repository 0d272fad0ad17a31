# -*- coding: utf-8 -*-
# Copyright (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of ``stapling_status``: judge what one endpoint stapled (needs ``cryptography``).

Input is one endpoint as the host module reports it (:class:`tls_probe.ProbeResult` as a
dict: handshake outcome, served chain as PEM, the stapled DER response in base64).
Output adds the certificate summary, the parsed and verified staple and one verdict word:

==========================  ===========================================================
``good``                    a verified, current response saying good is stapled
``revoked``                 the stapled response says revoked (Apache staples it; nginx
                            with ssl_stapling_verify refuses to, so nginx shows ``missing``)
``unknown``                 the stapled response says the responder does not know the cert
``error_stapled``           an OCSP error (tryLater, internalError, ...) is being stapled:
                            Firefox and curl --cert-status fail the connection
``invalid``                 a response is stapled but its signature or CertID does not
                            check out against the served chain
``stale``                   the stapled response is past its nextUpdate (or not yet valid)
``missing``                 the certificate has an OCSP URL but nothing was stapled
``must_staple_missing``     a Must-Staple certificate served without a staple: broken for
                            Firefox users
``not_applicable``          the certificate has no OCSP URL: nothing to staple
``handshake_failed``        no TLS handshake (``error`` says why)
==========================  ===========================================================
"""
from __future__ import annotations

import base64
import datetime as dt

# Re-exported for the stapling_status action plugin, which reports a missing cryptography.
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.crypto import (  # noqa: F401  pylint: disable=unused-import
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
)

if HAS_CRYPTOGRAPHY:
    from cryptography import x509
    from cryptography.x509 import ocsp

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import certificates
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.verify import (
    DEFAULT_SKEW,
    RESPONSE_STATUS_NAMES,
    CERT_STATUS_NAMES,
    verify_response,
)

VERDICTS = ("good", "revoked", "unknown", "error_stapled", "invalid", "stale", "missing",
            "must_staple_missing", "not_applicable", "handshake_failed")
# Verdicts a scheduled check should page someone for.
PROBLEM_VERDICTS = ("revoked", "unknown", "error_stapled", "invalid", "stale", "missing",
                    "must_staple_missing", "handshake_failed")
_INVALID_FAILURES = ("signature_invalid", "certid_mismatch", "malformed_response")


def load_trust_bundle(data: bytes) -> list[x509.Certificate]:
    return certificates.load_certificates(data)


def _now(now: dt.datetime | None) -> dt.datetime:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def _enum_name(table: dict, value) -> str:
    """ocsp_verify's name for a cryptography enum member (its tables are keyed by member name)."""
    name = getattr(value, "name", str(value))
    return table.get(name, table.get(value, name))


def _unverified_status(der: bytes, cert: x509.Certificate) -> dict:
    """What a response says when nobody can check its signature (issuer not available)."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        return {"response_status": None, "failure": "malformed_response",
                "detail": f"The stapled bytes are not a DER OCSP response: {exc}."}
    status = _enum_name(RESPONSE_STATUS_NAMES, response.response_status)
    found = {"response_status": status}
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return found
    for single in response.responses:
        if single.serial_number == cert.serial_number:
            found.update(cert_status=_enum_name(CERT_STATUS_NAMES, single.certificate_status),
                         this_update=single.this_update_utc.isoformat(),
                         next_update=single.next_update_utc.isoformat() if single.next_update_utc else None,
                         produced_at=response.produced_at_utc.isoformat(),
                         revocation_time=(single.revocation_time_utc.isoformat()
                                          if single.revocation_time_utc else None))
            break
    return found


def chain_trust(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                roots: list[x509.Certificate], server_name: str | None,
                now: dt.datetime) -> tuple[bool, str | None]:
    """Does the served chain lead to one of ``roots`` and cover ``server_name``? (webpki rules)"""
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    if not roots:
        return False, "The trust bundle holds no certificate."
    builder = PolicyBuilder().store(Store(roots)).time(now)
    try:
        if server_name:
            builder.build_server_verifier(x509.DNSName(server_name)).verify(leaf, intermediates)
        else:
            builder.build_client_verifier().verify(leaf, intermediates)
    except (VerificationError, ValueError) as exc:
        return False, f"The served chain does not verify against the trust bundle: {exc}."
    return True, None


def judge(probe: dict, trust: list[x509.Certificate] | None = None, now: dt.datetime | None = None,
          skew_seconds: int = DEFAULT_SKEW) -> dict:
    """Judge one endpoint; returns the module's public per-endpoint result."""
    now = _now(now)
    result = {
        "host": probe.get("host"), "port": probe.get("port"), "server_name": probe.get("server_name"),
        "handshake_ok": bool(probe.get("handshake_ok")), "error": probe.get("error"),
        "error_detail": probe.get("error_detail"), "protocol": probe.get("protocol"),
        "cipher": probe.get("cipher"), "handshake_seconds": probe.get("handshake_seconds"),
        "warmup": probe.get("warmup"), **({"round": probe["round"]} if "round" in probe else {}),
        "certificate": None, "issuer": None,
        "chain_trusted": None, "chain_error": None,
        "stapled": bool(probe.get("stapled")), "staple": probe.get("staple"),
        "ocsp_response_status": None, "cert_status": None, "revocation_time": None,
        "this_update": None, "next_update": None, "produced_at": None, "seconds_until_expiry": None,
        "verified": False, "verify_failure": None, "verify_detail": None,
        "verdict": "handshake_failed", "message": "",
    }
    where = f"{result['host']}:{result['port']} ({result['server_name'] or 'no SNI'})"
    if not result["handshake_ok"]:
        result["message"] = probe.get("error_detail") or f"No TLS handshake with {where}."
        return result

    try:
        served = [c for pem in probe.get("chain") or [] for c in certificates.load_certificates(pem.encode())]
    except ValueError as exc:
        served = []
        result["error_detail"] = f"The served certificate could not be parsed: {exc}."
    if not served:
        result.update(handshake_ok=True, error="no_certificate", verdict="handshake_failed",
                      message=(f"{where} completed a handshake without a certificate this check "
                               "could read: " + (result["error_detail"] or "none was sent.")))
        return result
    leaf, intermediates = served[0], served[1:]
    cert = certificates.describe(leaf)
    result["certificate"] = cert
    issuer = certificates.find_issuer(leaf, intermediates + list(trust or []))
    result["issuer"] = issuer.subject.rfc4514_string() if issuer is not None else None
    if trust:
        result["chain_trusted"], result["chain_error"] = chain_trust(
            leaf, intermediates, list(trust), result["server_name"], now)

    if not result["stapled"]:
        return _judge_unstapled(result, cert, where)

    der = base64.b64decode(result["staple"] or "")
    if issuer is None:
        found = _unverified_status(der, leaf)
        result["verify_failure"] = found.pop("failure", None) or "issuer_not_found"
        detail = found.pop("detail", None)
        result["ocsp_response_status"] = found.pop("response_status", None)
        result.update(found)
        if detail is None:
            detail = (f"The issuer of {cert['subject']} ({cert['issuer']}) is neither in the served "
                      "chain nor in trust_bundle, so the staple's signature was not checked: the "
                      "server should send its intermediate, or pass trust_bundle.")
        result["verify_detail"] = detail
    else:
        checked = verify_response(der, leaf, issuer, now=now, skew_seconds=skew_seconds)
        result.update(ocsp_response_status=checked.response_status, cert_status=checked.cert_status,
                      revocation_time=checked.revocation_time, this_update=checked.this_update,
                      next_update=checked.next_update, produced_at=checked.produced_at)
        result["verified"] = bool(checked.signature_valid and checked.certid_match)
        result["verify_failure"] = checked.failure
        result["verify_detail"] = checked.detail
    if result["next_update"]:
        expiry = dt.datetime.fromisoformat(result["next_update"])
        result["seconds_until_expiry"] = int((expiry - now).total_seconds())
    return _judge_stapled(result, where)


def _judge_unstapled(result: dict, cert: dict, where: str) -> dict:
    warmed = result.get("warmup") is not None
    lazy = ("" if warmed else " nginx staples lazily (the first handshake after a start or reload "
            "carries nothing): run again with warmup: true before concluding.")
    if cert["must_staple"]:
        result["verdict"] = "must_staple_missing"
        result["message"] = (f"{where} serves the Must-Staple certificate {cert['subject']} without a "
                             "staple: Firefox and curl --cert-status refuse the connection. Never turn "
                             "stapling off for it; check the responder is reachable from this host "
                             "and that stapling is on for this site." + lazy)
    elif not cert["ocsp_urls"]:
        result["verdict"] = "not_applicable"
        result["message"] = (f"{cert['subject']} has no OCSP URL, so there is nothing to staple "
                             "(many CAs issue such certificates since 2025); stapling can be "
                             "left off for this site.")
    else:
        result["verdict"] = "missing"
        result["message"] = (f"{where} staples nothing although {cert['subject']} names the OCSP "
                             f"responder {cert['ocsp_urls'][0]}: stapling is off, the server cannot "
                             "reach the responder, or (nginx) it refuses a revoked or invalid "
                             "response; check the error log." + lazy)
    return result


def _judge_stapled(result: dict, where: str) -> dict:
    status, failure = result["ocsp_response_status"], result["verify_failure"]
    detail = result.get("verify_detail") or ""
    if status is None or failure == "malformed_response":
        result["verdict"] = "invalid"
        result["message"] = f"{where} staples something that is not an OCSP response. {detail}"
    elif status != "successful":
        result["verdict"] = "error_stapled"
        result["message"] = (f"{where} staples an OCSP {status} error instead of a response: Firefox "
                             "and curl --cert-status fail the connection. Apache caches this error "
                             "(up to SSLStaplingStandardCacheTimeout); once the responder answers "
                             "again, a graceful reload clears it; set SSLStaplingFakeTryLater off "
                             "to stop Apache stapling synthesized tryLater responses.")
    elif failure in _INVALID_FAILURES:
        result["verdict"] = "invalid"
        result["message"] = (f"{where} staples a response that does not check out against the "
                             f"served chain: {detail}")
    elif result["cert_status"] == "revoked":
        result["verdict"] = "revoked"
        result["message"] = (f"{where} staples a response saying {result['certificate']['subject']} "
                             f"was revoked at {result['revocation_time']}: replace the certificate.")
    elif failure == "stale_response":
        result["verdict"] = "stale"
        result["message"] = (f"{where} staples an out-of-date response: {detail} Apache keeps "
                             "stapling an expired response while it cannot reach the responder; "
                             "check the responder is reachable from this host.")
    elif result["cert_status"] == "good":
        result["verdict"] = "good"
        result["message"] = (f"{where} staples a good response valid until {result['next_update']}"
                             + ("." if result["verified"] else
                                f", not verified: {detail}"))
    else:
        result["verdict"] = "unknown"
        result["message"] = (f"{where} staples a response with status "
                             f"{result['cert_status'] or 'none for this certificate'}: the responder "
                             "does not know this certificate; check the issuer and responder URL.")
    return result


def summarize(results: list[dict]) -> dict:
    """Counts per verdict, and the endpoints that need attention."""
    counts = {verdict: 0 for verdict in VERDICTS}
    for item in results:
        counts[item["verdict"]] = counts.get(item["verdict"], 0) + 1
    problems = [f"{r['host']}:{r['port']} ({r['server_name'] or 'no SNI'}): {r['verdict']}"
                for r in results if r["verdict"] in PROBLEM_VERDICTS]
    return {"total": len(results), "verdicts": counts, "problems": problems}
