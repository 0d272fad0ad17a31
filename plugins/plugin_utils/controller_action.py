# -*- coding: utf-8 -*-
# Copyright (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of this collection's controller-side actions: validate, make sure
``cryptography`` is here, run the work (which runs host modules through ``execute``), and
turn its known errors into a failed result with their message."""
from __future__ import annotations

import traceback

from ansible.plugins.action import ActionBase

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.crypto import missing_message


class ControllerAction(ActionBase):
    """Subclasses set ``ARGUMENT_SPEC``, ``_VALID_ARGS``, ``PLUGIN``, ``NEEDS``, ``KNOWN_ERRORS``
    and implement :meth:`work`."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False
    ARGUMENT_SPEC: dict = {}
    PLUGIN = ""
    NEEDS = ""
    KNOWN_ERRORS: tuple = ()

    def work(self, args: dict, execute) -> dict:
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        result["changed"] = False
        _validation, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        missing = missing_message(self.PLUGIN, self.NEEDS)
        if missing:
            result.update(failed=True, msg=missing)
            return result

        def execute(module_name: str, module_args: dict) -> dict:
            return self._execute_module(module_name=module_name, module_args=module_args, task_vars=task_vars)

        try:
            result.update(self.work(args, execute))
        except self.KNOWN_ERRORS as exc:
            result.update(failed=True, msg=str(exc))
        except Exception as exc:  # a bug: say so, with the traceback for the report
            result.update(failed=True, msg=f"Unexpected error in {self.PLUGIN}: {exc}", exception=traceback.format_exc())
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
