# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of ``ocsp.stapling.ocsp_responder_check``.

Crypto on the controller, network from the host: the managed web server runs only the
standard-library ``ocsp.stapling.ocsp_fetch`` module (read the certificate files; send
the requests), and everything that needs ``cryptography`` (parse certificates, build
requests, verify signatures) happens here (module_utils/ocsp/check_run.py).
"""
from __future__ import annotations

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import check_run
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.check_args import ARGUMENT_SPEC, CheckError
from ansible_collections.ocsp.stapling.plugins.plugin_utils.controller_action import ControllerAction


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    PLUGIN = "ocsp.stapling.ocsp_responder_check"
    NEEDS = "verifies OCSP responses"
    # CheckError: the task's input; RuntimeError: the host-side helper failed.
    KNOWN_ERRORS = (CheckError, RuntimeError)

    def work(self, args: dict, execute) -> dict:
        if args["timeout"] <= 0 or args["concurrency"] < 1:
            raise CheckError("timeout must be above 0 seconds and concurrency at least 1.")
        return check_run.run_check(args, execute)
