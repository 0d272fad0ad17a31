"""The relay's reading of an OCSP GET path (protect/relay.get_request_der)."""
from __future__ import annotations

import base64
import urllib.parse

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.relay import get_request_der

# A DER SEQUENCE whose base64 holds '/' and '+' (the bytes are chosen for it).
REQUEST = bytes([0x30, 0x0B, 0xFB, 0xFF, 0xBF, 0x3E, 0x3E, 0xFF, 0x00, 0xFF, 0x00, 0x01, 0x02])
B64 = base64.b64encode(REQUEST).decode()


def test_the_sample_has_the_characters_that_matter():
    assert "/" in B64 and "+" in B64


@pytest.mark.parametrize("path", [
    "/" + urllib.parse.quote(B64, safe=""),            # RFC 6960: URL-encoded
    "/" + B64,                                          # as some clients send it: '/' left in the path
    "/ocsp/" + urllib.parse.quote(B64, safe=""),       # behind a path prefix
    "/ocsp/" + B64,
    "/" + B64.rstrip("=") + "?x=1",                     # padding dropped, a query string
])
def test_the_request_is_read_however_the_client_writes_the_path(path):
    assert get_request_der(path) == REQUEST


@pytest.mark.parametrize("path", ["/", "/-/statex", "/%%%", "/bm90IGRlcg=="])
def test_anything_else_is_no_request(path):
    assert get_request_der(path) == b""
