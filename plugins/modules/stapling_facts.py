#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: stapling_facts
short_description: Describe the web servers, TLS sites and OCSP stapling settings of a host
version_added: 0.1.0
description:
  - Finds Apache (Debian C(apache2), RHEL C(httpd), cPanel EasyApache 3 and 4), nginx and
    LiteSpeed (OpenLiteSpeed and LiteSpeed Enterprise, natively or reading the Apache
    configuration on cPanel), their versions and layout, and the files the roles of this
    collection edit to change stapling.
  - Reads each server's configuration the way the server does (includes with globs,
    C(<IfModule>), C(<IfDefine>), C(Define), inheritance from the main server or the
    C(http) block) and lists every TLS site with its names, listen addresses, key
    material and the stapling directives in effect, each with the file and line it
    came from.
  - Classifies recent stapling errors in the servers' error logs (a bounded tail).
  - Read-only. Uses only the Python standard library on the managed host.
  - Every path is read under O(root), so the module can describe a private tree.
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  facts:
    support: full
    description: Sets C(ansible_facts.ocsp_stapling).
extends_documentation_fragment:
  - ocsp.stapling.facts
  - ocsp.stapling.read_only
notes:
  - Apache's C(<IfModule>) is evaluated against the modules compiled into Debian's
    apache2 plus every C(LoadModule) read so far, as httpd does at start-up.
  - LiteSpeed sites are read from its native configuration (C(conf/httpd_config.conf)
    or C(conf/httpd_config.xml)). When LiteSpeed serves the Apache configuration (on
    cPanel), the Apache sites are reported with RV(ansible_facts.ocsp_stapling.sites[].server=litespeed)
    and C(<IfModule Litespeed>) blocks count as loaded.
seealso:
  - name: mod_ssl SSLUseStapling
    description: Apache's stapling directives.
    link: https://httpd.apache.org/docs/2.4/mod/mod_ssl.html#sslusestapling
  - name: nginx ssl_stapling
    description: nginx's stapling directives.
    link: https://nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_stapling
"""

EXAMPLES = r"""
- name: Gather OCSP stapling facts
  ocsp.stapling.stapling_facts:

- name: Show every TLS site with stapling explicitly off
  ansible.builtin.debug:
    msg: "{{ item.names }} at {{ item.stapling.SSLUseStapling.file }}:{{ item.stapling.SSLUseStapling.line }}"
  loop: "{{ ansible_facts.ocsp_stapling.sites | selectattr('stapling.SSLUseStapling', 'defined')
            | selectattr('stapling.SSLUseStapling.value', 'in', ['off', 'Off']) }}"

