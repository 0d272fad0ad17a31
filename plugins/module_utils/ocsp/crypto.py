# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one ``cryptography`` import guard (controller side).

Modules on managed hosts never import this: web servers must not need new Python
packages. The action plugins report ``CRYPTOGRAPHY_IMPORT_ERROR`` when it is missing.
"""
from __future__ import annotations

import sys

try:
    import cryptography  # noqa: F401  pylint: disable=unused-import
except ImportError as exc:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: ImportError | None = exc
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None


def missing_message(plugin: str, needs: str) -> str | None:
    """What an action plugin says when ``cryptography`` is missing on the controller (else
    None): ``plugin`` (its name) ``needs`` (what it does there)."""
    if HAS_CRYPTOGRAPHY:
        return None
    return (f"{plugin} {needs} on the controller and needs the Python package 'cryptography' there, but "
            f"{sys.executable} cannot import it ({CRYPTOGRAPHY_IMPORT_ERROR}). Install it into the Python that runs "
            f"Ansible (or the execution environment): {sys.executable} -m pip install 'cryptography>=41'. "
            "Managed hosts do not need it.")
