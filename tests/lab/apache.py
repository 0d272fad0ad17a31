"""A private apache2 instance laid out like Debian's ``/etc/apache2``, under a lab prefix.

``<root>/etc/apache2/apache2.conf`` carries the server-wide stapling block (cache, timeouts,
``SSLUseStapling on``, the way cPanel's generated httpd.conf does) and then includes
``mods-enabled/``, ``conf-enabled/`` and ``sites-enabled/`` as Debian's does, so the
Apache role runs against it unchanged. ``apache2ctl`` works with ``APACHE_CONFDIR`` set
to the private conf dir (its private ``envvars`` points run, lock and log dirs into the
prefix). Stopped by the PID in the private pid file.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.processes import LabError, pid_alive, port_open, read_pid, stop_pid, wait_until
from tests.lab.sites import Site

APACHE = "/usr/sbin/apache2"
APACHECTL = "/usr/sbin/apache2ctl"
MODULES_DIR = Path("/usr/lib/apache2/modules")
MODULES = {
    "mpm_event": "mod_mpm_event.so",
    "authz_core": "mod_authz_core.so",
    "socache_shmcb": "mod_socache_shmcb.so",
    "ssl": "mod_ssl.so",
}

MAIN_CONF = """\
# Private lab apache2, laid out like Debian's /etc/apache2.
ServerRoot "{conf}"
DefaultRuntimeDir {run}
PidFile {run}/apache2.pid
Mutex file:{run} default
Timeout 30
KeepAlive Off
User www-data
Group www-data
ErrorLog {logs}/error.log
LogLevel {log_level}
ServerName lab.test

IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf

{mpm}
Listen 127.0.0.1:{port}
DocumentRoot {htdocs}

