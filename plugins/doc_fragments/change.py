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
  verify:
    description:
      - What a healthy server looks like after the reload. Without it only the reload's exit code counts.
      - An unset pattern list takes the server's own (M(ocsp.stapling.stapling_apply) - the dialect's;
        M(ocsp.stapling.stapling_change) - Apache's, fatal C(AH00020), C(AH01872), C(AH01958), warning
        C(AH02217), C(AH02218), C(AH02604), ready none).
    type: dict
    suboptions:
      pid_file:
        description: Pid file of the parent process; it must be alive (and not a zombie).
        type: path
      endpoints:
        description:
          - TLS endpoints that must complete a handshake (SNI sent, certificate not checked).
          - Unset, M(ocsp.stapling.stapling_apply) with nginx checks every TLS server block; otherwise none.
        type: list
        elements: dict
        suboptions:
          host:
            description: Address to connect to.
            type: str
            default: 127.0.0.1
          port:
            description: TCP port.
            type: int
            default: 443
          server_name:
            description: SNI name to send.
            type: str
      error_log:
        description: Error log scanned from its size before the reload.
        type: path
      fatal_patterns:
        description: Regular expressions; a matching log line since the reload fails the change.
        type: list
        elements: str
      warning_patterns:
        description: Regular expressions; matching lines are reported as warnings (not fatal).
        type: list
        elements: str
      ready_patterns:
        description:
          - Regular expressions; one must appear in the log since the reload before the
            endpoints are checked (Apache logs C(AH00489 ... resuming normal operations)
            once the graceful restart finished; before that the old children still answer).
        type: list
        elements: str
      timeout:
        description: Seconds to wait for the server to become healthy.
        type: float
        default: 30
      settle:
        description: Seconds to wait after the reload before the first health verdict (unset, 1; nginx 0.5).
        type: float
"""
