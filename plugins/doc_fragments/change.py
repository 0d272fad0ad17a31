# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options every module that changes a server's configuration shares (the change shape)."""
from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """C(ocsp.stapling.change): commands, validation and backups of the change shape."""

    DOCUMENTATION = r"""
options:
  configtest_command:
    description:
      - Command that exits 0 when the configuration is valid (V(apache2ctl -t)). A string
        is split like a shell would (no shell features); a list is used as is.
      - Without it the candidate is not validated and a warning says so.
    type: raw
  reload_command:
    description: Graceful reload command (V(apache2ctl -k graceful)); string or list.
    type: raw
  start_command:
    description:
      - Command that starts the server when the reload killed it (V(apache2ctl -k start));
        used only during a rollback.
    type: raw
  environment:
    description: Extra environment for every command (V(APACHE_CONFDIR) for a private apache2).
    type: dict
    default: {}
  candidate_validation:
    description:
      - V(namespace) runs the configtest in a private mount namespace (C(unshare --mount))
        in which each changed directory is replaced by a copy holding the candidate; the
        live tree never changes. Needs root (CAP_SYS_ADMIN).
      - V(swap) writes the candidate to the live files, runs the configtest and puts the
        old files back if it fails (under a lock; the live files hold an untested
        candidate for the length of one configtest).
      - V(auto) uses V(namespace) when possible, else V(swap) with a warning.
    type: str
    choices: [namespace, swap, auto]
    default: auto
  backup_dir:
    description: Where backups go, one timestamped directory per change, with a C(manifest.json).
    type: path
    default: /var/backups/ocsp.stapling
"""