# Server-wide stapling, as the site's own config (or cPanel's httpd.conf) carries it.
{stapling}
IncludeOptional conf-enabled/*.conf
IncludeOptional sites-enabled/*.conf
"""

STAPLING_BLOCK = """\
SSLStaplingCache shmcb:{run}/stapling_cache(128000)
SSLStaplingStandardCacheTimeout {standard_timeout}
SSLStaplingErrorCacheTimeout {error_timeout}
SSLStaplingResponderTimeout {responder_timeout}
SSLUseStapling On
"""

# Small: many lab instances share two cores.
MPM_EVENT = """\
<IfModule mpm_event_module>
    StartServers 1
    ServerLimit 4
    ThreadsPerChild 16
    MaxRequestWorkers 64
</IfModule>
"""

SITE_CONF = """\
<VirtualHost 127.0.0.1:{port}>
    ServerName {server_name}
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
</VirtualHost>
"""

ENVVARS = """\
# Private envvars for APACHE_CONFDIR={conf}
export APACHE_RUN_USER=www-data
export APACHE_RUN_GROUP=www-data
export APACHE_PID_FILE={run}/apache2.pid
export APACHE_RUN_DIR={run}
export APACHE_LOCK_DIR={run}/lock
export APACHE_LOG_DIR={logs}
export LANG=C
"""


def start_tree(configtest: list[str], start: list[str], pid_file: Path, port: int, what: str) -> int:
    """Configtest a private apache2 tree, start it and wait for its pid and port; return the pid."""
    test = subprocess.run(configtest, capture_output=True, text=True, timeout=60, check=False)
    if test.returncode != 0:
        raise LabError(f"the {what} lab tree fails configtest:\n{test.stdout}{test.stderr}")
    started = subprocess.run(start, capture_output=True, text=True, timeout=60, check=False)
    if started.returncode != 0:
        raise LabError(f"apache2 did not start on the {what} lab tree:\n{started.stdout}{started.stderr}")
    pid = wait_until(lambda: read_pid(Path(pid_file)), 10, f"pid file {pid_file}")
    wait_until(lambda: port_open(port), 10, f"apache2 on 127.0.0.1:{port}")
    return pid


@dataclass
class ApacheInstance:
    root: Path
    port: int
    sites: list[Site]
    stapling: bool = True
    standard_cache_timeout: int = 3600
    error_cache_timeout: int = 600
    responder_timeout: int = 10
    log_level: str = "warn"
    binary: str = APACHE
    _pid: int | None = field(default=None, init=False)

    @property
    def conf_dir(self) -> Path:
        return self.root / "etc" / "apache2"

    @property
    def conf(self) -> Path:
        return self.conf_dir / "apache2.conf"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "apache2.pid"

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    @property
    def environment(self) -> dict[str, str]:
        """What ``apache2ctl`` needs to act on this instance instead of the system's."""
        return {"APACHE_CONFDIR": str(self.conf_dir)}

    def commands(self) -> dict[str, str]:
        """The commands a role uses for this instance (with :attr:`environment` set)."""
        return {"configtest": f"{APACHECTL} -t", "reload": f"{APACHECTL} -k graceful",
                "start": f"{APACHECTL} -k start", "dump": f"{APACHECTL} -S"}

    def write_config(self) -> None:
        for sub in ("run/lock", "logs", "htdocs", "etc/apache2/mods-available",
                    "etc/apache2/mods-enabled", "etc/apache2/conf-available",
                    "etc/apache2/conf-enabled", "etc/apache2/sites-available",
                    "etc/apache2/sites-enabled"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for name, library in MODULES.items():
            load = self.conf_dir / "mods-available" / f"{name}.load"
            load.write_text(f"LoadModule {name}_module {MODULES_DIR / library}\n")
            enabled = self.conf_dir / "mods-enabled" / f"{name}.load"
            if not enabled.exists():
                enabled.symlink_to(load)
        stapling = ""
        if self.stapling:
            stapling = STAPLING_BLOCK.format(
                run=self.run_dir, standard_timeout=self.standard_cache_timeout,
                error_timeout=self.error_cache_timeout, responder_timeout=self.responder_timeout)
        self.conf.write_text(MAIN_CONF.format(
            conf=self.conf_dir, run=self.run_dir, logs=self.root / "logs", port=self.port,
            htdocs=self.root / "htdocs", stapling=stapling, log_level=self.log_level, mpm=MPM_EVENT))
        (self.conf_dir / "envvars").write_text(ENVVARS.format(
            conf=self.conf_dir, run=self.run_dir, logs=self.root / "logs"))
        (self.root / "htdocs" / "index.html").write_text("lab\n")
        for site in self.sites:
            available = self.conf_dir / "sites-available" / f"{site.name}.conf"
            available.write_text(SITE_CONF.format(port=self.port, server_name=site.server_name,
                                                  cert=site.cert, key=site.key))
            enabled = self.conf_dir / "sites-enabled" / f"{site.name}.conf"
            if not enabled.exists():
                enabled.symlink_to(available)

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = dict(os.environ, **self.environment)
        return subprocess.run([APACHECTL, *args], capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL, check=False)

    def start(self) -> None:
        self.write_config()
        test = self.ctl("-t")
        if test.returncode != 0:
            raise LabError(f"apache2ctl -t failed for the lab config {self.conf}:\n{test.stderr}")
        result = self.ctl("-k", "start")
        if result.returncode != 0:
            raise LabError(f"apache2 did not start ({self.conf}):\n{result.stdout}{result.stderr}")
        self._pid = wait_until(lambda: read_pid(self.pid_file), 10, f"apache2 pid file {self.pid_file}")
        wait_until(lambda: port_open(self.port), 10, f"apache2 to listen on 127.0.0.1:{self.port}")

    def graceful(self) -> None:
        result = self.ctl("-k", "graceful")
        if result.returncode != 0:
            raise LabError(f"apache2ctl -k graceful failed:\n{result.stdout}{result.stderr}")

    @property
    def pid(self) -> int | None:
        return read_pid(self.pid_file) or self._pid

    def running(self) -> bool:
        pid = self.pid
        return bool(pid) and pid_alive(pid)

    def last_words(self, pid: int, codes: tuple[str, ...] = ("AH01872", "AH00020")) -> list[str]:
        """The error-log lines in which the parent ``pid`` said why it exits (``codes``).

        Empty when it said nothing: Debian's apache2 here sometimes segfaults (dmesg) in a
        graceful restart before it logs AH01872, so a test of "the message carries the
        server's last words" must hold the result to what Apache really wrote.
        """
        text = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return [line for line in text.splitlines() if f"[pid {pid}:" in line and any(code in line for code in codes)]

    def log_quote(self, said: list[str]) -> tuple[str, ...]:
        """How a failure message names this server's error log: before the fatal lines when
        the parent logged its last words (``said``); else before the last lines it wrote since
        the reload (a build warning, say), or saying it wrote none."""
        if said:
            return (f"the error log ({self.error_log}): ",)
        return (f"last lines in the error log ({self.error_log}) since the reload: ",
                f"nothing was written to the error log ({self.error_log}) since the reload")

    def stop(self) -> None:
        # The pid file can name a parent a role restarted; stop whichever we know of.
        for pid in (self.pid, self._pid):
            stop_pid(pid)
        self._pid = None
