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
  - Order of work, so the live server is never left half changed; check every
    referenced certificate, key and CA file (fail if one is missing while enabling), back
    up and swap the files, run O(configtest_command) on OpenLiteSpeed, clear the OCSP
    cache if asked, restart gracefully with O(restart_command). If the config test or the
    restart fails, the original files are put back (and the server restarted again after a
    failed restart).
  - LiteSpeed reads its configuration only when it (re)starts, so swapping files before the
    config test does not affect the running server.
  - OpenLiteSpeed turns stapling off for a certificate after one bad responder answer or
    verification failure and keeps it off until the next restart. After a responder outage
    use O(restart=always), which restarts even when the files did not change.
author:
  - ocsp.stapling contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reports the files that would change and the cache files that would be removed; writes and restarts nothing.
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
    type: str
    choices: [enabled, disabled]
    default: enabled
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
      - An empty list leaves every virtual host alone.
    type: list
    elements: str
    default: [all]
  max_age:
    description:
      - C(ocspRespMaxAge) in seconds; LiteSpeed's default is 86400 and V(-1) turns the limit
        off. Left as it is when not given.
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
      - Command that tests the configuration, run on OpenLiteSpeed after the swap and before
        the restart, for example C(/usr/local/lsws/bin/openlitespeed -t).
      - Not run on LiteSpeed Enterprise, whose C(lshttpd -t) checks the license rather than
        the configuration; there the referenced files are checked instead.
    type: str
  restart_command:
    description:
      - Command that restarts LiteSpeed gracefully. Default C(<server_root>/bin/lswsctrl restart).
    type: str
  restart:
    description:
      - V(changed) restarts only when a file changed or cache files were removed,
        V(always) restarts every run (needed to bring OpenLiteSpeed's stapling back after a
        responder outage), V(never) leaves the restart to the caller.
    type: str
    choices: [changed, always, never]
    default: changed
  backup:
    description:
      - Keep a timestamped copy of each changed file next to it.
    type: bool
    default: true
notes:
  - Runs on the managed host with the Python standard library only.
  - Tested against real-format configuration files and a stand-in C(lswsctrl); LiteSpeed
    itself cannot be installed from the package registries the tests use.
seealso:
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
  description: Backup copies written before the files were replaced.
  returned: always
  type: list
  elements: str
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
  description: Whether the restart command ran (false in check mode).
  returned: always
  type: bool
probe_endpoints:
  description: Host and port of each secure listener changed, to probe after the restart.
  returned: always
  type: list
  elements: dict
  sample: [{listener: SSL, host: 127.0.0.1, port: 443}]
diff:
  description: Before and after text of each changed file, only in diff mode.
  returned: when diff mode is on
  type: list
  elements: dict
