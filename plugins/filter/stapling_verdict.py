# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ocsp.stapling.stapling_verdict``: the runbook's diagnosis as a filter (logic in module_utils/runbook/verdict.py).

``ocsp.stapling.stapling_check_certificates`` turns the facts' sites into the
``certificates`` list of ``ocsp_responder_check``, each with the issuer sources its server reads.
"""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.verdict import check_certificates, decide


def stapling_verdict(facts, status=None, check=None, record=None):
    if not isinstance(facts, dict):
        raise AnsibleFilterError(
            f"stapling_verdict expects the ansible_facts.ocsp_stapling dictionary from stapling_facts, got "
            f"{type(facts).__name__}. Run ocsp.stapling.stapling_facts first.")
    return decide(facts, status or {}, check or {}, record or None)


def stapling_check_certificates(facts):
    if not isinstance(facts, dict):
        raise AnsibleFilterError(
            f"stapling_check_certificates expects the ansible_facts.ocsp_stapling dictionary from stapling_facts, got "
            f"{type(facts).__name__}. Run ocsp.stapling.stapling_facts first.")
    return check_certificates(facts)


class FilterModule:
    def filters(self):
        return {"stapling_verdict": stapling_verdict, "stapling_check_certificates": stapling_check_certificates}
