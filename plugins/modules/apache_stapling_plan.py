#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: apache_stapling_plan
short_description: Plan an Apache stapling change, without changing anything
version_added: 0.2.0
description:
  - Reads the Apache configuration the way httpd does (C(Include)/C(IncludeOptional) order, globs,
    Debian's C(sites-enabled)/C(conf-enabled) symlinks, C(<IfModule>)) and works out which files to
    write so that every TLS virtual host has stapling V(enabled), V(disabled), V(restored) or the
    role's changes removed (V(absent)).
  - The plan is checked by reading the candidate the same way. A virtual host's own C(SSLUseStapling)
    beats the server scope, so V(disabled) replaces each C(SSLUseStapling on) that wins (marked, the
    original kept on the line above; never cPanel's C(httpd.conf), where an include file or the site's
    userdata include is used) until no TLS virtual host has stapling on.
  - V(restored) gives every file back byte for byte. V(enabled) restores first, then writes the role's
    server-scope settings.
  - Returns the files in the form M(ocsp.stapling.stapling_change) takes. Never writes or reloads.
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same way in check mode.
  diff_mode:
    support: none
    description: Nothing is changed here; M(ocsp.stapling.stapling_change) shows the diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the web server with the Python standard library only.
options:
  state:
    description: What stapling should be in the TLS virtual hosts.
    type: str
    choices: [enabled, disabled, restored, absent]
    required: true
  layout:
    description: The Apache layout.
    type: str
    choices: [debian, rhel, cpanel_ea4, cpanel_ea3]
    required: true
  server:
    description: V(litespeed) for LiteSpeed serving cPanel's Apache configuration.
    type: str
    choices: [apache, litespeed]
    default: apache
  main_config:
    description: The main configuration file httpd reads.
    type: path
    required: true
  server_root:
    description: C(ServerRoot); defaults to the main config's directory (its parent for C(conf/httpd.conf)).
    type: path
  envvars:
    description: Debian's C(envvars) file (C(${APACHE_RUN_DIR}) and friends); defaults to the one beside O(main_config) on Debian.
    type: path
  server_version:
    description: The httpd version, for C(<IfVersion>).
    type: str
  snippet:
    description: Debian/RHEL, the role's server-scope file.
    type: path
  link:
    description: Debian, the C(conf-enabled) link enabling O(snippet).
    type: path
  link_src:
    description: The link's target as written (relative, as C(a2enconf) writes it).
    type: str
  includes_dir:
    description: cPanel's include directory.
    type: path
  userdata_dir:
    description: cPanel's userdata directory.
    type: path
  ea4_conf:
    description:
      - cPanel EA4, WHM's Global Configuration (C(/etc/cpanel/ea4/ea4.conf), one JSON object as C(Cpanel::EA4::Conf)
        saves it). Its C(sslusestapling) is read and returned as RV(whm_stapling); cPanel writes it into
        C(httpd.conf)'s stapling block at every rebuild (C(On) when the file or value is missing, empty or unparsable).
    type: path
  cache_path:
    description: Path of the shmcb stapling cache the role adds when none is configured.
    type: str
    default: /run/apache2/ocsp_stapling_cache
  cache_size:
    description: Its size in bytes; 0 sizes it from the number of certificates (10 KiB each, at least 128000).
    type: int
    default: 0
  certificate_count:
    description: Number of certificates, for the cache size.
    type: int
    default: 0
  tuning:
    description: V(resilient), V(server_default) or a dict of C(SSLStapling*)/C(SSLOCSP*) directives.
    type: raw
    default: resilient
  resilient:
    description: The directives V(resilient) writes.
    type: dict
  force_url:
    description: C(SSLStaplingForceURL) to add when enabling.
    type: str
    default: ""
  proxy_url:
    description: C(SSLOCSPProxyURL) to add when enabling.
    type: str
    default: ""
  reason:
    description: Why; written as a comment into what the role writes.
    type: str
    default: ""
  endpoints:
    description: The sites verified after the change (used for the cache size).
    type: list
    elements: dict
    default: []
  mode:
    description:
      - With O(state=enabled), who staples. V(standard) is mod_ssl (C(SSLUseStapling On) and the tuning).
      - V(protected) is mod_md (httpd 2.4.42 or later) with C(MDStapling on) and C(MDStapleOthers on); it keeps
        each response in C(MDStoreDir) and refreshes it ahead of expiry, so clients keep getting a good staple
        through a responder outage. mod_ssl's winning C(SSLUseStapling) is turned off (marked, restorable).
        Its mechanism is O(mechanism).
    type: str
    choices: [standard, protected]
    default: standard
  mechanism:
    description:
      - With O(mode=protected), how the last good response is kept through a responder outage.
      - V(mod_md) is C(MDStapling) (httpd 2.4.42 or later); refused, naming the relay, without mod_md or on older httpd.
      - V(relay) keeps mod_ssl stapling and points it at the loopback relay (O(relay_url)), which answers from the
        keeper's held responses (C(SSLStaplingForceURL), C(SSLStaplingFakeTryLater off), C(SSLUseStapling On) at
        server scope; a virtual host's own C(SSLStaplingForceURL) or C(SSLStaplingFakeTryLater) that says otherwise is
        replaced, marked, restorable). RV(keeper_certificates) lists what the keeper must hold.
      - V(auto) is V(mod_md) where mod_md can staple (or be loaded) and V(relay) otherwise (httpd older than 2.4.42,
        no mod_md), with a warning saying why.
    type: str
    choices: [auto, mod_md, relay]
    default: auto
  relay_url:
    description: V(relay), the relay's URL (plain C(http://), as mod_ssl's OCSP client asks).
    type: str
    default: http://127.0.0.1:8088/
  keeper_dir:
    description: V(relay), where the issuer files the keeper reads are planned (C(<keeper_dir>/<name>.issuer.pem)).
    type: str
    default: /etc/ocsp-stapling/apache
  keeper_config:
    description:
      - The keeper's configuration (the role's C(apache_stapling_relay_keeper_config)); RV(keeper_config_present)
        says whether it exists, so a caller prunes it only then. Empty, it is not looked for.
    type: str
    default: ""
  ca_bundle:
    description: V(relay), the trust anchors the keeper verifies the responder's signature with (C(openssl ocsp -CAfile)).
    type: str
    default: /etc/ssl/certs/ca-certificates.crt
  md_store_dir:
    description: V(protected), the C(MDStoreDir) to write; empty keeps the server's own (checked writable either way).
    type: str
    default: ""
  md_renew_window:
    description: V(protected), C(MDStaplingRenewWindow) (how much validity is left when mod_md fetches a new response).
    type: str
    default: 33%
  md_keep_response:
    description: V(protected), C(MDStaplingKeepResponse); empty leaves mod_md's default.
    type: str
    default: 7d
  md_module_file:
    description: RHEL, the C(mod_md.so) loaded when no C(LoadModule md_module) is in effect; defaults to C(<server_root>/modules/mod_md.so).
    type: str
    default: ""
  root:
    description: Read every path under this directory (tests).
    type: path
    default: /
