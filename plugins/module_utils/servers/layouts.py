# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which web servers a host runs, in which layout, and which files hold stapling.

Host side: Python standard library only. Every path is looked up under ``root`` (``/``
on a real host, a private tree in tests) and every command goes through a *runner*, a
callable ``runner(argv) -> (rc, stdout, stderr)``, so tests can use real binaries or
stand-in scripts. :data:`DEFAULTS` holds the real default paths; the roles read the same
values (``stapling_files`` is the list of files each layout's role edits); a unit test
(``tests/unit/servers/test_layouts.py``) holds the roles' defaults to these.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from typing import Callable

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.config_tree import host_path

Runner = Callable[[list], tuple]

#: Real default paths per server and layout. The roles use the same values.
DEFAULTS: dict = {
    "cpanel": {
        "cpanel_dir": "/usr/local/cpanel",
        "ea4_marker": "/etc/cpanel/ea4/is_ea4",
        "ea4_paths": "/etc/cpanel/ea4/paths.conf",
        # WHM > Apache Configuration > Global Configuration: one JSON object (Cpanel::EA4::Conf);
        # rebuildhttpdconf renders httpd.conf's server-scope SSLUseStapling from its
        # "sslusestapling" (default On). See read_whm_stapling.
        "ea4_conf": "/etc/cpanel/ea4/ea4.conf",
        "rebuild_httpd_conf": "/usr/local/cpanel/scripts/rebuildhttpdconf",
        "restart_httpd": "/scripts/restartsrv_httpd",
        "ensure_vhost_includes": "/scripts/ensure_vhost_includes",
    },
    "apache": {
        "debian": {
            "binary": "/usr/sbin/apache2",
            "ctl": "/usr/sbin/apache2ctl",
            "config": "/etc/apache2/apache2.conf",
            "server_root": "/etc/apache2",
            "envvars": "/etc/apache2/envvars",
            "error_log": "/var/log/apache2/error.log",
            "stapling_files": [
                {"path": "/etc/apache2/conf-available/zz-ocsp-stapling.conf", "purpose": "stapling settings and cache (server scope)"},
                {"path": "/etc/apache2/conf-enabled/zz-ocsp-stapling.conf", "purpose": "a2enconf link enabling the snippet"},
            ],
        },
        "rhel": {
            "binary": "/usr/sbin/httpd",
            "ctl": "/usr/sbin/apachectl",
            "config": "/etc/httpd/conf/httpd.conf",
            "server_root": "/etc/httpd",
            "error_log": "/var/log/httpd/error_log",
            "stapling_files": [
                {"path": "/etc/httpd/conf.d/zz-ocsp-stapling.conf", "purpose": "stapling settings and cache (server scope)"},
            ],
        },
        "cpanel_ea4": {
            "binary": "/usr/sbin/httpd",
            "ctl": "/usr/sbin/apachectl",
            "config": "/etc/apache2/conf/httpd.conf",
            "server_root": "/etc/apache2",
            "error_log": "/etc/apache2/logs/error_log",
            "stapling_files": [
                {"path": "/etc/apache2/conf.d/includes/pre_main_global.conf", "purpose": "stapling cache and global settings (main scope)"},
                {"path": "/etc/apache2/conf.d/includes/pre_virtualhost_global.conf", "purpose": "settings read before every virtual host"},
                {"path": "/etc/apache2/conf.d/includes/pre_virtualhost_2.conf",
                 "purpose": "settings read before every virtual host (when httpd.conf includes it)"},
            ],
            "litespeed_files": [
                {"path": "/etc/apache2/conf.d/userdata/lscache_vhosts.conf", "purpose": "LiteSpeed per-vhost stapling (<IfModule Litespeed>)"},
            ],
        },
        "cpanel_ea3": {
            "binary": "/usr/local/apache/bin/httpd",
            "ctl": "/usr/local/apache/bin/apachectl",
            "config": "/usr/local/apache/conf/httpd.conf",
            "server_root": "/usr/local/apache",
            "error_log": "/usr/local/apache/logs/error_log",
            "stapling_files": [
                {"path": "/usr/local/apache/conf/includes/pre_main_global.conf", "purpose": "stapling cache and global settings (main scope)"},
                {"path": "/usr/local/apache/conf/includes/pre_virtualhost_global.conf", "purpose": "settings read before every virtual host"},
                {"path": "/usr/local/apache/conf/includes/pre_virtualhost_2.conf", "purpose": "settings read before every virtual host (Apache 2.x)"},
            ],
            "litespeed_files": [
                {"path": "/usr/local/apache/conf/userdata/lscache_vhosts.conf", "purpose": "LiteSpeed per-vhost stapling (<IfModule Litespeed>)"},
            ],
        },
    },
    "nginx": {
        "binary": "/usr/sbin/nginx",
        "config": "/etc/nginx/nginx.conf",
        "error_log": "/var/log/nginx/error.log",
        "stapling_files": [
            {"path": "/etc/nginx/conf.d/zz-ocsp-stapling.conf", "purpose": "managed http-level stapling settings (resolver, ssl_stapling)"},
        ],
    },
    "litespeed": {
        "server_root": "/usr/local/lsws",
        "ctl": "bin/lswsctrl",
        "error_log": "logs/error.log",
        "configs": {"openlitespeed": "conf/httpd_config.conf", "lsws": "conf/httpd_config.xml"},
    },
}

#: First versions with OCSP stapling: Apache 2.3.3 (mod_ssl), nginx 1.3.7; OpenLiteSpeed 1.2
#: and LiteSpeed Enterprise 4.2.4 natively (the editions number their releases apart), and
#: LiteSpeed 5.1 through Apache config (LiteSpeed's "OCSP Stapling" page).
MINIMUM_VERSIONS: dict[str, tuple[int, ...]] = {
    "apache": (2, 3, 3),
    "nginx": (1, 3, 7),
    "openlitespeed": (1, 2),
    "lsws": (4, 2, 4),
    "litespeed_apache_config": (5, 1),
}


def run_command(argv: list, timeout: float = 10.0) -> tuple:
    """The default runner: run ``argv`` without a shell; ``(rc, stdout, stderr)``.

    A missing or non-executable binary gives rc 127 and the reason in stderr.
    """
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, "", str(exc)
    return completed.returncode, completed.stdout, completed.stderr


def version_tuple(version: str | None) -> tuple[int, ...]:
    """``"2.4.62"`` -> ``(2, 4, 62)``; trailing non-numeric parts are dropped."""
    parts: list[int] = []
    for piece in re.split(r"[.\-]", version or ""):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group(0)))
        if digits.group(0) != piece:
            break
    return tuple(parts)


