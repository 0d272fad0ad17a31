"""A private nginx instance laid out like Debian's ``/etc/nginx``, under a lab prefix.

``<root>/etc/nginx/nginx.conf`` includes ``conf.d/*.conf`` (http level) and
``sites-enabled/*`` (one server block per site), exactly the places the nginx role edits on
a real Debian host; pid, lock and temp paths are private so nothing touches the system's
nginx. Started with ``nginx -p <prefix> -c <conf>`` (daemonises), stopped by the PID in
its pid file.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.processes import LabError, port_open, read_pid, stop_pid, wait_until
from tests.lab.sites import Site

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MAIN_CONF = """\
# Private lab nginx, laid out like Debian's /etc/nginx.
user www-data;
worker_processes {workers};
pid {run}/nginx.pid;
error_log {logs}/error.log {log_level};

events {{
    worker_connections 256;
}}

http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type text/plain;
    ssl_protocols TLSv1.2 TLSv1.3;

    include {conf}/conf.d/*.conf;
    include {conf}/sites-enabled/*;
}}
"""

SITE_CONF = """\
server {{
    listen 127.0.0.1:{port} ssl{default};
    server_name {server_name};
    ssl_certificate {cert};
    ssl_certificate_key {key};
{stapling}
    location / {{
        return 200 "{name}\\n";
    }}
}}
"""


@dataclass
class NginxInstance:
    root: Path
    port: int
    sites: list[Site]
    trusted_certificate: Path
    stapling: bool = True
    workers: int = 1
    log_level: str = "info"
    binary: str = NGINX
    _pid: int | None = field(default=None, init=False)

    @property
    def conf_dir(self) -> Path:
        return self.root / "etc" / "nginx"

    @property
    def conf(self) -> Path:
        return self.conf_dir / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    @property
    def base_command(self) -> list[str]:
        return [self.binary, "-p", str(self.root), "-c", str(self.conf)]

    def commands(self) -> dict[str, str]:
        """The commands a role uses for this instance (configtest, reload, start)."""
        base = " ".join(self.base_command)
        return {"configtest": f"{base} -t", "reload": f"{base} -s reload", "start": base,
                "dump": f"{base} -T"}

    def write_config(self) -> None:
        for sub in ("run", "logs", "tmp", "etc/nginx/conf.d", "etc/nginx/sites-available",
                    "etc/nginx/sites-enabled"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(MAIN_CONF.format(
            workers=self.workers, run=self.root / "run", logs=self.root / "logs",
            tmp=self.root / "tmp", conf=self.conf_dir, log_level=self.log_level))
        stapling = ""
        if self.stapling:
            stapling = ("    ssl_stapling on;\n    ssl_stapling_verify on;\n"
                        f"    ssl_trusted_certificate {self.trusted_certificate};\n")
        for index, site in enumerate(self.sites):
            available = self.conf_dir / "sites-available" / site.name
            available.write_text(SITE_CONF.format(
                port=self.port, default=" default_server" if index == 0 else "",
                server_name=site.server_name, cert=site.cert, key=site.key, stapling=stapling,
                name=site.name))
            enabled = self.conf_dir / "sites-enabled" / site.name
            if not enabled.exists():
                enabled.symlink_to(available)

    def configtest(self) -> subprocess.CompletedProcess:
        return subprocess.run(self.base_command + ["-t"], capture_output=True, text=True, timeout=30,
                              check=False)

    def start(self) -> None:
        self.write_config()
        test = self.configtest()
        if test.returncode != 0:
            raise LabError(f"nginx -t failed for the lab config {self.conf}:\n{test.stderr}")
        result = subprocess.run(self.base_command, capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise LabError(f"nginx did not start ({self.conf}):\n{result.stderr}")
        self._pid = wait_until(lambda: read_pid(self.pid_file), 10, f"nginx pid file {self.pid_file}")
        wait_until(lambda: port_open(self.port), 10, f"nginx to listen on 127.0.0.1:{self.port}")

    def reload(self) -> None:
        subprocess.run(self.base_command + ["-s", "reload"], check=True, capture_output=True,
                       timeout=30)

    @property
    def pid(self) -> int | None:
        return self._pid or read_pid(self.pid_file)

    def stop(self) -> None:
        # SIGQUIT is nginx's graceful shutdown; the master takes its workers with it.
        stop_pid(self.pid, sig=signal.SIGQUIT)
        self._pid = None
