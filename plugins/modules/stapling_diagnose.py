#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_diagnose
short_description: Diagnose a host's OCSP stapling in one task - servers, staples, responders, verdict
version_added: 0.1.0
description:
  - What the runbook's diagnosis does, in one task and the fewest host round trips. One
    M(ocsp.stapling.stapling_survey) reads the web servers' configuration, this collection's
    state record, the certificate and issuer files, and makes one TLS handshake per site;
    the staples are judged here on the controller (as M(ocsp.stapling.stapling_status) does);
    each certificate's responder is asked from the host, IPv4 and IPv6 separately (as
    M(ocsp.stapling.ocsp_responder_check) does, from the files the survey read); then the
    verdict and recommendation are decided (the C(ocsp.stapling.stapling_verdict) filter).
  - Sets C(ansible_facts.ocsp_stapling) like M(ocsp.stapling.stapling_facts).
  - A failed responder check (an unreadable certificate file, say) is part of the diagnosis,
    not a failure of the task - the verdict says the responder is unknown, and why. The task
    fails when the host cannot be surveyed or the controller lacks C(cryptography).
  - Read-only. The managed host needs only the Python standard library and C(openssl).
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  action:
    support: full
    description: The staples and responses are verified by the action plugin on the controller.
  facts:
    support: full
    description: Sets C(ansible_facts.ocsp_stapling), as M(ocsp.stapling.stapling_facts) does.
extends_documentation_fragment:
  - ocsp.stapling.facts
  - ocsp.stapling.survey
  - ocsp.stapling.read_only
options:
  record:
    description:
      - The state record as M(ocsp.stapling.stapling_record) returned it (its C(record) key is used), when the caller
        has just read it (the run lock returns it); the survey then does not read O(record_path).
    type: dict
  check:
    description:
      - The responder check of an earlier diagnosis, reused as is (a diagnosis right after a change);
        the responders are not asked again and no certificate file is read.
    type: dict
  responder_ip_version:
    description: Which address families the responders are asked over (V(both) asks IPv4 and IPv6 separately).
    type: str
    choices: [any, "4", "6", both]
    default: any
  responder_timeout:
    description: Seconds allowed for each OCSP request.
    type: float
    default: 5
  protected_warn_hours:
    description: A held response (protected mode) that expires within this many hours makes the verdict C(protected_expiring).
    type: float
    default: 24
seealso:
  - module: ocsp.stapling.stapling_facts
  - module: ocsp.stapling.stapling_status
  - module: ocsp.stapling.ocsp_responder_check
"""

EXAMPLES = r"""
- name: Diagnose the host
  ocsp.stapling.stapling_diagnose:
    record_path: /var/lib/ocsp-stapling/state.json
    responder_ip_version: both
  register: diagnosis

- name: Say what to do
  ansible.builtin.debug:
    msg: "{{ diagnosis.decision.verdict }}: {{ diagnosis.decision.recommendation }}"
"""

RETURN = r"""
decision:
  description: The verdict, recommendation, reasons and per-site rows (the C(ocsp.stapling.stapling_verdict) filter's result).
  returned: success
  type: dict
status:
  description: The judged handshakes, as M(ocsp.stapling.stapling_status) returns them; empty with no site to probe.
  returned: success
  type: dict
check:
  description:
    - The responders' answers, as M(ocsp.stapling.ocsp_responder_check) returns them (C(failed) and C(msg)
      when the check could not run); O(check) when given; empty with no certificate.
  returned: success
  type: dict
record:
  description: The state record as M(ocsp.stapling.stapling_record) returns it (C(record) null when none).
  returned: success
  type: dict
ansible_facts:
  description: C(ocsp_stapling), what M(ocsp.stapling.stapling_facts) returns.
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.survey import DIAGNOSE_ARGUMENT_SPEC


def main() -> None:
    # The work is done by the action plugin of the same name; this file carries the
    # documentation and the argument spec.
    module = AnsibleModule(argument_spec=DIAGNOSE_ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="ocsp.stapling.stapling_diagnose must run through its action plugin: call it by its full "
                         "name (ocsp.stapling.stapling_diagnose) with the ocsp.stapling collection installed.")


if __name__ == "__main__":
    main()
