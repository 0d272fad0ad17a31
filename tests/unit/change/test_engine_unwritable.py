"""The change shape when a file it must write cannot be written: an immutable file or
directory (``chattr +i``: we run as root, so mode bits alone would not stop the write) or a
full file system (a small tmpfs in a private mount namespace, so nothing leaks to the host).

What must hold: the message names the path, the cause and the next step; a file written
before the failing one is put back; nothing is reloaded; no half-written backup is left.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeError,
    ChangeRequest,
    FileSpec,
    LinkSpec,
    StaplingChange,
)
from tests.unit.paths import REPO


def chattr(flag: str, *paths: Path) -> bool:
    if not shutil.which("chattr"):
        return False
    result = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, timeout=10, check=False)
    return result.returncode == 0


@pytest.fixture
def tree(tmp_path):
    conf = tmp_path / "etc"
    (conf / "conf-available").mkdir(parents=True)
    (conf / "conf-enabled").mkdir()
    (conf / "main.conf").write_text("IncludeOptional conf-enabled/*.conf\nSSLUseStapling On\n")
    calls = tmp_path / "calls"
    reload = tmp_path / "reload.sh"
    reload.write_text(f"#!/bin/sh\necho reload >> {calls}\n")
    reload.chmod(0o755)
    immutable: list[Path] = []

    def make_immutable(path: Path) -> None:
        """``chattr +i`` (undone after the test), or skip where the file system has no such flag."""
        if not chattr("+i", path):
            pytest.skip("chattr +i is not supported on this file system")
        immutable.append(path)
    yield tmp_path, make_immutable
    if immutable:
        chattr("-i", *immutable)


def change(tmp_path: Path, backups: Path | None = None) -> ChangeRequest:
    conf = tmp_path / "etc"
    return ChangeRequest(
        files=[FileSpec(path=str(conf / "conf-available" / "zz-ocsp-stapling.conf"), content="SSLUseStapling off\n"),
               FileSpec(path=str(conf / "main.conf"), block="SSLStaplingFakeTryLater off")],
        links=[LinkSpec(path=str(conf / "conf-enabled" / "zz-ocsp-stapling.conf"),
                        src="../conf-available/zz-ocsp-stapling.conf")],
        configtest_command=["true"], reload_command=[str(tmp_path / "reload.sh")],
        backup_dir=str(backups or tmp_path / "backups"), candidate_validation="swap")


def snapshot(root: Path) -> dict[str, str]:
    return {str(p): (f"-> {os.readlink(p)}" if p.is_symlink() else p.read_text())
            for p in sorted(root.rglob("*")) if p.is_symlink() or p.is_file()}


def test_an_immutable_link_directory_puts_back_the_files_already_written(tree):
    tmp_path, make_immutable = tree
    before = snapshot(tmp_path / "etc")
    enabled = tmp_path / "etc" / "conf-enabled"
    make_immutable(enabled)

    with pytest.raises(ChangeError) as info:
        StaplingChange(change(tmp_path)).run()
    message = info.value.message
    assert str(enabled / "zz-ocsp-stapling.conf") in message, message
    assert "Operation not permitted" in message and "chattr -i" in message, message
    assert "put back" in message and "not reloaded" in message, message
    # The snippet and main.conf were written before the link failed: both are back.
    assert snapshot(tmp_path / "etc") == before
    assert not (tmp_path / "calls").exists(), "the server was reloaded"
    assert not list((tmp_path / "etc").rglob(".ocsp-stapling-*")), "a temp file was left behind"


def test_an_immutable_config_file_changes_nothing(tree):
    tmp_path, make_immutable = tree
    main = tmp_path / "etc" / "main.conf"
    before = snapshot(tmp_path / "etc")
    make_immutable(main)

    with pytest.raises(ChangeError) as info:
        StaplingChange(change(tmp_path)).run()
    assert f"{main} could not be written (Operation not permitted)" in info.value.message, info.value.message
    assert snapshot(tmp_path / "etc") == before
    assert not (tmp_path / "calls").exists()


FULL_DISK = r"""
import json, sys
from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeError, ChangeRequest, FileSpec, StaplingChange)
conf, backups, reload = sys.argv[1:4]
request = ChangeRequest(files=[FileSpec(path=conf, block="SSLUseStapling off")], configtest_command=["true"],
                        reload_command=[reload], backup_dir=backups, candidate_validation="swap")
try:
    StaplingChange(request).run()
    print(json.dumps({"ok": True}))
except ChangeError as exc:
    print(json.dumps({"ok": False, "message": exc.message}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_a_full_backup_file_system_stops_before_the_swap_and_leaves_no_partial_backup(tree):
    tmp_path, _immutable = tree
    full = tmp_path / "full"
    full.mkdir()
    main = tmp_path / "etc" / "main.conf"
    main.write_text("SSLUseStapling On\n" + "# padding to outgrow the tmpfs\n" * 400)
    before = snapshot(tmp_path / "etc")
    # A 4 KiB tmpfs holds one page: the backup copy of main.conf (12 KiB) cannot fit.
    script = 'mount -t tmpfs -o size=4k tmpfs "$1" && shift && exec "$@"'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / ".cache" / "collections"),
                                                                    os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(full),
         sys.executable, "-c", FULL_DISK, str(main), str(full / "backups"), str(tmp_path / "reload.sh")],
        capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["ok"] is False, outcome
    message = outcome["message"]
    assert "No space left on device" in message and "file system is full" in message, message
    assert str(full / "backups") in message and "Nothing was changed" in message, message
    assert snapshot(tmp_path / "etc") == before
    assert not (tmp_path / "calls").exists()
    # The tmpfs went with the namespace; nothing of it is mounted here.
    assert not any(str(full) in line for line in Path("/proc/self/mounts").read_text().splitlines())


def test_an_immutable_second_file_is_left_alone_and_the_first_is_put_back(tree):
    """The swap stops at the file it cannot write: that file never changed, so the restore
    must not try to write it either (it would fail the same way and report the old
    configuration as not restored)."""
    tmp_path, make_immutable = tree
    main = tmp_path / "etc" / "main.conf"
    before = snapshot(tmp_path / "etc")
    make_immutable(main)

    with pytest.raises(ChangeError) as info:
        StaplingChange(change(tmp_path)).run()
    message = info.value.message
    assert "put back" in message and "could NOT be restored" not in message, message
    assert snapshot(tmp_path / "etc") == before
