#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_status
short_description: Report what each TLS site actually staples right now
version_added: 0.1.0
description:
  - For each endpoint, runs one real TLS handshake that sends status_request and reports
    the certificate served, whether an OCSP response was stapled, what that response says,
    whether it verifies against the served chain, and a one-word RV(endpoints[].verdict).
  - The handshake runs B(on the managed host), with C(openssl s_client -status -msg) (the
    Python C(ssl) module cannot request or return stapled responses). The host is where
    sites bound to loopback or private addresses can be reached, and where the question
    "what does this server staple" is answered without a load balancer or firewall in the way.
  - The staple is judged B(on the controller) by the action plugin with the Python
    C(cryptography) package; the managed host needs only the Python standard library and
    the C(openssl) command line tool.
  - nginx staples lazily; the first handshake after a start or reload carries no staple.
    Use O(warmup=true) for nginx hosts. See the collection's C(docs/modules/stapling_status.md).
  - Read-only; never changes anything.
author:
  - ocsp.stapling contributors (!UNKNOWN)
options:
  endpoints:
    description:
      - The TLS endpoints to probe.
      - Required unless O(facts) is given; when both are given, both sets are probed.
    type: list
    elements: dict
    suboptions:
      host:
        description:
          - Address or name to connect to, as seen from the managed host.
        type: str
        required: true
      port:
        description:
          - TCP port.
        type: int
        default: 443
      server_name:
        description:
          - The name sent as SNI; picks the virtual host. Defaults to O(endpoints[].host)
            when that is a name; no SNI is sent for an address.
        type: str
  facts:
    description:
      - The C(ansible_facts.ocsp_stapling) dictionary returned by M(ocsp.stapling.stapling_facts).
      - Every TLS site in its C(sites) list is probed on each of its C(listen) addresses,
        with its first literal server name as SNI. Wildcard listen addresses are probed on
        loopback. Sites without a usable server name are listed in RV(skipped_sites).
    type: dict
  timeout:
    description:
      - Seconds allowed for each handshake, connection included.
      - Apache fetches the OCSP response inside the handshake, so a handshake to an Apache
        whose responder hangs takes up to C(SSLStaplingResponderTimeout) (default 10 s).
    type: float
    default: 15
  concurrency:
    description:
      - How many handshakes run at the same time.
    type: int
    default: 16
  tls_versions:
    description:
      - TLS versions the client offers; the server picks one of them.
      - Give a single version to test that version only.
    type: list
    elements: str
    choices: ['1.2', '1.3']
    default: ['1.2', '1.3']
  warmup:
    description:
      - Make one extra handshake before the measured one. nginx fetches a staple only
        when a handshake asks for it and sends nothing on that handshake, so without a
        warm-up a freshly started or reloaded nginx reports V(missing).
      - The warm-up result is returned in RV(endpoints[].warmup).
    type: bool
    default: false
  warmup_delay:
    description:
      - Seconds to wait after a warm-up handshake that carried no staple, for the
        server's background fetch to finish.
    type: float
    default: 0.5
  handshakes:
    description:
      - Handshakes per endpoint in each round, sent in parallel (O(endpoints) drops duplicates),
        so that they can reach different nginx workers. Each one is returned.
    type: int
    default: 1
  rounds:
    description:
      - Probe every endpoint up to this many times, O(round_delay) seconds apart, and return the
        handshakes of every round (RV(endpoints[].round)). A later round runs only while a server
        name of O(settle_names) has not stapled yet.
      - For nginx, which staples per worker and lets whichever worker wakes first accept a
        connection, so that one round can miss a worker that the next reaches.
    type: int
    default: 1
  round_delay:
    description: Seconds between two rounds.
    type: float
    default: 1
  settle_names:
    description:
      - The server names that must each have stapled in some round before the rounds stop
        early. Unset, every endpoint's; an empty list waits for none (one round).
    type: list
    elements: str
  trust_bundle:
    description:
      - PEM file B(on the controller) with the CA certificates to trust.
      - Used to find the issuer when a server does not send its intermediate (so the staple
        can still be verified), and to verify the served chain (RV(endpoints[].chain_trusted)).
    type: path
  keeper_state_dirs:
    description:
      - Directories of the protected-mode keeper's state files (C(<state_dir>/<name>.json)),
        read for RV(held_responses). Missing directories are skipped.
    type: list
    elements: path
    default: []
  md_store_dirs:
    description:
      - mod_md store directories (C(MDStoreDir)); the responses mod_md holds,
        C(<MDStoreDir>/ocsp/<group>/ocsp-<certid>.json), are read for RV(held_responses).
        Missing directories are skipped.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs normally in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Needs the C(openssl) command line tool on the managed host.
