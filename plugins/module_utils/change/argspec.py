# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs the modules that change a server share (documented by the
``ocsp.stapling.change`` doc fragment); one place, one set of rules."""
from __future__ import annotations

from typing import Any

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import DEFAULT_BACKUP_DIR

#: A TLS endpoint checked after a change (SNI sent, certificate not checked).
ENDPOINT_SPEC: dict[str, Any] = dict(
    host=dict(type="str", default="127.0.0.1"),
    port=dict(type="int", default=443),
    server_name=dict(type="str"),
)

#: The commands, validation and backups of the change shape.
CHANGE_SPEC: dict[str, Any] = dict(
    configtest_command=dict(type="raw"),
    reload_command=dict(type="raw"),
    start_command=dict(type="raw"),
    environment=dict(type="dict", default={}),
    candidate_validation=dict(type="str", choices=["namespace", "swap", "auto"], default="auto"),
    backup_dir=dict(type="path", default=DEFAULT_BACKUP_DIR),
)


def verify_spec() -> dict[str, Any]:
    """The ``verify`` suboptions. Unset values take the engine's ``VerifySpec`` defaults
    (Apache's patterns) or, in ``stapling_apply``, the dialect's."""
    return dict(
        pid_file=dict(type="path"),
        endpoints=dict(type="list", elements="dict", options=ENDPOINT_SPEC),
        error_log=dict(type="path"),
        fatal_patterns=dict(type="list", elements="str"),
        warning_patterns=dict(type="list", elements="str"),
        ready_patterns=dict(type="list", elements="str"),
        timeout=dict(type="float", default=30),
        settle=dict(type="float"),
    )
