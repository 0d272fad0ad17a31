# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the modules that read the host's web servers (stapling_facts, stapling_survey)."""
from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """C(ocsp.stapling.facts): where the servers, their configuration and error logs are."""

    DOCUMENTATION = r"""
options:
  root:
    description:
      - Directory under which every path is read. C(/) on a real host; a private tree in tests.
      - Paths in the returned facts are as the servers see them, without this prefix.
    type: path
    default: /
  apache_binary:
    description:
      - Apache binary, run with C(-v) for the version.
      - Default depends on the layout found, for example C(/usr/sbin/apache2) (Debian),
        C(/usr/sbin/httpd) (RHEL, cPanel EA4, or C(bin_httpd) from C(/etc/cpanel/ea4/paths.conf)),
        C(/usr/local/apache/bin/httpd) (cPanel EA3).
    type: path
  apache_config:
    description:
      - Apache main configuration file.
      - Default depends on the layout, for example C(/etc/apache2/apache2.conf),
        C(/etc/httpd/conf/httpd.conf), C(/etc/apache2/conf/httpd.conf) (EA4),
        C(/usr/local/apache/conf/httpd.conf) (EA3).
    type: path
  apache_server_root:
    description:
      - Apache C(ServerRoot), against which relative C(Include) paths are resolved.
      - Default depends on the layout (C(/etc/apache2), C(/etc/httpd), C(/usr/local/apache)).
    type: path
  nginx_binary:
    description: nginx binary, run with C(-V) for the version and configure arguments.
    type: path
    default: /usr/sbin/nginx
  nginx_config:
    description:
      - nginx main configuration file.
      - When not set, C(--conf-path) from C(nginx -V), else C(/etc/nginx/nginx.conf).
    type: path
  litespeed_root:
    description: LiteSpeed server root (C($SERVER_ROOT)).
    type: path
    default: /usr/local/lsws
  error_logs:
    description:
      - Error logs to scan for stapling errors.
      - When not set, the C(ErrorLog)/C(error_log) files named in the configurations, else
        each layout's default, and LiteSpeed's C(logs/error.log).
    type: list
    elements: path
  log_tail_bytes:
    description: How many bytes at the end of each error log are read.
    type: int
    default: 1048576
  detail:
    description:
      - V(compact) returns what the runbook needs per site - names, listen addresses,
        certificate files, issuer sources when any, and the stapling directives set in
        the site itself with their file and line. Settings a site inherits from the enclosing scope (Apache's main server, nginx's C(http) block) are
        given once per server in C(servers.<name>.stapling_inherited). The first few distinct
        warnings are quoted and C(ansible_facts.ocsp_stapling.warnings_total) counts them all.
        About 250 bytes per site on a cPanel EA4 host.
      - V(full) returns every stapling and certificate directive of every site with its
        arguments, file, line, C(<IfModule>) conditions and inheritance, and every warning
        (about 1.9 KB per site on a cPanel EA4 host).
    type: str
    choices: [compact, full]
    default: compact
  run_binaries:
    description:
      - Whether to run the server binaries for their versions. With V(false) versions
        are reported as unknown (LiteSpeed's comes from its C(VERSION) file either way).
    type: bool
    default: true
"""
