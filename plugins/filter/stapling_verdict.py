# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ocsp.stapling.stapling_verdict``: the runbook's diagnosis as a filter (logic in module_utils/runbook.py)."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook import decide


def stapling_verdict(facts, status=None, check=None, record=None):
    if not isinstance(facts, dict):
        raise AnsibleFilterError(
            f"stapling_verdict expects the ansible_facts.ocsp_stapling dictionary from stapling_facts, got "
            f"{type(facts).__name__}. Run ocsp.stapling.stapling_facts first.")
    return decide(facts, status or {}, check or {}, record or None)


class FilterModule:
    def filters(self):
        return {"stapling_verdict": stapling_verdict}
