#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ocsp_fetch
short_description: Read certificate files and talk HTTP to OCSP responders from the managed host
description:
  - The host-side half of M(ocsp.stapling.ocsp_responder_check). It uses only the Python
    standard library, so it runs on web servers that have no C(cryptography) package.
  - Reads certificate files and returns their bytes (base64) with any PEM private key
    blocks removed, so keys in cPanel C(combined) files never leave the host.
  - Sends given requests (raw bytes, base64) to given URLs over HTTP POST or GET and returns
    the raw answers, HTTP status, timings, the address used and a classified network failure.
  - It never parses OCSP; the controller builds requests and verifies answers.
    Use M(ocsp.stapling.ocsp_responder_check) rather than this module directly.
version_added: 0.1.0
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: The module only reads files and sends read-only HTTP requests, in check mode too.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: The host side needs only the Python standard library.
options:
  paths:
    description:
      - Files to read on the host (PEM, DER, chain or cPanel C(combined) files).
    type: list
    elements: path
    default: []
  requests:
    description:
      - HTTP exchanges to perform.
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: An identifier copied to the result.
        type: str
        required: true
      url:
        description: The C(http://) or C(https://) URL.
        type: str
        required: true
      body:
        description:
          - The request body, base64. Omit for a plain GET (AIA caIssuers downloads).
        type: str
      method:
        description:
          - C(POST) sends the body as C(application/ocsp-request) (as Apache does);
            C(GET) appends it base64 to the URL (RFC 6960 A.1, as nginx does).
        type: str
        choices: [POST, GET]
        default: POST
  timeout:
    description: Seconds one exchange may take in total (resolution, connection, answer).
    type: float
    default: 5
  ip_version:
    description:
      - C(any) uses whatever the resolver returns, C(4) or C(6) only that family,
        C(both) tests IPv4 and IPv6 separately (one result each).
    type: str
    choices: ['any', '4', '6', 'both']
    default: any
  proxy:
    description: An HTTP proxy, C(http://host:port), as Apache's C(SSLOCSPProxyURL).
    type: str
  concurrency:
    description: How many exchanges run at once.
    type: int
    default: 8
  max_response_bytes:
    description: Answers larger than this are refused as C(http_error).
    type: int
    default: 262144
"""

EXAMPLES = r"""
- name: Read a cPanel combined certificate file (the private key is stripped on the host)
  ocsp.stapling.ocsp_fetch:
    paths:
      - /var/cpanel/ssl/apache_tls/www.example.com/combined
  register: files

- name: Ask a responder (the body is a DER OCSP request, base64)
  ocsp.stapling.ocsp_fetch:
    requests:
      - id: r1
        url: http://r3.o.lencr.org
        body: "{{ ocsp_request_b64 }}"
    ip_version: both
    timeout: 3
"""

RETURN = r"""
files:
  description: One entry per path, in order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path as given.
      type: str
    content:
      description: The file's bytes, base64, with PEM private key blocks removed; null on error.
      type: str
    size:
      description: The file's size in bytes.
      type: int
    error:
      description: Why the file could not be read, and what to do; null when it was read.
      type: str
results:
  description: One entry per request and address family.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The request's id.
      type: str
    url:
      description: The URL asked.
      type: str
    ip_version:
      description: The address family used (C(any), C(4) or C(6)).
      type: str
    address:
      description: The IP address connected to (the proxy's when a proxy is used).
      type: str
    http_status:
      description: The HTTP status code, null when no answer arrived.
      type: int
    content_type:
      description: The answer's Content-Type header.
      type: str
    response:
      description: The answer body, base64.
      type: str
    latency_ms:
      description: Milliseconds from start to the complete answer or the failure.
      type: float
    timings:
      description: Milliseconds spent resolving (C(dns_ms)), connecting (C(connect_ms)) and exchanging (C(exchange_ms)).
      type: dict
    failure:
      description:
        - null, or one of C(dns_failure), C(connection_refused), C(network_unreachable),
          C(timeout), C(tls_error), C(http_error).
      type: str
    detail:
      description: A sentence saying what went wrong.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import fetch as ocsp_fetch


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", default=[]),
            requests=dict(type="list", elements="dict", default=[], options=dict(
                id=dict(type="str", required=True),
                url=dict(type="str", required=True),
                body=dict(type="str"),
                method=dict(type="str", choices=["POST", "GET"], default="POST"),
            )),
            timeout=dict(type="float", default=5),
            ip_version=dict(type="str", choices=list(ocsp_fetch.IP_VERSIONS), default="any"),
            proxy=dict(type="str"),
            concurrency=dict(type="int", default=8),
            max_response_bytes=dict(type="int", default=ocsp_fetch.DEFAULT_MAX_BYTES),
        ),
        supports_check_mode=True,
    )
    params = module.params
    files = [ocsp_fetch.read_file(path) for path in params["paths"]]
    results = ocsp_fetch.fetch_many(params["requests"], timeout=params["timeout"],
                                    ip_version=params["ip_version"], proxy=params["proxy"],
                                    concurrency=params["concurrency"],
                                    max_bytes=params["max_response_bytes"])
    module.exit_json(changed=False, files=files, results=results)


if __name__ == "__main__":
    main()
