#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ocsp_responder_check
short_description: Check that a web server can reach its certificates' OCSP responders
description:
  - For each certificate file on the managed host, finds its issuer and its OCSP responder URL,
    sends a real OCSP request B(from the managed host) and verifies the answer B(on the controller) -
    signature by the issuer or a delegated OCSP signer the issuer certified with id-kp-OCSPSigning,
    matching CertID, and a current thisUpdate / nextUpdate window.
  - Tells apart the causes of a stapling outage - DNS, refused or unreachable connections (IPv4 and
    IPv6 separately), timeouts, HTTP errors, C(tryLater) and other responder errors, bad signatures,
    stale answers - so the runbook can decide whether to turn stapling off.
  - The managed host needs only the Python standard library; the network I/O runs there through
    M(ocsp.stapling.ocsp_fetch). The controller needs the C(cryptography) Python package.
  - Private keys in cPanel C(combined) files are removed on the host and never reach the controller.
  - Read-only; C(changed) is always false.
version_added: 0.1.0
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: The check only reads files and sends OCSP requests, which change nothing; it runs fully in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: The host side needs only the Python standard library.
  action:
    support: full
    description: An action plugin does the cryptography on the controller and runs M(ocsp.stapling.ocsp_fetch) on the host.
requirements:
  - cryptography >= 41 on the controller (not on the managed host)