requirements:
  - C(openssl) command line tool (1.1.1 or later) on the managed host.
  - Python C(cryptography) on the controller.
notes:
  - Staples are per nginx worker; with several workers a warm-up handshake may reach a
    different worker than the measured one.
  - Apache answers O(timeout) late when its responder hangs; that delay is reported in
    RV(endpoints[].handshake_seconds).
seealso:
  - module: ocsp.stapling.stapling_facts
"""

EXAMPLES = r"""
- name: What do the sites on this host staple?
  ocsp.stapling.stapling_status:
    endpoints:
      - host: 127.0.0.1
        port: 443
        server_name: www.example.com
      - host: 127.0.0.1
        server_name: shop.example.com
  register: stapling

- name: Probe every site stapling_facts found, warming nginx up first
  block:
    - name: Read the web server configuration
      ocsp.stapling.stapling_facts:

    - name: Handshake with every TLS site
      ocsp.stapling.stapling_status:
        facts: "{{ ansible_facts.ocsp_stapling }}"
        warmup: true
        concurrency: 32
      register: stapling

- name: Fail when a Must-Staple site is served without a staple
  ansible.builtin.assert:
    that: stapling.summary.verdicts.must_staple_missing == 0
    fail_msg: "{{ stapling.summary.problems }}"
"""

RETURN = r"""
endpoints:
  description: One entry per endpoint probed, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    host: {description: Address connected to., type: str, returned: always}
    port: {description: Port connected to., type: int, returned: always}
    server_name: {description: SNI sent (null when none)., type: str, returned: always}
    handshake_ok: {description: Whether a TLS handshake completed., type: bool, returned: always}
    error:
      description:
        - Why no handshake completed. One of V(connection_refused), V(timeout), V(unreachable),
          V(name_resolution), V(not_tls), V(handshake_failed), V(openssl_failed), V(no_certificate).
      type: str
      returned: always
    error_detail: {description: What was found and what to check next., type: str, returned: always}
    protocol: {description: Negotiated protocol (V(TLSv1.2) or V(TLSv1.3))., type: str, returned: always}
    cipher: {description: Negotiated cipher suite., type: str, returned: always}
    handshake_seconds:
      description: Duration of the measured handshake, openssl process start included.
      type: float
      returned: always
    warmup:
      description: Outcome of the warm-up handshake (C(handshake_ok), C(stapled), C(error), C(handshake_seconds)); null without O(warmup).
      type: dict
      returned: always
    round:
      description: Which of the O(rounds) this handshake belongs to (from 1).
      type: int
      returned: when O(rounds) is more than 1
    certificate:
      description:
        - The served end-entity certificate.
        - C(subject), C(issuer), C(serial), C(not_before), C(not_after), C(must_staple),
          C(ocsp_urls), C(ca_issuer_urls).
      type: dict
      returned: when the handshake completed
    issuer: {description: Subject of the issuer found in the served chain or O(trust_bundle)., type: str, returned: always}
    chain_trusted: {description: Whether the served chain verifies against O(trust_bundle); null without it., type: bool, returned: always}
    chain_error: {description: Why the chain did not verify., type: str, returned: always}
    stapled: {description: Whether an OCSP response was stapled., type: bool, returned: always}
    staple:
      description: The stapled OCSP response, base64 DER.
      type: str
      returned: always
    ocsp_response_status:
      description: OCSP responseStatus of the staple (V(successful), V(tryLater), V(internalError), ...).
      type: str
      returned: always
    cert_status:
      description: V(good), V(revoked) or V(unknown).
      type: str
      returned: always
    revocation_time: {description: When the certificate was revoked (ISO 8601)., type: str, returned: always}
    this_update: {description: thisUpdate of the staple (ISO 8601)., type: str, returned: always}
    next_update: {description: nextUpdate of the staple (ISO 8601)., type: str, returned: always}
    produced_at: {description: producedAt of the staple (ISO 8601)., type: str, returned: always}
    seconds_until_expiry: {description: Seconds until nextUpdate; negative once expired., type: int, returned: always}
    verified:
      description: Whether the staple's signature and CertID check out against the served chain (or O(trust_bundle)).
      type: bool
      returned: always
    verify_failure:
      description:
        - Why the staple did not verify. V(signature_invalid), V(certid_mismatch), V(stale_response),
          V(responder_error), V(malformed_response), V(issuer_not_found).
      type: str
      returned: always
    verify_detail: {description: The verification outcome as a sentence., type: str, returned: always}
    verdict:
      description:
        - One word. V(good), V(revoked), V(unknown), V(error_stapled) (a tryLater or other OCSP error
          is stapled), V(invalid) (signature or CertID wrong), V(stale) (past nextUpdate),
          V(missing) (the certificate has an OCSP URL but nothing was stapled),
          V(must_staple_missing) (Must-Staple certificate without a staple, broken for Firefox users),
          V(not_applicable) (the certificate has no OCSP URL), V(handshake_failed).
      type: str
      returned: always
    message: {description: The verdict as a sentence an operator can act on., type: str, returned: always}
