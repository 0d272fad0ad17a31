"""LiteSpeed limits the source states: OpenLiteSpeed has stapled since 1.2 and LiteSpeed
Enterprise since 4.2.4 (the editions number their releases apart, so one minimum for both
calls every OpenLiteSpeed 1.x too old), and OpenLiteSpeed reads ``ocspRespMaxAge`` only in
60..360000 (anything else: "invalid value", 3600 used), which the module refuses before
touching a file."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers import facts as facts_mod
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import layouts
from tests.unit.servers.litespeed.test_stapling_module import calls, make_tree, run, snapshot
from tests.unit.paths import FIXTURES

CONFIGS = FIXTURES / "configs"


def tree_with_version(tmp_path: Path, fixture: str, version: str) -> Path:
    root = tmp_path / fixture
    shutil.copytree(CONFIGS / fixture, root, symlinks=True)
    (root / "usr/local/lsws/VERSION").write_text(version + "\n")
    return root


@pytest.mark.parametrize("fixture, version, supported", [
    ("ols", "1.8.2", True), ("ols", "1.2", True), ("ols", "1.1.9", False),
    ("lsws", "6.3.1", True), ("lsws", "4.2.4", True), ("lsws", "4.2.3", False),
])
def test_each_edition_has_its_own_first_stapling_version(tmp_path, fixture, version, supported):
    root = tree_with_version(tmp_path, fixture, version)
    detected = layouts.detect_litespeed(root=str(root))
    assert (detected["version"], detected["supports_stapling"]) == (version, supported)
    facts = facts_mod.gather_facts(root=str(root), run_binaries=False)
    assert facts["servers"]["litespeed"]["supports_stapling"] is supported
    old = [w for w in facts["warnings"] if "the first version with OCSP stapling" in w]
    if supported:
        assert not old, old
    else:
        name, minimum = ("OpenLiteSpeed", "1.2") if fixture == "ols" else ("LiteSpeed Enterprise", "4.2.4")
        assert old == ["%s %s is older than %s, the first version with OCSP stapling; stapling directives will be "
                       "rejected. Upgrade before enabling stapling." % (name, version, minimum)], facts["warnings"]


@pytest.mark.parametrize("max_age", [59, 360001, -1, 0])
def test_a_max_age_outside_what_openlitespeed_reads_is_refused_and_nothing_changes(tmp_path, max_age):
    root = make_tree(tmp_path, "ols")
    before = snapshot(root)
    result = run(tmp_path, server_root=str(root), max_age=max_age)
    assert result.get("failed") is True, result
    assert "max_age is %d" % max_age in result["msg"] and "between 60 and 360000 seconds" in result["msg"], result["msg"]
    assert "nothing was changed" in result["msg"]
    assert snapshot(root) == before and calls(root) == []


@pytest.mark.parametrize("max_age", [60, 360000])
def test_the_ends_of_the_range_are_written(tmp_path, max_age):
    root = make_tree(tmp_path, "ols")
    result = run(tmp_path, server_root=str(root), max_age=max_age)
    assert not result.get("failed"), result
    written = "\n".join(Path(path).read_text() for path in result["files"])
    assert re.search(r"(?m)^\s*ocspRespMaxAge\s+%d\s*$" % max_age, written), written
