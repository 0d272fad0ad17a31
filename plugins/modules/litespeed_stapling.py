#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: litespeed_stapling
short_description: Enable, disable or tune OCSP stapling in LiteSpeed's native configuration
version_added: 0.1.0
description:
  - Sets C(enableStapling), C(ocspRespMaxAge), C(ocspResponder) and C(ocspCACerts) on the
    secure listeners and on the virtual hosts' C(vhssl) blocks of an OpenLiteSpeed
    (C(conf/httpd_config.conf), C(conf/vhosts/*/vhconf.conf)) or LiteSpeed Enterprise
    (C(conf/httpd_config.xml) and vhost XML) tree under O(server_root).
  - Edits are lossless; comments, key order, alignment and unknown keys are kept, and a
    file that needs no change is not rewritten.
  - Goes through the collection's one change shape (the same as M(ocsp.stapling.stapling_change)),
    so the live server is never left half changed. Check every referenced certificate, key
    and CA file (fail if one is missing while enabling; on LiteSpeed Enterprise this is the
    only validation, its C(lshttpd -t) checks the license, not the configuration). On
    OpenLiteSpeed run O(configtest_command) against the candidate files B(before) any live
    file changes (see O(candidate_validation)). Back up every file it will touch under
    O(backup_dir). Swap each file atomically (mode and owner kept). Clear the OCSP cache if
    asked. Restart gracefully with O(restart_command). Verify (no fatal line in O(error_log)
    since the restart, and a TLS handshake with each endpoint of O(verify_endpoints) or, with
    O(verify_listeners), of every secure listener). On any failure after the swap, put the
    original files back, restart again and fail with a message saying what happened and
    whether the old configuration is back and serving.
  - OpenLiteSpeed turns stapling off for a certificate after one bad responder answer or
    verification failure and keeps it off until the next restart. After a responder outage
    use O(restart=always), which restarts even when the files did not change.
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description:
      - Reports the files that would change and the cache files that would be removed; writes and restarts nothing.
      - On OpenLiteSpeed the candidate is config-tested in a private mount namespace when one
        is available (read-only for the live tree) and the result reported in RV(configtest).
  diff_mode:
    support: full
    description: Returns the before and after text of every configuration file that changes.
  platform:
    support: full
    platforms: posix
    description: Runs on the LiteSpeed host with the Python standard library only.
options:
  server_root:
    description:
      - LiteSpeed's C($SERVER_ROOT), the directory holding C(conf/) and C(bin/).
    type: path
    default: /usr/local/lsws
  flavor:
    description:
      - Which server the tree belongs to. V(auto) picks V(openlitespeed) when
        C(conf/httpd_config.conf) exists, else V(enterprise) when C(conf/httpd_config.xml)
        exists.
    type: str
    choices: [auto, openlitespeed, enterprise]
    default: auto
  state:
    description:
      - V(enabled) sets C(enableStapling 1); V(disabled) sets C(enableStapling 0) where the
        key exists (a missing key already means off).
      - The first time a key is changed its original value (or that it was absent) is kept in
        O(state_file). V(absent) puts those original values back (a key the collection added
        is removed again), leaving alone any key changed since by WebAdmin or by hand.
      - V(disabled) on a block whose original had stapling off (no C(enableStapling), or
        C(0)) also restores the original keys, so enable then disable gives back the
        operator's file.
    type: str
    choices: [enabled, disabled, absent]
    default: enabled
  state_file:
    description:
      - JSON record of the operator's original values, per server root and block, written
        after every successful change and read by O(state=absent).
    type: path
    default: /var/lib/ocsp-stapling/litespeed-originals.json
  listeners:
    description:
      - Names of the listeners to change, or V(all) for every secure listener.
      - An empty list leaves every listener alone.
    type: list
    elements: str
    default: [all]
  vhosts:
    description:
      - Names of the virtual hosts to change, or V(all) for every virtual host that has its
        own SSL (C(vhssl)) block. A virtual host without one uses its listener's settings.
      - A C(vhTemplate) whose template file has a C(vhssl) block is selected by its name or
        by any member's name; its members share that block, so the change applies to all.
      - An empty list leaves every virtual host alone.
    type: list
    elements: str
    default: [all]
  max_age:
    description:
      - C(ocspRespMaxAge) in seconds, between 60 and 360000. OpenLiteSpeed's source reads it
        in that range with a default of 3600 and replaces any other value by 3600, although
        LiteSpeed's manual speaks of 86400 and V(-1); values outside the range are refused.
        Left as it is when not given.
    type: int
  responder:
    description:
      - C(ocspResponder), an C(http://) URL used instead of the one in the certificate.
        Left as it is when not given; an empty string removes the override.
    type: str
  ca_certs:
    description:
      - C(ocspCACerts), the file of CA certificates used to verify responses. Left as it is
        when not given; an empty string removes it (LiteSpeed then uses C(CACertFile)).
    type: str
  clear_cache:
    description:
      - Remove the files in the OCSP cache directories (the directories are kept, as
        LiteSpeed's documentation asks). A cached response can outlive a change of CA or
        responder. Removing files counts as a change and triggers the restart.
    type: bool
    default: false
  cache_dirs:
    description:
      - OCSP cache directories to clear. Directories that do not exist are skipped.
      - Default for OpenLiteSpeed C(/dev/shm/ols/ocspcache), for LiteSpeed Enterprise
        C(/dev/shm/lsws/ocspcache), and for both C(<server_root>/tmp/ocspcache) and the older
        C(<server_root>/temp/ocspcache).
    type: list
    elements: path
  configtest_command:
    description:
      - Command that tests the configuration on OpenLiteSpeed, for example
        C(/usr/local/lsws/bin/openlitespeed -t). It reads the candidate files at their real
        paths before they replace the live ones (see O(candidate_validation)).
      - Not run on LiteSpeed Enterprise, whose C(lshttpd -t) checks the license rather than
        the configuration; there the referenced files are checked instead.
      - Without it (on OpenLiteSpeed) the candidate is not validated and a warning says so.
    type: str
  candidate_validation:
    description:
      - How O(configtest_command) sees the candidate. V(namespace) runs it in a private mount
        namespace (C(unshare --mount)) in which each changed directory holds the candidate;
        the live files never change. Needs root (CAP_SYS_ADMIN).
      - V(swap) writes the candidate to the live files, runs the test and puts the old files
        back if it fails (LiteSpeed reads its configuration only when it restarts, so the
        running server is not affected).
      - V(auto) uses V(namespace) when possible, else V(swap) with a warning.
    type: str
    choices: [auto, namespace, swap]
    default: auto
  restart_command:
    description:
      - Command that restarts LiteSpeed gracefully (new processes take over, old ones finish
        their requests). Default C(<server_root>/bin/lswsctrl restart).
      - Also used to bring the server back with the original files after a failed change
        (C(lswsctrl restart) starts a server that is not running).
    type: str
  restart:
    description:
      - V(changed) restarts only when a file changed or cache files were removed,
        V(always) restarts every run (needed to bring OpenLiteSpeed's stapling back after a
        responder outage), V(never) leaves the restart (and the verification) to the caller.
    type: str
    choices: [changed, always, never]
    default: changed
  backup:
    description:
      - Also keep a timestamped copy (C(<file>.<pid>.<date>~)) of each changed file next to it.
      - The copies under O(backup_dir), which the rollback uses, are always made.
    type: bool
    default: true
  backup_dir:
    description:
      - Where the change's backups go, one timestamped directory per run holding the original
        files and a C(manifest.json). Also holds the lock that keeps two changes on one host
        from interleaving.
    type: path
    default: /var/backups/ocsp.stapling
  error_log:
    description:
      - LiteSpeed's error log, read from its size before the restart. A line saying an SSL
        context could not be set up (C([SSL] Config SSL Context with Certificate File ...))
        fails the change and rolls it back; C([OCSP]) lines become warnings.
      - Default the file the main configuration names (C(errorlog) block, C(<logging><log><fileName>)),
        else C(<server_root>/logs/error.log); an empty string turns the scan off.
    type: path
  verify_endpoints:
    description:
      - TLS endpoints that must complete a handshake after the restart (SNI sent,
        certificate not checked); one that does not within O(verify_timeout) rolls the
        change back.
    type: list
    elements: dict
    default: []
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
  verify_listeners:
    description:
      - When O(verify_endpoints) is empty, check every secure listener of the change instead
        (RV(probe_endpoints), where C(*:443) becomes C(127.0.0.1:443)).
    type: bool
    default: false
  verify_timeout:
    description: Seconds to wait for the restarted server to pass the verification.
    type: float
    default: 30
notes:
  - Runs on the managed host with the Python standard library only.
  - Tested against real-format configuration files and a stand-in C(lswsctrl); LiteSpeed
    itself cannot be installed from the package registries the tests use.
  - The verification error-log patterns come from OpenLiteSpeed's source; LiteSpeed
    Enterprise is assumed to log the same way.
seealso:
  - module: ocsp.stapling.stapling_change
    description: The change shape this module goes through.
  - name: OpenLiteSpeed Users' Manual, Listeners SSL, OCSP Stapling
    description: Meaning of enableStapling, ocspRespMaxAge, ocspResponder and ocspCACerts.
    link: https://github.com/litespeedtech/openlitespeed/blob/master/dist/docs/Listeners_SSL_Help.html
  - name: LiteSpeed documentation, OCSP Stapling
    description: Where LiteSpeed Enterprise caches responses and how to clear them.
    link: https://docs.litespeedtech.com/lsws/cp/cpanel/ocsp-stapling/
"""

EXAMPLES = r"""
- name: Turn OCSP stapling off on every secure listener and vhost during a responder outage
  ocsp.stapling.litespeed_stapling:
    state: disabled

- name: Turn it back on and restart even if nothing changed (OpenLiteSpeed keeps it off until a restart)
  ocsp.stapling.litespeed_stapling:
    state: enabled
    restart: always

- name: Enable, then require a TLS handshake with every secure listener or roll back
  ocsp.stapling.litespeed_stapling:
    state: enabled
    configtest_command: /usr/local/lsws/bin/openlitespeed -t
    verify_listeners: true

- name: Pin the responder and the CA file on one listener, and drop cached responses
  ocsp.stapling.litespeed_stapling:
    server_root: /usr/local/lsws
    listeners: [SSL]
    vhosts: []
    responder: http://ocsp.example.net
    ca_certs: /etc/ssl/certs/issuer-chain.pem
    max_age: 43200
    clear_cache: true
    configtest_command: /usr/local/lsws/bin/openlitespeed -t
"""

RETURN = r"""
flavor:
  description: The server the tree belongs to.
  returned: always
  type: str
  sample: openlitespeed
files:
  description: Configuration files that changed (or would change in check mode).
  returned: always
  type: list
  elements: str
  sample: [/usr/local/lsws/conf/httpd_config.conf]
backups:
  description: Copies kept next to the changed files (O(backup)); the rollback's own copies are under RV(backup_dir).
  returned: always
  type: list
  elements: str
backup_dir:
  description: This run's backup directory under O(backup_dir) (null when no file was written).
  returned: always
  type: str
configtest:
  description:
    - The candidate's config test (ran, rc, output, method, passed); on LiteSpeed Enterprise
      C(skipped) says why none ran.
  returned: always
  type: dict
  sample: {ran: true, rc: 0, output: "", method: namespace, passed: true}
reload:
  description: The restart (ran, command, rc, output).
  returned: always
  type: dict
verification:
  description:
    - Health after the restart (ok, endpoints, fatal_lines, warning_lines, problem, elapsed);
      null when nothing was restarted.
  returned: always
  type: dict
rolled_back:
  description: Whether the original files were put back after a failure.
  returned: always
  type: bool
recovery:
  description: After a rollback, how the server was brought back (action, command, rc, output, verification).
  returned: when rolled back after a restart
  type: dict
targets:
  description: Each listener and virtual host considered, its file, and per key the value before and after.
  returned: always
  type: list
  elements: dict
  sample:
    - kind: listener
      name: SSL
      file: /usr/local/lsws/conf/httpd_config.conf
      changes: {enableStapling: {before: "0", after: "1"}}
cache_files_removed:
  description: OCSP cache files removed (or that would be removed in check mode).
  returned: always
  type: list
  elements: str
restarted:
  description: Whether the restart command ran and succeeded (false in check mode).
  returned: always
  type: bool
probe_endpoints:
  description: Host and port of each secure listener changed, to probe after the restart.
  returned: always
  type: list
  elements: dict
  sample: [{listener: SSL, host: 127.0.0.1, port: 443}]
originals:
  description: The record of original values for this server root after the change (see O(state_file)).
  returned: when the change went live
  type: dict
  sample: {"listener:SSL": {enableStapling: {original: null, applied: "1"}}}
diff:
  description: Before and after text of each changed file, only in diff mode.
  returned: when diff mode is on
  type: list
  elements: dict
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ocsp.stapling.plugins.module_utils.change.argspec import ENDPOINT_SPEC
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed.config import (
    ENTERPRISE,
    OPENLITESPEED,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed.change import (
    LiteSpeedChangeError,
    LiteSpeedStaplingChange,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.module_main import finish, run_or_fail

ARGUMENT_SPEC = dict(
    server_root=dict(type="path", default="/usr/local/lsws"),
    flavor=dict(type="str", default="auto", choices=["auto", OPENLITESPEED, ENTERPRISE]),
    state=dict(type="str", default="enabled", choices=["enabled", "disabled", "absent"]),
    state_file=dict(type="path", default="/var/lib/ocsp-stapling/litespeed-originals.json"),
    listeners=dict(type="list", elements="str", default=["all"]),
    vhosts=dict(type="list", elements="str", default=["all"]),
    max_age=dict(type="int"),
    responder=dict(type="str"),
    ca_certs=dict(type="str"),
    clear_cache=dict(type="bool", default=False),
    cache_dirs=dict(type="list", elements="path"),
    configtest_command=dict(type="str"),
    restart_command=dict(type="str"),
    restart=dict(type="str", default="changed", choices=["changed", "always", "never"]),
    backup=dict(type="bool", default=True),
    backup_dir=dict(type="path", default="/var/backups/ocsp.stapling"),
    candidate_validation=dict(type="str", default="auto", choices=["auto", "namespace", "swap"]),
    error_log=dict(type="path"),
    verify_endpoints=dict(type="list", elements="dict", options=ENDPOINT_SPEC, default=[]),
    verify_listeners=dict(type="bool", default=False),
    verify_timeout=dict(type="float", default=30),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    change = LiteSpeedStaplingChange(module.params, check_mode=module.check_mode, diff=module._diff)

    def run() -> dict:
        try:
            return change.run()
        finally:
            for warning in change.warnings:
                module.warn(warning)
    result = run_or_fail(module, run, (LiteSpeedChangeError,),
                         "Unexpected error while changing LiteSpeed's stapling settings: {error}. The files may "
                         "or may not have been changed; compare them with the backup under "
                         f"{module.params['backup_dir']} before retrying.")
    finish(module, result)


if __name__ == "__main__":
    main()
