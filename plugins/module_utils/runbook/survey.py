# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Everything a diagnosis reads on the host, in one round trip (``stapling_survey``).

Host side: Python standard library only. The web servers' configuration (the facts), this
collection's state record, the certificate and issuer files the responder check needs, and
one real handshake per site with what protected mode holds: what ``stapling_facts``,
``stapling_record`` (read), ``ocsp_fetch`` (paths) and ``stapling_status`` return, read at
once so that a fleet pays one module start-up per host instead of four. The controller
(``stapling_diagnose``) judges the staples, asks the responders and decides.
"""
from __future__ import annotations

from typing import Callable

from ansible_collections.ocsp.stapling.plugins.module_utils.change.state_record import StateRecord
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.check_args import normalize_certificates, paths_to_read
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.fetch import read_file
from ansible_collections.ocsp.stapling.plugins.module_utils.probe.tls import (
    endpoints_from_facts, find_openssl, openssl_missing, run_module_probe)
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.held import held_responses
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.verdict import check_certificates
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import facts as server_facts

#: stapling_survey's options: gather_facts' own, then the record, the check's files and the probe.
ARGUMENT_SPEC = dict(
    server_facts.ARGUMENT_SPEC,
    record_path=dict(type="path"),
    read_check_files=dict(type="bool", default=True),
    probe=dict(type="bool", default=True),
    timeout=dict(type="float", default=15),
    concurrency=dict(type="int", default=16),
    warmup=dict(type="bool", default=False),
    warmup_delay=dict(type="float", default=0.5),
    keeper_state_dirs=dict(type="list", elements="path", default=[]),
    md_store_dirs=dict(type="list", elements="path", default=[]),
)


class SurveyError(Exception):
    """Something the host lacks for the survey (the message says what to install)."""


def survey(params: dict, run_command=None, find_openssl: Callable[[], str | None] = find_openssl) -> dict:
    """``{facts, record, certificates, files, status, warnings}`` for ``params``.

    ``record`` is None unless ``record_path`` is given; ``certificates`` (the responder
    check's input) and ``files`` (the host's reads of them) are empty when
    ``read_check_files`` is off; ``status`` is None when ``probe`` is off or no site can be
    probed. Raises ``RecordError`` (a state record that is not this collection's) and
    :class:`SurveyError`.
    """
    facts = server_facts.gather_facts(**{name: params[name] for name in server_facts.ARGUMENT_SPEC})
    result: dict = {"facts": facts, "record": None, "certificates": [], "files": [], "status": None,
                    "warnings": []}
    if params.get("record_path"):
        current = StateRecord(params["record_path"], check_mode=True).read()
        result["record"] = {"record": current, "exists": current is not None, "record_path": params["record_path"]}
    if params.get("read_check_files", True):
        result["certificates"] = check_certificates(facts)
        result["files"] = [read_file(path) for path in paths_to_read(normalize_certificates(result["certificates"]))]
    endpoints, skipped = endpoints_from_facts(facts)
    if params.get("probe", True) and endpoints:
        openssl = find_openssl()
        if openssl is None:
            raise SurveyError(openssl_missing("the diagnosis"))
        probe_params = {name: params.get(name) for name in ("timeout", "concurrency", "warmup", "warmup_delay")}
        status = run_module_probe(dict(probe_params, facts=facts), openssl, run_command, (endpoints, skipped))
        result["warnings"].extend(status.pop("warnings"))
        status["held_responses"] = held_responses(params.get("keeper_state_dirs") or [],
                                                  server_facts.md_store_dirs(facts, params.get("md_store_dirs") or ()))
        result["status"] = status
    return result


#: stapling_diagnose's options: the survey's, then the responder check's and the verdict's.
DIAGNOSE_ARGUMENT_SPEC = dict(
    ARGUMENT_SPEC,
    responder_ip_version=dict(type="str", choices=["any", "4", "6", "both"], default="any"),
    responder_timeout=dict(type="float", default=5),
    check=dict(type="dict"),
    record=dict(type="dict"),
    protected_warn_hours=dict(type="float", default=24),
)
