"""The apache role on a cPanel EA4 tree whose httpd.conf does not include
``pre_virtualhost_global.conf`` yet (the file did not exist at the last rebuild, so cPanel
wrote only the "# Create ..." comment). The role creates the file, runs the rebuild command
(a stand-in that renders httpd.conf as ea4_main.default does: an Include only for files that
exist), plans again and makes the change: configtest, graceful reload, verify. A rebuild that
still leaves the Include out stops the run naming what was found (here); the flow itself, check
mode and the kept pre-rebuild httpd.conf are proved on EA4 and EA3 in
test_cpanel_rebuild_layouts.py, which uses this module's tree helpers.

One lab for the module (responder, PKI, the cPanel tree on the real apache2); every test first
puts the tree back to "file missing, httpd.conf rebuilt without it".
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_apache_faults import run_role
from tests.lab import cpanel
from tests.lab.lab import Lab
from tests.lab.probe import probe
from tests.lab.processes import wait_until
from tests.lab.responder import free_port


@pytest.fixture(scope="module")
def cpanel_lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("cpanel-flow")
    with Lab.start(base / "lab", servers=()) as lab:
        root = base / "cpanel"
        info = cpanel.build(root, lab.pki.directory, "ea4", free_port())
        info["rebuild"] = str(cpanel.install_rebuild(root, base / "lab"))
        try:
            yield lab, info
        finally:
            cpanel.stop(root)


def include_file(info: dict) -> Path:
    return Path(info["includes"]) / "pre_virtualhost_global.conf"


def reset(info: dict, vhost_on: tuple[str, ...] = ()) -> None:
    """The include file and userdata directories gone, httpd.conf rebuilt without them
    (``vhost_on`` sites set ``SSLUseStapling on`` in their vhost, a customised template),
    Apache serving that (graceful)."""
    include_file(info).unlink(missing_ok=True)
    shutil.rmtree(Path(info["userdata"]) / "ssl", ignore_errors=True)
    (Path(info["root"]) / "rebuild.json").write_text(json.dumps({"vhost_on": list(vhost_on)}))
    subprocess.run([info["rebuild"]], check=True, timeout=60, capture_output=True)
    assert "pre_virtualhost_global.conf" not in included(info)
    error_log = Path(info["error_log"])
    size = error_log.stat().st_size
    subprocess.run([Path(info["scripts"]) / "restartsrv_httpd", "--graceful"], check=True, timeout=60, capture_output=True)
    # AH00489 "resuming normal operations" ends the graceful restart.
    wait_until(lambda: b"AH00489" in error_log.read_bytes()[size:], 30, "apache2's graceful restart")
    Path(info["calls"]).write_text("")


def included(info: dict) -> str:
    """The Include lines of httpd.conf (comments left out)."""
    lines = (line.strip() for line in Path(info["conf"]).read_text().splitlines())
    return "\n".join(line for line in lines if line.startswith("Include"))


def role_vars(info: dict, tmp_path: Path, state: str, **extra) -> dict:
    variables = {
        "apache_stapling_layout": "cpanel_ea4",
        "apache_stapling_state": state,
        "apache_stapling_reason": "responder unreachable (include flow test)",
        "apache_stapling_backup_dir": str(tmp_path / "backups"),
        "apache_stapling_endpoints": [{"host": "127.0.0.1", "port": info["port"], "server_name": "good.lab.test"}],
        "apache_stapling_ea4_paths_conf": info["paths_conf"],
        "apache_stapling_ea4_conf": str(Path(info["paths_conf"]).parent / "ea4.conf"),
        "apache_stapling_ea4_main_config": info["conf"],
        "apache_stapling_ea4_includes_dir": info["includes"],
        "apache_stapling_ea4_userdata_dir": info["userdata"],
        "apache_stapling_ea4_configtest_command": info["configtest"],
        "apache_stapling_ea4_reload_command": [info["scripts"] + "/restartsrv_httpd", "--graceful"],
        "apache_stapling_ea4_start_command": [info["scripts"] + "/restartsrv_httpd"],
        "apache_stapling_ea4_pid_file": info["pid_file"],
        "apache_stapling_ea4_error_log": info["error_log"],
        "apache_stapling_cpanel_rebuild_command": [info["rebuild"]],
        "apache_stapling_verify_timeout": 20,
        "apache_stapling_warmup_timeout": 20,
    }
    variables.update(extra)
    return variables


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_rebuild_that_leaves_the_include_out_stops_naming_what_was_found(cpanel_lab, tmp_path):
    info = cpanel_lab[1]
    reset(info)
    conf = digest(info["conf"])
    outcome = run_role(tmp_path, role_vars(info, tmp_path, "disabled",
                                           apache_stapling_cpanel_rebuild_command=["/bin/true"]))
    assert outcome["failed"]
    msg = outcome["msg"]
    assert "Ran /bin/true after creating %s" % include_file(info) in msg, msg
    assert "still does not include %s" % include_file(info) in msg and info["conf"] in msg
    assert "Apache was not reloaded" in msg
    assert digest(info["conf"]) == conf
    assert "restartsrv_httpd" not in Path(info["calls"]).read_text()
    assert probe(info["port"], "good.lab.test").verdict == "good"
