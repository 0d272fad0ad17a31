# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CertIDs in a DER OCSP request (RFC 6960 4.1.1), read with a minimal DER walk.

Standard library only: the relay runs on the web server. It needs nothing but the
CertID of each request to find the held response, so this reads exactly that::

    OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT ... OPTIONAL }
    TBSRequest  ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, requestorName [1] EXPLICIT OPTIONAL,
                               requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT OPTIONAL }
    Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT OPTIONAL }
    CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
                               issuerKeyHash OCTET STRING, serialNumber INTEGER }

A CertID is returned as its hex key ``<hash OID>/<name hash>/<key hash>/<serial>``: two
requests for the same certificate made with the same hash algorithm have the same key.
"""
from __future__ import annotations

import functools

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.der import (
    INTEGER, OCTET_STRING, OID, SEQUENCE, DERError, children, oid_text, read_tlv)

MAX_DEPTH_ITEMS = 64


class CertIDError(DERError):
    """The bytes are not a DER OCSP request this reader understands."""


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    return children(data, start, end, limit=MAX_DEPTH_ITEMS)


def parse_certid(data: bytes, start: int, end: int) -> dict:
    """One CertID's fields from its SEQUENCE contents."""
    fields = _children(data, start, end)
    if len(fields) != 4 or fields[0][0] != SEQUENCE or fields[1][0] != OCTET_STRING \
            or fields[2][0] != OCTET_STRING or fields[3][0] != INTEGER:
        raise CertIDError("a CertID must hold AlgorithmIdentifier, two OCTET STRINGs and an INTEGER")
    algorithm = _children(data, fields[0][1], fields[0][2])
    if not algorithm or algorithm[0][0] != OID:
        raise CertIDError("the CertID's hash algorithm has no OID")
    serial = data[fields[3][1]:fields[3][2]]
    # DER INTEGERs carry a leading 00 when the high bit is set; the key uses the magnitude.
    serial = serial.lstrip(b"\x00") or b"\x00"
    return {"hash_oid": oid_text(data[algorithm[0][1]:algorithm[0][2]]),
            "issuer_name_hash": data[fields[1][1]:fields[1][2]].hex(),
            "issuer_key_hash": data[fields[2][1]:fields[2][2]].hex(),
            "serial": serial.hex()}


def certid_key(certid: dict) -> str:
    return "/".join((certid["hash_oid"], certid["issuer_name_hash"], certid["issuer_key_hash"], certid["serial"]))


def _certid_errors(function):
    """Any malformed DER met on the way is a :class:`CertIDError` to the caller."""
    @functools.wraps(function)
    def wrapped(der: bytes) -> list[dict]:
        try:
            return function(der)
        except CertIDError:
            raise
        except DERError as exc:
            raise CertIDError(str(exc)) from None
    return wrapped


@_certid_errors
def request_certids(request_der: bytes) -> list[dict]:
    """Every CertID in a DER OCSPRequest, in order; raises :class:`CertIDError`."""
    tag, start, end = read_tlv(request_der, 0)
    if tag != SEQUENCE or end != len(request_der):
        raise CertIDError("an OCSP request is one DER SEQUENCE")
    outer = _children(request_der, start, end)
    if not outer or outer[0][0] != SEQUENCE:
        raise CertIDError("the OCSP request has no TBSRequest")
    tbs = _children(request_der, outer[0][1], outer[0][2])
    lists = [item for item in tbs if item[0] == SEQUENCE]
    if not lists:
        raise CertIDError("the OCSP request has no requestList")
    certids = []
    for tag, rstart, rend, _offset in _children(request_der, lists[0][1], lists[0][2]):
        if tag != SEQUENCE:
            raise CertIDError("a requestList entry is not a SEQUENCE")
        inner = _children(request_der, rstart, rend)
        if not inner or inner[0][0] != SEQUENCE:
            raise CertIDError("a Request has no CertID")
        certids.append(parse_certid(request_der, inner[0][1], inner[0][2]))
    if not certids:
        raise CertIDError("the OCSP request asks about no certificate")
    return certids


@_certid_errors
def response_certids(response_der: bytes) -> list[dict]:
    """Every CertID a DER OCSPResponse answers for, in order; raises :class:`CertIDError`.

    ``OCSPResponse { responseStatus, responseBytes [0] { responseType, response OCTET
    STRING (BasicOCSPResponse { tbsResponseData { version [0]?, responderID [1]/[2],
    producedAt, responses SEQUENCE OF SingleResponse { certID, ... } ... } ... }) } }``.
    Nothing is verified here: this only says which certificate a stored response is for.
    """
    tag, start, end = read_tlv(response_der, 0)
    if tag != SEQUENCE or end != len(response_der):
        raise CertIDError("an OCSP response is one DER SEQUENCE")
    outer = _children(response_der, start, end)
    wrapped = [item for item in outer if item[0] == 0xA0]
    if not wrapped:
        raise CertIDError("the OCSP response carries no responseBytes (an error status)")
    response_bytes = _children(response_der, wrapped[0][1], wrapped[0][2])
    if not response_bytes or response_bytes[0][0] != SEQUENCE:
        raise CertIDError("the responseBytes are not a SEQUENCE")
    fields = _children(response_der, response_bytes[0][1], response_bytes[0][2])
    if len(fields) < 2 or fields[1][0] != OCTET_STRING:
        raise CertIDError("the responseBytes hold no response OCTET STRING")
    basic = response_der[fields[1][1]:fields[1][2]]
    tag, start, end = read_tlv(basic, 0)
    if tag != SEQUENCE:
        raise CertIDError("the BasicOCSPResponse is not a SEQUENCE")
    parts = _children(basic, start, end)
    if not parts or parts[0][0] != SEQUENCE:
        raise CertIDError("the BasicOCSPResponse has no tbsResponseData")
    data = [item for item in _children(basic, parts[0][1], parts[0][2]) if item[0] == SEQUENCE]
    if not data:
        raise CertIDError("the response data holds no responses")
    certids = []
    for tag, rstart, rend, _offset in _children(basic, data[0][1], data[0][2]):
        inner = _children(basic, rstart, rend) if tag == SEQUENCE else []
        if not inner or inner[0][0] != SEQUENCE:
            raise CertIDError("a SingleResponse has no CertID")
        certids.append(parse_certid(basic, inner[0][1], inner[0][2]))
    return certids
