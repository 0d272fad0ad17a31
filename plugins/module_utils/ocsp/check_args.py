# -*- coding: utf-8 -*-
# Copyright: (c) ocsp.stapling contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inputs of the responder check: the argument spec of ``ocsp_responder_check`` (shared
by the module and its action plugin) and the certificate list it takes, read into what the
host must read for it.

Standard library only: the module files import it, and module files are shipped to hosts
(``stapling_survey`` reads the files a diagnosis's check needs in its one round trip).
"""
from __future__ import annotations

ARGUMENT_SPEC = dict(
    certificates=dict(type="list", elements="raw", required=True),
    issuer=dict(type="path"),
    responder_url=dict(type="str"),
    proxy=dict(type="str"),
    timeout=dict(type="float", default=5),
    ip_version=dict(type="str", choices=["any", "4", "6", "both"], default="any"),
    concurrency=dict(type="int", default=8),
    per_certificate=dict(type="bool", default=False),
    method=dict(type="str", choices=["POST", "GET"], default="POST"),
    nonce=dict(type="bool", default=False),
    clock_skew=dict(type="int", default=300),
    fetch_ca_issuers=dict(type="bool", default=True),
)


class CheckError(Exception):
    """A problem with the task's input that the operator must fix (fails the task)."""


def normalize_certificates(items: list) -> list[dict]:
    """``certificates`` elements (a path, or ``{path, issuer_files, issuer_dirs}``) as dicts,
    one per path in first-seen order; a path given twice gets the union of its sources."""
    out: dict[str, dict] = {}
    for index, item in enumerate(items or []):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
            raise CheckError(f"certificates[{index}] is {item!r}: expected a path, or a dict with a 'path' key "
                             "and optional 'issuer_files' and 'issuer_dirs' lists of paths.")
        unknown = sorted(set(item) - {"path", "issuer_files", "issuer_dirs"})
        if unknown:
            raise CheckError(f"certificates[{index}] ({item['path']}) has unknown key(s) {', '.join(unknown)}: "
                             "only path, issuer_files and issuer_dirs are understood.")
        entry = out.setdefault(item["path"], {"path": item["path"], "issuer_files": [], "issuer_dirs": []})
        for key in ("issuer_files", "issuer_dirs"):
            values = item.get(key) or []
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise CheckError(f"certificates[{index}].{key} ({item['path']}) is {values!r}: expected a list of paths.")
            entry[key].extend(v for v in values if v and v not in entry[key])
    return list(out.values())


def issuer_file_paths(items: list[dict]) -> list[str]:
    """Every per-certificate issuer file, once, in order."""
    return list(dict.fromkeys(path for item in items for path in item["issuer_files"]))


def paths_to_read(items: list[dict], issuer: str | None = None) -> list[str]:
    """Every file the check reads first, once: the certificates, the task's issuer, then each
    certificate's issuer files (directories are listed later, only when still needed)."""
    return list(dict.fromkeys([item["path"] for item in items] + ([issuer] if issuer else [])
                              + issuer_file_paths(items)))
