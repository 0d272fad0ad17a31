# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install a set of files under one directory in one step: the keeper's and the relay's
code on a web server (``stapling_install_code``). Host side, standard library only.

Each file is compared byte for byte and replaced atomically only when it differs (or its
mode does); missing directories are created 0755. A path that leaves the directory is refused.
"""
from __future__ import annotations

import os
import stat
from typing import Any

from ansible_collections.ocsp.stapling.plugins.module_utils.change.atomic_write import write_atomic


class InstallError(Exception):
    """A file that cannot be installed; the message names it and what to do."""


def _target(dest: str, relative: str) -> str:
    path = os.path.normpath(os.path.join(dest, relative))
    if os.path.isabs(relative) or not path.startswith(os.path.normpath(dest) + os.sep):
        raise InstallError(f"{relative!r} is not a path inside {dest}; give each file relative to dest.")
    return path


def _current(path: str) -> tuple[bytes | None, int | None]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        return data, stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None, None


def install(dest: str, files: dict[str, str], mode: int = 0o644, check_mode: bool = False) -> dict[str, Any]:
    """Put ``files`` (path relative to ``dest`` -> text) in place; returns the module result."""
    rows = []
    targets = {relative: _target(dest, relative) for relative in sorted(files)}   # refuse before writing any
    for relative, path in targets.items():
        wanted = files[relative].encode("utf-8")
        data, current_mode = _current(path)
        changed = data != wanted or current_mode != mode
        if changed and not check_mode:
            try:
                write_atomic(path, wanted, mode=mode)
            except OSError as exc:
                raise InstallError(f"Could not write {path}: {exc.strerror or exc}. Files listed before it in "
                                   f"'files' are in place; make {os.path.dirname(path)} writable and run again.") from None
        rows.append({"path": path, "changed": changed, "created": data is None})
    changed_paths = [row["path"] for row in rows if row["changed"]]
    return {"changed": bool(changed_paths), "files": rows, "changed_files": changed_paths,
            "msg": (f"{'Would install' if check_mode else 'Installed'} {len(changed_paths)} of {len(rows)} file(s) under {dest}."
                    if changed_paths else f"All {len(rows)} file(s) under {dest} are up to date.")}
