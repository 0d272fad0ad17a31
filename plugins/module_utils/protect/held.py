# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What protected mode holds on this host, for the check's report: one entry per held response.

Standard library only (``stapling_status`` reads it on the managed host). Two sources:

- the keeper's state files, ``<state_dir>/<name>.json`` (nginx, the relay): ``next_update``
  and ``held`` as the keeper last judged them, the certificate's serial from ``certid``;
- mod_md's store, ``<MDStoreDir>/ocsp/<group>/ocsp-<certid>.json`` (``other`` for the
  certificates mod_md does not manage): ``valid.until`` (an HTTP date: the response's
  nextUpdate) and ``status``, the serial read from the stored response itself.

mod_md keeps stapling a stored response past its nextUpdate (docs/protected.md), so
``next_update`` is a deadline the verdict must watch, not a guarantee.
"""
from __future__ import annotations

import base64
import email.utils
import glob
import json
import os
import time

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.certid import CertIDError, response_certids

MAX_FILES = 10000


def _iso(seconds: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds is not None else None


def _load(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _entry(source: str, path: str, name: str, serial: str | None, cert_status: str | None,
           next_update: float | None, held: bool, now: float, **extra) -> dict:
    valid = bool(held and next_update is not None and now < next_update)
    entry = {"source": source, "path": path, "name": name, "serial": serial, "cert_status": cert_status,
             "next_update": next_update, "next_update_iso": _iso(next_update), "held": bool(held),
             "valid": valid, "seconds_left": round(next_update - now) if next_update is not None else None}
    entry.update(extra)
    return entry


def keeper_entries(state_dir: str, now: float) -> list[dict]:
    """The keeper's state files in ``state_dir`` (none when the directory does not exist)."""
    out = []
    for path in sorted(glob.glob(os.path.join(glob.escape(state_dir), "*.json")))[:MAX_FILES]:
        state = _load(path)
        if not state or "name" not in state or "held" not in state:
            continue
        certid = state.get("certid") or ""
        serial = certid.rsplit("/", 1)[-1] if certid.count("/") == 3 else None
        out.append(_entry("keeper", path, state["name"], serial, state.get("cert_status"), state.get("next_update"),
                          bool(state.get("held")), now, served=state.get("served"), last_error=state.get("last_error"),
                          consecutive_failures=state.get("consecutive_failures") or 0))
    return out


def parse_http_date(text) -> float | None:
    """``Wed, 02 Dec 2026 05:33:34 GMT`` (mod_md's JSON) as POSIX seconds."""
    if not isinstance(text, str):
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def md_entries(store_dir: str, now: float) -> list[dict]:
    """mod_md's stored responses under ``<store_dir>/ocsp/`` (none when it does not exist)."""
    out = []
    pattern = os.path.join(glob.escape(store_dir), "ocsp", "*", "ocsp-*.json")
    for path in sorted(glob.glob(pattern))[:MAX_FILES]:
        data = _load(path)
        if not data or not data.get("response"):
            continue
        encoded = str(data["response"])
        serial = None
        try:
            der = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            certids = response_certids(der)
            serial = certids[0]["serial"] if certids else None
        except (ValueError, CertIDError):
            pass
        until = parse_http_date((data.get("valid") or {}).get("until"))
        name = os.path.basename(path)[len("ocsp-"):-len(".json")]
        out.append(_entry("mod_md", path, name, serial, data.get("status"), until, until is not None, now,
                          group=os.path.basename(os.path.dirname(path))))
    return out


def held_responses(keeper_state_dirs: list[str] | None = None, md_store_dirs: list[str] | None = None,
                   now: float | None = None) -> list[dict]:
    """Every held response found in the keeper state directories and mod_md stores given."""
    now = time.time() if now is None else now
    out: list[dict] = []
    for directory in keeper_state_dirs or []:
        out.extend(keeper_entries(directory, now))
    for directory in md_store_dirs or []:
        out.extend(md_entries(directory, now))
    return out
