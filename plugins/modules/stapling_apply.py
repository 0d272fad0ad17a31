#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_apply
short_description: Put OCSP stapling in a state on Apache, nginx or LiteSpeed, one way for all three
version_added: 0.3.0
description:
  - Plans the change with the server's dialect (O(server)), refuses to disable stapling for a
    certificate that carries OCSP Must-Staple (unless O(force)), then runs the change shape
    (validate the candidate, back up, swap, reload gracefully, verify, roll back on failure; see
    M(ocsp.stapling.stapling_change)) and returns one result, whatever the server.
  - Apache reads the configuration as httpd does (see M(ocsp.stapling.apache_stapling_plan) for
    O(options)); nginx plans per TLS server block and fails the configtest when C(nginx -t) ignores
    stapling for a site being enabled (see M(ocsp.stapling.nginx_stapling_plan)); LiteSpeed edits its
    native files losslessly (see M(ocsp.stapling.litespeed_stapling)).
author:
  - ocsp.stapling contributors (!UNKNOWN)
extends_documentation_fragment:
  - ocsp.stapling.change
attributes:
  check_mode:
    support: full
    description: Plans and runs the candidate's configtest in a private mount namespace; writes and reloads nothing.
  diff_mode:
    support: full
    description: Returns the before and after of every file the change writes.
  platform:
    support: full
    platforms: posix
    description: Runs on the web server with the Python standard library only.
options:
  server:
    description: The server whose configuration changes.
    type: str
    choices: [apache, nginx, litespeed]
    required: true
  state:
    description:
      - V(enabled) turns stapling on (with O(tuning)); V(disabled) turns it off; V(restored) gives back
        exactly what a disable replaced (nginx and LiteSpeed remove what the collection wrote, as V(absent));
        V(absent) removes everything the collection wrote.
    type: str
    choices: [enabled, disabled, restored, absent]
    required: true
  tuning:
    description:
      - Apache - V(resilient), V(server_default) or a dict of C(SSLStapling*) directives.
      - nginx - a dict (C(ssl_stapling_verify), C(ssl_trusted_certificate), C(resolver), ...).
      - LiteSpeed - a dict with C(max_age), C(responder), C(ca_certs).
    type: raw
  force:
    description: Disable stapling even where a certificate carries OCSP Must-Staple (those sites then fail for Firefox users).
    type: bool
    default: false
  reason:
    description: Why; written as a comment where the dialect writes one.
    type: str
    default: ""
  certificates:
    description: Certificate files to check for Must-Staple besides those the dialect finds in the configuration.
    type: list
    elements: path
    default: []
  must_staple_sites:
    description:
      - The Must-Staple sites the caller has just found (any of a site's server names), for
        example from the runbook's diagnosis; a disable refuses them unless O(force), and the
        served certificates are not probed again.
      - Unset, the certificate files are read and, with O(probe_served), each site being
        disabled is asked what it serves now.
    type: list
    elements: str
  probe_served:
    description:
      - Before a disable, one TLS handshake per site being disabled (C(openssl s_client) on the
        host) to read the Must-Staple flag of the certificate it serves now, besides its files.
      - Ignored when O(must_staple_sites) is given.
    type: bool
    default: false
  plan_only:
    description:
      - Return the plan only (RV(plan), RV(sites), RV(problems)); change, test and reload
        nothing, and run no guard. For a caller with a step between the plan and the change (the
        Apache role creates cPanel include files, or has the relay hold responses, and then applies).
    type: bool
    default: false
  options:
    description: The dialect's own paths and settings (for example Apache's C(layout) and C(main_config), nginx's C(config)).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Turn stapling off on nginx
  ocsp.stapling.stapling_apply:
    server: nginx
    state: disabled
    configtest_command: [/usr/sbin/nginx, -t]
    reload_command: [/usr/sbin/nginx, -s, reload]
    start_command: [/usr/sbin/nginx]
    verify:
      pid_file: /run/nginx.pid
      error_log: /var/log/nginx/error.log
  register: result
"""

RETURN = r"""
server:
  description: The server changed.
  returned: always
  type: str
state:
  description: The state applied (V(restored) is reported as V(absent) for nginx and LiteSpeed).
  returned: always
  type: str
changed_files:
  description: Paths of the files the change wrote.
  returned: always
  type: list
  elements: str
files:
  description: Every file of the plan (path, changed, backup, exists).
  returned: always
  type: list
  elements: dict
backup_dir:
  description: Where this change's backups are.
  returned: always
  type: str
configtest:
  description: The candidate's configtest (ran, rc, output, method, passed, problems).
  returned: always
  type: dict
verification:
  description: After the reload (ran, ok, problem, fatal_lines, warning_lines, last_lines).
  returned: always
  type: dict
endpoints:
  description: The TLS endpoints verified (host, port, server_name).
  returned: always
  type: list
  elements: dict
sites:
  description: The sites the dialect read (name, action, file, certificates, must_staple).
  returned: always
  type: list
  elements: dict
plan:
  description: The dialect's own plan details (Apache edits and vhost overrides, nginx placement, LiteSpeed targets).
  returned: always
  type: dict
forced_must_staple_sites:
  description: Must-Staple sites disabled anyway because of O(force).
  returned: always
  type: list
  elements: str
problems:
  description: Why the change was refused or failed; empty on success.
  returned: always
  type: list
  elements: str
warnings_list:
  description: The plan's and the change's warnings (also shown as warnings), for a caller to report.
  returned: always
  type: list
  elements: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.change.argspec import CHANGE_SPEC, verify_spec
from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import ChangeError
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.contract import (
    SERVERS,
    STATES,
    ContractError,
    apply,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import finish, run_or_fail
# Imported here so that Ansible ships every dialect with the module (it packs the imports it
# can see); contract.dialect() then finds the one asked for by name.
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import dialect as apache_dialect
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed import dialect as litespeed_dialect
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import dialect as nginx_dialect

DIALECTS = {module.NAME: module for module in (apache_dialect, litespeed_dialect, nginx_dialect)}

ARGUMENT_SPEC = dict(
    server=dict(type="str", choices=list(SERVERS), required=True),
    state=dict(type="str", choices=list(STATES), required=True),
    tuning=dict(type="raw"),
    force=dict(type="bool", default=False),
    reason=dict(type="str", default=""),
    certificates=dict(type="list", elements="path", default=[]),
    must_staple_sites=dict(type="list", elements="str"),
    probe_served=dict(type="bool", default=False),
    plan_only=dict(type="bool", default=False),
    options=dict(type="dict", default={}),
    verify=dict(type="dict", options=verify_spec()),
    **CHANGE_SPEC,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = run_or_fail(module, lambda: apply(module.params, check_mode=module.check_mode, diff=module._diff),
                         (ContractError, ChangeError),
                         "stapling_apply stopped on an unexpected error: {error}. Look in "
                         f"{module.params['backup_dir']} for a backup made by this run.")
    if module.params["plan_only"]:
        # The change that follows shows the plan's warnings; here they are only returned.
        module.exit_json(warnings_list=result.pop("warnings"), **result)
    # The warnings are shown as warnings and also returned, for the roles to report.
    finish(module, result, warnings_list=list(result.get("warnings") or []))


if __name__ == "__main__":
    main()