- name: Describe a cPanel tree copied to a private directory, scanning the last 64 KiB of logs
  ocsp.stapling.stapling_facts:
    root: /srv/snapshots/web01
    run_binaries: false
    log_tail_bytes: 65536
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    ocsp_stapling:
      description: Servers, layout, stapling files, TLS sites and recent stapling errors.
      returned: always
      type: dict
      contains:
        root:
          description: The O(root) the paths were read under.
          type: str
          returned: always
        cpanel:
          description:
            - C(present), C(ea_version) (4, 3 or null; EA4 is found by C(/etc/cpanel/ea4/is_ea4) or by
              C(/etc/cpanel/ea4/paths.conf) alone) and EA4 C(paths) from C(paths.conf).
            - C(whm_stapling) (EA4), WHM's own switch C(sslusestapling) from C(/etc/cpanel/ea4/ea4.conf), with
              C(file), C(exists), C(value), C(enabled) (what the next rebuild writes, true or false, or null when
              Apache would refuse the value), C(default) (cPanel's C(On) applies because the file or the value is
              missing or empty, or the file is not a JSON object) and C(problem). cPanel writes it into C(httpd.conf)'s
              server-scope stapling block at every C(rebuildhttpdconf).
          type: dict
          returned: always
        servers:
          description:
            - C(apache), C(nginx) and C(litespeed), each with C(present), C(binary), C(version),
              C(supports_stapling) (false below Apache 2.3.3 / nginx 1.3.7 / OpenLiteSpeed 1.2 / LiteSpeed Enterprise 4.2.4), C(config),
              C(config_error) and C(stapling_files) (each with C(path), C(purpose), C(exists)).
            - C(apache) adds C(layout) (V(debian), V(rhel), V(cpanel_ea4), V(cpanel_ea3)),
              C(modules) (C(ssl) and C(socache_shmcb) with C(loaded) and the C(LoadModule) line),
              C(stapling_cache), C(stapling_cache_in_vhost) (each C(SSLStaplingCache) inside a
              C(<VirtualHost>), which Apache refuses, with C(file), C(line), C(virtual_host)),
              C(md_store_dir) (mod_md's store as httpd resolves it, the last server-scope C(MDStoreDir) relative
              to C(ServerRoot), else mod_md's default C(ServerRoot/md); its held responses are under C(ocsp/)),
              C(md_store_dir_configured) (whether C(MDStoreDir) sets it) and C(litespeed_files); C(nginx) adds C(configure_args) and
              C(prefix); C(litespeed) adds C(edition) and C(reads_apache_config).
          type: dict
          returned: always
        sites:
          description: Every TLS site of every server.
          type: list
          elements: dict
          returned: always
          contains:
            server:
              description: V(apache), V(nginx) or V(litespeed).
              type: str
            names:
              description: Server names and aliases.
              type: list
              elements: str
            listen:
              description: Addresses and ports (C(address), C(port)).
              type: list
              elements: dict
            file:
              description: File of the virtual host, server block or SSL block (O(detail=full) only).
              type: str
            line:
              description: Line where it starts (O(detail=full) only).
              type: int
            certificate:
              description: Certificate files.
              type: list
              elements: str
            key:
              description: Private key files.
              type: list
              elements: str
            chain:
              description: Chain file, if one is configured separately.
              type: str
            ca:
              description: CA file (C(SSLCACertificateFile), C(ssl_trusted_certificate), C(CACertFile)).
              type: str
            issuer_files:
              description:
                - The files, after the certificate file's own chain, where the server looks for the issuer
                  it needs to staple, in its order - Apache C(SSLCertificateChainFile) then
                  C(SSLCACertificateFile); nginx C(ssl_trusted_certificate) then C(ssl_client_certificate);
                  LiteSpeed C(certChain) (when it names a file) then C(CACertFile).
                - What M(ocsp.stapling.ocsp_responder_check) takes per certificate as C(issuer_files).
              type: list
              elements: str
            issuer_dirs:
              description:
                - CA directories the server looks in for the issuer - Apache C(SSLCACertificatePath),
                  LiteSpeed C(CACertPath); empty for nginx.
              type: list
              elements: str
            stapling:
              description:
                - Stapling directives in effect by name, each with C(value), C(file), C(line)
                  and C(inherited) (true when it comes from the main server or C(http) block).
                - With O(detail=compact) only the directives set in the site itself; those it
                  inherits are in C(servers.<server>.stapling_inherited), the same for every site
                  of that server. C(key), C(chain), C(ca), C(issuer_files) and C(issuer_dirs) are
                  present only when not empty; C(certificates) (every certificate directive) comes
                  with O(detail=full) only.
              type: dict
          sample:
            - server: apache
              names: [example.com, www.example.com]
              listen: [{address: 192.0.2.10, port: "443"}]
              file: /etc/apache2/conf/httpd.conf
              line: 412
              certificate: [/var/cpanel/ssl/apache_tls/example.com/combined]
              key: []
              chain: null
              ca: null
              issuer_files: []
              issuer_dirs: []
              stapling:
                SSLUseStapling: {value: "off", file: /etc/apache2/conf/httpd.conf, line: 440, inherited: false}
                SSLStaplingCache: {value: "shmcb:/run/apache2/stapling_cache(256000)",
                                   file: /etc/apache2/conf/httpd.conf, line: 120, inherited: true}
        errors:
          description:
            - One entry per error log scanned, with C(path), C(exists), C(bytes_read), C(total)
              and C(classes), keyed by class (V(AH01941), V(AH01974), V(AH01977), V(AH01980),
              V(AH01985), V(AH02217), V(AH02218), V(AH01872), V(nginx_ocsp_verify_failed),
              V(nginx_ocsp_timeout), V(nginx_stapling_ignored)), each with C(count),
              C(category), C(meaning) and the C(newest) line.
          type: list
          elements: dict
          returned: always
        warnings:
          description:
            - Problems found while reading (missing includes, unknown variables, old versions).
            - With O(detail=compact) the first 10 distinct ones.
          type: list
          elements: str
          returned: always
        warnings_total:
          description: How many problems were found while reading, quoted or not.
          type: int
          returned: always
        detail:
          description: The O(detail) the facts were gathered with.
          type: str
          returned: always
"""

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.facts import ARGUMENT_SPEC, gather_facts


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params["log_tail_bytes"] < 0:
        module.fail_json(msg="log_tail_bytes is %d; it must be 0 or more (bytes read from the end of each log)."
                         % module.params["log_tail_bytes"])
    try:
        facts = gather_facts(**module.params)
    except Exception as exc:  # an unexpected bug: report it whole, never a bare traceback
        module.fail_json(msg="Could not gather OCSP stapling facts: %s" % exc, exception=traceback.format_exc())
    for warning in facts["warnings"][:10]:
        module.warn(warning)
    if facts["warnings_total"] > 10:
        module.warn("%d more problems were found while reading the configuration; run with detail=full "
                    "for every one." % (facts["warnings_total"] - 10))
    module.exit_json(changed=False, ansible_facts={"ocsp_stapling": facts})


if __name__ == "__main__":
    main()
