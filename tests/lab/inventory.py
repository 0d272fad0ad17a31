"""Turn a lab's ``lab.json`` into an Ansible inventory for the runbook playbooks.

    python -m tests.lab.inventory --dir /tmp/lab > /tmp/lab/inventory.json
    ansible-playbook -i /tmp/lab/inventory.json ocsp.stapling.check_stapling

The lab's servers live under a private prefix, so every path and command the roles use is
set here from ``lab.json`` (the roles' defaults are the real system paths). The demo,
molecule and the fleet test share this one mapping; ``host_vars`` gives one host's
variables for callers that build bigger inventories.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def apache_vars(server: dict, state_dir: Path) -> dict:
    conf = Path(server["conf"])
    conf_dir = conf.parent
    run_dir = Path(server["pid_file"]).parent
    commands = {name: shlex.split(command) for name, command in server["commands"].items()}
    return {
        "apache_stapling_layout": "debian",
        "apache_stapling_server": "apache",
        "apache_stapling_environment": dict(server.get("environment") or {}),
        "apache_stapling_backup_dir": str(state_dir / "backups"),
        "apache_stapling_debian_main_config": str(conf),
        "apache_stapling_debian_conf_available": str(conf_dir / "conf-available"),
        "apache_stapling_debian_conf_enabled": str(conf_dir / "conf-enabled"),
        "apache_stapling_debian_sites_enabled": str(conf_dir / "sites-enabled"),
        "apache_stapling_debian_cache_path": str(run_dir / "ocsp_stapling_cache"),
        "apache_stapling_debian_configtest_command": commands["configtest"],
        "apache_stapling_debian_reload_command": commands["reload"],
        "apache_stapling_debian_start_command": commands["start"],
        "apache_stapling_debian_pid_file": server["pid_file"],
        "apache_stapling_debian_error_log": server["error_log"],
        # The lab's responder is not reachable through a proxy and needs no forced URL.
        "apache_stapling_detect_debian_conf": str(conf_dir / "conf-available"),
    }


def nginx_vars(server: dict, state_dir: Path, pki: Path) -> dict:
    conf = Path(server["conf"])
    commands = server["commands"]
    binary = shlex.split(commands["start"])[0]
    return {
        "nginx_stapling_config": str(conf),
        "nginx_stapling_managed_dir": str(conf.parent / "ocsp-stapling"),
        "nginx_stapling_http_include_file": str(conf.parent / "conf.d" / "zz-ocsp-stapling.conf"),
        "nginx_stapling_ca_bundle": str(pki / "ca-bundle.pem"),
        "nginx_stapling_configtest_command": commands["configtest"],
        "nginx_stapling_reload_command": commands["reload"],
        "nginx_stapling_start_command": commands["start"],
        "nginx_stapling_version_command": f"{binary} -v",
        "nginx_stapling_pid_file": server["pid_file"],
        "nginx_stapling_error_log": server["error_log"],
        "nginx_stapling_backup_dir": str(state_dir / "backups"),
        "nginx_stapling_keeper_state_dir": str(state_dir / "keeper"),
        "nginx_stapling_keeper_config": str(state_dir / "keeper-nginx.json"),
    }


def host_vars(record: dict, python: str | None = None, state_dir: str | Path | None = None) -> dict:
    """Variables for one inventory host that runs the lab on 127.0.0.1 (local connection)."""
    lab_dir = Path(record["directory"])
    state = Path(state_dir) if state_dir else lab_dir / "runbook"
    servers = record["servers"]
    hostvars: dict = {
        "ansible_connection": "local",
        "ansible_python_interpreter": python or sys.executable,
        "stapling_record_path": str(state / "state.json"),
        "stapling_servers": sorted(servers),
        "stapling_error_logs": [server["error_log"] for server in servers.values()],
    }
    if "apache" in servers:
        hostvars["stapling_apache_config"] = servers["apache"]["conf"]
        hostvars["stapling_apache_server_root"] = str(Path(servers["apache"]["conf"]).parent)
        hostvars.update(apache_vars(servers["apache"], state))
    else:
        # Point the facts at a path that does not exist so the system's apache2 is not read.
        hostvars["stapling_apache_config"] = str(lab_dir / "no-apache" / "apache2.conf")
    if "nginx" in servers:
        hostvars["stapling_nginx_config"] = servers["nginx"]["conf"]
        hostvars.update(nginx_vars(servers["nginx"], state, Path(record["pki"])))
    else:
        hostvars["stapling_nginx_config"] = str(lab_dir / "no-nginx" / "nginx.conf")
    return hostvars


def inventory(record: dict, host: str = "lab", python: str | None = None) -> dict:
    """A YAML/JSON inventory with one host, ``host``, for the lab in ``record``."""
    return {"all": {"hosts": {host: host_vars(record, python)}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.inventory", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the lab directory (holds lab.json)")
    parser.add_argument("--host", default="lab", help="inventory host name")
    parser.add_argument("--python", help="interpreter for the host (default: this one)")
    parser.add_argument("--out", help="write here instead of stdout (use a .json or .yml name)")
    parser.add_argument("--hostvars", action="store_true", help="only the host's variables (for include_vars)")
    args = parser.parse_args(argv)
    path = Path(args.dir) / "lab.json"
    if not path.exists():
        sys.exit(f"No lab at {args.dir}: {path} is missing. Start one with 'python -m tests.lab up --dir {args.dir}'.")
    record = json.loads(path.read_text())
    data = host_vars(record, args.python) if args.hostvars else inventory(record, args.host, args.python)
    text = json.dumps(data, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
