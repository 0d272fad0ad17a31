# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Insert, replace or remove one marked block in a config file; keep every other byte.

Host side: Python standard library only. Text is handled as ``str`` decoded with
``surrogateescape``, so bytes that are not UTF-8 (cPanel include files written by hand
in Latin-1, say) survive a round trip unchanged.

A block is the lines from ``# BEGIN ocsp.stapling managed block`` to
``# END ocsp.stapling managed block`` inclusive (the marker is a template with a
``{mark}`` placeholder, so one file can hold several independently managed blocks).
"""
from __future__ import annotations

import re

DEFAULT_MARKER = "# {mark} ocsp.stapling managed block"
ENCODING = "utf-8"
ERRORS = "surrogateescape"


class BlockError(ValueError):
    """The file's markers are not in a state we can edit safely."""


def decode(data: bytes) -> str:
    return data.decode(ENCODING, ERRORS)


def encode(text: str) -> bytes:
    return text.encode(ENCODING, ERRORS)


def marker_lines(marker: str = DEFAULT_MARKER) -> tuple[str, str]:
    if "{mark}" not in marker:
        raise BlockError(f"the block marker {marker!r} has no '{{mark}}' placeholder; "
                         "use something like '# {mark} ocsp.stapling managed block'")
    return marker.replace("{mark}", "BEGIN"), marker.replace("{mark}", "END")


def _newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def find_block(text: str, marker: str = DEFAULT_MARKER) -> tuple[int, int] | None:
    """Character span ``(start, end)`` of the block including its marker lines and the
    end marker's line break, or ``None`` when the file has no block."""
    begin, end = marker_lines(marker)
    lines = text.splitlines(keepends=True)
    offset = 0
    start = None
    for line in lines:
        stripped = line.rstrip("\r\n").strip()
        if stripped == begin:
            if start is not None:
                raise BlockError(f"two '{begin}' lines without an '{end}' between them; "
                                 "fix the file by hand so it holds one complete block")
            start = offset
        elif stripped == end:
            if start is None:
                raise BlockError(f"an '{end}' line without a '{begin}' line before it; "
                                 "fix the file by hand so it holds one complete block")
            return start, offset + len(line)
        offset += len(line)
    if start is not None:
        raise BlockError(f"'{begin}' has no matching '{end}' line; the managed block was cut "
                         "short (by hand?). Fix the file so it holds one complete block")
    return None


def render_block(block: str, marker: str = DEFAULT_MARKER, newline: str = "\n") -> str:
    """The block text with its marker lines, every line ending in ``newline``."""
    begin, end = marker_lines(marker)
    body = [line.rstrip("\r") for line in block.split("\n")]
    while body and body[-1] == "":
        body.pop()
    return newline.join([begin, *body, end]) + newline


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_end(text: str, pos: int) -> int:
    idx = text.find("\n", pos)
    return len(text) if idx < 0 else idx + 1


def apply_block(text: str, block: str | None, state: str = "present",
                marker: str = DEFAULT_MARKER, insert_before: str | None = None,
                insert_after: str | None = None) -> str:
    """Return ``text`` with the managed block set to ``block`` (``state=present``) or
    removed (``state=absent``). Everything outside the block is kept byte for byte.

    A new block goes after the last line matching ``insert_after``, else before the first
    line matching ``insert_before``, else at the end of the file. An existing block is
    replaced where it is, so operators may move it and the role will respect that.
    """
    if insert_before and insert_after:
        raise BlockError("give insert_before or insert_after, not both")
    span = find_block(text, marker)
    if state == "absent":
        if span is None:
            return text
        return text[:span[0]] + text[span[1]:]
    if state != "present":
        raise BlockError(f"state must be 'present' or 'absent', not {state!r}")
    if block is None:
        raise BlockError("state=present needs the block's text")
    rendered = render_block(block, marker, _newline_of(text))
    if span is not None:
        return text[:span[0]] + rendered + text[span[1]:]
    position = None
    if insert_after:
        matches = list(re.finditer(insert_after, text, re.MULTILINE))
        if matches:
            position = _line_end(text, matches[-1].start())
    elif insert_before:
        match = re.search(insert_before, text, re.MULTILINE)
        if match:
            position = _line_start(text, match.start())
    if position is None:
        position = len(text)
    prefix = text[:position]
    if prefix and not prefix.endswith("\n"):
        # Only possible at the end of a file without a final line break.
        prefix += _newline_of(text)
    return prefix + rendered + text[position:]


def block_content(text: str, marker: str = DEFAULT_MARKER) -> str | None:
    """The lines between the markers (without them), or ``None`` when there is no block."""
    span = find_block(text, marker)
    if span is None:
        return None
    lines = text[span[0]:span[1]].splitlines(keepends=True)
    return "".join(lines[1:-1])
