# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way this collection's modules end: a result, the module's own refusal, or an
unexpected error with its traceback and what to look at next.

A module's ``main()`` builds its :class:`AnsibleModule`, then::

    result = run_or_fail(module, lambda: run(module.params), (RecordError,),
                         "stapling_record stopped on an unexpected error: {error}. Inspect ...")
    finish(module, result)

A known error (the module's own exception class) fails with its message; when it carries
a ``result`` dict (the change engine's errors do) that result is returned with the failure,
its ``warnings`` shown as warnings. Anything else fails with ``unexpected`` (``{error}``
stands for the exception) and the traceback.
"""
from __future__ import annotations

import traceback
from typing import Any, Callable


def _warn_all(module, result: dict[str, Any]) -> None:
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)


def run_or_fail(module, call: Callable[[], dict[str, Any]], known: tuple[type[BaseException], ...],
                unexpected: str, extra: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """``call()``'s result; on an error, ``fail_json`` as described above (does not return).

    ``extra``: keys added to a known error's failure (e.g. the engine's ``warnings_list``).
    """
    try:
        return call()
    except known as exc:
        result = dict(getattr(exc, "result", None) or {})
        _warn_all(module, result)
        module.fail_json(msg=getattr(exc, "message", None) or str(exc), **(extra() if extra else {}), **result)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg=unexpected.replace("{error}", str(exc)), exception=traceback.format_exc())
    raise AssertionError("fail_json returned")  # pragma: no cover - fail_json exits


def finish(module, result: dict[str, Any], **extra: Any) -> None:
    """Show the result's warnings as warnings and exit with the rest."""
    _warn_all(module, result)
    module.exit_json(**extra, **result)
