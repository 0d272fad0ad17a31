# -*- coding: utf-8 -*-
# Copyright (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of ``stapling_diagnose`` (the logic is in module_utils/runbook/diagnose.py)."""
from __future__ import annotations

from ansible_collections.ocsp.stapling.plugins.module_utils.runbook import diagnose
from ansible_collections.ocsp.stapling.plugins.module_utils.runbook.survey import DIAGNOSE_ARGUMENT_SPEC
from ansible_collections.ocsp.stapling.plugins.plugin_utils.controller_action import ControllerAction


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = DIAGNOSE_ARGUMENT_SPEC
    _VALID_ARGS = frozenset(DIAGNOSE_ARGUMENT_SPEC)
    PLUGIN = "ocsp.stapling.stapling_diagnose"
    NEEDS = "judges staples and OCSP responses"
    KNOWN_ERRORS = (diagnose.DiagnoseError,)

    def work(self, args: dict, execute) -> dict:
        return diagnose.diagnose(args, execute)