"""

import os
import shlex
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.ocsp.stapling.plugins.module_utils.dialect_litespeed import (
    ENTERPRISE,
    OPENLITESPEED,
    LiteSpeedConfigError,
    StaplingSettings,
    default_cache_dirs,
    plan_stapling,
    stale_cache_files,
)

ARGUMENT_SPEC = dict(
    server_root=dict(type="path", default="/usr/local/lsws"),
    flavor=dict(type="str", default="auto", choices=["auto", OPENLITESPEED, ENTERPRISE]),
    state=dict(type="str", default="enabled", choices=["enabled", "disabled"]),
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
)


class LiteSpeedStapling:
    """Back up, swap, config-test, restart; put the files back when a step fails."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.result: dict = dict(changed=False, files=[], backups=[], targets=[],
                                 cache_files_removed=[], restarted=False, probe_endpoints=[])

    def run(self) -> dict:
        params = self.params
        responder = params["responder"]
        if responder and not responder.lower().startswith("http://"):
            self.module.fail_json(msg="responder is %r, but LiteSpeed only accepts an http:// URL "
                                      "for ocspResponder (OCSP is queried over plain HTTP). Use the "
                                      "http:// URL from the certificate's AIA extension." % responder)
        settings = StaplingSettings(state=params["state"], max_age=params["max_age"],
                                    responder=responder, ca_certs=params["ca_certs"])
        try:
            plan = plan_stapling(params["server_root"], settings, params["listeners"],
                                 params["vhosts"], params["flavor"])
        except LiteSpeedConfigError as exc:
            self.module.fail_json(msg=to_native(exc), **self.result)
        self.result["flavor"] = plan.flavor
        self.result["targets"] = [t.as_dict() for t in plan.targets]
        self.result["probe_endpoints"] = plan.probe_endpoints()
        for note in plan.notes:
            self.module.warn(note)
        self._check_references(plan)

        changed_files = plan.changed_files
        cache_dirs = params["cache_dirs"] or default_cache_dirs(plan.server_root, plan.flavor)
        cache_files = stale_cache_files(cache_dirs) if params["clear_cache"] else []
        self.result["files"] = changed_files
        self.result["cache_files_removed"] = cache_files
        changed = bool(changed_files or cache_files)
        restart = params["restart"] == "always" or (params["restart"] == "changed" and changed)
        self.result["changed"] = changed or restart
        if self.module._diff:
            self.result["diff"] = [dict(before_header=path, after_header=path,
                                        before=to_text(plan.before[path], errors="surrogate_or_replace"),
                                        after=to_text(plan.after[path], errors="surrogate_or_replace"))
                                   for path in changed_files]
        if self.module.check_mode:
            return self.result

        configtest = self._command("configtest_command") if plan.flavor == OPENLITESPEED else None
        restart_command = self._command("restart_command") or [
            os.path.join(plan.server_root, "bin", "lswsctrl"), "restart"]
        if restart:
            self._require_executable(restart_command, "restart_command")
        if configtest and changed_files:
            self._require_executable(configtest, "configtest_command")

        for path in changed_files:
            if params["backup"]:
                self.result["backups"].append(self.module.backup_local(path))
            self._write(path, plan.after[path])
        if configtest and changed_files:
            rc, out, err = self.module.run_command(configtest)
            if rc != 0:
                self._restore(plan, changed_files)
                self.module.fail_json(
                    msg="The config test %r exited %d after the stapling change, so the original "
                        "files were put back and LiteSpeed was not restarted. Its output is below; "
                        "fix what it reports (or run with state/values that match the files) and "
                        "run again." % (" ".join(configtest), rc),
                    stdout=out, stderr=err, **self.result)
        for path in cache_files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.module.warn("Could not remove OCSP cache file %s (%s); remove it by hand "
                                 "if the server keeps stapling an old response." % (path, exc.strerror))
        if restart:
            rc, out, err = self.module.run_command(restart_command)
            if rc != 0:
                self._restore(plan, changed_files)
                rc2, out2, err2 = self.module.run_command(restart_command) if changed_files else (None, "", "")
                again = ("restarted again with the original files (exit %s)" % rc2) if changed_files \
                    else "no files had changed"
                self.module.fail_json(
                    msg="The restart command %r exited %d. The original configuration was put back "
                        "and LiteSpeed %s. Check that LiteSpeed is running (%s status) and read "
                        "its error log under %s/logs before trying again."
                        % (" ".join(restart_command), rc, again, restart_command[0],
                           plan.server_root),
                    stdout=out, stderr=err, rollback_stdout=out2, rollback_stderr=err2,
                    **self.result)
            self.result["restarted"] = True
        return self.result

    def _check_references(self, plan) -> None:
        problems = plan.problems()
        if not problems:
            return
        if self.params["state"] == "enabled":
            self.module.fail_json(
                msg="LiteSpeed would fail to set up SSL for these after a restart: %s. Expected "
                    "every certFile, keyFile, CA file and ocspCACerts to exist and be readable by "
                    "this user. Fix the paths (or the files) and run again; nothing was changed."
                    % "; ".join(problems), **self.result)
        for problem in problems:
            self.module.warn(problem + " (not blocking: stapling is being disabled)")

    def _command(self, name: str) -> list | None:
        value = self.params[name]
        return shlex.split(value) if value and value.strip() else None

    def _require_executable(self, command: list, name: str) -> None:
        program = command[0]
        if os.path.isabs(program):
            found = os.path.isfile(program) and os.access(program, os.X_OK)
        else:
            found = self.module.get_bin_path(program) is not None
        if not found:
            self.module.fail_json(
                msg="%s %r: %s is not an executable file. Expected LiteSpeed's own tool there; "
                    "set %s to the right command. Nothing was changed."
                    % (name, " ".join(command), program, name), **self.result)

    def _write(self, path: str, data: bytes) -> None:
        handle, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".ocsp-stapling-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            self.module.atomic_move(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    def _restore(self, plan, paths) -> None:
        for path in paths:
            self._write(path, plan.before[path])


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = LiteSpeedStapling(module).run()
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="Unexpected error while changing LiteSpeed's stapling settings: %s. "
                             "No restart was attempted after this point; compare the files with "
                             "their backups before retrying." % to_native(exc),
                         exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
