# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The responder check's round trips: crypto here on the controller, reads and requests on
the host through a standard-library module.

Shared by the ``ocsp_responder_check`` action (which reads the files first) and
``stapling_diagnose`` (whose survey of the host has already read them). ``execute`` runs
one host module: ``execute(module_name, module_args) -> result``.
"""
from __future__ import annotations

from typing import Any, Callable

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import check as ocsp_check
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.check_args import (
    ARGUMENT_SPEC, normalize_certificates, paths_to_read)

Execute = Callable[[str, dict], dict]

FETCH_MODULE = "ocsp.stapling.ocsp_fetch"
# Lists CA directories (SSLCACertificatePath, CACertPath) on the host: standard library only.
FIND_MODULE = "ansible.builtin.find"
# c_rehash links (<hash>.N) and plain certificate files.
DIR_PATTERN = r"^([0-9a-f]{8}\.[0-9]+|.*\.(pem|crt|cer|PEM|CRT|CER))$"


def default_args(**given: Any) -> dict:
    """The check's arguments: the spec's defaults, then ``given``."""
    args = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
    args.update(given)
    return args


def fetch(execute: Execute, **module_args: Any) -> dict:
    result = execute(FETCH_MODULE, module_args)
    if result.get("failed"):
        raise RuntimeError(f"The host-side helper {FETCH_MODULE} failed on this host: "
                           f"{result.get('msg') or result.get('module_stderr') or result}")
    return result


def list_dirs(execute: Execute, directories: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Per directory, the certificate-looking names in it (full paths), and listing errors."""
    result = execute(FIND_MODULE, dict(paths=directories, patterns=[DIR_PATTERN], use_regex=True, file_type="any",
                                       recurse=False, follow=False, hidden=False))
    listings: dict[str, list[str]] = {d: [] for d in directories}
    if result.get("failed"):
        reason = result.get("msg") or "the find module failed"
        return listings, {d: reason for d in directories}
    errors = {path: str(why) for path, why in (result.get("skipped_paths") or {}).items()}
    for found in result.get("files") or []:
        path = found.get("path") or ""
        for directory in directories:
            if path.rsplit("/", 1)[0].rstrip("/") == directory.rstrip("/"):
                listings[directory].append(path)
    return listings, errors


def run_check(args: dict, execute: Execute, files: list[dict] | None = None) -> dict:
    """Check every certificate's responder from the host; ``files`` are the host's reads of
    :func:`check_args.paths_to_read` when a survey already made them (else read here).
    Raises ``CheckError`` (bad input) or ``RuntimeError`` (the host helper failed)."""
    items = normalize_certificates(args["certificates"])
    net = dict(timeout=args["timeout"], proxy=args["proxy"], concurrency=args["concurrency"])
    if files is None:
        files = fetch(execute, paths=paths_to_read(items, args["issuer"]))["files"]
    entries = ocsp_check.load_entries(items, {f["path"]: f for f in files}, args["issuer"], args["responder_url"])
    directories = ocsp_check.issuer_dirs_to_list(entries)
    if directories:
        listings, listing_errors = list_dirs(execute, directories)
        wanted = ocsp_check.issuer_dir_files(entries, listings)
        dir_files = fetch(execute, paths=wanted)["files"] if wanted else []
        ocsp_check.apply_issuer_dirs(entries, listings, {f["path"]: f for f in dir_files}, listing_errors)
    aia_jobs = ocsp_check.ca_issuer_jobs(entries) if args["fetch_ca_issuers"] else []
    if aia_jobs:
        downloads = fetch(execute, requests=aia_jobs, ip_version="any", **net)["results"]
        ocsp_check.apply_ca_issuers(entries, aia_jobs, downloads)
    elif not args["fetch_ca_issuers"]:
        ocsp_check.skip_ca_issuers(entries)
    jobs = ocsp_check.plan_requests(entries, per_certificate=args["per_certificate"],
                                    nonce=args["nonce"], method=args["method"])
    answers = fetch(execute, requests=jobs, ip_version=args["ip_version"], **net)["results"] if jobs else []
    return ocsp_check.judge(entries, answers, skew=args["clock_skew"])
