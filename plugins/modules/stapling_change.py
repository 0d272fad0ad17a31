#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_change
short_description: Change web server config safely - validate, back up, swap, reload gracefully, verify, roll back
version_added: 0.1.0
description:
  - The one change shape every server role of this collection uses. It writes managed
    blocks (or whole managed files) and symlinks, and never leaves the server worse off.
  - Order of work. Compute the candidate files. Run O(configtest_command) against the
    candidate B(before) any live file changes (see O(candidate_validation)). Back up
    every file it will touch under O(backup_dir). Swap each file atomically (temporary
    file and rename in the same directory, mode and owner kept). Run
    O(reload_command) (a graceful reload). Verify the server (O(verify)). On any
    failure after the swap, restore the backups, reload again (or run O(start_command)
    when the parent process died) and fail with a message saying what happened and
    whether the old configuration is back and serving.
  - A configtest is not enough. C(apache2 -t) stops after parsing, before mod_ssl sets
    stapling up, so C(SSLUseStapling on) without C(SSLStaplingCache) passes it and the
    graceful restart then exits the whole server (AH01872, AH00020). O(verify) therefore
    checks, after every reload, that the parent process is alive, that every endpoint
    completes a TLS handshake, and that no fatal line was written to the error log.
  - Outside the managed block, files are kept byte for byte.
author:
  - ocsp.stapling contributors (!UNKNOWN)
extends_documentation_fragment:
  - ocsp.stapling.change
attributes:
  check_mode:
    support: full
    description: Reports the diff and runs the configtest against the candidate in a private
      mount namespace (read-only for the live tree). Nothing is written or reloaded.
  diff_mode:
    support: full
    description: Shows the before and after of every file it manages.
  platform:
    support: full
    platforms: posix
    description: Runs on the web server with the Python standard library, C(unshare) and the server's own tools.
options:
  files:
    description:
      - Files to manage. Each holds either a marked O(files[].block) inside the file or
        whole O(files[].content).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file. Missing parent directories are created.
        type: path
        required: true
      block:
        description:
          - Text of the managed block, without the marker lines. With O(files[].state=absent)
            the block is removed and the rest of the file kept.
        type: str
      content:
        description:
          - Whole content of a file the collection owns. With O(files[].state=absent) the
            file is deleted.
        type: str
      content_base64:
        description:
          - Whole content, base64-encoded, for content that is not valid UTF-8 (an operator's
            file with Latin-1 comments, rewritten byte for byte). Same meaning as O(files[].content).
        type: str
      state:
        description: Whether the block (or file) should be there.
        type: str
        choices: [present, absent]
        default: present
      marker:
        description: Marker line template; C({mark}) becomes C(BEGIN) and C(END).
        type: str
        default: "# {mark} ocsp.stapling managed block"
      insert_before:
        description: Regular expression; a new block goes before the first matching line.
        type: str
      insert_after:
        description: Regular expression; a new block goes after the last matching line.
        type: str
      mode:
        description: Octal mode as a string (V("0644")). Default keeps the file's mode (V("0644") for new files).
        type: str
      owner:
        description: Owner. Default keeps the file's owner.
        type: str
      group:
        description: Group. Default keeps the file's group.
        type: str
  links:
    description: Symlinks to manage (C(a2enconf) style enabling).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path of the link.
        type: path
        required: true
      src:
        description: What the link points to (kept as given, relative or absolute).
        type: str
      state:
        description: Whether the link should exist.
        type: str
        choices: [present, absent]
        default: present
  configtest_fail_patterns:
    description:
      - Regular expressions; a configtest output line matching one fails the configtest although
        it exited 0 (C(nginx -t) exits 0 while warning C("ssl_stapling" ignored)).
    type: list
    elements: str
    default: []
  reload:
    description:
      - V(on_change) reloads only when a file or link changed; V(always) also reloads an
        unchanged config (Apache keeps stapling a cached C(tryLater) for up to
        C(SSLStaplingStandardCacheTimeout) after a responder outage unless reloaded);
        V(never) only writes the files.
    type: str
    choices: [on_change, always, never]
    default: on_change
