"""A RHEL-shaped httpd tree (``/etc/httpd/conf/httpd.conf`` + ``conf.d/``) run by Debian's apache2.

RHEL keeps the server-wide SSL settings in ``conf.d/ssl.conf`` and reads ``conf.d/*.conf``
in name order; the Apache role's RHEL layout adds ``conf.d/zz-ocsp-stapling.conf``. The
tree lives under a private root and the commands are ``apache2 -d <ServerRoot> -f <conf>``,
so configtest and graceful reload are the real binary's.
"""
from __future__ import annotations

import json
from pathlib import Path

from tests.lab.apache import APACHE, MODULES, MODULES_DIR, MPM_EVENT, SITE_CONF, start_tree
from tests.lab.processes import read_pid, stop_pid
from tests.lab.sites import Site

HTTPD_CONF = """\
# Private RHEL-shaped httpd.conf
ServerRoot "{server_root}"
Listen 127.0.0.1:{port}
Include conf.modules.d/*.conf
User www-data
Group www-data
ServerName rhel.lab.test
PidFile {run}/httpd.pid
DefaultRuntimeDir {run}
Mutex file:{run} default
ErrorLog {logs}/error_log
LogLevel warn
DocumentRoot {htdocs}
{mpm}IncludeOptional conf.d/*.conf
"""

SSL_CONF = """\
# conf.d/ssl.conf as mod_ssl ships it on RHEL, trimmed to what the lab needs.
SSLStaplingCache shmcb:{run}/stapling_cache(128000)
SSLUseStapling On
"""


def build(root: Path, port: int, sites: list[Site]) -> dict:
    """Write the tree, start apache2 on it and return its paths and commands."""
    server_root = root / "etc" / "httpd"
    paths = {"server_root": server_root, "conf": server_root / "conf" / "httpd.conf",
             "conf_d": server_root / "conf.d", "run": root / "run" / "httpd",
             "logs": root / "logs", "htdocs": root / "htdocs"}
    for key in ("conf_d", "run", "logs", "htdocs"):
        paths[key].mkdir(parents=True, exist_ok=True)
    (server_root / "conf").mkdir(parents=True, exist_ok=True)
    modules = server_root / "conf.modules.d"
    modules.mkdir(exist_ok=True)
    (modules / "00-lab.conf").write_text("".join(
        f"LoadModule {name}_module {MODULES_DIR / library}\n" for name, library in MODULES.items()))
    paths["conf"].write_text(HTTPD_CONF.format(port=port, mpm=MPM_EVENT,
                                               **{k: v for k, v in paths.items() if k != "conf"}))
    (paths["conf_d"] / "ssl.conf").write_text(SSL_CONF.format(run=paths["run"]))
    (paths["conf_d"] / "sites.conf").write_text("".join(
        SITE_CONF.format(port=port, server_name=s.server_name, cert=s.cert, key=s.key) for s in sites))
    base = [APACHE, "-d", str(server_root), "-f", str(paths["conf"])]
    info = {key: str(value) for key, value in paths.items()}
    info.update(port=port, pid_file=str(paths["run"] / "httpd.pid"), error_log=str(paths["logs"] / "error_log"),
                configtest=base + ["-t"], reload=base + ["-k", "graceful"], start=base + ["-k", "start"])
    info["pid"] = start_tree(info["configtest"], info["start"], Path(info["pid_file"]), port, "RHEL-shaped")
    (root / "rhel.json").write_text(json.dumps(info, indent=2))
    return info


def stop(info: dict) -> None:
    # A graceful restart keeps the parent; the pid file names whoever runs now.
    for pid in (info.get("pid"), read_pid(Path(info["pid_file"]))):
        stop_pid(pid)
