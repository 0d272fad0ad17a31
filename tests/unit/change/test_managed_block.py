"""managed_block: one marked block in a file, every other byte kept."""
from __future__ import annotations

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change.managed_block import (
    BlockError,
    apply_block,
    block_content,
    decode,
    encode,
    find_block,
)

BEGIN = "# BEGIN ocsp.stapling managed block"
END = "# END ocsp.stapling managed block"


def test_appends_block_to_file_without_one():
    text = "Include foo.conf\n# operator comment\n"
    out = apply_block(text, "SSLUseStapling off")
    assert out == f"{text}{BEGIN}\nSSLUseStapling off\n{END}\n"


def test_appends_line_break_when_file_lacks_final_newline():
    out = apply_block("Listen 443", "SSLUseStapling on")
    assert out.startswith("Listen 443\n" + BEGIN)


def test_replaces_block_in_place_keeping_surroundings_byte_for_byte():
    before = "A  \t odd spacing\n" + f"{BEGIN}\nold\n{END}\n" + "tail\tline\n"
    out = apply_block(before, "new1\nnew2\n")
    assert out == "A  \t odd spacing\n" + f"{BEGIN}\nnew1\nnew2\n{END}\n" + "tail\tline\n"


def test_same_block_is_idempotent():
    once = apply_block("x\n", "SSLUseStapling on\n")
    assert apply_block(once, "SSLUseStapling on\n") == once
    assert apply_block(once, "SSLUseStapling on") == once


def test_remove_restores_original_exactly():
    original = "first\n<IfModule ssl_module>\n  SSLProtocol all\n</IfModule>\n"
    added = apply_block(original, "SSLUseStapling off")
    assert apply_block(added, None, state="absent") == original


def test_remove_without_block_is_noop():
    assert apply_block("a\nb\n", None, state="absent") == "a\nb\n"


def test_insert_after_last_match_and_before_first_match():
    text = "LoadModule a\nLoadModule b\nInclude x\nInclude y\n"
    after = apply_block(text, "X", insert_after=r"^LoadModule")
    assert after.splitlines()[2] == BEGIN
    before = apply_block(text, "X", insert_before=r"^Include")
    assert before.splitlines()[2] == BEGIN
    assert before.splitlines()[5] == "Include x"


def test_insert_regex_without_match_appends():
    assert apply_block("a\n", "X", insert_before=r"^Nothing").endswith(f"{BEGIN}\nX\n{END}\n")


def test_crlf_files_get_crlf_blocks():
    out = apply_block("a\r\nb\r\n", "X")
    assert out == f"a\r\nb\r\n{BEGIN}\r\nX\r\n{END}\r\n"


def test_non_utf8_bytes_survive():
    raw = b"# caf\xe9 latin-1 comment\nListen 80\n"
    out = encode(apply_block(decode(raw), "SSLUseStapling on"))
    assert out.startswith(raw)
    assert encode(apply_block(decode(out), None, state="absent")) == raw


def test_custom_marker_allows_two_blocks():
    text = apply_block("", "one", marker="# {mark} A")
    text = apply_block(text, "two", marker="# {mark} B")
    assert block_content(text, "# {mark} A") == "one\n"
    assert block_content(text, "# {mark} B") == "two\n"
    text = apply_block(text, None, state="absent", marker="# {mark} A")
    assert "one" not in text and "two" in text


@pytest.mark.parametrize("text", [f"{BEGIN}\nx\n", f"x\n{END}\n", f"{BEGIN}\n{BEGIN}\n{END}\n"])
def test_broken_markers_are_refused(text):
    with pytest.raises(BlockError):
        find_block(text)


def test_marker_without_placeholder_is_refused():
    with pytest.raises(BlockError):
        apply_block("", "x", marker="# managed")


def test_indented_markers_are_found():
    text = f"<IfModule Litespeed>\n  {BEGIN}\n  x\n  {END}\n</IfModule>\n"
    assert block_content(text) == "  x\n"
