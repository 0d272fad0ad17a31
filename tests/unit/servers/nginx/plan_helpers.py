"""Helpers for the nginx plan tests: apply a plan to a private tree, snapshot it, run the real
``nginx -t`` on it with a private prefix."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import plan as ns

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

#: Private paths for a main nginx.conf so that ``nginx -p <root> -t`` touches nothing of the system's.
PRIVATE = """\
pid {root}/run/nginx.pid;
error_log {root}/logs/error.log info;
"""
PRIVATE_HTTP = """\
    access_log off;
    client_body_temp_path {root}/tmp/client_body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
"""


def apply(result: dict) -> None:
    """Write a plan's files the way stapling_change would (content byte for byte)."""
    import base64
    for entry in result["files"]:
        path = Path(entry["path"])
        if entry.get("state") == "absent":
            if os.path.lexists(path):
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if "content_base64" in entry:
            path.write_bytes(base64.b64decode(entry["content_base64"]))
        else:
            path.write_bytes(entry["content"].encode("utf-8", "surrogateescape"))


def pending(result: dict) -> list[str]:
    """Paths whose planned content differs from what is on disk (empty: nothing to do)."""
    import base64
    out = []
    for entry in result["files"]:
        path = Path(entry["path"])
        if entry.get("state") == "absent":
            if os.path.lexists(path):
                out.append(str(path))
            continue
        data = (base64.b64decode(entry["content_base64"]) if "content_base64" in entry
                else entry["content"].encode("utf-8", "surrogateescape"))
        if not path.exists() or path.read_bytes() != data:
            out.append(str(path))
    return out


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every regular file's bytes and every symlink's target under ``directory``."""
    out: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        if path.is_symlink():
            out[key] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            out[key] = path.read_bytes()
    return out


def nginx_t(root: Path, conf: Path) -> subprocess.CompletedProcess:
    for sub in ("run", "logs", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return subprocess.run([NGINX, "-p", str(root), "-c", str(conf), "-t"], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL, check=False)


def effective(conf: Path, setting: str = "ssl_stapling") -> dict[str, str | None]:
    """``setting`` in effect per TLS server block (first server_name, else file:line), managed
    files included: what nginx will do after the plan is applied."""
    from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx.config import load_nginx_config
    config = load_nginx_config(str(conf))
    out = {}
    for block in config.tls_server_blocks():
        found = block.lookup(setting)
        out[block.names[0] if block.names else f"{block.file}:{block.line}"] = found.directive.value if found else None
    return out


def request(conf: Path, pki, **kwargs) -> ns.PlanRequest:
    kwargs.setdefault("ca_bundle", str(pki.ca_bundle))
    return ns.PlanRequest(config=str(conf), managed_dir=str(conf.parent / "ocsp-stapling"),
                          http_include_file=str(conf.parent / "conf.d" / "zz-ocsp-stapling.conf"),
                          nginx_version="nginx version: nginx/1.22.1", **kwargs)
