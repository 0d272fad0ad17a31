"""The nginx role against the lab's real nginx: faults leave files alone, trusted chain built or reported."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.lab.lab import Lab
from tests.lab.processes import pid_alive

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PLAYBOOK = """\
- name: Run the nginx role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Include it
      ansible.builtin.include_role:
        name: ocsp.stapling.nginx
"""


def role_vars(lab: Lab, **extra) -> dict:
    nginx = lab.nginx
    commands = nginx.commands()
    etc = nginx.conf_dir
    values = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "nginx_stapling_config": str(nginx.conf),
        "nginx_stapling_managed_dir": str(etc / "ocsp-stapling"),
        "nginx_stapling_http_include_file": str(etc / "conf.d" / "zz-ocsp-stapling.conf"),
        "nginx_stapling_ca_bundle": str(lab.pki.ca_bundle),
        "nginx_stapling_configtest_command": commands["configtest"],
        "nginx_stapling_reload_command": commands["reload"],
        "nginx_stapling_start_command": commands["start"],
        "nginx_stapling_version_command": f"{commands['start']} -v",
        "nginx_stapling_pid_file": str(nginx.pid_file),
        "nginx_stapling_error_log": str(nginx.error_log),
        "nginx_stapling_backup_dir": str(lab.directory / "backups"),
    }
    values.update(extra)
    return values


def run_role(lab: Lab, tmp_path: Path, **extra) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"),
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(playbook),
                           "-e", json.dumps(role_vars(lab, **extra))],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, check=False)


def snapshot(directory: Path) -> dict[str, str]:
    def digest(path: Path) -> str:
        return f"-> {os.readlink(path)}" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return {str(p.relative_to(directory)): digest(p)
            for p in sorted(directory.rglob("*")) if p.is_file() or p.is_symlink()}


def test_broken_candidate_leaves_nginx_files_byte_identical(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("nginx",)) as lab:
        before = snapshot(lab.nginx.conf_dir)
        pid = lab.nginx.pid
        result = run_role(lab, tmp_path, nginx_stapling_tuning={"resolver_timeout": "banana"})
        assert result.returncode != 0, result.stdout[-3000:]
        assert "resolver_timeout" in result.stdout and "No live file was changed" in result.stdout
        assert snapshot(lab.nginx.conf_dir) == before
        assert pid_alive(pid) and lab.nginx.pid == pid
        # No backup was taken (the change lock the engine holds there is not one).
        backups = lab.directory / "backups"
        assert not backups.exists() or [p.name for p in backups.iterdir()] in ([], [".lock"])
        assert lab.wait_for_verdict("nginx", "good", "good").verdict == "good"


def test_missing_trusted_certificate_is_built_and_stapling_works(tmp_path):
    # Server blocks without any stapling directive and only sites with an OCSP URL: the
    # role can place everything at http level and touch no operator file.
    lab_dir = tmp_path / "lab"
    with Lab.start(lab_dir, servers=("nginx",), nginx_options={"stapling": False}) as lab:
        # Keep only the sites that have an OCSP URL: drop nourl's server block.
        (lab.nginx.conf_dir / "sites-enabled" / "nourl").unlink()
        lab.nginx.reload()
        before = snapshot(lab.nginx.conf_dir / "sites-available")
        result = run_role(lab, tmp_path, nginx_stapling_tuning={"ssl_stapling_verify": True})
        assert result.returncode == 0, result.stdout[-4000:]
        http = (lab.nginx.conf_dir / "conf.d" / "zz-ocsp-stapling.conf").read_text()
        assert "ssl_stapling on;" in http and "ssl_trusted_certificate " in http
        assert '"good.lab.test": "good"' in result.stdout
        assert snapshot(lab.nginx.conf_dir / "sites-available") == before
        assert lab.probe("nginx", "muststaple").verdict == "good"


def test_missing_trusted_certificate_that_cannot_be_built_is_reported(tmp_path):
    with Lab.start(tmp_path / "lab", servers=("nginx",), nginx_options={"stapling": False}) as lab:
        empty = tmp_path / "empty-bundle.pem"
        empty.write_text("")
        before = snapshot(lab.nginx.conf_dir)
        result = run_role(lab, tmp_path, nginx_stapling_ca_bundle=str(empty),
                          nginx_stapling_tuning={"ssl_stapling_verify": True})
        assert result.returncode != 0
        assert "unable to get local issuer certificate" in result.stdout
        assert "nginx_stapling_tuning.ssl_trusted_certificate" in result.stdout
        assert snapshot(lab.nginx.conf_dir) == before


def test_issuer_not_found_warning_from_nginx_t_blocks_the_change(tmp_path):
    # A certificate file with the leaf only and no ssl_trusted_certificate: nginx -t exits 0
    # with '"ssl_stapling" ignored, issuer certificate not found'.
    lab_dir = tmp_path / "lab"
    with Lab.start(lab_dir, servers=("nginx",), nginx_options={"stapling": False}) as lab:
        leaf = lab.pki.leaves["good"]
        site = lab.nginx.conf_dir / "sites-available" / "good"
        site.write_text(site.read_text().replace(str(leaf.fullchain_path), str(leaf.cert_path)))
        for name in ("nourl", "muststaple", "revoked"):
            (lab.nginx.conf_dir / "sites-enabled" / name).unlink()
        lab.nginx.reload()
        before = snapshot(lab.nginx.conf_dir)
        result = run_role(lab, tmp_path, nginx_stapling_tuning={"ssl_stapling_verify": False})
        assert result.returncode != 0
        assert "issuer certificate not found" in result.stdout
        assert "good.lab.test" in result.stdout
        assert snapshot(lab.nginx.conf_dir) == before


def test_failed_reload_is_rolled_back_and_nginx_keeps_serving(tmp_path):
    # The first reload "fails" (a wrapper exits 1 before calling nginx), the second works:
    # the shared change shape must put the old files back and reload nginx with them.
    with Lab.start(tmp_path / "lab", servers=("nginx",)) as lab:
        calls = tmp_path / "reload-calls"
        wrapper = tmp_path / "reload.sh"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"echo x >> {calls}\n"
            f"if [ $(wc -l < {calls}) -eq 1 ]; then echo 'simulated reload failure' >&2; exit 1; fi\n"
            f"exec {lab.nginx.commands()['reload']}\n")
        wrapper.chmod(0o755)
        before = snapshot(lab.nginx.conf_dir)
        pid = lab.nginx.pid
        result = run_role(lab, tmp_path, nginx_stapling_state="disabled", nginx_stapling_force=True,
                          nginx_stapling_reload_command=str(wrapper))
        assert result.returncode != 0
        assert "simulated reload failure" in result.stdout
        assert "old configuration was restored" in result.stdout
        assert len(calls.read_text().splitlines()) == 2  # the failed reload, then the recovery
        assert snapshot(lab.nginx.conf_dir) == before
        assert pid_alive(pid)
        assert lab.wait_for_verdict("nginx", "good", "good").verdict == "good"


def test_enable_with_two_workers_warms_every_worker_up_before_judging(tmp_path):
    # Staples live in each worker's memory; the role warms up with two handshakes per worker
    # process (worker_processes from the config) and judges after that.
    with Lab.start(tmp_path / "lab", servers=("nginx",), nginx_options={"workers": 2}) as lab:
        # The default rounds and handshakes, the rounds 3 s apart: under make test's load the
        # workers' background fetches take longer than the default 1 s. With one handshake per
        # worker this failed about one run in four under load, even 10 s apart: nginx lets
        # whichever worker wakes first accept, so both of a round's handshakes often reached
        # the same worker and the next round's the other, still cold, one.
        result = run_role(lab, tmp_path, nginx_stapling_tuning={"ssl_trusted_certificate": "build",
                                                                "resolver_timeout": "5s"},
                          nginx_stapling_verify_delay=3)
        assert result.returncode == 0, result.stdout[-4000:]
        assert '"good.lab.test": "good"' in result.stdout
        assert '"muststaple.lab.test": "good"' in result.stdout
        assert '"nourl.lab.test": "not_applicable"' in result.stdout
        # revoked: nginx refuses to staple it; reported with nginx's own log line, not a failure
        assert '"revoked.lab.test": "missing"' in result.stdout
        assert 'certificate status \\"revoked\\" in the OCSP response' in result.stdout
        again = run_role(lab, tmp_path, nginx_stapling_tuning={"ssl_trusted_certificate": "build",
                                                               "resolver_timeout": "5s"})
        assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