def supports_stapling(server: str, version: str | None) -> bool | None:
    """Whether ``version`` is at least the first with stapling; None when unknown."""
    have = version_tuple(version)
    if not have:
        return None
    return have >= MINIMUM_VERSIONS[server]


def parse_apache_version(text: str) -> str | None:
    """``Server version: Apache/2.4.62 (cPanel)`` -> ``2.4.62``."""
    match = re.search(r"Apache/(\d+(?:\.\d+)+)", text)
    return match.group(1) if match else None


def parse_nginx_version(text: str) -> str | None:
    """``nginx version: nginx/1.22.1`` (also ``openresty/``, ``angie/``) -> ``1.22.1``."""
    match = re.search(r"version: [A-Za-z-]+/(\d+(?:\.\d+)+)", text)
    return match.group(1) if match else None


def parse_configure_args(text: str) -> list[str]:
    """The ``configure arguments:`` of ``nginx -V`` as a list (quoting respected)."""
    for line in text.splitlines():
        if line.startswith("configure arguments:"):
            try:
                return shlex.split(line.split(":", 1)[1])
            except ValueError:
                return line.split(":", 1)[1].split()
    return []


def configure_option(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` in configure arguments, or None."""
    prefix = "--%s=" % name
    for arg in args:
        if arg.startswith(prefix):
            return arg[len(prefix):]
    return None


def read_ea4_paths(path: str) -> dict[str, str]:
    """Parse cPanel's ``/etc/cpanel/ea4/paths.conf`` (``key=value``, ``#`` comments)."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                key, _sep, value = line.partition("=")
                values[key.strip()] = value.strip()
    except OSError:
        return {}
    return values


def read_whm_stapling(path: str, shown: str | None = None) -> dict:
    """WHM's own stapling switch: ``sslusestapling`` in cPanel's ``/etc/cpanel/ea4/ea4.conf``.

    ``{file, exists, value, enabled, default, problem}``: ``value`` as the file holds it,
    ``enabled`` what the next ``rebuildhttpdconf`` writes into httpd.conf's server-scope
    ``SSLUseStapling`` (True / False, None when Apache would refuse it or the rebuild fails),
    ``default`` True when cPanel's own default (``On``) applies. ``path`` is read as given;
    ``shown`` is the path reported.

    What cPanel does, read in its sources: ``Cpanel::EA4::Conf`` saves the file as one JSON
    object (pretty, sorted keys) with ``sslusestapling`` coerced to ``On`` or ``Off``;
    ``Cpanel::EA4::Conf::Tiny``, which the rebuild reads, lays the object over its defaults
    (``sslusestapling => "On"``) and uses the defaults alone when the file is missing, empty,
    not JSON or a JSON scalar; a JSON array makes the rebuild die. ``ea4_main.default`` writes
    ``SSLUseStapling <value>`` when the value is not empty, else ``On``. Apache takes a flag's
    ``On`` / ``Off`` in any case and refuses anything else.
    """
    out: dict = {"file": shown or path, "exists": os.path.isfile(path), "value": None, "enabled": True,
                 "default": True, "problem": None}
    if not out["exists"]:
        return out
    fix = "Set it in WHM > Apache Configuration > Global Configuration and Save, which writes the file anew."
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        out.update(enabled=None, default=False, problem="%s could not be read (%s); WHM's stapling setting is "
                   "unknown. Check its permissions (cPanel reads it as root)." % (out["file"], exc.strerror or exc))
        return out
    if not raw:
        return out    # empty: cPanel reads no data and uses its defaults
    try:
        # JSON::XS reads the bytes as text; bytes that are not UTF-8 only matter inside values.
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError as exc:
        out["problem"] = ("%s is not JSON (%s). cPanel's rebuildhttpdconf then ignores it and writes its default, "
                          "SSLUseStapling On, and WHM cannot show the Global Configuration. %s" % (out["file"], exc, fix))
        return out
    if isinstance(data, list):
        out.update(enabled=None, default=False, problem="%s holds a JSON array; cPanel expects one JSON object and its "
                   "rebuildhttpdconf fails on this file. %s" % (out["file"], fix))
        return out
    if not isinstance(data, dict):
        out["problem"] = ("%s holds a single JSON value, not an object: cPanel ignores it and writes its default, "
                          "SSLUseStapling On. %s" % (out["file"], fix))
        return out
    value = data.get("sslusestapling")
    if value is None or value == "":
        return out    # the template writes On when the value is empty
    if isinstance(value, str) and value.strip().lower() in ("on", "off"):
        out.update(value=value, default=False, enabled=value.strip().lower() == "on")
        return out
    out.update(value=value if isinstance(value, str) else json.dumps(value), enabled=None, default=False,
               problem="%s has sslusestapling %s; WHM writes \"On\" or \"Off\", and cPanel's rebuildhttpdconf copies "
               "the value into httpd.conf's SSLUseStapling line, which Apache refuses unless it is On or Off. %s"
               % (out["file"], json.dumps(value), fix))
    return out


def describe_files(root: str, entries: list[dict]) -> list[dict]:
    """Each stapling file entry with ``exists`` (and ``is_link``) filled in under ``root``."""
    out = []
    for entry in entries:
        path = host_path(root, entry["path"])
        out.append(dict(entry, exists=os.path.exists(path), is_link=os.path.islink(path)))
    return out


# --------------------------------------------------------------------------- cPanel


def detect_cpanel(root: str = "/", defaults: dict | None = None) -> dict:
    """cPanel and its EasyApache generation: ``{present, ea_version, paths}``.

    EA4 is marked by ``/etc/cpanel/ea4/is_ea4`` or by ``paths.conf`` alone (newer
    ea-apache24-config releases no longer rely on ``is_ea4``) and describes itself in
    ``paths.conf``; EA3 keeps everything under ``/usr/local/apache``. On EA4,
    ``whm_stapling`` is WHM's own switch (:func:`read_whm_stapling`), else None.
    """
    defaults = defaults or DEFAULTS
    cpanel = defaults["cpanel"]
    present = os.path.isdir(host_path(root, cpanel["cpanel_dir"]))
    ea4 = os.path.exists(host_path(root, cpanel["ea4_marker"])) or os.path.isfile(host_path(root, cpanel["ea4_paths"]))
    paths: dict[str, str] = {}
    whm = None
    if ea4:
        paths = read_ea4_paths(host_path(root, cpanel["ea4_paths"]))
        whm = read_whm_stapling(host_path(root, cpanel["ea4_conf"]), cpanel["ea4_conf"])
        version: int | None = 4
    elif os.path.isfile(host_path(root, defaults["apache"]["cpanel_ea3"]["config"])) and (
        present or os.path.isdir(host_path(root, "/usr/local/apache/conf/includes"))
    ):
        version = 3
    else:
        version = None
    return {"present": present or version is not None, "ea_version": version, "paths": paths, "whm_stapling": whm}


# --------------------------------------------------------------------------- Apache


def apache_layout(root: str = "/", cpanel: dict | None = None, defaults: dict | None = None) -> str | None:
    """``cpanel_ea4``, ``cpanel_ea3``, ``debian``, ``rhel`` or None (no Apache found)."""
    defaults = defaults or DEFAULTS
    cpanel = cpanel if cpanel is not None else detect_cpanel(root, defaults)
    if cpanel.get("ea_version") == 4:
        return "cpanel_ea4"
    if cpanel.get("ea_version") == 3:
        return "cpanel_ea3"
    for layout in ("debian", "rhel"):
        spec = defaults["apache"][layout]
        if os.path.isfile(host_path(root, spec["config"])) or os.path.isfile(host_path(root, spec["binary"])):
            return layout
    return None


def detect_apache(
    root: str = "/",
    runner: Runner = run_command,
    binary: str | None = None,
    config: str | None = None,
    server_root: str | None = None,
    cpanel: dict | None = None,
    run_binaries: bool = True,
    defaults: dict | None = None,
) -> dict:
    """Apache's layout, binary, version, config and the stapling files its role edits.

    ``binary``/``config``/``server_root`` override what the layout implies. On EA4 the
    paths come from ``paths.conf`` when it names them.
    """
    defaults = defaults or DEFAULTS
    cpanel = cpanel if cpanel is not None else detect_cpanel(root, defaults)
    layout = apache_layout(root, cpanel, defaults)
    spec = dict(defaults["apache"].get(layout or "", {}))
    if layout == "cpanel_ea4":
        paths = cpanel.get("paths", {})
        spec["binary"] = paths.get("bin_httpd", spec["binary"])
        spec["ctl"] = paths.get("bin_apachectl", spec["ctl"])
        spec["config"] = paths.get("file_conf", spec["config"])
        spec["server_root"] = paths.get("dir_base", spec["server_root"])
        spec["error_log"] = paths.get("file_error_log", spec["error_log"])
        includes = paths.get("dir_conf_includes")
        if includes:
            spec["stapling_files"] = [
                dict(f, path=os.path.join(includes, os.path.basename(f["path"]))) for f in spec["stapling_files"]
            ]
        userdata = paths.get("dir_conf_userdata")
        if userdata:
            spec["litespeed_files"] = [
                dict(f, path=os.path.join(userdata, os.path.basename(f["path"]))) for f in spec["litespeed_files"]
            ]
    if binary:
        spec["binary"] = binary
    if config:
        spec["config"] = config
        spec.setdefault("server_root", os.path.dirname(config))
    if server_root:
        spec["server_root"] = server_root
    if not spec.get("binary") and not spec.get("config"):
        return {"present": False, "layout": None}
    binary_path = spec.get("binary")
    present = bool(
        (binary_path and os.path.exists(host_path(root, binary_path)))
        or (spec.get("config") and os.path.isfile(host_path(root, spec["config"])))
    )
    result = {
        "present": present,
        "layout": layout or "custom",
        "binary": binary_path,
        "ctl": spec.get("ctl"),
        "config": spec.get("config"),
        "server_root": spec.get("server_root"),
        "envvars": spec.get("envvars"),
        "error_log": spec.get("error_log"),
        "version": None,
        "version_output": None,
        "supports_stapling": None,
        "stapling_files": describe_files(root, spec.get("stapling_files", [])),
        "litespeed_files": describe_files(root, spec.get("litespeed_files", [])),
    }
    if run_binaries and binary_path and os.path.exists(host_path(root, binary_path)):
        # "-v" only prints the version; "-V" would also read (and may refuse) the config.
        rc, out, err = runner([host_path(root, binary_path), "-v"])
        result["version_output"] = (out or err).strip()
        result["version"] = parse_apache_version(out + err)
        result["supports_stapling"] = supports_stapling("apache", result["version"])
    return result


# --------------------------------------------------------------------------- nginx


def detect_nginx(
    root: str = "/",
    runner: Runner = run_command,
    binary: str | None = None,
    config: str | None = None,
    run_binaries: bool = True,
    defaults: dict | None = None,
) -> dict:
    """nginx's binary, version, configure arguments and main config path.

    The config is ``config`` if given, else ``--conf-path`` from ``nginx -V``, else the
    default ``/etc/nginx/nginx.conf``.
    """
    defaults = defaults or DEFAULTS
    spec = defaults["nginx"]
    binary_path = binary or spec["binary"]
    result: dict = {
        "present": False,
        "binary": binary_path,
        "version": None,
        "supports_stapling": None,
        "configure_args": [],
        "prefix": None,
        "config": config or spec["config"],
        "error_log": spec["error_log"],
        "stapling_files": describe_files(root, spec["stapling_files"]),
    }
    have_binary = os.path.exists(host_path(root, binary_path))
    result["present"] = have_binary or os.path.isfile(host_path(root, result["config"]))
    if run_binaries and have_binary:
        # nginx -V writes to stderr.
        rc, out, err = runner([host_path(root, binary_path), "-V"])
        text = out + err
        result["version"] = parse_nginx_version(text)
        result["supports_stapling"] = supports_stapling("nginx", result["version"])
        args = parse_configure_args(text)
        result["configure_args"] = args
        result["prefix"] = configure_option(args, "prefix")
        if not config:
            result["config"] = configure_option(args, "conf-path") or result["config"]
        log = configure_option(args, "error-log-path")
        if log and log != "stderr":
            result["error_log"] = log
    return result


# --------------------------------------------------------------------------- LiteSpeed


def detect_litespeed(
    root: str = "/",
    server_root: str | None = None,
    cpanel: dict | None = None,
    defaults: dict | None = None,
) -> dict:
    """LiteSpeed under ``server_root``: edition (``openlitespeed``/``lsws``), version, config."""
    defaults = defaults or DEFAULTS
    spec = defaults["litespeed"]
    server_root = server_root or spec["server_root"]
    base = host_path(root, server_root)
    result: dict = {
        "present": False,
        "server_root": server_root,
        "edition": None,
        "version": None,
        "supports_stapling": None,
        "config": None,
        "ctl": os.path.join(server_root, spec["ctl"]),
        "error_log": os.path.join(server_root, spec["error_log"]),
        "on_cpanel": bool(cpanel and cpanel.get("present")),
        "stapling_files": [],
    }
    if not os.path.isdir(base):
        return result
    result["present"] = True
    for edition in ("openlitespeed", "lsws"):
        relative = spec["configs"][edition]
        if os.path.isfile(os.path.join(base, relative)):
            result["edition"] = edition
            result["config"] = os.path.join(server_root, relative)
            result["stapling_files"] = describe_files(root, [{"path": result["config"], "purpose": "listener SSL settings"}])
            break
    if result["edition"] is None and os.path.exists(os.path.join(base, "bin", "openlitespeed")):
        result["edition"] = "openlitespeed"
    try:
        with open(os.path.join(base, "VERSION"), encoding="utf-8") as handle:
            result["version"] = handle.read().strip() or None
    except OSError:
        pass
    if result["version"] and result["edition"]:
        result["supports_stapling"] = supports_stapling(result["edition"], result["version"])
    return result
