# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the host survey a diagnosis makes (stapling_survey, stapling_diagnose)."""
from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """C(ocsp.stapling.survey): the state record, the check's files and the handshakes."""

    DOCUMENTATION = r"""
options:
  record_path:
    description: This collection's state record (M(ocsp.stapling.stapling_record)); not read when unset.
    type: path
  read_check_files:
    description: Read every site's certificate file and the issuer files its server reads, for the responder check.
    type: bool
    default: true
  probe:
    description: Make one TLS handshake (C(openssl s_client -status)) per site and listen address.
    type: bool
    default: true
  timeout:
    description: Seconds allowed for each handshake.
    type: float
    default: 15
  concurrency:
    description: Handshakes in flight at once.
    type: int
    default: 16
  warmup:
    description: Handshake twice per site and keep the second (nginx staples only after a first request).
    type: bool
    default: false
  warmup_delay:
    description: Seconds between the two handshakes of O(warmup).
    type: float
    default: 0.5
  keeper_state_dirs:
    description: Where the keeper holds responses (protected mode).
    type: list
    elements: path
    default: []
  md_store_dirs:
    description: mod_md stores to read held responses from, after the Apache server's own C(MDStoreDir).
    type: list
    elements: path
    default: []
"""
