"""tests.lab.inventory: a lab's lab.json becomes the variables the runbook roles need."""
from __future__ import annotations

import json

from tests.lab.inventory import host_vars, inventory, main

RECORD = {
    "directory": "/tmp/lab",
    "pki": "/tmp/lab/pki",
    "servers": {
        "nginx": {"conf": "/tmp/lab/nginx/etc/nginx/nginx.conf", "error_log": "/tmp/lab/nginx/logs/error.log",
                  "pid_file": "/tmp/lab/nginx/run/nginx.pid",
                  "commands": {"configtest": "/usr/sbin/nginx -p /tmp/lab/nginx -c /tmp/lab/nginx/etc/nginx/nginx.conf -t",
                               "reload": "/usr/sbin/nginx -p /tmp/lab/nginx -c /tmp/lab/nginx/etc/nginx/nginx.conf -s reload",
                               "start": "/usr/sbin/nginx -p /tmp/lab/nginx -c /tmp/lab/nginx/etc/nginx/nginx.conf",
                               "dump": "/usr/sbin/nginx -T"}},
        "apache": {"conf": "/tmp/lab/apache/etc/apache2/apache2.conf", "error_log": "/tmp/lab/apache/logs/error.log",
                   "pid_file": "/tmp/lab/apache/run/apache2.pid",
                   "commands": {"configtest": "/usr/sbin/apache2ctl -t", "reload": "/usr/sbin/apache2ctl -k graceful",
                                "start": "/usr/sbin/apache2ctl -k start", "dump": "/usr/sbin/apache2ctl -S"},
                   "environment": {"APACHE_CONFDIR": "/tmp/lab/apache/etc/apache2"}},
    },
}


def test_every_role_path_points_into_the_lab():
    hv = host_vars(RECORD, python="/venv/bin/python")
    assert hv["ansible_connection"] == "local" and hv["ansible_python_interpreter"] == "/venv/bin/python"
    assert hv["stapling_record_path"] == "/tmp/lab/runbook/state.json"
    assert hv["stapling_servers"] == ["apache", "nginx"]
    assert hv["apache_stapling_debian_conf_enabled"] == "/tmp/lab/apache/etc/apache2/conf-enabled"
    assert hv["apache_stapling_debian_reload_command"] == ["/usr/sbin/apache2ctl", "-k", "graceful"]
    assert hv["apache_stapling_environment"] == {"APACHE_CONFDIR": "/tmp/lab/apache/etc/apache2"}
    assert hv["nginx_stapling_version_command"] == "/usr/sbin/nginx -v"
    assert hv["nginx_stapling_http_include_file"] == "/tmp/lab/nginx/etc/nginx/conf.d/zz-ocsp-stapling.conf"
    paths = [value for key, value in hv.items() if key.endswith(("_config", "_dir", "_file", "_path", "_log"))
             and isinstance(value, str) and value.startswith("/")]
    assert paths and all(path.startswith("/tmp/lab/") for path in paths), paths


def test_a_lab_without_apache_never_reads_the_systems_apache():
    record = dict(RECORD, servers={"nginx": RECORD["servers"]["nginx"]})
    hv = host_vars(record)
    assert hv["stapling_apache_config"].startswith("/tmp/lab/no-apache/")
    assert not any(key.startswith("apache_stapling_") for key in hv)


def test_cli_writes_inventory_and_hostvars(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "lab.json").write_text(json.dumps(dict(RECORD, directory=str(lab))))
    assert main(["--dir", str(lab), "--host", "web01", "--out", str(tmp_path / "inv.json")]) == 0
    assert list(json.loads((tmp_path / "inv.json").read_text())["all"]["hosts"]) == ["web01"]
    assert main(["--dir", str(lab), "--hostvars", "--out", str(tmp_path / "hv.json")]) == 0
    assert json.loads((tmp_path / "hv.json").read_text())["stapling_record_path"] == f"{lab}/runbook/state.json"
    assert inventory(RECORD)["all"]["hosts"]["lab"]["stapling_servers"] == ["apache", "nginx"]
