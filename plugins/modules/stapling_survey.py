#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_survey
short_description: Read everything a stapling diagnosis needs from a host in one round trip
version_added: 0.1.0
description:
  - The host half of M(ocsp.stapling.stapling_diagnose), which is what playbooks call. Reads the
    web servers' configuration (what M(ocsp.stapling.stapling_facts) returns), this collection's
    state record, the certificate and issuer files the responder check needs, and makes one real
    TLS handshake per site with what protected mode holds (the raw part of
    M(ocsp.stapling.stapling_status)).
  - Nothing is judged here; the staples and the responders' answers are verified on the
    controller. Read-only. Uses only the Python standard library and the C(openssl) command.
author:
  - ocsp.stapling contributors (!UNKNOWN)
extends_documentation_fragment:
  - ocsp.stapling.facts
  - ocsp.stapling.survey
  - ocsp.stapling.read_only
"""

EXAMPLES = r"""
- name: Survey the host (playbooks use ocsp.stapling.stapling_diagnose, which judges the result)
  ocsp.stapling.stapling_survey:
    record_path: /var/lib/ocsp-stapling/state.json
  register: survey
"""

RETURN = r"""
facts:
  description: What M(ocsp.stapling.stapling_facts) returns as C(ansible_facts.ocsp_stapling).
  returned: success
  type: dict
record:
  description: C({record, exists, record_path}) when O(record_path) is set, else null.
  returned: success
  type: dict
certificates:
  description: The responder check's certificates (path, issuer_files, issuer_dirs), from the facts.
  returned: success
  type: list
  elements: dict
files:
  description: The host's reads of those certificate and issuer files (path, content base64, or error).
  returned: success
  type: list
  elements: dict
status:
  description:
    - The raw handshakes (C(endpoints), C(skipped_sites), C(openssl), C(held_responses)), as
      M(ocsp.stapling.stapling_status)'s module returns them before judging; null with no site to probe.
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.change.state_record import RecordError
from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import finish, run_or_fail
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.survey import ARGUMENT_SPEC, SurveyError, survey


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["log_tail_bytes"] < 0:
        module.fail_json(msg="log_tail_bytes is %d; it must be 0 or more (bytes read from the end of each log)."
                         % params["log_tail_bytes"])
    result = run_or_fail(
        module,
        lambda: survey(params, module.run_command),
        (RecordError, SurveyError, ValueError),
        "The stapling survey stopped on an unexpected error: {error}. Run ocsp.stapling.stapling_facts on this "
        "host to see which configuration it cannot read.")
    finish(module, result, changed=False)


if __name__ == "__main__":
    main()
