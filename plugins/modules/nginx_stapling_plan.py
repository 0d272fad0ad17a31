#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_stapling_plan
short_description: Plan an nginx stapling change and test the candidate, without changing anything
version_added: 0.1.0
description:
  - Reads the nginx configuration (includes followed), finds the TLS server blocks in scope,
    reads their certificates (OCSP URL, Must-Staple) and works out which files to write so
    that stapling is V(enabled), V(disabled) or the role's changes are removed (V(absent)).
  - Returns the files in the form M(ocsp.stapling.stapling_change) takes; the nginx role
    hands them to it. This module never writes a file or reloads anything.
  - Runs C(nginx -t) against the candidate in a private mount namespace (the shared change
    shape's read-only check) and reports every C("ssl_stapling" ignored) warning per site;
    C(nginx -t) exits 0 on them, and stapling is then off for that certificate.
  - Every run plans from the operator's original files (the role's marked include lines
    dropped, the lines it replaced restored), so the plan is idempotent and V(absent)
    gives the files back byte for byte. See the role's README for placement rules.
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same way in check mode (the candidate's configtest runs in a private mount namespace).
  diff_mode:
    support: none
    description: Nothing is changed here; M(ocsp.stapling.stapling_change) shows the diff.
  platform:
    support: full
    platforms: posix
    description: Linux hosts with nginx; the namespace configtest needs C(unshare) and root.
options:
  config:
    description: nginx's main configuration file.
    type: path
    default: /etc/nginx/nginx.conf
  managed_dir:
    description: Directory for the per-site include files and built trusted certificates.
    type: path
    default: /etc/nginx/ocsp-stapling
  http_include_file:
    description: The file used for http-level placement; an C(include) at http level must read it.
    type: path
    default: /etc/nginx/conf.d/zz-ocsp-stapling.conf
  state:
    description: What stapling should be in the server blocks in scope.
    type: str
    choices: [enabled, disabled, absent]
    default: enabled
  server_names:
    description: Limit the change to server blocks with one of these server names.
    type: list
    elements: str
    default: []
  config_files:
    description: Limit the change to server blocks defined in these files (as nginx names them, or their real paths).
    type: list
    elements: path
    default: []
  tuning:
    description:
      - Directives to set when enabling. Keys C(ssl_stapling_verify) (bool), C(ssl_trusted_certificate)
        (a path, V(build), or null, which builds it from the served chain when verify is on and none is set),
        C(ssl_stapling_responder), C(resolver) (list), C(resolver_timeout). Null leaves a directive as it is.
    type: dict
    default: {}
  placement:
    description: V(auto), V(http) (one file at http level) or V(server) (one include line per server block).
    type: str
    choices: [auto, http, server]
    default: auto
  skip_not_applicable:
    description: Leave server blocks whose certificate has no OCSP URL untouched when enabling.
    type: bool
    default: true
  ca_bundle:
    description: PEM bundle with root CAs, used to build C(ssl_trusted_certificate) from the served chain.
    type: path
    default: /etc/ssl/certs/ca-certificates.crt
  version_command:
    description: Prints nginx's version (C(nginx -v)); used for the C(ssl_certificate_compression) check.
    type: raw
    default: nginx -v
  configtest_command:
    description: nginx's configtest, run against the candidate. Empty skips the test.
    type: raw
    default: nginx -t
  candidate_validation:
    description: How the candidate is tested; see M(ocsp.stapling.stapling_change).
    type: str
    choices: [namespace, swap, auto]
    default: auto
  fail_on_configtest_warnings:
    description: Count C("ssl_stapling" ignored) warnings for sites being enabled (other than a missing OCSP URL) as problems.
    type: bool
    default: true
  verify_host:
    description: Address used to reach server blocks that listen on a wildcard address.
    type: str
    default: 127.0.0.1
  environment:
    description: Extra environment for the commands.
    type: dict
    default: {}
  stapling_mode:
    description:
      - V(standard) - nginx fetches its own staples.
      - V(protected) (with O(state=enabled)) - every site being enabled includes
        C(<keeper_dir>/<site>.conf), which M(ocsp.stapling.stapling_keeper) switches between
        C(ssl_stapling_file) (a verified response it holds) and nginx's own fetch shortly
        before that response expires. The site's own C(ssl_stapling) and C(ssl_stapling_file)
        lines are replaced. The first include written is the fallback; one the keeper wrote
        is kept. Placement is always V(server).
    type: str
    choices: [standard, protected]
    default: standard
  keeper_dir:
    description: Where the keeper's includes, issuer files and responses live. Default C(<managed_dir>/keeper).
    type: path
"""

EXAMPLES = r"""
- name: Plan enabling stapling on every TLS server block
  ocsp.stapling.nginx_stapling_plan:
    state: enabled
    tuning:
      ssl_stapling_verify: true
      resolver: [127.0.0.53]
  register: plan

- name: Apply it with the shared change shape
  ocsp.stapling.stapling_change:
    files: "{{ plan.files }}"
    configtest_command: nginx -t
    reload_command: nginx -s reload
"""

RETURN = r"""
files:
  description:
    - Files for M(ocsp.stapling.stapling_change) (path, content or state=absent, mode). An
      operator file that is not valid UTF-8 comes as C(content_base64), rewritten byte for byte.
  returned: always
  type: list
  elements: dict
operator_files:
  description: The operator's files the plan edits (one marked include line each, and replaced lines).
  returned: always
  type: list
  elements: str
mode:
  description: V(protected) when the sites are put on the keeper's includes, else V(standard).
  returned: always
  type: str
keeper_certificates:
  description:
    - In protected mode, the O(ocsp.stapling.stapling_keeper#module:certificates) entries for the
      sites (name, cert, issuer, ca_file, response, snippet, fallback).
  returned: always
  type: list
  elements: dict
placement:
  description: V(http), V(server) or V(none) (state absent).
  returned: always
  type: str
why_not_http:
  description: Why http-level placement was not possible.
  returned: always
  type: list
  elements: str
sites:
  description:
    - One entry per TLS server block - key, server_names, file, line, in_scope, action
      (V(enable), V(disable), V(skip_not_applicable), V(out_of_scope), V(restore)), certificates,
      ocsp_urls, must_staple, endpoints, directives, replaced_lines, include, notes.
  returned: always
  type: list
  elements: dict
endpoints:
  description: TLS endpoints (host, port, server_name) of every server block, for verification.
  returned: always
  type: list
  elements: dict
configtest:
  description: The candidate's (or, when nothing changes, the live) configtest (ran, rc, output, method, passed).
  returned: always
  type: dict
configtest_warnings:
  description: C("ssl_stapling" ignored) lines (kind, certificate, sites, line).
  returned: always
  type: list
  elements: dict
problems:
  description: Why the change must not be made; empty when it may.
  returned: always
  type: list
  elements: str
worker_processes:
  description: nginx's worker_processes (V(auto) counted as this host's CPUs); each worker keeps its own staples.
  returned: always
  type: int
plan_warnings:
  description: Warnings about the plan (also shown as Ansible warnings).
  returned: always
  type: list
  elements: str
nginx_version:
  description: Output of O(version_command).
  returned: always
  type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import split_command
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx.preflight import plan_and_check
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx.plan import PlanError
from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import run_or_fail

ARGUMENT_SPEC = dict(
    config=dict(type="path", default="/etc/nginx/nginx.conf"),
    managed_dir=dict(type="path", default="/etc/nginx/ocsp-stapling"),
    http_include_file=dict(type="path", default="/etc/nginx/conf.d/zz-ocsp-stapling.conf"),
    state=dict(type="str", choices=["enabled", "disabled", "absent"], default="enabled"),
    server_names=dict(type="list", elements="str", default=[]),
    config_files=dict(type="list", elements="path", default=[]),
    tuning=dict(type="dict", default={}),
    placement=dict(type="str", choices=["auto", "http", "server"], default="auto"),
    skip_not_applicable=dict(type="bool", default=True),
    ca_bundle=dict(type="path", default="/etc/ssl/certs/ca-certificates.crt"),
    version_command=dict(type="raw", default="nginx -v"),
    configtest_command=dict(type="raw", default="nginx -t"),
    candidate_validation=dict(type="str", choices=["namespace", "swap", "auto"], default="auto"),
    fail_on_configtest_warnings=dict(type="bool", default=True),
    verify_host=dict(type="str", default="127.0.0.1"),
    environment=dict(type="dict", default={}),
    stapling_mode=dict(type="str", choices=["standard", "protected"], default="standard"),
    keeper_dir=dict(type="path"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    version = ""
    argv = split_command(p["version_command"])
    if argv:
        _rc, out, err = module.run_command(argv, environ_update=p["environment"])
        version = (out + err).strip()
    result = run_or_fail(module, lambda: plan_and_check(p, version), (PlanError,),
                         "Planning the nginx stapling change stopped on an unexpected error: {error}. "
                         "Nothing was changed.")
    for warning in result["plan_warnings"]:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
