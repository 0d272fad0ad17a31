# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LiteSpeed plugged into the one change shape (``change.py``).

Host side: Python standard library only. ``dialect_litespeed`` plans the edits (the new
bytes of every file); this module turns the plan into a :class:`ChangeRequest` and lets
:class:`StaplingChange` validate the candidate, back up, swap, restart gracefully, verify
and roll back. What stays LiteSpeed's own:

* the referenced-file pre-check (``certFile``, ``keyFile``, CA files). It is the only
  validation LSWS Enterprise gets: its ``lshttpd -t`` checks the license, not the config;
* clearing the OCSP cache files, done between the swap and the restart (``post_swap``) so
  the restarted server fetches fresh responses;
* the ``restart`` policy. ``lswsctrl restart`` is LiteSpeed's graceful restart (new
  processes take over, old ones finish their requests) and the only way it rereads its
  config, so it is the shape's reload command. ``restart: always`` maps to
  ``reload: always``: OpenLiteSpeed turns stapling off for a certificate after one bad
  responder answer and keeps it off until the next restart, so re-enabling after an
  outage must restart even though no file changed.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    DEFAULT_BACKUP_DIR,
    ChangeError,
    ChangeRequest,
    Endpoint,
    FileSpec,
    StaplingChange,
    VerifySpec,
    split_command,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.change.atomic_write import write_atomic
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed.config import (
    ENTERPRISE,
    FATAL_LOG_PATTERNS,
    OPENLITESPEED,
    WARNING_LOG_PATTERNS,
    LiteSpeedConfigError,
    StaplingPlan,
    StaplingSettings,
    default_cache_dirs,
    plan_stapling,
    record_originals,
    stale_cache_files,
)

RESTART_POLICIES = ("changed", "always", "never")
STATES = ("enabled", "disabled", "absent")
DEFAULT_STATE_FILE = "/var/lib/ocsp-stapling/litespeed-originals.json"
# OpenLiteSpeed reads ocspRespMaxAge with getLongValue(node, "ocspRespMaxAge", 60, 360000,
# 3600) (ConfigCtx::configStapling): outside 60..360000 it logs "invalid value" and uses
# 3600, whatever the manual's 86400 / -1 say. A value the server would throw away is refused.
MAX_AGE_RANGE = (60, 360000)
NO_CONFIGTEST_ON_ENTERPRISE = (
    "LiteSpeed Enterprise has no configuration test (lshttpd -t checks the license); the "
    "certificate, key and CA files the changed blocks reference were checked instead")


class LiteSpeedChangeError(Exception):
    """The change stopped; ``result`` holds what was found, run and restored."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


def is_executable(program: str, which: Callable[[str], str | None] = shutil.which) -> bool:
    if os.path.isabs(program):
        return os.path.isfile(program) and os.access(program, os.X_OK)
    return which(program) is not None


def next_to_file_backup(path: str, copy: str) -> str:
    """``<file>.<pid>.<date>~`` beside the file, named as Ansible's ``backup_local`` names
    them, copied (mode, owner, times) from the change's own backup of the same bytes."""
    target = "%s.%s.%s" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~"))
    shutil.copy2(copy, target)
    return target


