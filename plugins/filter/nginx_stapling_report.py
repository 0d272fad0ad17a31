# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side filter: judge stapling_status results against an nginx stapling plan."""
from __future__ import annotations

DOCUMENTATION = r"""
name: nginx_stapling_report
short_description: Judge what nginx staples after a change against what the change meant to do
version_added: 0.1.0
description:
  - Takes the C(sites) of M(ocsp.stapling.nginx_stapling_plan) and the C(endpoints) of
    M(ocsp.stapling.stapling_status) and says, per site, whether the result is what the change
    meant. Sites being enabled should staple V(good); nginx never staples a revoked certificate
    (with C(ssl_stapling_verify on)), so a V(missing) verdict there is reported (a failure only
    with O(strict)). A disabled site that still staples, or a site that no longer answers TLS,
    is always a failure.
  - Returns C(ok), C(settled) (no site being enabled is still waiting for its first staple),
    C(sites), C(failures) and C(attention).
options:
  _input:
    description: The plan's C(sites).
    type: list
    elements: dict
    required: true
  results:
    description: The C(endpoints) returned by M(ocsp.stapling.stapling_status).
    type: list
    elements: dict
    required: true
  state:
    description: The role's C(nginx_stapling_state).
    type: str
    required: true
  strict:
    description: Count a site being enabled that does not staple V(good) as a failure.
    type: bool
    default: false
  log:
    description:
      - nginx's error log written since the reload. Lines naming a site's certificate
        (C(certificate status "revoked" in the OCSP response), C(OCSP_basic_verify() failed))
        are attached to that site and quoted in its message.
    type: str
    default: ""
author:
  - ocsp.stapling maintainers
"""

EXAMPLES = r"""
- name: Judge the staples
  ansible.builtin.set_fact:
    report: "{{ plan.sites | ocsp.stapling.nginx_stapling_report(status.endpoints, 'enabled') }}"
"""

RETURN = r"""
_value:
  description: C(ok), C(settled), C(sites), C(failures), C(attention).
  type: dict
"""

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx.plan import judge_sites


def nginx_stapling_report(sites, results, state, strict=False, log=""):
    return judge_sites(list(sites or []), list(results or []), str(state), bool(strict), str(log or ""))


class FilterModule:
    def filters(self):
        return {"nginx_stapling_report": nginx_stapling_report}
