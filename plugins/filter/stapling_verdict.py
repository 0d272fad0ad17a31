# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ocsp.stapling.stapling_verdict``: the runbook's diagnosis as a filter (logic in module_utils/runbook/verdict.py).

``ocsp.stapling.stapling_check_certificates`` turns the facts' sites into the
``certificates`` list of ``ocsp_responder_check``, each with the issuer sources its server reads.

``ocsp.stapling.stapling_endpoints`` turns them into the ``endpoints`` of ``stapling_status``
(host, port, SNI): what the probe needs, a few dozen bytes per site instead of the facts.

``ocsp.stapling.stapling_md_store_dirs`` gives ``stapling_status`` the Apache server's own
mod_md store (``MDStoreDir``, else ``ServerRoot/md``) ahead of the usual defaults.
"""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.ocsp.stapling.plugins.module_utils.probe.tls import endpoints_from_facts
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.verdict import check_certificates, decide
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.facts import md_store_dirs


def stapling_verdict(facts, status=None, check=None, record=None, protected_warn_hours=24):
    if not isinstance(facts, dict):
        raise AnsibleFilterError(
            f"stapling_verdict expects the ansible_facts.ocsp_stapling dictionary from stapling_facts, got "
            f"{type(facts).__name__}. Run ocsp.stapling.stapling_facts first.")
    return decide(facts, status or {}, check or {}, record or None, protected_warn_hours=float(protected_warn_hours))


def stapling_check_certificates(facts):
    if not isinstance(facts, dict):
        raise AnsibleFilterError(
            f"stapling_check_certificates expects the ansible_facts.ocsp_stapling dictionary from stapling_facts, got "
            f"{type(facts).__name__}. Run ocsp.stapling.stapling_facts first.")
    return check_certificates(facts)


def stapling_endpoints(facts):
    if not isinstance(facts, dict):
        raise AnsibleFilterError(
            f"stapling_endpoints expects the ansible_facts.ocsp_stapling dictionary from stapling_facts, got "
            f"{type(facts).__name__}. Run ocsp.stapling.stapling_facts first.")
    endpoints, _skipped = endpoints_from_facts(facts)
    return [{"host": e.host, "port": e.port, "server_name": e.server_name} for e in endpoints]


def stapling_md_store_dirs(facts, defaults=None):
    if not isinstance(facts, dict):
        raise AnsibleFilterError(
            f"stapling_md_store_dirs expects the ansible_facts.ocsp_stapling dictionary from stapling_facts, got "
            f"{type(facts).__name__}. Run ocsp.stapling.stapling_facts first.")
    if defaults is not None and not isinstance(defaults, (list, tuple)):
        raise AnsibleFilterError(f"stapling_md_store_dirs expects a list of directories after the facts, got {defaults!r}.")
    return md_store_dirs(facts, defaults or ())


class FilterModule:
    def filters(self):
        return {"stapling_verdict": stapling_verdict, "stapling_check_certificates": stapling_check_certificates,
                "stapling_endpoints": stapling_endpoints, "stapling_md_store_dirs": stapling_md_store_dirs}
