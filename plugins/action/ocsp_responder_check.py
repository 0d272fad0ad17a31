# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of ``ocsp.stapling.ocsp_responder_check``.

Crypto on the controller, network from the host: the managed web server runs only the
standard-library ``ocsp.stapling.ocsp_fetch`` module (read the certificate files; send
the requests), and everything that needs ``cryptography`` (parse certificates, build
requests, verify signatures) happens here.
"""
from __future__ import annotations

import sys
import traceback

from ansible.plugins.action import ActionBase

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.check_args import ARGUMENT_SPEC

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import check as ocsp_check
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.crypto import (
    CRYPTOGRAPHY_IMPORT_ERROR, HAS_CRYPTOGRAPHY)

FETCH_MODULE = "ocsp.stapling.ocsp_fetch"
# Lists CA directories (SSLCACertificatePath, CACertPath) on the host: standard library only.
FIND_MODULE = "ansible.builtin.find"
# c_rehash links (<hash>.N) and plain certificate files.
DIR_PATTERN = r"^([0-9a-f]{8}\.[0-9]+|.*\.(pem|crt|cer|PEM|CRT|CER))$"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    _supports_check_mode = True
    _supports_async = False

    def _fetch(self, task_vars: dict, **module_args) -> dict:
        result = self._execute_module(module_name=FETCH_MODULE, module_args=module_args,
                                      task_vars=task_vars)
        if result.get("failed"):
            raise RuntimeError(f"The host-side helper {FETCH_MODULE} failed on this host: "
                               f"{result.get('msg') or result.get('module_stderr') or result}")
        return result

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        result["changed"] = False
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if not HAS_CRYPTOGRAPHY:
            result.update(failed=True, msg=(
                "ocsp.stapling.ocsp_responder_check verifies OCSP responses on the controller and needs "
                f"the Python package 'cryptography' there, but {sys.executable} cannot import it "
                f"({CRYPTOGRAPHY_IMPORT_ERROR}). Install it on the controller (or in the execution environment): "
                f"{sys.executable} -m pip install 'cryptography>=41'. Managed hosts do not need it."))
            return result
        if args["timeout"] <= 0 or args["concurrency"] < 1:
            result.update(failed=True, msg="timeout must be above 0 seconds and concurrency at least 1.")
            return result
        try:
            result.update(self._check(args, task_vars))
        except ocsp_check.CheckError as exc:
            result.update(failed=True, msg=str(exc))
        except RuntimeError as exc:
            result.update(failed=True, msg=str(exc))
        except Exception as exc:  # a bug: say so, with the traceback for the report
            result.update(failed=True, msg=f"Unexpected error in ocsp_responder_check: {exc}",
                          exception=traceback.format_exc())
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _list_dirs(self, task_vars: dict, directories: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
        """Per directory, the certificate-looking names in it (full paths), and listing errors."""
        result = self._execute_module(module_name=FIND_MODULE, task_vars=task_vars, module_args=dict(
            paths=directories, patterns=[DIR_PATTERN], use_regex=True, file_type="any", recurse=False,
            follow=False, hidden=False))
        listings: dict[str, list[str]] = {d: [] for d in directories}
        errors: dict[str, str] = {}
        if result.get("failed"):
            reason = result.get("msg") or "the find module failed"
            return listings, {d: reason for d in directories}
        for path, why in (result.get("skipped_paths") or {}).items():
            errors[path] = str(why)
        for found in result.get("files") or []:
            path = found.get("path") or ""
            for directory in directories:
                if path.rsplit("/", 1)[0].rstrip("/") == directory.rstrip("/"):
                    listings[directory].append(path)
        return listings, errors

    def _check(self, args: dict, task_vars: dict) -> dict:
        items = ocsp_check.normalize_certificates(args["certificates"])
        paths = [item["path"] for item in items]
        extra = ([args["issuer"]] if args["issuer"] else []) + ocsp_check.issuer_file_paths(items)
        read_paths = list(dict.fromkeys(paths + extra))
        net = dict(timeout=args["timeout"], proxy=args["proxy"], concurrency=args["concurrency"])
        files = self._fetch(task_vars, paths=read_paths)["files"]
        entries = ocsp_check.load_entries(items, {f["path"]: f for f in files}, args["issuer"],
                                          args["responder_url"])
        directories = ocsp_check.issuer_dirs_to_list(entries)
        if directories:
            listings, listing_errors = self._list_dirs(task_vars, directories)
            wanted = ocsp_check.issuer_dir_files(entries, listings)
            dir_files = self._fetch(task_vars, paths=wanted)["files"] if wanted else []
            ocsp_check.apply_issuer_dirs(entries, listings, {f["path"]: f for f in dir_files}, listing_errors)
        aia_jobs = ocsp_check.ca_issuer_jobs(entries) if args["fetch_ca_issuers"] else []
        if aia_jobs:
            downloads = self._fetch(task_vars, requests=aia_jobs, ip_version="any", **net)["results"]
            ocsp_check.apply_ca_issuers(entries, aia_jobs, downloads)
        elif not args["fetch_ca_issuers"]:
            ocsp_check.skip_ca_issuers(entries)
        jobs = ocsp_check.plan_requests(entries, per_certificate=args["per_certificate"],
                                        nonce=args["nonce"], method=args["method"])
        answers = self._fetch(task_vars, requests=jobs, ip_version=args["ip_version"], **net)["results"] if jobs else []
        return ocsp_check.judge(entries, answers, skew=args["clock_skew"])
