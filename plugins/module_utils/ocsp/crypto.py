# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one ``cryptography`` import guard (controller side).

Modules on managed hosts never import this: web servers must not need new Python
packages. The action plugins report ``CRYPTOGRAPHY_IMPORT_ERROR`` when it is missing.
"""
from __future__ import annotations

try:
    import cryptography  # noqa: F401  pylint: disable=unused-import
except ImportError as exc:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: ImportError | None = exc
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