options:
  certificates:
    description:
      - Paths on the managed host of the certificates to check. Each file may hold the leaf alone,
        the leaf followed by its chain (C(fullchain.pem)) or a cPanel C(combined) file (key, leaf, chain).
      - The first certificate in each file is the one checked.
      - An element is either a path or a dict with C(path) and the places the web server itself looks
        for the issuer of that certificate, in its order - C(issuer_files), a list of PEM files
        (Apache's C(SSLCertificateChainFile) and C(SSLCACertificateFile), nginx's C(ssl_trusted_certificate),
        LiteSpeed's C(certChain) and C(CACertFile)), and C(issuer_dirs), a list of CA directories
        (Apache's C(SSLCACertificatePath), LiteSpeed's C(CACertPath)), where the C(<hash>.N) links
        named after the issuer are read, or every C(*.pem) / C(*.crt) / C(*.cer) file when the
        directory has no such links. The C(sites) of M(ocsp.stapling.stapling_facts) carry these lists.
      - The issuer is looked for in the certificate file's own chain first, then in O(issuer), then in the
        element's C(issuer_files) and C(issuer_dirs), then (see O(fetch_ca_issuers)) at the AIA caIssuers URL.
        A per-certificate issuer file or directory that cannot be read does not fail the task; it is named
        in that certificate's C(issuer_not_found) detail.
    type: list
    elements: raw
    required: true
  issuer:
    description:
      - Path on the managed host of the issuer (intermediate CA) certificate, or a chain file holding it,
        for certificate files that hold no chain (as Apache's C(SSLCertificateChainFile) or nginx's
        C(ssl_trusted_certificate) point at).
      - Without it the issuer is looked up in the certificate's own file and the certificate's own
        C(issuer_files) / C(issuer_dirs), then downloaded from the certificate's AIA caIssuers URL by the
        host (see O(fetch_ca_issuers)).
    type: path
  responder_url:
    description:
      - Ask this responder instead of the certificates' AIA OCSP URL, as Apache's
        C(SSLStaplingForceURL) and nginx's C(ssl_stapling_responder) do.
      - Without it the first AIA OCSP URL is used, the one Apache and nginx use.
    type: str
  proxy:
    description:
      - An HTTP proxy, C(http://host:port), to reach the responder through, as Apache's C(SSLOCSPProxyURL).
    type: str
  timeout:
    description:
      - Seconds one exchange may take in total (name resolution, connection, request and answer).
        A responder that accepts and never answers costs this long and no more.
    type: float
    default: 5
  ip_version:
    description:
      - C(any) connects as the host's resolver and routing decide; C(4) or C(6) use only that address family.
      - C(both) tests IPv4 and IPv6 separately and reports each attempt. A web server resolves the responder's
        name once and tries its addresses in turn (mod_ssl and nginx move on when a connection cannot be made), so a
        family that cannot connect (broken IPv6, the usual case) beside one that answers correctly leaves the
        responder reachable, with a warning naming the broken family; a family that connects and answers wrongly
        makes it unreachable. A family the name has no address in (an IPv6-only responder has no A record) is
        marked C(no_address) and not counted; when the only family it has fails, the detail says so.
    type: str
    choices: ['any', '4', '6', 'both']
    default: any
  concurrency:
    description: How many OCSP exchanges run at once.
    type: int
    default: 8
  per_certificate:
    description:
      - By default one request per (responder, issuer) pair is sent, which is enough to prove reachability;
        certificates sharing it report RV(certificates[].checked_by) and no RV(certificates[].cert_status) of their own.
      - When true, every certificate is asked about (concurrently) and gets its own status.
    type: bool
    default: false
  method:
    description:
      - C(POST), as Apache's mod_ssl asks, or C(GET) with the request in the URL (RFC 6960 A.1), as nginx asks.
    type: str
    choices: [POST, GET]
    default: POST
  nonce:
    description:
      - Send a random nonce and require the responder to echo it if it echoes one at all.
        Most CA responders serve pre-signed answers and ignore nonces, like the web servers do.
    type: bool
    default: false
  clock_skew:
    description:
      - Seconds of clock difference tolerated on thisUpdate (not in the future) and nextUpdate (not past).
    type: int
    default: 300
  fetch_ca_issuers:
    description:
      - When no issuer is found in the certificate file, O(issuer) or the certificate's own issuer files and
        directories, let the host download the
        certificate's AIA caIssuers URL (plain HTTP GET, same O(timeout) and O(proxy)).
    type: bool
    default: true
seealso:
  - module: ocsp.stapling.ocsp_fetch
  - name: RFC 6960, X.509 Internet PKI Online Certificate Status Protocol
    description: The OCSP request, response and signature rules this module applies.
    link: https://www.rfc-editor.org/rfc/rfc6960
"""

EXAMPLES = r"""
- name: Can this web server reach the OCSP responders of its sites?
  ocsp.stapling.ocsp_responder_check:
    certificates:
      - /etc/letsencrypt/live/www.example.com/fullchain.pem
      - /etc/ssl/certs/shop.example.com.pem
    issuer: /etc/ssl/certs/intermediate.pem
    ip_version: both
    timeout: 3
  register: ocsp_check

- name: Stop here when a responder is down
  ansible.builtin.assert:
    that: ocsp_check.all_reachable
    fail_msg: >-
      {{ ocsp_check.responders | rejectattr('reachable') | map(attribute='url') | join(', ') }}
      unreachable: {{ ocsp_check.responders | rejectattr('reachable') | map(attribute='detail') | join(' ') }}

- name: Check every cPanel certificate, each with its own status, through the outbound proxy
  ocsp.stapling.ocsp_responder_check:
    certificates: "{{ cpanel_combined_files }}"
    per_certificate: true
    proxy: http://proxy.internal:3128
    concurrency: 16

- name: Check each site's certificate with the issuer sources its web server uses
  ocsp.stapling.ocsp_responder_check:
    certificates:
      - path: /etc/ssl/certs/ssl-cert-snakeoil.pem
        issuer_files: [/etc/apache2/ssl.crt/server-ca.crt]
        issuer_dirs: [/etc/apache2/ssl.crt/]
      - /etc/letsencrypt/live/www.example.com/fullchain.pem

- name: Ask the responder Apache is forced to use, the way nginx asks (GET)
  ocsp.stapling.ocsp_responder_check:
    certificates: [/etc/nginx/tls/site.crt]
    issuer: /etc/nginx/tls/chain.pem
    responder_url: http://ocsp.internal.example:8080/
    method: GET
"""

RETURN = r"""
certificates:
  description: One entry per certificate file, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file on the managed host.
      type: str
      sample: /etc/ssl/certs/www.example.com.pem
    subject:
      description: The certificate's subject (RFC 4514).
      type: str
      sample: CN=www.example.com
    serial:
      description: The serial number, upper-case hex.
      type: str
      sample: 04A1B2C3D4E5F6
    issuer:
      description: The certificate's issuer name (RFC 4514).
      type: str
    not_after:
      description: When the certificate expires (ISO 8601).
      type: str
    ocsp_urls:
      description: The AIA OCSP URLs in the certificate; empty when it has none.
      type: list
      elements: str
    must_staple:
      description: Whether the certificate carries OCSP Must-Staple. Never disable stapling for such a certificate.
      type: bool
    responder_url:
      description: The responder asked (O(responder_url) or the first AIA OCSP URL); null without one.
      type: str
    issuer_source:
      description:
        - Where the issuer was found - C(chain) (same file), C(issuer_file) (O(issuer)), C(issuer_files) or
          C(issuer_dirs) (the certificate's own sources) or C(aia); null when not found.
        - C(aia) means the web server, which does not download issuers, cannot staple for this certificate.
      type: str
    issuer_path:
      description: The file (or, for C(aia), the URL) the issuer came from; null when not found.
      type: str
    checked_by:
      description: When another certificate's request proved this responder, that certificate's path.
      type: str
    reachable:
      description:
        - True when the responder answered with a successful, correctly signed, current OCSP response, over
          every address family tried except those that could not even connect while another one answered
          (see O(ip_version)) - what the web server needs to staple. Null when not tried.
      type: bool
    cert_status:
      description: C(good), C(revoked) or C(unknown) from a verified answer about this certificate; null otherwise.
      type: str
    response_status:
      description: The OCSP responseStatus (C(successful), C(tryLater), C(internalError), C(unauthorized), ...).
      type: str
    failure:
      description:
        - Null when reachable, else the first failure - C(no_ocsp_url), C(dns_failure), C(connection_refused),
          C(network_unreachable), C(timeout), C(tls_error), C(http_error), C(malformed_response),
          C(responder_error), C(signature_invalid), C(certid_mismatch), C(stale_response), C(issuer_not_found).
      type: str
    detail:
      description: A sentence explaining the failure or the verdict.
      type: str
    this_update:
      description: The response's thisUpdate (ISO 8601).
      type: str
    next_update:
      description: The response's nextUpdate (ISO 8601); null when absent.
      type: str
    latency_ms:
      description: Milliseconds the exchange took.
      type: float
    address:
      description: The IP address the host actually connected to (the proxy's when O(proxy) is set).
      type: str
    ip_version:
      description: The address family of that attempt (C(any), C(4) or C(6)).
      type: str
    attempts:
      description:
        - One entry per address family tried, with C(ip_version), C(address), C(failure), C(detail), C(latency_ms), C(timings)
          and C(no_address) (true for a family the responder's name has no address in, with O(ip_version=both)).
      type: list
      elements: dict
    warnings:
      description:
        - Problems that do not stop Apache from stapling, such as a Content-Type nginx rejects, or an address family
          that cannot connect while another answers (broken IPv6).
      type: list
      elements: str
responders:
  description: One rolled-up verdict per responder URL asked.
  returned: always
  type: list
  elements: dict
  contains:
    url:
      description: The responder URL.
      type: str
    reachable:
      description: True when every request to it was answered correctly.
      type: bool
    failure:
      description: The first failure seen, as in RV(certificates[].failure).
      type: str
    detail:
      description: A sentence explaining that failure.
      type: str
    certificates:
      description: Paths of the certificates this verdict covers.
      type: list
      elements: str
    latency_ms:
      description: The slowest successful exchange, in milliseconds.
      type: float
    addresses:
      description: The IP addresses used.
      type: list
      elements: str
    attempts:
      description: Every exchange with this responder, as in RV(certificates[].attempts).
      type: list
      elements: dict
all_reachable:
  description:
    - True when every responder asked answered correctly and no certificate with an OCSP URL was left unchecked
      for want of its issuer. Certificates without an OCSP URL do not count.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.check_args import ARGUMENT_SPEC


def main() -> None:
    # The work is done by the action plugin of the same name; this file carries the
    # documentation and the argument spec. Reaching main() means the module was run
    # without its action plugin (e.g. copied out of the collection).
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="ocsp.stapling.ocsp_responder_check must run through its action plugin: call it "
                         "by its full name (ocsp.stapling.ocsp_responder_check) from a playbook or "
                         "ansible ad-hoc command with the ocsp.stapling collection installed.")


if __name__ == "__main__":
    main()
