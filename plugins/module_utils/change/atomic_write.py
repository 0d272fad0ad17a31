# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a file by rename, so a reader sees the old file or the new one, never half of it.

Standard library only: this runs on the managed host (config files, the state record)
and on the controller (the Prometheus textfile node_exporter reads at any moment).
"""
from __future__ import annotations

import os
import tempfile


def write_atomic(path: str, data: bytes | str, mode: int | None = None,
                 uid: int | None = None, gid: int | None = None) -> None:
    """Write ``data`` (``str`` as UTF-8) to ``path`` through a temp file in the same directory.

    The temp file is fsynced, given ``mode``/``uid``/``gid`` (``None``: keep the current
    file's, or 0644 and the caller's owner for a new file) and renamed over ``path``; it
    is removed if anything fails. Missing directories are created 0755. An owner change
    that needs privileges we lack is skipped: the file keeps the caller's owner.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    try:
        st = os.stat(path)
        keep_mode, keep_uid, keep_gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        keep_mode, keep_uid, keep_gid = 0o644, -1, -1
    # Same directory, so the rename stays on one file system; the leading dot and the
    # .tmp suffix keep the temp file out of include globs such as conf.d/*.conf.
    fd, temp = tempfile.mkstemp(prefix=f".ocsp-stapling-{os.path.basename(path)}.", suffix=".tmp",
                                dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode if mode is not None else keep_mode)
        want_uid = uid if uid is not None else keep_uid
        want_gid = gid if gid is not None else keep_gid
        if want_uid != -1 or want_gid != -1:
            try:
                os.chown(temp, want_uid, want_gid)
            except PermissionError:
                pass
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
