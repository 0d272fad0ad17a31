"""stapling_install_code's logic (protect/install.py): every file in one step, only what differs."""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.protect.install import InstallError, install

FILES = {"pkg/__init__.py": "", "pkg/a.py": "print('a')\n", "pkg/sub/b.py": "# é\nB = 1"}


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_installs_every_file_byte_for_byte_then_changes_nothing(tmp_path):
    first = install(str(tmp_path), FILES)
    assert first["changed"] and len(first["changed_files"]) == 3 and all(row["created"] for row in first["files"])
    for relative, text in FILES.items():
        assert (tmp_path / relative).read_bytes() == text.encode("utf-8")
        assert mode_of(tmp_path / relative) == 0o644
    again = install(str(tmp_path), FILES)
    assert not again["changed"] and again["changed_files"] == [] and "up to date" in again["msg"]


def test_only_a_file_that_differs_in_content_or_mode_is_written(tmp_path):
    install(str(tmp_path), FILES)
    (tmp_path / "pkg/a.py").write_text("tampered\n")
    os.chmod(tmp_path / "pkg/sub/b.py", 0o600)
    result = install(str(tmp_path), FILES)
    assert result["changed_files"] == [str(tmp_path / "pkg/a.py"), str(tmp_path / "pkg/sub/b.py")]
    assert (tmp_path / "pkg/a.py").read_text() == FILES["pkg/a.py"] and mode_of(tmp_path / "pkg/sub/b.py") == 0o644


def test_check_mode_writes_nothing(tmp_path):
    result = install(str(tmp_path / "dest"), FILES, check_mode=True)
    assert result["changed"] and "Would install 3 of 3" in result["msg"]
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("relative", ["../outside.py", "/etc/passwd", "pkg/../../outside.py"])
def test_a_path_outside_dest_is_refused_and_nothing_is_written(tmp_path, relative):
    with pytest.raises(InstallError, match="not a path inside"):
        install(str(tmp_path / "dest"), {"aaa/first.py": "x", relative: "x"})
    assert not (tmp_path / "outside.py").exists() and not (tmp_path / "dest").exists()