"""

EXAMPLES = r"""
- name: Turn stapling off server-wide on Debian, validated, verified, rolled back on failure
  ocsp.stapling.stapling_change:
    files:
      - path: /etc/apache2/conf-available/zz-ocsp-stapling.conf
        content: |
          # Managed by ocsp.stapling
          SSLUseStapling off
        mode: "0644"
    links:
      - path: /etc/apache2/conf-enabled/zz-ocsp-stapling.conf
        src: ../conf-available/zz-ocsp-stapling.conf
    configtest_command: apache2ctl -t
    reload_command: apache2ctl -k graceful
    start_command: apache2ctl -k start
    verify:
      pid_file: /run/apache2/apache2.pid
      error_log: /var/log/apache2/error.log
      ready_patterns: [AH00489]
      endpoints:
        - port: 443
          server_name: www.example.com

- name: A managed block inside a cPanel include file, other content kept
  ocsp.stapling.stapling_change:
    files:
      - path: /etc/apache2/conf.d/includes/pre_virtualhost_global.conf
        block: SSLUseStapling off
    configtest_command: /usr/sbin/httpd -t
    reload_command: /scripts/restartsrv_httpd --graceful
"""

RETURN = r"""
files:
  description: One entry per managed file.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/etc/apache2/conf-available/zz-ocsp-stapling.conf", "changed": true,
            "backup": "/var/backups/ocsp.stapling/20250101T030000-x/files/etc/apache2/...", "exists": true}]
links:
  description: One entry per managed symlink (path, changed, target).
  returned: always
  type: list
  elements: dict
configtest:
  description: The candidate's configtest (ran, rc, output, method, passed).
  returned: always
  type: dict
reload:
  description: The reload (ran, command, rc, output).
  returned: always
  type: dict
verification:
  description:
    - Health after the reload (ok, pid, pid_alive, ready, endpoints, fatal_lines,
      warning_lines, last_lines, problem, elapsed); null when nothing was reloaded.
    - C(last_lines) holds the last lines the error log received since the reload.
  returned: always
  type: dict
rolled_back:
  description: Whether the backups were put back after a failure.
  returned: always
  type: bool
recovery:
  description: After a rollback, how the server was brought back (action, command, rc, output, verification).
  returned: when rolled back after a reload
  type: dict
backup_dir:
  description: This change's backup directory (null when nothing was written).
  returned: always
  type: str
warnings_list:
  description: Warnings also shown as Ansible warnings.
  returned: always
  type: list
  elements: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.change.argspec import CHANGE_SPEC, verify_spec
from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeError,
    StaplingChange,
    request_from_params,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import finish, run_or_fail

FILE_SPEC = dict(
    path=dict(type="path", required=True),
    block=dict(type="str"),
    content=dict(type="str"),
    content_base64=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    marker=dict(type="str", default="# {mark} ocsp.stapling managed block"),
    insert_before=dict(type="str"),
    insert_after=dict(type="str"),
    mode=dict(type="str"),
    owner=dict(type="str"),
    group=dict(type="str"),
)
LINK_SPEC = dict(
    path=dict(type="path", required=True),
    src=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)
ARGUMENT_SPEC = dict(
    files=dict(type="list", elements="dict", options=FILE_SPEC, default=[],
               mutually_exclusive=[["block", "content", "content_base64"], ["insert_before", "insert_after"]]),
    links=dict(type="list", elements="dict", options=LINK_SPEC, default=[]),
    reload=dict(type="str", choices=["on_change", "always", "never"], default="on_change"),
    configtest_fail_patterns=dict(type="list", elements="str", default=[]),
    verify=dict(type="dict", options=verify_spec()),
    **CHANGE_SPEC,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    request = request_from_params(module.params, check_mode=module.check_mode, diff=module._diff)
    change = StaplingChange(request)
    result = run_or_fail(module, change.run, (ChangeError,),
                         "stapling_change stopped on an unexpected error: {error}. The live files may or may not "
                         f"have been changed; look in {request.backup_dir} for a backup made by this run.",
                         extra=lambda: {"warnings_list": change.warnings})
    finish(module, result, warnings_list=change.warnings)


if __name__ == "__main__":
    main()