"""

EXAMPLES = r"""
- name: Plan turning stapling off on a Debian host
  ocsp.stapling.apache_stapling_plan:
    state: disabled
    layout: debian
    main_config: /etc/apache2/apache2.conf
    snippet: /etc/apache2/conf-available/zz-ocsp-stapling.conf
    link: /etc/apache2/conf-enabled/zz-ocsp-stapling.conf
    link_src: ../conf-available/zz-ocsp-stapling.conf
  register: plan
"""

RETURN = r"""
files:
  description: The files for M(ocsp.stapling.stapling_change) (C(path), C(content) or C(block) and C(marker), C(state)).
  returned: success
  type: list
  elements: dict
links:
  description: The links for M(ocsp.stapling.stapling_change).
  returned: success
  type: list
  elements: dict
edits:
  description: What the plan changes, one sentence per file and line.
  returned: success
  type: list
  elements: str
sites:
  description:
    - Each TLS virtual host after the change (C(names), C(file), C(line)), its C(stapling) switch (V(on)/V(off))
      and the C(winner), the file, line and directive that decides it.
  returned: success
  type: list
  elements: dict
vhost_overrides:
  description: Virtual hosts that set C(SSLUseStapling) themselves today (C(where), C(setting), C(names)).
  returned: success
  type: list
  elements: dict
problems:
  description: Why the change cannot be made safely; the role stops before anything changes when this is not empty.
  returned: success
  type: list
  elements: str
mode:
  description: The mode planned (V(standard) or V(protected)); null unless O(state=enabled).
  returned: success
  type: str
mechanism:
  description: V(protected), the mechanism chosen (V(mod_md) or V(relay)); null otherwise.
  returned: success
  type: str
