# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assemble ``ansible_facts.ocsp_stapling`` from layouts, dialects and error logs.

Host side: Python standard library only. Read-only: nothing here writes a file or
starts a server. Problems reading one server's configuration are reported in that
server's ``config_error`` and in ``warnings``; the other servers are still described.
"""
from __future__ import annotations

from typing import Iterable

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import config as dialect_apache
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import config as dialect_nginx
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import layouts
from ansible_collections.ocsp.stapling.plugins.module_utils.change import error_log
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed import sites as litespeed_sites


# ``detail`` of stapling_facts: what the runbook needs per site, or every directive.
DETAIL_COMPACT = "compact"
DETAIL_FULL = "full"
DETAILS = (DETAIL_COMPACT, DETAIL_FULL)
#: The options of gather_facts as module arguments (stapling_facts, stapling_survey).
ARGUMENT_SPEC = dict(
    root=dict(type="path", default="/"),
    apache_binary=dict(type="path"),
    apache_config=dict(type="path"),
    apache_server_root=dict(type="path"),
    nginx_binary=dict(type="path", default="/usr/sbin/nginx"),
    nginx_config=dict(type="path"),
    litespeed_root=dict(type="path", default="/usr/local/lsws"),
    error_logs=dict(type="list", elements="path"),
    log_tail_bytes=dict(type="int", default=1048576),
    run_binaries=dict(type="bool", default=True),
    detail=dict(type="str", choices=list(DETAILS), default=DETAIL_COMPACT),
)
# The directive that switches stapling on, per server (the one a compact site always keeps).
STAPLING_SWITCH = {"apache": "SSLUseStapling", "nginx": "ssl_stapling", "litespeed": "enableStapling"}
# Keys a compact site drops when empty: the readers treat a missing key as empty.
_DROP_WHEN_EMPTY = ("key", "chain", "ca", "issuer_files", "issuer_dirs")
# Keys a compact site never carries: directive detail, and where the site itself is
# written (the runbook addresses a site by its names and listen addresses).
_COMPACT_DROPS = ("certificates", "stapling", "file", "line")
# How many warnings a compact result quotes; the rest are counted.
WARNING_EXAMPLES = 10


def _setting_list(settings: Iterable) -> list[dict]:
    return [s.as_dict() for s in settings]


def _ordered(paths: Iterable[str | None]) -> list[str]:
    """The non-empty paths, first occurrence kept, in order."""
    return list(dict.fromkeys(p for p in paths if p))


# --------------------------------------------------------------------------- Apache


def apache_sites(config: dialect_apache.ApacheConfig, server: str = "apache", detail: str = DETAIL_FULL) -> list[dict]:
    """One entry per TLS ``<VirtualHost>``: names, listen, key material, stapling."""
    with dialect_apache.gc_paused():
        return _apache_sites(config, server, detail == DETAIL_FULL)


def _apache_sites(config: dialect_apache.ApacheConfig, server: str, full: bool = True) -> list[dict]:
    sites = []
    for vhost in config.tls_virtual_hosts():
        def paths(name: str) -> list[str]:
            return [config.resolve_path(s.directive.args[0]) for s in vhost.lookup_all(name) if s.directive.args]

        chain = paths("SSLCertificateChainFile")
        ca = paths("SSLCACertificateFile")
        ca_dir = paths("SSLCACertificatePath")
        sites.append({
            "server": server,
            "names": vhost.names,
            # Ports are numbers, as nginx's are; "*" (any port) stays a string.
            "listen": [{"address": address, "port": int(port) if port.isdigit() else port}
                       for address, port in vhost.addresses],
            "file": vhost.file,
            "line": vhost.line,
            "certificate": paths("SSLCertificateFile"),
            "key": paths("SSLCertificateKeyFile"),
            "chain": chain[-1] if chain else None,
            "ca": ca[-1] if ca else None,
            # Where mod_ssl looks for the issuer when it sets up stapling: the certificate
            # file's own chain (read by the check itself), then SSLCertificateChainFile, then
            # the verify store (SSLCACertificateFile, SSLCACertificatePath). The last of a
            # repeated directive is the one in force.
            "issuer_files": _ordered([chain[-1] if chain else None, ca[-1] if ca else None]),
            "issuer_dirs": _ordered([ca_dir[-1] if ca_dir else None]),
            "certificates": {
                name: _setting_list(vhost.lookup_all(name))
                for name in dialect_apache.CERTIFICATE_DIRECTIVES
                if vhost.lookup_all(name)
            } if full else None,
            "stapling": {name: s.as_dict() for name, s in vhost.stapling().items()} if full else vhost.stapling(),
        })
    return sites


def describe_apache(
    detected: dict,
    root: str,
    extra_modules: Iterable[str] = (),
    server: str = "apache",
    detail: str = DETAIL_FULL,
) -> tuple[dict, list[dict], list[str]]:
    """Parse the config ``detected`` points at; return (server facts, sites, warnings)."""
    facts = dict(detected)
    facts.update({"config_error": None, "modules": {}, "stapling_cache": None, "stapling_cache_in_vhost": [], "files_read": 0,
                  "md_store_dir": None, "md_store_dir_configured": False})
    warnings: list[str] = []
    if not detected.get("present") or not detected.get("config"):
        return facts, [], warnings
    variables = {}
    if detected.get("envvars"):
        variables = dialect_apache.read_envvars(layouts.host_path(root, detected["envvars"]))
    try:
        config = dialect_apache.load_apache_config(
            detected["config"],
            server_root=detected.get("server_root"),
            root=root,
            extra_modules=extra_modules,
            variables=variables,
            server_version=detected.get("version"),
        )
    except (dialect_apache.ApacheConfigError, OSError) as exc:
        facts["config_error"] = str(exc)
        warnings.append("Apache config not read: %s" % exc)
        return facts, [], warnings
    facts["files_read"] = len(config.files)
    facts["modules"] = {
        name: {
            "loaded": config.has_module(name),
            "load_module": config.load_module_lines[ident].as_dict() if ident in config.load_module_lines else None,
        }
        for name, ident in (("ssl", "ssl_module"), ("socache_shmcb", "socache_shmcb_module"))
    }
    cache = config.stapling_cache()
    facts["stapling_cache"] = cache.as_dict() if cache else None
    # Where mod_md keeps what it staples (<store>/ocsp/), for the runbook's "protected until".
    facts["md_store_dir"], facts["md_store_dir_configured"] = config.md_store_dir()
    # Apache refuses to start with SSLStaplingCache in a <VirtualHost>: name each file and line.
    misplaced = config.misplaced_stapling_caches()
    facts["stapling_cache_in_vhost"] = [
        dict(directive.as_dict(), virtual_host="%s:%d" % (vhost.file, vhost.line)) for vhost, directive in misplaced]
    warnings.extend(dialect_apache.misplaced_cache_problem(vhost, directive) for vhost, directive in misplaced)
    logs = config.error_logs()
    if logs:
        facts["error_log"] = logs[0]
        facts["error_logs"] = logs
    else:
        facts["error_logs"] = [detected["error_log"]] if detected.get("error_log") else []
    warnings.extend(config.warnings)
    return facts, apache_sites(config, server, detail), warnings


# --------------------------------------------------------------------------- nginx


def nginx_sites(config: dialect_nginx.NginxConfig, detail: str = DETAIL_FULL) -> list[dict]:
    """One entry per TLS ``server`` block in ``http``."""
    full = detail == DETAIL_FULL
    sites = []
    for block in config.tls_server_blocks():
        certificates = [s.directive.args[0] for s in block.lookup_all("ssl_certificate") if s.directive.args]
        keys = [s.directive.args[0] for s in block.lookup_all("ssl_certificate_key") if s.directive.args]
        trusted = block.lookup("ssl_trusted_certificate")
        client_ca = block.lookup("ssl_client_certificate")
        trusted_path = trusted.directive.value if trusted else None
        client_ca_path = client_ca.directive.value if client_ca else None
        sites.append({
            "server": "nginx",
            "names": block.names,
            "listen": [listen.as_dict() for listen in block.listens],
            "file": block.file,
            "line": block.line,
            "certificate": certificates,
            "key": keys,
            "chain": None,  # nginx reads the chain from the ssl_certificate file itself
            "ca": trusted_path or client_ca_path,
            # nginx looks for the issuer in the ssl_certificate file's chain (read by the check
            # itself), then in the verify store: ssl_trusted_certificate, ssl_client_certificate.
            "issuer_files": _ordered([trusted_path, client_ca_path]),
            "issuer_dirs": [],
            "certificates": {
                name: _setting_list(block.lookup_all(name))
                for name in dialect_nginx.CERTIFICATE_DIRECTIVES
                if block.lookup_all(name)
            } if full else None,
            "stapling": {name: s.as_dict() for name, s in block.stapling().items()} if full else block.stapling(),
        })
    return sites


def describe_nginx(detected: dict, root: str, detail: str = DETAIL_FULL) -> tuple[dict, list[dict], list[str]]:
    facts = dict(detected)
    facts.update({"config_error": None, "files_read": 0})
    if not detected.get("present"):
        return facts, [], []
    try:
        config = dialect_nginx.load_nginx_config(detected["config"], root=root)
    except (dialect_nginx.NginxConfigError, OSError) as exc:
        facts["config_error"] = str(exc)
        return facts, [], ["nginx config not read: %s" % exc]
    facts["files_read"] = len(config.files)
    logs = config.error_logs()
    facts["error_logs"] = logs or ([detected["error_log"]] if detected.get("error_log") else [])
    return facts, nginx_sites(config, detail), list(config.warnings)


# --------------------------------------------------------------------------- LiteSpeed


def _litespeed_site(site: dict, server_root: str) -> dict:
    certificates = site["certificates"]

    def value(key: str) -> str | None:
        found = certificates.get(key)
        return found["value"] if found else None

    # Where OpenLiteSpeed finds the issuer for its OCSP request (SslOcspStapling::getCertId):
    # the context's chain certificates first (certChain 1: the chain is read from certFile;
    # some LSWS configurations name a chain file in certChain), then its trust store
    # (CACertFile).
    chain = value("certChain")
    # certChain is a 0/1 flag in OpenLiteSpeed (1: the chain is in certFile) and a file name
    # in some LSWS configs.
    chain_file = chain if chain and chain.strip() not in ("", "0", "1") else None
    if chain and chain.strip() == "1":
        chain = value("certFile")
    else:
        chain = chain_file
    return {
        "server": "litespeed",
        "kind": site["kind"],
        "litespeed_name": site["name"],
        "names": site["names"],
        "listen": site["listen"],
        "file": site["file"],
        "line": site["line"],
        "certificate": [value("certFile")] if value("certFile") else [],
        "key": [value("keyFile")] if value("keyFile") else [],
        "chain": chain or None,
        "ca": value("CACertFile") or None,
        # certFile's own chain first (read by the check), then certChain as a file, CACertFile, CACertPath.
        "issuer_files": _ordered([chain_file, value("CACertFile")]),
        "issuer_dirs": _ordered([value("CACertPath")]),
        "certificates": {k: [dict(v, inherited=False)] for k, v in certificates.items()},
        "stapling": site["stapling"],
        "stapling_enabled": site.get("stapling_enabled", False),
        "members": [m["name"] for m in site.get("members", [])],
    }


def describe_litespeed(detected: dict, root: str) -> tuple[dict, list[dict], list[str]]:
    facts = dict(detected)
    facts["reads_apache_config"] = False
    if not detected.get("present"):
        return facts, [], []
    read = litespeed_sites.read_sites(detected["server_root"], root)
    facts["reads_apache_config"] = read["reads_apache_config"]
    if read["edition"] and not facts.get("edition"):
        facts["edition"] = read["edition"]
    if facts["reads_apache_config"] and facts.get("version"):
        facts["supports_stapling_via_apache_config"] = layouts.supports_stapling(
            "litespeed_apache_config", facts["version"]
        )
    if facts.get("edition") in ("openlitespeed", "lsws") and facts.get("version"):
        facts["supports_stapling"] = layouts.supports_stapling(facts["edition"], facts["version"])
    sites = [_litespeed_site(s, detected["server_root"]) for s in read["sites"]]
    return facts, sites, read["warnings"]


# --------------------------------------------------------------------------- compact


def _compact_setting(setting) -> dict:
    """``value``, ``file``, ``line`` (and ``inherited`` when true) of a Setting or its dict."""
    if isinstance(setting, dict):
        out = {"value": setting.get("value"), "file": setting.get("file"), "line": setting.get("line")}
        inherited = bool(setting.get("inherited"))
    else:
        directive = setting.directive
        out = {"value": directive.value, "file": directive.file, "line": directive.line}
        inherited = setting.inherited
    if inherited:
        out["inherited"] = True
    return out


def compact_sites(sites: list[dict], servers: dict) -> list[dict]:
    """The sites as the runbook reads them, and each server's inherited stapling settings.

    A site keeps its names, listen, certificate, issuer sources (when any) and
    the stapling directives set in the site itself. Settings inherited from the enclosing
    scope (Apache's main server, nginx's ``http``) are the same for every site of that
    server, so they are given once, in ``servers.<site's server>.stapling_inherited``;
    :func:`site_stapling` puts the two back together. Directive detail (``args``,
    ``conditions``, the certificate directives) and the site's own file and line are left
    to ``detail: full``: on a 5,000-vhost cPanel host they are most of a 7 MB result.
    """
    out = []
    for site in sites:
        server = site.get("server") or ""
        inherited = servers[server].setdefault("stapling_inherited", {}) if server in servers else {}
        stapling = {}
        for name, setting in (site.get("stapling") or {}).items():
            entry = _compact_setting(setting)
            if entry.get("inherited"):
                inherited.setdefault(name, entry)
            else:
                stapling[name] = entry
        site = {key: value for key, value in site.items()
                if key not in _COMPACT_DROPS and not (key in _DROP_WHEN_EMPTY and not value)}
        site["stapling"] = stapling
        out.append(site)
    return out


def site_stapling(site: dict, facts: dict) -> dict:
    """The stapling directives in force for ``site``, compact or full facts alike."""
    inherited = ((facts or {}).get("servers") or {}).get(site.get("server") or "", {}).get("stapling_inherited") or {}
    own = site.get("stapling") or {}
    if not inherited:
        return own
    merged = dict(inherited)
    merged.update(own)
    return merged


def aggregate_warnings(warnings: list[str], limit: int = WARNING_EXAMPLES) -> tuple[list[str], int]:
    """The first ``limit`` distinct warnings and how many there were in all."""
    distinct = list(dict.fromkeys(warnings))
    return distinct[:limit], len(warnings)


# --------------------------------------------------------------------------- all


def gather_facts(
    root: str = "/",
    apache_binary: str | None = None,
    apache_config: str | None = None,
    apache_server_root: str | None = None,
    nginx_binary: str | None = None,
    nginx_config: str | None = None,
    litespeed_root: str | None = None,
    error_logs: list[str] | None = None,
    log_tail_bytes: int = error_log.DEFAULT_TAIL_BYTES,
    run_binaries: bool = True,
    runner: layouts.Runner = layouts.run_command,
    detail: str = DETAIL_FULL,
) -> dict:
    """The whole ``ocsp_stapling`` facts dict for the host under ``root``.

    Keys: ``root``, ``cpanel``, ``servers`` (``apache``, ``nginx``, ``litespeed``),
    ``sites`` (every TLS site of every server), ``errors`` (per log: counts and newest
    line per class), ``warnings`` (sentences), ``warnings_total`` and ``detail``.

    ``detail="compact"`` (what the module returns by default) gives each site what the
    runbook reads (see :func:`compact_sites`) and quotes the first few distinct warnings;
    ``"full"`` gives every directive with its arguments, conditions and inheritance.
    """
    if detail not in DETAILS:
        raise ValueError("detail is %r; expected one of %s." % (detail, ", ".join(DETAILS)))
    warnings: list[str] = []
    cpanel = layouts.detect_cpanel(root)
    apache_detected = layouts.detect_apache(
        root, runner, binary=apache_binary, config=apache_config, server_root=apache_server_root,
        cpanel=cpanel, run_binaries=run_binaries,
    )
    nginx_detected = layouts.detect_nginx(root, runner, binary=nginx_binary, config=nginx_config, run_binaries=run_binaries)
    litespeed_detected = layouts.detect_litespeed(root, server_root=litespeed_root, cpanel=cpanel)

    litespeed, litespeed_site_list, more = describe_litespeed(litespeed_detected, root)
    warnings.extend(more)
    # LiteSpeed on cPanel serves the Apache configuration and answers <IfModule Litespeed>.
    litespeed_serves_apache = bool(litespeed.get("present") and (litespeed.get("reads_apache_config") or cpanel["present"]))
    apache, apache_site_list, more = describe_apache(
        apache_detected,
        root,
        extra_modules=("Litespeed",) if litespeed_serves_apache else (),
        server="litespeed" if litespeed_serves_apache else "apache",
        detail=detail,
    )
    warnings.extend(more)
    if litespeed_serves_apache:
        apache["served_by"] = "litespeed"
    else:
        apache["litespeed_files"] = []
    nginx, nginx_site_list, more = describe_nginx(nginx_detected, root, detail)
    warnings.extend(more)

    litespeed_name = {"openlitespeed": "OpenLiteSpeed", "lsws": "LiteSpeed Enterprise"}.get(litespeed.get("edition") or "", "")
    litespeed_minimum = ".".join(str(n) for n in layouts.MINIMUM_VERSIONS.get(litespeed.get("edition") or "", ()))
    for name, facts, minimum in (("Apache", apache, "2.3.3"), ("nginx", nginx, "1.3.7"),
                                 (litespeed_name, litespeed, litespeed_minimum)):
        if facts.get("supports_stapling") is False:
            warnings.append(
                "%s %s is older than %s, the first version with OCSP stapling; stapling "
                "directives will be rejected. Upgrade before enabling stapling." % (name, facts["version"], minimum)
            )

    if error_logs is None:
        error_logs = []
        for facts in (apache, nginx):
            if facts.get("present"):
                error_logs.extend(facts.get("error_logs") or ([facts["error_log"]] if facts.get("error_log") else []))
        if litespeed.get("present"):
            error_logs.append(litespeed["error_log"])
    errors = error_log.scan_logs(error_logs, log_tail_bytes, root)

    servers = {"apache": apache, "nginx": nginx, "litespeed": litespeed}
    sites = apache_site_list + nginx_site_list + litespeed_site_list
    warnings_total = len(warnings)
    if detail == DETAIL_COMPACT:
        sites = compact_sites(sites, servers)
        warnings, warnings_total = aggregate_warnings(warnings)
    return {
        "root": root,
        "cpanel": cpanel,
        "servers": servers,
        "sites": sites,
        "errors": errors,
        "warnings": warnings,
        "warnings_total": warnings_total,
        "detail": detail,
    }


def md_store_dirs(facts: dict, defaults: Iterable[str] = ()) -> list[str]:
    """The mod_md stores to read held responses from: the Apache server's own (its
    ``MDStoreDir``, else ``ServerRoot/md``), then ``defaults``; each once, in that order."""
    apache = (facts.get("servers") or {}).get("apache") or {}
    found = [apache["md_store_dir"]] if apache.get("present") and apache.get("md_store_dir") else []
    return list(dict.fromkeys(found + [str(path) for path in defaults or () if path]))


def stapling_files(facts: dict) -> list[dict]:
    """Every stapling file of every present server (the files the roles would edit)."""
    out = []
    for name, server in facts["servers"].items():
        if server.get("present"):
            for entry in server.get("stapling_files", []) + server.get("litespeed_files", []):
                out.append(dict(entry, server=name))
    return out
