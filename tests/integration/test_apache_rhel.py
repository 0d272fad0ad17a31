"""The apache role's RHEL layout on a RHEL-shaped tree run by the real apache2 binary.

Disable writes ``conf.d/zz-ocsp-stapling.conf`` (read after ``ssl.conf``), reloads
gracefully and leaves the operator's files byte for byte; the sites stop stapling and keep
serving. Enable with the resilient tuning brings a good staple back; a second run changes
nothing; ``absent`` removes only what the role wrote.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration.test_apache_faults import run_role
from tests.lab import rhel
from tests.lab.lab import Lab
from tests.lab.probe import probe
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites


@pytest.fixture
def rhel_lab(tmp_path):
    with Lab.start(tmp_path / "lab", servers=()) as lab:
        info = rhel.build(tmp_path / "rhel", free_port(), lab_sites(lab.pki, ("good", "nourl")))
        try:
            yield lab, info
        finally:
            rhel.stop(info)


def role_vars(info: dict, tmp_path: Path, **extra) -> dict:
    variables = {
        "apache_stapling_layout": "rhel",
        "apache_stapling_rhel_main_config": info["conf"],
        "apache_stapling_rhel_conf_d": info["conf_d"],
        "apache_stapling_rhel_sites_dir": info["conf_d"],
        "apache_stapling_rhel_cache_path": info["run"] + "/ocsp_stapling_cache",
        "apache_stapling_rhel_configtest_command": info["configtest"],
        "apache_stapling_rhel_reload_command": info["reload"],
        "apache_stapling_rhel_start_command": info["start"],
        "apache_stapling_rhel_pid_file": info["pid_file"],
        "apache_stapling_rhel_error_log": info["error_log"],
        "apache_stapling_backup_dir": str(tmp_path / "backups"),
        "apache_stapling_endpoints": [{"host": "127.0.0.1", "port": info["port"], "server_name": "good.lab.test"}],
        "apache_stapling_verify_timeout": 20,
    }
    variables.update(extra)
    return variables


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_rhel_layout_disable_enable_absent(rhel_lab, tmp_path):
    lab, info = rhel_lab
    conf_d = Path(info["conf_d"])
    snippet = conf_d / "zz-ocsp-stapling.conf"
    operator_files = {p: digest(p) for p in (info["conf"], str(conf_d / "ssl.conf"), str(conf_d / "sites.conf"))}
    assert probe(info["port"], "good.lab.test").verdict == "good"

    disabled = run_role(tmp_path, role_vars(info, tmp_path, apache_stapling_state="disabled"))
    assert not disabled["failed"], disabled
    assert disabled["result"]["layout"] == "rhel" and disabled["result"]["changed"] is True
    assert "sslusestapling off" in snippet.read_text().lower()
    staple = probe(info["port"], "good.lab.test")
    assert staple.handshake_ok and staple.verdict == "none"
    assert {p: digest(p) for p in operator_files} == operator_files

    again = run_role(tmp_path, role_vars(info, tmp_path, apache_stapling_state="disabled"))
    assert not again["failed"] and again["result"]["changed"] is False, again

    enabled = run_role(tmp_path, role_vars(info, tmp_path, apache_stapling_state="enabled"))
    assert not enabled["failed"], enabled
    text = snippet.read_text().lower()
    assert "sslusestapling on" in text and "sslstaplingfaketrylater off" in text
    # The operator's ssl.conf already has a cache in server scope: the role adds no second one.
    assert "sslstaplingcache" not in text
    assert probe(info["port"], "good.lab.test").verdict == "good"

    removed = run_role(tmp_path, role_vars(info, tmp_path, apache_stapling_state="absent"))
    assert not removed["failed"], removed
    assert not snippet.exists()
    assert {p: digest(p) for p in operator_files} == operator_files
    assert probe(info["port"], "good.lab.test").verdict == "good"