relay_url:
  description: The relay the virtual hosts are pointed at (V(relay), or V(restored) on a relay host); null otherwise.
  returned: success
  type: str
keeper_certificates:
  description:
    - V(relay), one entry per certificate file served with stapling on, as M(ocsp.stapling.stapling_keeper) takes
      them (C(name), C(cert), C(issuer), C(ca_file)); the role writes the keeper configuration the relay reads from them.
  returned: success
  type: list
  elements: dict
keeper_files:
  description: V(relay), the issuer files RV(keeper_certificates) name (C(path), C(content), C(mode)), to write first.
  returned: success
  type: list
  elements: dict
keeper_stale_files:
  description: With O(state=enabled) or V(absent), the issuer files in O(keeper_dir) no longer needed, to remove.
  returned: success
  type: list
  elements: str
keeper_config_present:
  description: Whether O(keeper_config) exists (a certificate may be listed there that no longer staples through the relay).
  returned: success
  type: bool
md_store_dir:
  description: V(protected), the C(MDStoreDir) mod_md keeps its responses in (checked writable).
  returned: success
  type: str
md_loaded_by_change:
  description:
    - V(protected), whether this change loads mod_md (it was not loaded). mod_md loaded by a graceful restart
      initializes only at the next one, so the caller reloads a second time.
  returned: success
  type: bool
includes_needed:
  description:
    - cPanel, the files C(httpd.conf) must include before the change can be made (C(path), C(exists), C(content)
      to create it with, C(scope) V(server) or V(vhost), C(why)). cPanel writes an C(Include) only for files that
      exist when C(httpd.conf) is rebuilt; create them, run C(rebuildhttpdconf), then plan again. RV(problems)
      says the same in words.
  returned: success
  type: list
  elements: dict
whm_stapling:
  description:
    - cPanel EA4 with O(ea4_conf), WHM's own switch (C(file), C(exists), C(value), C(enabled), C(default) when
      cPanel's C(On) applies, C(problem)); null otherwise.
  returned: success
  type: dict
warnings:
  description: What httpd would warn about in the configuration (missing includes, unknown variables).
  returned: success
  type: list
  elements: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache.plan import (
    RESILIENT,
    ApachePlanRequest,
    PlanError,
    plan,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import run_or_fail

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["enabled", "disabled", "restored", "absent"], required=True),
    layout=dict(type="str", choices=["debian", "rhel", "cpanel_ea4", "cpanel_ea3"], required=True),
    server=dict(type="str", choices=["apache", "litespeed"], default="apache"),
    main_config=dict(type="path", required=True),
    server_root=dict(type="path"),
    envvars=dict(type="path"),
    server_version=dict(type="str"),
    snippet=dict(type="path"),
    link=dict(type="path"),
    link_src=dict(type="str"),
    includes_dir=dict(type="path"),
    userdata_dir=dict(type="path"),
    ea4_conf=dict(type="path"),
    cache_path=dict(type="str", default="/run/apache2/ocsp_stapling_cache"),
    cache_size=dict(type="int", default=0),
    certificate_count=dict(type="int", default=0),
    tuning=dict(type="raw", default="resilient"),
    resilient=dict(type="dict"),
    force_url=dict(type="str", default=""),
    proxy_url=dict(type="str", default=""),
    reason=dict(type="str", default=""),
    endpoints=dict(type="list", elements="dict", default=[]),
    mode=dict(type="str", choices=["standard", "protected"], default="standard"),
    md_store_dir=dict(type="str", default=""),
    md_renew_window=dict(type="str", default="33%"),
    md_keep_response=dict(type="str", default="7d"),
    md_module_file=dict(type="str", default=""),
    mechanism=dict(type="str", choices=["auto", "mod_md", "relay"], default="auto"),
    relay_url=dict(type="str", default="http://127.0.0.1:8088/"),
    keeper_dir=dict(type="str", default="/etc/ocsp-stapling/apache"),
    keeper_config=dict(type="str", default=""),
    ca_bundle=dict(type="str", default="/etc/ssl/certs/ca-certificates.crt"),
    root=dict(type="path", default="/"),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = dict(module.params)
    params["resilient"] = params["resilient"] or dict(RESILIENT)
    result = run_or_fail(module, lambda: plan(ApachePlanRequest(**params)), (PlanError,),
                         "Planning the Apache stapling change stopped on an unexpected error: {error}. "
                         "Nothing was changed.")
    for warning in result["warnings"]:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
