# -*- coding: utf-8 -*-
# Copyright (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of ``stapling_status``.

The module runs on the managed host and returns raw handshakes (served chain, stapled DER).
This plugin runs that module, then judges each staple here with ``cryptography``: the
web servers themselves never need it (see DESIGN.md, "Crypto on the controller").
"""
from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.action import ActionBase

MODULE = "ocsp.stapling.stapling_status"


def _load_judge():
    """Import the controller-side judge, or explain how to get ``cryptography``."""
    error = None
    try:
        from ansible_collections.ocsp.stapling.plugins.module_utils.probe import verdict as staple_verdict
    except ImportError as exc:
        staple_verdict, error = None, exc
    else:
        if not staple_verdict.HAS_CRYPTOGRAPHY:
            error = staple_verdict.CRYPTOGRAPHY_IMPORT_ERROR
    if error is not None:
        raise AnsibleActionFail(
            f"{MODULE} judges staples on the controller and needs the Python package "
            f"'cryptography' there, but importing it failed for {sys.executable} ({error}). "
            f"Install it into the Python that runs Ansible: '{sys.executable} -m pip install "
            "cryptography' (or the collection's requirements.txt), then run again.")
    return staple_verdict


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars or {})
        del tmp
        judge = _load_judge()
        args = dict(self._task.args)
        trust = []
        if args.get("trust_bundle"):
            trust = self._read_trust_bundle(judge, str(args["trust_bundle"]))
        raw = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        if raw.get("failed") or "endpoints" not in raw:
            result.update(raw)
            return result
        judged = [judge.judge(item, trust) for item in raw["endpoints"]]
        result.update({key: value for key, value in raw.items() if key != "endpoints"})
        result.update(changed=False, endpoints=judged, summary=judge.summarize(judged))
        return result

    def _read_trust_bundle(self, judge, path: str) -> list:
        # trust_bundle is a controller path: the judging happens here.
        found = os.path.expanduser(path)
        try:
            with open(found, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise AnsibleActionFail(
                f"trust_bundle {found} could not be read on the controller ({to_native(exc)}); "
                "it must be a PEM file of CA certificates on the machine running Ansible.") from None
        try:
            certs = judge.load_trust_bundle(data)
        except ValueError as exc:
            raise AnsibleActionFail(f"trust_bundle {found} holds a corrupt certificate: {exc}.") from None
        if not certs:
            raise AnsibleActionFail(
                f"trust_bundle {found} holds no certificate; expected PEM CA certificates "
                "(for example /etc/ssl/certs/ca-certificates.crt).")
        return certs