skipped_sites:
  description: Sites from O(facts) that could not be probed (C(server_names), C(file), C(reason)).
  returned: always
  type: list
  elements: dict
summary:
  description: C(total), C(verdicts) (count per verdict) and C(problems) (one line per endpoint that needs attention).
  returned: always
  type: dict
held_responses:
  description:
    - The OCSP responses protected mode holds on the host, one entry per response, from
      O(keeper_state_dirs) (C(source=keeper)) and O(md_store_dirs) (C(source=mod_md)).
    - C(name), C(serial) (hex, of the certificate the response is for), C(cert_status),
      C(next_update) (POSIX seconds) and C(next_update_iso), C(held), C(valid) (held and before
      nextUpdate), C(seconds_left), C(path); keeper entries add C(served), C(last_error) and
      C(consecutive_failures).
    - mod_md keeps stapling a held response past its nextUpdate, so C(next_update) is a deadline.
  returned: always
  type: list
  elements: dict
openssl:
  description: The openssl binary and version used on the managed host.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.probe.tls import find_openssl, openssl_missing, run_module_probe
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.held import held_responses

ARGUMENT_SPEC = dict(
    endpoints=dict(type="list", elements="dict", options=dict(
        host=dict(type="str", required=True),
        port=dict(type="int", default=443),
        server_name=dict(type="str"),
    )),
    facts=dict(type="dict"),
    timeout=dict(type="float", default=15),
    concurrency=dict(type="int", default=16),
    tls_versions=dict(type="list", elements="str", choices=["1.2", "1.3"], default=["1.2", "1.3"]),
    warmup=dict(type="bool", default=False),
    warmup_delay=dict(type="float", default=0.5),
    handshakes=dict(type="int", default=1),
    rounds=dict(type="int", default=1),
    round_delay=dict(type="float", default=1),
    settle_names=dict(type="list", elements="str"),
    trust_bundle=dict(type="path"),
    keeper_state_dirs=dict(type="list", elements="path", default=[]),
    md_store_dirs=dict(type="list", elements="path", default=[]),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_one_of=[("endpoints", "facts")],
                           supports_check_mode=True)
    openssl = find_openssl()
    if openssl is None:
        module.fail_json(msg=openssl_missing("stapling_status"))
    try:
        found = run_module_probe(module.params, openssl, module.run_command)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    for warning in found.pop("warnings"):
        module.warn(warning)
    found["held_responses"] = held_responses(module.params["keeper_state_dirs"], module.params["md_store_dirs"])
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
