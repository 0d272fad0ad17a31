"""The machine's real packaged ``/etc/apache2`` and ``/etc/nginx``, copied to a private prefix.

The lab's own trees (``apache.py``, ``nginx.py``) are written by the lab, so they have the
shapes the code expects. These are Debian's trees as the packages installed them, copied
at test time to ``<root>/etc/apache2`` and ``<root>/etc/nginx`` with the Debian structure
kept (``apache2.conf``, ``envvars``, ``mods-*``/``conf-*``/``sites-*`` with their symlinks,
``nginx.conf``, ``snippets/``, ``sites-*``). Only what a private instance on 127.0.0.1
needs is edited, each edit checked against the packaged text so a changed package fails
loudly instead of silently testing something else:

- apache2: ``envvars`` (run, lock, log dirs and pid file under the prefix), ``ports.conf``
  (``Listen 127.0.0.1:<port>``), ``000-default.conf``'s port; ``ssl`` (and its
  ``socache_shmcb`` dependency) enabled with relative symlinks, as ``a2enmod`` makes them.
- nginx: ``worker_processes 1`` (one worker: one stapling cache to probe), pid, error and
  access logs, temp paths and ``include`` lines under the prefix, the default site's
  ``listen`` on 127.0.0.1; absolute symlinks into ``/etc/nginx`` re-pointed at the copy.

Then a shape is built on top, the way operators write them (see :data:`APACHE_SHAPES`,
:data:`NGINX_SHAPES`); sites and confs are enabled with symlinks like ``a2ensite`` and
``a2enconf`` (relative) and like Debian's nginx default site (absolute). Started and
stopped by :class:`~tests.lab.apache.ApacheInstance` / :class:`~tests.lab.nginx.NginxInstance`
(``APACHE_CONFDIR=<prefix>/etc/apache2 apache2ctl -k start``, ``nginx -p -c``; by PID).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.lab.apache import ApacheInstance
from tests.lab.lab import Lab
from tests.lab.nginx import NginxInstance
from tests.lab.processes import LabError
from tests.lab.responder import free_port
from tests.lab.sites import Site, extra_sites, lab_sites

APACHE_ETC = Path("/etc/apache2")
NGINX_ETC = Path("/etc/nginx")


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` keeping symlinks; absolute links into ``source`` follow the copy."""
    if not (source.is_dir() and any(source.iterdir())):
        raise LabError(f"{source} is missing or empty: the packaged-config tests need Debian's package "
                       f"installed (run 'make system-deps').")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=True)
    for path in target.rglob("*"):
        if not path.is_symlink():
            continue
        link = Path(os.readlink(path))
        if link.is_absolute() and link.is_relative_to(source):
            path.unlink()
            path.symlink_to(target / link.relative_to(source))


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace ``old`` by ``new`` in ``path``; ``old`` must occur at least ``count`` times."""
    text = path.read_text()
    found = text.count(old)
    if found < count:
        raise LabError(f"{path}: expected {old!r} at least {count} time(s) as the package ships it, "
                       f"found it {found} time(s); the packaged-config lab needs updating for this package.")
    path.write_text(text.replace(old, new))


def enable(conf_dir: Path, kind: str, name: str) -> Path:
    """``a2enmod``/``a2enconf``/``a2ensite`` without touching /etc: a relative symlink."""
    available = conf_dir / f"{kind}-available" / name
    if not available.exists():
        raise LabError(f"cannot enable {available}: it does not exist")
    link = conf_dir / f"{kind}-enabled" / name
    if not link.is_symlink():
        link.symlink_to(Path("..") / f"{kind}-available" / name)
    return link


def tree_digest(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file and the target of every symlink under ``root`` (relative names).

    Paths whose name contains one of ``skip`` are left out.
    """
    digest = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if any(part in name for part in skip):
            continue
        if path.is_symlink():
            digest[name] = "-> " + os.readlink(path)
        elif path.is_file():
            digest[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


# -- Apache ------------------------------------------------------------------------------

def apache_vhost(port: int, site: Site, body: str, chain: bool = False) -> str:
    """One TLS vhost in the packaged default-ssl.conf's style (tabs, DocumentRoot, logs)."""
    certificate = (site.leaf or site.cert) if chain else site.cert
    lines = [f"<VirtualHost 127.0.0.1:{port}>",
             f"\tServerName {site.server_name}",
             "\tDocumentRoot /var/www/html",
             "\tErrorLog ${APACHE_LOG_DIR}/error.log",
             "\tCustomLog ${APACHE_LOG_DIR}/access.log combined",
             "",
             "\tSSLEngine on",
             f"\tSSLCertificateFile      {certificate}",
             f"\tSSLCertificateKeyFile   {site.key}"]
    if chain:
        lines.append(f"\tSSLCertificateChainFile {site.chain}")
    lines += [body.rstrip("\n")] if body else []
    lines.append("</VirtualHost>")
    return "\n".join(lines) + "\n"


def operator_cache(instance: "PackagedApache") -> str:
    """An operator's server-scope stapling cache, with the instance's short timeouts."""
    return ("# OCSP stapling cache (server scope only).\n"
            "SSLStaplingCache shmcb:${APACHE_RUN_DIR}/ssl_stapling(32768)\n"
            f"SSLStaplingStandardCacheTimeout {instance.standard_cache_timeout}\n"
            f"SSLStaplingErrorCacheTimeout {instance.error_cache_timeout}\n"
            f"SSLStaplingResponderTimeout {instance.responder_timeout}\n")


def apache_shape_chainfile(instance: "PackagedApache") -> None:
    """A: Debian's default-ssl.conf, edited as an operator does: leaf-only certificate plus
    ``SSLCertificateChainFile``; stapling at server scope in mods-available/ssl.conf."""
    conf = instance.conf_dir
    site = instance.sites[0]
    default_ssl = conf / "sites-available" / "default-ssl.conf"
    edit(default_ssl, "<VirtualHost *:443>", f"<VirtualHost 127.0.0.1:{instance.port}>\n\tServerName {site.server_name}")
    edit(default_ssl, "/etc/ssl/certs/ssl-cert-snakeoil.pem", str(site.leaf or site.cert))
    edit(default_ssl, "/etc/ssl/private/ssl-cert-snakeoil.key",
         f"{site.key}\n\tSSLCertificateChainFile {site.chain}")
    enable(conf, "sites", "default-ssl.conf")
    with (conf / "mods-available" / "ssl.conf").open("a") as ssl_conf:
        ssl_conf.write("\n" + operator_cache(instance) + "SSLUseStapling on\n")
    for extra in instance.sites[1:]:
        name = f"{extra.name}-ssl.conf"
        (conf / "sites-available" / name).write_text(apache_vhost(instance.port, extra, "", chain=True))
        enable(conf, "sites", name)


def apache_shape_per_vhost(instance: "PackagedApache") -> None:
    """B: every vhost says ``SSLUseStapling on`` itself (seed 001's advice); the cache is the
    operator's own conf-available file, enabled by an a2enconf symlink."""
    conf = instance.conf_dir
    (conf / "conf-available" / "ocsp-cache.conf").write_text(operator_cache(instance))
    enable(conf, "conf", "ocsp-cache.conf")
    for site in instance.sites:
        name = f"{site.server_name}-ssl.conf"
        body = f"\n\tSSLCACertificateFile {site.chain}\n\tSSLUseStapling on"
        (conf / "sites-available" / name).write_text(
            "<IfModule mod_ssl.c>\n" + apache_vhost(instance.port, site, body) + "</IfModule>\n")
        enable(conf, "sites", name)


def apache_shape_server_scope(instance: "PackagedApache") -> None:
    """C: stapling only at server scope (an enabled conf); several vhosts in one site file,
    none with a stapling directive."""
    conf = instance.conf_dir
    (conf / "conf-available" / "ssl-stapling.conf").write_text(
        "<IfModule mod_ssl.c>\n" + operator_cache(instance) + "SSLUseStapling On\n</IfModule>\n")
    enable(conf, "conf", "ssl-stapling.conf")
    (conf / "sites-available" / "lab-ssl.conf").write_text(
        "\n".join(apache_vhost(instance.port, site, "") for site in instance.sites))
    enable(conf, "sites", "lab-ssl.conf")


APACHE_SHAPES = {
    "chainfile": apache_shape_chainfile,
    "per_vhost": apache_shape_per_vhost,
    "server_scope": apache_shape_server_scope,
}


@dataclass
class PackagedApache(ApacheInstance):
    """Debian's packaged /etc/apache2, copied under ``root``, with one shape from :data:`APACHE_SHAPES`."""

    shape: str = "server_scope"
    http_port: int = 0
    source: Path = APACHE_ETC

    def write_config(self) -> None:
        if self.conf_dir.exists():
            return
        if self.shape not in APACHE_SHAPES:
            raise LabError(f"unknown Apache shape {self.shape!r}; expected one of {', '.join(APACHE_SHAPES)}")
        copy_tree(self.source, self.conf_dir)
        for sub in ("run/lock", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        conf = self.conf_dir
        envvars = conf / "envvars"
        for name, value in (("APACHE_PID_FILE", self.pid_file), ("APACHE_RUN_DIR", self.run_dir),
                            ("APACHE_LOCK_DIR", self.run_dir / "lock"), ("APACHE_LOG_DIR", self.root / "logs")):
            lines = [line for line in envvars.read_text().splitlines() if line.startswith(f"export {name}=")]
            if len(lines) != 1:
                raise LabError(f"{envvars}: expected one 'export {name}=' line as the package ships it, found {lines}")
            edit(envvars, lines[0], f"export {name}={value}")
        edit(conf / "ports.conf", "Listen 80\n", f"Listen 127.0.0.1:{self.http_port}\n")
        edit(conf / "ports.conf", "Listen 443\n", f"Listen 127.0.0.1:{self.port}\n", count=2)
        edit(conf / "sites-available" / "000-default.conf", "<VirtualHost *:80>",
             f"<VirtualHost 127.0.0.1:{self.http_port}>")
        # a2enmod ssl: ssl.load and ssl.conf, and the module it depends on.
        for name in ("socache_shmcb.load", "ssl.load", "ssl.conf"):
            enable(conf, "mods", name)
        APACHE_SHAPES[self.shape](self)


# -- nginx -------------------------------------------------------------------------------

def nginx_server(port: int, site: Site, body: str) -> str:
    """One TLS server block in the packaged default site's style (tabs, root, index)."""
    lines = ["server {",
             f"\tlisten 127.0.0.1:{port} ssl;",
             f"\tserver_name {site.server_name};",
             "\troot /var/www/html;",
             "\tindex index.html index.htm index.nginx-debian.html;",
             "",
             f"\tssl_certificate {site.cert};",
             f"\tssl_certificate_key {site.key};"]
    lines += [body.rstrip("\n")] if body else []
    lines += ["", "\tlocation / {", "\t\ttry_files $uri $uri/ =404;", "\t}", "}"]
    return "\n".join(lines) + "\n"


def nginx_stapling_lines(instance: "PackagedNginx") -> str:
    return ("\n\tssl_stapling on;\n\tssl_stapling_verify on;\n"
            f"\tssl_trusted_certificate {instance.trusted_certificate};")


def nginx_enable(instance: "PackagedNginx", name: str) -> None:
    """Enable a site the way Debian's default is enabled: an absolute symlink."""
    link = instance.conf_dir / "sites-enabled" / name
    link.symlink_to(instance.conf_dir / "sites-available" / name)


def nginx_shape_one_file(instance: "PackagedNginx") -> None:
    """D: one site file holding every TLS server block, each with its own stapling lines."""
    (instance.conf_dir / "sites-available" / "lab-ssl").write_text("\n".join(
        nginx_server(instance.port, site, nginx_stapling_lines(instance)) for site in instance.sites))
    nginx_enable(instance, "lab-ssl")


def nginx_shape_per_file(instance: "PackagedNginx") -> None:
    """E: one server block per site file."""
    for site in instance.sites:
        (instance.conf_dir / "sites-available" / site.server_name).write_text(
            nginx_server(instance.port, site, nginx_stapling_lines(instance)))
        nginx_enable(instance, site.server_name)


H5BP_SNIPPET = """\
# ----------------------------------------------------------------------
# | OCSP stapling                                                      |
# ----------------------------------------------------------------------

# The server fetches the OCSP record itself and staples it to the handshake.
#
# https://nginx.org/en/docs/http/ngx_http_ssl_module.html#ssl_stapling

ssl_stapling on;
ssl_stapling_verify on;
ssl_trusted_certificate {trusted};

# Resolvers for the responder's host name, one per line.
resolver
  # a local caching resolver
  127.0.0.1
  # and the IPv6 loopback
  [::1]
  valid=300s;

resolver_timeout 5s;
"""


def nginx_shape_snippet(instance: "PackagedNginx") -> None:
    """F: server blocks with no ssl_stapling line; stapling comes from an h5bp-style snippet
    (multi-line ``resolver`` with comments) included at http level from conf.d."""
    conf = instance.conf_dir
    (conf / "snippets" / "ocsp-stapling.conf").write_text(H5BP_SNIPPET.format(trusted=instance.trusted_certificate))
    (conf / "conf.d" / "tls.conf").write_text(
        "# TLS defaults for every server block.\n"
        f"include {conf}/snippets/ocsp-stapling.conf;\n")
    (conf / "sites-available" / "lab-ssl").write_text("\n".join(
        nginx_server(instance.port, site, "") for site in instance.sites))
    nginx_enable(instance, "lab-ssl")


NGINX_SHAPES = {
    "one_file": nginx_shape_one_file,
    "per_file": nginx_shape_per_file,
    "snippet": nginx_shape_snippet,
}

NGINX_TEMP_PATHS = ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
                    "uwsgi_temp_path", "scgi_temp_path")


@dataclass
class PackagedNginx(NginxInstance):
    """Debian's packaged /etc/nginx, copied under ``root``, with one shape from :data:`NGINX_SHAPES`."""

    shape: str = "one_file"
    http_port: int = 0
    source: Path = NGINX_ETC

    def write_config(self) -> None:
        if self.conf_dir.exists():
            return
        if self.shape not in NGINX_SHAPES:
            raise LabError(f"unknown nginx shape {self.shape!r}; expected one of {', '.join(NGINX_SHAPES)}")
        copy_tree(self.source, self.conf_dir)
        for sub in ("run", "logs", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        conf = self.conf
        logs = self.root / "logs"
        edit(conf, "worker_processes auto;", "worker_processes 1;")
        edit(conf, "pid /run/nginx.pid;", f"pid {self.pid_file};")
        edit(conf, "error_log /var/log/nginx/error.log;", f"error_log {logs}/error.log {self.log_level};")
        edit(conf, "access_log /var/log/nginx/access.log;", f"access_log {logs}/access.log;")
        edit(conf, f"include {self.source}/", f"include {self.conf_dir}/", count=3)
        temp = "".join(f"\t{name} {self.root / 'tmp' / name.split('_temp', maxsplit=1)[0]};\n" for name in NGINX_TEMP_PATHS)
        edit(conf, "http {\n", "http {\n" + temp)
        default = self.conf_dir / "sites-available" / "default"
        edit(default, "listen 80 default_server;", f"listen 127.0.0.1:{self.http_port} default_server;")
        edit(default, "\tlisten [::]:80 default_server;\n", "")
        NGINX_SHAPES[self.shape](self)


# -- the lab -----------------------------------------------------------------------------

def packaged_sites(lab: Lab, count: int = 3) -> list[Site]:
    """``count`` TLS sites: good.lab.test, good0.lab.test, ... all serving the ``good`` leaf."""
    return lab_sites(lab.pki, ("good",)) + extra_sites(lab.pki, count - 1)


def start_packaged(directory: Path, server: str, shape: str, **options) -> Lab:
    """PKI + responder + one packaged server (``apache`` or ``nginx``) built in ``shape``.

    ``options`` go to :class:`PackagedApache` (cache timeouts, log level) or :class:`PackagedNginx`.
    """
    if server not in ("apache", "nginx"):
        raise LabError(f"unknown server {server!r}; expected apache or nginx")
    lab = Lab.start(directory, servers=())
    try:
        sites = packaged_sites(lab)
        if server == "apache":
            lab.apache = PackagedApache(directory / "apache", free_port(), sites, shape=shape,
                                        http_port=free_port(), **options)
            lab.apache.start()
        else:
            lab.nginx = PackagedNginx(directory / "nginx", free_port(), sites, lab.pki.trusted_chain,
                                      shape=shape, http_port=free_port(), **options)
            lab.nginx.start()
        lab.write_record()
    except BaseException:
        lab.stop()
        raise
    return lab
