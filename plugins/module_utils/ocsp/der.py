# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal, bounded DER reader and the certificate fields the host side needs.

Standard library only: the host-side modules (the nginx plan, the Must-Staple guard, the
keeper's relay) read certificates and OCSP requests on the web server, where there is no
``cryptography``. :func:`read_tlv` and :func:`children` never read past the data they are
given and raise :class:`DERError` for anything truncated or malformed;
:func:`certificate_info` reads the issuer and subject (as DER), the common name, the OCSP
URLs (AIA) and OCSP Must-Staple (TLS Feature ``status_request``) of one PEM certificate.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any

SEQUENCE, OCTET_STRING, INTEGER, OID = 0x30, 0x04, 0x02, 0x06
EXPLICIT_VERSION, EXTENSIONS = 0xA0, 0xA3
_OID_AIA = bytes.fromhex("2b06010505070101")
_OID_TLSFEATURE = bytes.fromhex("2b06010505070118")
_OID_OCSP = bytes.fromhex("2b06010505073001")
_OID_CN = bytes.fromhex("550403")
_URI = 0x86
_STATUS_REQUEST = 5
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+.+?-----END CERTIFICATE-----", re.DOTALL)


class DERError(ValueError):
    """The bytes are not the DER this reader expects; the message says where."""


def read_tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the element at ``offset``."""
    if offset + 2 > len(data):
        raise DERError(f"truncated DER at byte {offset}")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DERError(f"multi-byte DER tags are not used here (byte {offset})")
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise DERError(f"unsupported DER length encoding at byte {offset}")
        if start + count > len(data):
            raise DERError(f"truncated DER length at byte {offset}")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise DERError(f"DER element at byte {offset} claims {length} bytes, only {len(data) - start} left")
    return tag, start, end


def children(data: bytes, start: int, end: int, limit: int | None = None) -> list[tuple[int, int, int, int]]:
    """The elements inside a constructed element's contents: (tag, start, end, element offset)."""
    items = []
    offset = start
    while offset < end:
        tag, cstart, cend = read_tlv(data, offset)
        items.append((tag, cstart, cend, offset))
        offset = cend
        if limit is not None and len(items) > limit:
            raise DERError(f"more than {limit} elements where a few are expected")
    if offset != end:
        raise DERError("DER element overruns its parent")
    return items


def oid_text(raw: bytes) -> str:
    """Dotted text of an OID's contents."""
    if not raw:
        raise DERError("empty OID")
    parts = [raw[0] // 40, raw[0] % 40] if raw[0] < 80 else [2, raw[0] - 80]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(part) for part in parts)


def pem_blocks(data: bytes) -> list[bytes]:
    """Every PEM certificate in ``data``, each with a final newline (keys and other blocks skipped)."""
    return [match.group(0) + b"\n" for match in _PEM.finditer(data)]


def pem_to_der(pem: bytes) -> bytes:
    body = b"".join(line.strip() for line in pem.splitlines() if line and not line.startswith(b"-----"))
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DERError(f"a PEM certificate's body is not base64 ({exc})") from None


def read_chain(path: str) -> list[bytes]:
    """The PEM certificates of a file, in order."""
    with open(path, "rb") as handle:
        return pem_blocks(handle.read())


def certificate_info(pem: bytes) -> dict[str, Any]:
    """Issuer and subject (DER), common name, OCSP URLs and Must-Staple of one PEM certificate."""
    der = pem_to_der(pem)
    _tag, start, end = read_tlv(der, 0)
    parts = children(der, start, end)
    if not parts or parts[0][0] != SEQUENCE:
        raise DERError("a certificate starts with its TBSCertificate SEQUENCE")
    fields = children(der, parts[0][1], parts[0][2])
    if fields and fields[0][0] == EXPLICIT_VERSION:
        fields = fields[1:]
    if len(fields) < 5:
        raise DERError("the TBSCertificate has fewer fields than serial, algorithm, issuer, validity, subject")
    issuer, subject = fields[2], fields[4]
    info: dict[str, Any] = {"issuer": der[issuer[3]:issuer[2]], "subject": der[subject[3]:subject[2]],
                            "common_name": None, "ocsp_urls": [], "must_staple": False}
    for rdn in children(der, subject[1], subject[2]):
        for attribute in children(der, rdn[1], rdn[2]):
            pair = children(der, attribute[1], attribute[2])
            if len(pair) == 2 and der[pair[0][1]:pair[0][2]] == _OID_CN:
                info["common_name"] = der[pair[1][1]:pair[1][2]].decode("utf-8", "replace")
    for tag, cstart, cend, _offset in fields:
        if tag == EXTENSIONS:
            _read_extensions(der, children(der, cstart, cend), info)
    return info


def _read_extensions(der: bytes, wrapper: list, info: dict[str, Any]) -> None:
    if not wrapper:
        return
    for ext in children(der, wrapper[0][1], wrapper[0][2]):
        parts = children(der, ext[1], ext[2])
        if len(parts) < 2:
            raise DERError("an extension has no value")
        oid, value = der[parts[0][1]:parts[0][2]], parts[-1]
        inner = children(der, value[1], value[2])
        if not inner:
            continue
        if oid == _OID_AIA:
            for access in children(der, inner[0][1], inner[0][2]):
                method_name = children(der, access[1], access[2])
                if len(method_name) >= 2 and der[method_name[0][1]:method_name[0][2]] == _OID_OCSP \
                        and method_name[1][0] == _URI:
                    info["ocsp_urls"].append(der[method_name[1][1]:method_name[1][2]].decode("ascii", "replace"))
        elif oid == _OID_TLSFEATURE:
            features = [int.from_bytes(der[item[1]:item[2]], "big") for item in children(der, inner[0][1], inner[0][2])]
            info["must_staple"] = _STATUS_REQUEST in features
