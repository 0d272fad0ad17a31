# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attributes of the modules that only read the host (facts, survey, diagnosis)."""
from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """C(ocsp.stapling.read_only): check mode in full, nothing to diff."""

    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
"""