class LiteSpeedStaplingChange:
    """One ``litespeed_stapling`` run: plan, pre-check, hand the files to the shape.

    ``params`` are the module's parameters. :meth:`run` returns the result dict or raises
    :class:`LiteSpeedChangeError`; :attr:`warnings` collects what to show the operator.
    """

    def __init__(self, params: dict[str, Any], check_mode: bool = False, diff: bool = False,
                 change_factory: Callable[..., StaplingChange] = StaplingChange) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.change_factory = change_factory
        self.warnings: list[str] = []
        self.cache_files: list[str] = []
        self.cache_cleared = False
        self.record: dict[str, Any] = {}
        self.originals: dict[str, Any] = {}
        self.result: dict[str, Any] = dict(
            changed=False, files=[], backups=[], targets=[], cache_files_removed=[],
            restarted=False, probe_endpoints=[], configtest={"ran": False},
            reload={"ran": False}, verification=None, rolled_back=False, backup_dir=None)

    def fail(self, message: str) -> LiteSpeedChangeError:
        return LiteSpeedChangeError(message, self.result)

    # -- the run
    def run(self) -> dict[str, Any]:
        request = self.prepare()
        change = self.change_factory(request, post_swap=self._post_swap)
        try:
            outcome = change.run()
        except ChangeError as exc:
            self._merge(exc.result, change)
            raise self.fail(exc.message) from None
        self._merge(outcome, change)
        self.finish(outcome)
        return self.result

    def prepare(self) -> ChangeRequest:
        """Plan, check the references and build the engine's request (nothing written)."""
        params = self.params
        plan = self._plan()
        self._check_references(plan)
        self.plan = plan
        changed_files = plan.changed_files
        if params.get("clear_cache"):
            self.cache_files = stale_cache_files(params.get("cache_dirs")
                                                 or default_cache_dirs(plan.server_root, plan.flavor))
        self.result["files"] = changed_files
        self.result["cache_files_removed"] = self.cache_files
        restart = params.get("restart") or "changed"
        if restart not in RESTART_POLICIES:
            raise self.fail("restart must be one of %s, not %r." % (", ".join(RESTART_POLICIES), restart))
        self.restart = restart
        request = self._request(plan, changed_files, restart)
        if not self.check_mode:
            self._require_commands(request, changed_files)
        return request

    def finish(self, outcome: dict[str, Any]) -> None:
        """Once the engine ran: the record of the operator's values, the cache files."""
        if not self.check_mode and not outcome.get("rolled_back"):
            self._write_record(self.plan)
        if not self.check_mode and self.cache_files and not self.cache_cleared:
            # Nothing for the shape to swap or restart (restart: never, no file changed):
            # the cache files still go, as asked.
            self._post_swap(self.result)
        self.result["changed"] = bool(self.result["files"] or self.cache_files or self.restart == "always")

    def _plan(self) -> StaplingPlan:
        params = self.params
        responder = params.get("responder")
        if responder and not responder.lower().startswith("http://"):
            raise self.fail("responder is %r, but LiteSpeed only accepts an http:// URL for "
                            "ocspResponder (OCSP is queried over plain HTTP). Use the http:// URL "
                            "from the certificate's AIA extension." % responder)
        state = params.get("state") or "enabled"
        if state not in STATES:
            raise self.fail("state must be one of %s, not %r." % (", ".join(STATES), state))
        max_age = params.get("max_age")
        if max_age is not None and not MAX_AGE_RANGE[0] <= int(max_age) <= MAX_AGE_RANGE[1]:
            raise self.fail(
                "max_age is %s, but LiteSpeed reads ocspRespMaxAge only between %d and %d seconds "
                "(OpenLiteSpeed's source; outside that range it logs 'invalid value' and uses 3600, "
                "although the manual mentions 86400 and -1). Use a value in that range; nothing was "
                "changed." % (max_age, MAX_AGE_RANGE[0], MAX_AGE_RANGE[1]))
        self.originals = self._read_record(params.get("server_root") or "/usr/local/lsws")
        settings = StaplingSettings(state=state, max_age=max_age, responder=responder,
                                    ca_certs=params.get("ca_certs"), originals=self.originals)
        try:
            plan = plan_stapling(params["server_root"], settings, params.get("listeners", ["all"]),
                                 params.get("vhosts", ["all"]), params.get("flavor") or "auto")
        except LiteSpeedConfigError as exc:
            raise self.fail(str(exc)) from None
        self.result["flavor"] = plan.flavor
        self.result["targets"] = [t.as_dict() for t in plan.targets]
        self.result["probe_endpoints"] = plan.probe_endpoints()
        self.warnings.extend(plan.notes)
        return plan

    # -- the record of the operator's own values (what state=absent gives back)
    def _state_file(self) -> str:
        return self.params.get("state_file") or DEFAULT_STATE_FILE

    def _read_record(self, server_root: str) -> dict:
        """This server root's entry of the record: ``{target id: {key: {original, applied}}}``."""
        path = self._state_file()
        try:
            with open(path, "rb") as handle:
                data = json.loads(handle.read().decode("utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as exc:
            raise self.fail("Cannot read the record of LiteSpeed's original stapling settings %s (%s). "
                            "Expected the JSON file this module writes; move it aside (state=absent then "
                            "has nothing to restore) or set state_file, and run again." % (path, exc)) from None
        self.record = data if isinstance(data, dict) else {}
        root = os.path.normpath(server_root)
        return dict(self.record.get(root) or {})

    def _write_record(self, plan: StaplingPlan) -> None:
        updated = record_originals(plan, self.params.get("state") or "enabled", self.originals)
        self.result["originals"] = updated
        if updated == self.originals:
            return
        record = dict(self.record)
        if updated:
            record[plan.server_root] = updated
        else:
            record.pop(plan.server_root, None)
        path = self._state_file()
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n", mode=0o600)
        except OSError as exc:
            self.warnings.append("The change is live, but the record of the original values could not be "
                                 "written to %s (%s); state=absent will not know them. Originals: %s"
                                 % (path, exc.strerror, json.dumps(updated, sort_keys=True)))

    def _check_references(self, plan: StaplingPlan) -> None:
        problems = plan.problems()
        if not problems:
            return
        if (self.params.get("state") or "enabled") == "enabled":
            raise self.fail(
                "LiteSpeed would fail to set up SSL for these after a restart: %s. Expected every "
                "certFile, keyFile, CA file and ocspCACerts to exist and be readable by this user. "
                "Fix the paths (or the files) and run again; nothing was changed." % "; ".join(problems))
        self.warnings.extend(problem + " (not blocking: stapling is being disabled)" for problem in problems)

    def _request(self, plan: StaplingPlan, changed_files: list[str], restart: str) -> ChangeRequest:
        params = self.params
        restart_command = split_command(params.get("restart_command")) or [
            os.path.join(plan.server_root, "bin", "lswsctrl"), "restart"]
        configtest = split_command(params.get("configtest_command")) if plan.flavor == OPENLITESPEED else None
        if restart == "never":
            reload = "never"
        elif restart == "always" or self.cache_files:
            reload = "always"  # removed cache files only take effect through a restart
        else:
            reload = "on_change"
        return ChangeRequest(
            files=[FileSpec(path=path, content=plan.after[path]) for path in changed_files],
            configtest_command=configtest,
            reload_command=restart_command,
            # lswsctrl restart also starts a server that is not running; no pid file is
            # checked, so the rollback always uses the reload command anyway.
            start_command=restart_command,
            candidate_validation=params.get("candidate_validation") or "auto",
            backup_dir=params.get("backup_dir") or DEFAULT_BACKUP_DIR,
            verify=self._verify(plan),
            reload=reload,
            check_mode=self.check_mode,
            diff=self.diff,
            configtest_absent_reason=NO_CONFIGTEST_ON_ENTERPRISE if plan.flavor == ENTERPRISE else None)

    def _verify(self, plan: StaplingPlan) -> VerifySpec:
        params = self.params
        endpoints = [Endpoint(host=e.get("host") or "127.0.0.1", port=int(e["port"]),
                              server_name=e.get("server_name"))
                     for e in params.get("verify_endpoints") or []]
        if not endpoints and params.get("verify_listeners"):
            endpoints = [Endpoint(host=e["host"], port=e["port"]) for e in plan.probe_endpoints()]
        error_log = params.get("error_log")
        return VerifySpec(
            endpoints=endpoints,
            error_log=plan.error_log if error_log is None else (error_log or None),
            fatal_patterns=list(FATAL_LOG_PATTERNS),
            warning_patterns=list(WARNING_LOG_PATTERNS),
            timeout=float(params.get("verify_timeout") or 30))

    def _require_commands(self, request: ChangeRequest, changed_files: list[str]) -> None:
        needed = []
        if request.reload != "never":
            needed.append(("restart_command", request.reload_command))
        if request.configtest_command and changed_files:
            needed.append(("configtest_command", request.configtest_command))
        for name, command in needed:
            if not is_executable(command[0]):
                raise self.fail(
                    "%s %r: %s is not an executable file. Expected LiteSpeed's own tool there; set %s "
                    "to the right command. Nothing was changed." % (name, " ".join(command), command[0], name))

    # -- LiteSpeed's own step between the swap and the restart
    def _post_swap(self, result: dict[str, Any]) -> list[str]:
        warnings = []
        if self.params.get("backup", True):
            for entry in result.get("files", []):
                if isinstance(entry, dict) and entry.get("changed") and entry.get("backup"):
                    try:
                        self.result["backups"].append(next_to_file_backup(entry["path"], entry["backup"]))
                    except OSError as exc:
                        warnings.append("Could not keep a copy of %s next to it (%s); the backup in %s "
                                        "is complete." % (entry["path"], exc.strerror, result.get("backup_dir")))
        for path in self.cache_files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                warnings.append("Could not remove OCSP cache file %s (%s); remove it by hand if the "
                                "server keeps stapling an old response." % (path, exc.strerror))
        self.cache_cleared = True
        return warnings

    def _merge(self, outcome: dict[str, Any], change: StaplingChange) -> None:
        for key in ("configtest", "reload", "verification", "rolled_back", "backup_dir", "recovery", "diff"):
            if key in outcome:
                self.result[key] = outcome[key]
        self.result["restarted"] = bool(self.result["reload"].get("ran") and self.result["reload"].get("rc") == 0)
        self.warnings.extend(change.warnings)
