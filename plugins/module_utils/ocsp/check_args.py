# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument spec of ``ocsp_responder_check``, shared by the module and its action plugin.

Standard library only: the module file imports it, and module files may be shipped to hosts.
"""
from __future__ import annotations

ARGUMENT_SPEC = dict(
    certificates=dict(type="list", elements="raw", required=True),
    issuer=dict(type="path"),
    responder_url=dict(type="str"),
    proxy=dict(type="str"),
    timeout=dict(type="float", default=5),
    ip_version=dict(type="str", choices=["any", "4", "6", "both"], default="any"),
    concurrency=dict(type="int", default=8),
    per_certificate=dict(type="bool", default=False),
    method=dict(type="str", choices=["POST", "GET"], default="POST"),
    nonce=dict(type="bool", default=False),
    clock_skew=dict(type="int", default=300),
    fetch_ca_issuers=dict(type="bool", default=True),
)
