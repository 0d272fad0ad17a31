# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find and classify OCSP stapling errors in Apache, nginx and LiteSpeed error logs.

Host side: Python standard library only. Logs can be gigabytes, so every read is
bounded: :func:`tail_scan` reads the last ``max_bytes`` of a file; :func:`scan_since`
reads what was written after a byte offset (the roles note the size before a reload and
scan from there afterwards), also bounded.
"""
from __future__ import annotations

import os
import re
from typing import Iterable

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.config_tree import host_path

DEFAULT_TAIL_BYTES = 1024 * 1024


class Pattern:
    """A log line class: a stable name, the marker searched for, and what it means."""

    __slots__ = ("name", "marker", "server", "category", "meaning")

    def __init__(self, name: str, marker: str, server: str, category: str, meaning: str) -> None:
        self.name = name
        self.marker = marker
        self.server = server
        self.category = category
        self.meaning = meaning


#: The classes, most specific first. ``category``: ``responder`` (the CA's responder
#: could not be used: network, timeout, bad answer), ``certificate`` (this certificate
#: cannot be stapled as configured), ``fatal`` (the server stopped).
PATTERNS: tuple[Pattern, ...] = (
    Pattern("AH01941", "AH01941", "apache", "responder", "stapling_renew_response: responder error"),
    Pattern("AH01974", "AH01974", "apache", "responder", "could not connect to OCSP responder"),
    Pattern("AH01977", "AH01977", "apache", "responder", "failed reading line from OCSP server"),
    Pattern("AH01980", "AH01980", "apache", "responder", "bad response from OCSP server"),
    Pattern("AH01985", "AH01985", "apache", "responder", "error reading response from OCSP server"),
    Pattern("AH02217", "AH02217", "apache", "certificate", "can't retrieve issuer certificate"),
    Pattern("AH02218", "AH02218", "apache", "certificate", "no OCSP URL in certificate and no SSLStaplingForceURL"),
    Pattern("AH01872", "AH01872", "apache", "fatal", "could not initialize stapling cache; httpd exits"),
    Pattern("nginx_ocsp_verify_failed", "OCSP_basic_verify() failed", "nginx", "responder",
            "the responder's answer did not verify (issuer or ssl_trusted_certificate)"),
    Pattern("nginx_ocsp_timeout", "OCSP responder timed out", "nginx", "responder",
            "the responder did not answer in time"),
    Pattern("nginx_stapling_ignored", '"ssl_stapling" ignored', "nginx", "certificate",
            "stapling ignored for a certificate (no OCSP URL, or issuer not found)"),
)

_BY_MARKER = [(p.marker, p) for p in PATTERNS]
_QUICK = re.compile("|".join(re.escape(p.marker) for p in PATTERNS))


def classify_line(line: str) -> Pattern | None:
    """The class of one log line, or None when it is not a stapling error we know."""
    match = _QUICK.search(line)
    if not match:
        return None
    marker = match.group(0)
    for known, pattern in _BY_MARKER:
        if known == marker:
            return pattern
    return None  # pragma: no cover - the regex only matches known markers


class LogScan:
    """The stapling errors found in one log file between two byte offsets."""

    def __init__(self, path: str, start: int, end: int) -> None:
        self.path = path
        self.start = start
        self.end = end
        self.lines: list[tuple[Pattern, str]] = []
        self.missing = False
        self.error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pattern, _line in self.lines:
            out[pattern.name] = out.get(pattern.name, 0) + 1
        return out

    def summary(self) -> dict:
        """Counts, category and newest example per class, as a JSON-friendly dict."""
        classes: dict[str, dict] = {}
        for pattern, line in self.lines:
            entry = classes.setdefault(
                pattern.name,
                {"count": 0, "server": pattern.server, "category": pattern.category, "meaning": pattern.meaning},
            )
            entry["count"] += 1
            entry["newest"] = line  # lines are in file order, so the last one is newest
        return {
            "path": self.path,
            "exists": not self.missing,
            "error": self.error,
            "start_offset": self.start,
            "end_offset": self.end,
            "bytes_read": self.end - self.start,
            "total": len(self.lines),
            "classes": classes,
        }


def _scan(local_path: str, display_path: str, start: int, max_bytes: int) -> LogScan:
    try:
        size = os.path.getsize(local_path)
    except OSError as exc:
        scan = LogScan(display_path, 0, 0)
        scan.missing = True
        scan.error = None if isinstance(exc, FileNotFoundError) else "cannot read: %s" % exc.strerror
        return scan
    if start > size:
        # The log is shorter than the offset: it was rotated or truncated. Read it all.
        start = 0
    begin = max(start, size - max_bytes)
    scan = LogScan(display_path, begin, size)
    try:
        with open(local_path, "rb") as handle:
            handle.seek(begin)
            data = handle.read(size - begin)
    except OSError as exc:
        scan.error = "cannot read: %s" % exc.strerror
        return scan
    if begin > start:
        # Cut into the middle of a line: drop the partial first line.
        newline = data.find(b"\n")
        data = data[newline + 1:] if newline >= 0 else b""
    text = data.decode("utf-8", errors="replace")
    if not _QUICK.search(text):
        return scan
    for line in text.splitlines():
        pattern = classify_line(line)
        if pattern:
            scan.lines.append((pattern, line))
    return scan


def tail_scan(path: str, max_bytes: int = DEFAULT_TAIL_BYTES, root: str = "/") -> LogScan:
    """Classify the stapling errors in the last ``max_bytes`` of ``path``.

    A missing log gives an empty scan with ``missing`` set, not an error: not every
    layout writes every log.
    """
    return _scan(host_path(root, path), path, 0, max_bytes)


def scan_since(path: str, offset: int, max_bytes: int = DEFAULT_TAIL_BYTES, root: str = "/") -> LogScan:
    """Classify the stapling errors written to ``path`` after byte ``offset``.

    Use :func:`log_size` before a reload and pass the result here afterwards. If the log
    was rotated (now shorter than ``offset``) it is read from the start; at most the
    last ``max_bytes`` are read either way. ``scan.end`` is the offset for the next call.
    """
    return _scan(host_path(root, path), path, max(0, offset), max_bytes)


def log_size(path: str, root: str = "/") -> int:
    """The current size of a log (0 when it does not exist): the offset for :func:`scan_since`."""
    try:
        return os.path.getsize(host_path(root, path))
    except OSError:
        return 0


def scan_logs(paths: Iterable[str], max_bytes: int = DEFAULT_TAIL_BYTES, root: str = "/") -> list[dict]:
    """:func:`tail_scan` each path and return the summaries (duplicates skipped)."""
    seen: set[str] = set()
    out = []
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        out.append(tail_scan(path, max_bytes, root).summary())
    return out
