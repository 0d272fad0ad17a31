# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where nginx's stapling directives go, and what the candidate files look like.

Host side: Python standard library only. The nginx role asks :func:`plan` for the files
to hand to the shared change shape (``change.py``); nothing here writes to disk.

Placement (see ``roles/nginx/README.md``):

* **http**: one managed file (``conf.d/zz-ocsp-stapling.conf``) that the operator's
  ``include conf.d/*.conf;`` at ``http`` level already reads. Used when every TLS server
  block wants the same directives and none of them (nor ``http`` itself) sets a managed
  directive: the operator's files are not touched at all.
* **server**: one marked ``include <managed_dir>/sites/<site>.conf;`` line per targeted
  server block, and the per-site file holds the directives. nginx refuses a directive
  twice in one block (``"ssl_stapling" directive is duplicate``), so where the block
  already sets a directive to another value, that line is kept as a comment
  (``# ocsp.stapling replaced: <the line>``, every line of it when it spans several) and
  the include line goes right below it; otherwise the include line opens the block, on the
  line after its ``{``. Only what differs from the setting in effect is written: a block
  that already staples (by itself or from ``http``) gets nothing to enable it, and one that
  never stapled (nginx's default is off) gets nothing to disable it.

All edits of one file are planned against the operator's original text and applied
together, so a file with many server blocks gets each edit at the right line.

Every run first *restores* the operator's files (drops the marked include lines,
un-comments the replaced lines) and plans from that original, so the plan is
idempotent and ``state=absent`` gives the operator's files back byte for byte.
"""
from __future__ import annotations

import base64
import glob
import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any, Callable
from urllib.parse import urlsplit

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx.config import (
    NginxConfig,
    NginxConfigError,
    ServerBlock,
    parse_text,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.change.managed_block import decode
from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp.der import certificate_info, pem_blocks, read_chain
from ansible_collections.ocsp.stapling.plugins.module_utils.protect import nginx_snippet

#: Directives the role manages, in the order they are rendered.
MANAGED = ("ssl_stapling", "ssl_stapling_verify", "ssl_trusted_certificate",
           "ssl_stapling_responder", "resolver", "resolver_timeout")
#: nginx's defaults for the managed on/off directives.
DEFAULTS = {"ssl_stapling": "off", "ssl_stapling_verify": "off"}
INCLUDE_TAG = "# ocsp.stapling managed include"
REPLACED_PREFIX = "# ocsp.stapling replaced: "
HEADER = "# Managed by ocsp.stapling (nginx role); edits are overwritten. state=absent removes it.\n"
#: From nginx 1.29.3 ``ssl_stapling`` with ``ssl_certificate_compression on`` is fatal.
COMPRESSION_FATAL_FROM = (1, 29, 3)

_REPLACED = re.compile(r"^([ \t]*)" + re.escape(REPLACED_PREFIX) + r"(.*?)(\r?\n)?$", re.DOTALL)
_IGNORED = re.compile(r'"ssl_stapling" ignored, (?P<what>.+?) (?:in the certificate|for certificate) '
                      r'"(?P<cert>[^"]+)"')


class PlanError(Exception):
    """The configuration cannot be changed safely; the message says why and what to do."""


# --------------------------------------------------------------------------- markers

def restore_text(text: str) -> str:
    """The operator's original text: marked include lines dropped, replaced lines back."""
    out = []
    for line in split_lines(text):
        body = line.rstrip("\r\n")
        if body.endswith(INCLUDE_TAG) and body.lstrip().startswith("include "):
            continue
        match = _REPLACED.match(line)
        if match:
            out.append(match.group(1) + match.group(2) + (match.group(3) or ""))
            continue
        out.append(line)
    return "".join(out)


def split_lines(text: str) -> list[str]:
    """Lines as nginx counts them (ended by ``\n`` only; ``\r\n`` kept), newline included."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def nginx_quote(value: str) -> str:
    """``value`` as one nginx token: bare when it is plain, else double-quoted with ``\\``
    and ``"`` escaped, so a path holding spaces, quotes, ``;``, ``{``, ``#`` or a newline
    stays one argument and never becomes a directive of its own."""
    if value and re.fullmatch(r"[^\s;{}'\"#\\$]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def include_line(indent: str, path: str, newline: str = "\n") -> str:
    return f"{indent}include {nginx_quote(path)}; {INCLUDE_TAG}{newline}"


def replaced_line(line: str) -> str:
    """``    ssl_stapling on;\\n`` -> ``    # ocsp.stapling replaced: ssl_stapling on;\\n``."""
    body = line.rstrip("\r\n")
    eol = line[len(body):]
    indent = body[:len(body) - len(body.lstrip(" \t"))]
    return f"{indent}{REPLACED_PREFIX}{body[len(indent):]}{eol}"


# --------------------------------------------------------------------------- certificates (DER, stdlib)

def build_trusted(chain: list[bytes], bundle: list[bytes]) -> tuple[bytes | None, str]:
    """The CA certificates nginx needs in ``ssl_trusted_certificate`` to verify responses:
    the intermediates served after the leaf, up to a root found in ``bundle``.

    nginx verifies the OCSP response's signer chain against a store built from
    ``ssl_trusted_certificate`` only (``OCSP_basic_verify() failed ... unable to get local
    issuer certificate`` otherwise), and that chain has to end at a self-signed root.
    Returns ``(pem, "")`` or ``(None, why)``.
    """
    if not chain:
        return None, "the certificate file holds no PEM certificate"
    infos = [certificate_info(pem) for pem in chain]
    out = list(chain[1:])
    top = infos[-1]
    if len(chain) > 1 and top["issuer"] == top["subject"]:
        return b"".join(out), ""
    by_subject: dict[bytes, bytes] = {}
    for pem in bundle:
        try:
            by_subject.setdefault(certificate_info(pem)["subject"], pem)
        except (ValueError, IndexError):
            continue
    issuer = top["issuer"]
    seen = 0
    while seen < 8:
        found = by_subject.get(issuer)
        if found is None:
            return None, ("no certificate for the issuer of %r was found in the CA bundle"
                          % (top["common_name"] or "the last certificate of the chain"))
        out.append(found)
        info = certificate_info(found)
        if info["issuer"] == info["subject"]:
            return b"".join(out), ""
        issuer = info["issuer"]
        seen += 1
    return None, "the CA bundle's chain is longer than 8 certificates (a loop?)"


# --------------------------------------------------------------------------- configuration

class OriginalConfig(NginxConfig):
    """The operator's configuration as it was before this role: managed files skipped,
    marked include lines dropped and replaced lines restored (in memory)."""

    def __init__(self, main_config: str, managed: Callable[[str], bool], **kwargs) -> None:
        super().__init__(main_config, **kwargs)
        self.is_managed = managed
        self.current: dict[str, str] = {}
        self.original: dict[str, str] = {}

    def _read(self, path: str, depth: int):  # noqa: D401 - NginxConfig hook
        if self.is_managed(path):
            return []
        self.files.append(path)
        with open(self.host_path(path), "rb") as handle:
            text = decode(handle.read())
        original = restore_text(text)
        self.current[path] = text
        self.original[path] = original
        return self._splice(parse_text(original, path), depth)


@dataclass
class Site:
    block: ServerBlock
    key: str
    names: list[str]
    certificates: list[str]
    in_scope: bool
    endpoints: list[dict]
    cert: dict[str, Any] | None = None
    chain: list[bytes] = field(default_factory=list)
    cert_error: str | None = None
    action: str = "untouched"
    desired: dict[str, str] = field(default_factory=dict)
    rendered: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    include: str | None = None
    trusted_built: str | None = None
    notes: list[str] = field(default_factory=list)
    built_pem: bytes | None = None

    def own(self, name: str):
        return self.block.own(name)

    def effective(self, name: str) -> str | None:
        setting = self.block.lookup(name)
        return setting.directive.value if setting else None

    def current(self, name: str) -> str | None:
        """The value in effect, nginx's default when nothing sets it (stapling is off)."""
        value = self.effective(name)
        return DEFAULTS.get(name) if value is None else value

    @property
    def needed(self) -> dict[str, str]:
        """The desired directives that differ from what is in effect now."""
        return {name: value for name, value in self.desired.items() if self.current(name) != value}

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "server_names": self.names, "file": self.block.file,
            "line": self.block.line, "in_scope": self.in_scope, "action": self.action,
            "certificates": self.certificates,
            "ocsp_urls": self.cert["ocsp_urls"] if self.cert else [],
            "must_staple": bool(self.cert and self.cert["must_staple"]),
            "certificate_error": self.cert_error, "endpoints": self.endpoints,
            "directives": self.rendered, "replaced_lines": self.replaced, "include": self.include,
            "trusted_certificate_built": self.trusted_built, "notes": self.notes,
        }


def _site_key(names: list[str], file: str, line: int, used: set[str]) -> str:
    literal = [n for n in names if n and n != "_" and not n.startswith("~") and "*" not in n]
    base = literal[0] if literal else f"{os.path.basename(file)}-{line}"
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base)
    key, index = base, 2
    while key in used:
        key, index = f"{base}-{index}", index + 1
    used.add(key)
    return key


def _endpoints(block: ServerBlock, names: list[str], verify_host: str) -> list[dict]:
    sni = next((n for n in names if n and n != "_" and not n.startswith("~") and "*" not in n), None)
    out = []
    listens = block.listens
    tls_listens = [l for l in listens if l.ssl] or listens
    for listen in tls_listens:
        if listen.port is None:
            continue
        host = listen.address
        if host in ("*", "0.0.0.0", "::", "[::]", "") or not host:
            host = verify_host
        entry = {"host": host, "port": int(listen.port), "server_name": sni}
        if entry not in out:
            out.append(entry)
    return out


def _url_needs_resolver(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return bool(host) and host != "localhost"


def parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(x) for x in match.groups()) if match else None


def _value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) or None
    text = str(value).strip()
    return text or None


@dataclass
class PlanRequest:
    config: str = "/etc/nginx/nginx.conf"
    managed_dir: str = "/etc/nginx/ocsp-stapling"
    http_include_file: str = "/etc/nginx/conf.d/zz-ocsp-stapling.conf"
    state: str = "enabled"
    server_names: list[str] = field(default_factory=list)
    config_files: list[str] = field(default_factory=list)
    tuning: dict[str, Any] = field(default_factory=dict)
    placement: str = "auto"
    skip_not_applicable: bool = True
    ca_bundle: str | None = "/etc/ssl/certs/ca-certificates.crt"
    nginx_version: str | None = None
    verify_host: str = "127.0.0.1"
    # standard: nginx fetches its own staples. protected: each enabled site takes its staple
    # from the keeper's include (<keeper_dir>/<site>.conf, ssl_stapling_file while a valid
    # response is held), see docs/protected.md.
    mode: str = "standard"
    keeper_dir: str | None = None


def _is_under(path: str, directory: str) -> bool:
    directory = os.path.normpath(directory)
    return os.path.normpath(path).startswith(directory.rstrip("/") + "/")


def plan(req: PlanRequest) -> dict[str, Any]:
    """What to write for ``req``: ``files`` for stapling_change, ``sites``, ``endpoints``,
    ``placement``, ``warnings`` and ``problems`` (non-empty: refuse to change anything)."""
    if req.state not in ("enabled", "disabled", "absent"):
        raise PlanError(f"state must be enabled, disabled or absent, not {req.state!r}")
    if req.placement not in ("auto", "http", "server"):
        raise PlanError(f"placement must be auto, http or server, not {req.placement!r}")
    if req.mode not in ("standard", "protected"):
        raise PlanError(f"stapling_mode must be standard or protected, not {req.mode!r}")
    protected = req.mode == "protected" and req.state == "enabled"
    managed_dir = os.path.normpath(req.managed_dir)
    keeper_dir = os.path.normpath(req.keeper_dir or os.path.join(managed_dir, "keeper"))
    sites_dir = os.path.join(managed_dir, "sites")
    trusted_dir = os.path.join(managed_dir, "trusted")

    def managed(path: str) -> bool:
        return os.path.normpath(path) == os.path.normpath(req.http_include_file) or _is_under(path, managed_dir)

    try:
        config = OriginalConfig(req.config, managed).load()  # paths as nginx sees them (root /)
    except (NginxConfigError, OSError) as exc:
        raise PlanError(f"could not read the nginx configuration {req.config}: {exc}") from None
    warnings = list(config.warnings)
    problems: list[str] = []
    tuning = dict(req.tuning or {})
    version = parse_version(req.nginx_version or "")

    used: set[str] = set()
    sites: list[Site] = []
    wanted_names = set(req.server_names or [])
    wanted_files = {os.path.normpath(f) for f in req.config_files or []}
    scoped = bool(wanted_names or wanted_files)
    matched_names: set[str] = set()
    matched_files: set[str] = set()
    for block in config.tls_server_blocks():
        names = block.names
        file_keys = {os.path.normpath(block.file), os.path.realpath(config.host_path(block.file))}
        in_scope = not scoped or bool(wanted_names & set(names)) or bool(wanted_files & file_keys)
        matched_names |= wanted_names & set(names)
        matched_files |= wanted_files & file_keys
        certs = [s.directive.value for s in block.lookup_all("ssl_certificate")]
        site = Site(block, _site_key(names, block.file, block.line, used), names, certs, in_scope,
                    _endpoints(block, names, req.verify_host))
        literal = [c for c in certs if "$" not in c and not c.startswith("data:")]
        if literal:
            path = literal[0] if os.path.isabs(literal[0]) else os.path.join(config.conf_prefix, literal[0])
            try:
                site.chain = read_chain(config.host_path(path))
                site.cert = certificate_info(site.chain[0]) if site.chain else None
                if not site.chain:
                    site.cert_error = f"{path} holds no PEM certificate"
            except (OSError, ValueError, IndexError) as exc:
                site.cert_error = f"{path} could not be read as a PEM certificate ({exc})"
        else:
            site.cert_error = "no ssl_certificate with a literal path (variables are not followed)"
        sites.append(site)
    for name in sorted(wanted_names - matched_names):
        problems.append(f"nginx_stapling_server_names lists {name!r}, but no TLS server block in "
                        f"{req.config} (and its includes) has that server_name; found: "
                        + (", ".join(sorted({n for s in sites for n in s.names})) or "none")
                        + ". Fix the name or drop it from the list.")
    for name in sorted(wanted_files - matched_files):
        problems.append(f"nginx_stapling_config_files lists {name}, but no TLS server block is "
                        f"defined in that file; files with TLS server blocks: "
                        + (", ".join(sorted({s.block.file for s in sites})) or "none") + ".")

    # ---- what each server block should get
    verify_value = _value(tuning.get("ssl_stapling_verify"))
    trusted_value = tuning.get("ssl_trusted_certificate")
    bundle_certs: list[bytes] | None = None
    for site in sites:
        if not site.in_scope:
            site.action = "out_of_scope"
            continue
        if req.state == "absent":
            site.action = "restore"
            continue
        if req.state == "disabled":
            site.action = "disable"
            site.desired = {"ssl_stapling": "off"}
            continue
        responder = _value(tuning.get("ssl_stapling_responder")) or site.effective("ssl_stapling_responder")
        urls = site.cert["ocsp_urls"] if site.cert else []
        if site.cert is not None and not urls and not responder:
            site.notes.append("the certificate has no OCSP responder URL: nginx ignores ssl_stapling "
                              "for it with a warning ('\"ssl_stapling\" ignored, no OCSP responder URL')")
            if req.skip_not_applicable:
                site.action = "skip_not_applicable"
                continue
        site.action = "enable"
        compression = site.effective("ssl_certificate_compression")
        if compression == "on" and (version is None or version >= COMPRESSION_FATAL_FROM):
            problems.append(
                f"{site.key} ({site.block.file}:{site.block.line}): "
                f"ssl_certificate_compression is on, and nginx "
                f"{'.'.join(map(str, version)) if version else '(version unknown)'} refuses ssl_stapling "
                f"together with it (a fatal error from 1.29.3). Turn ssl_certificate_compression off "
                f"for this server block, or leave it out of nginx_stapling_server_names.")
        desired = {"ssl_stapling": "on"}
        if verify_value is not None:
            desired["ssl_stapling_verify"] = verify_value
        verify_on = (verify_value or site.effective("ssl_stapling_verify") or "off") == "on"
        if trusted_value == "build" or (trusted_value in (None, "") and verify_on
                                        and not site.effective("ssl_trusted_certificate")):
            if bundle_certs is None:
                bundle_certs = []
                if req.ca_bundle:
                    try:
                        with open(req.ca_bundle, "rb") as handle:
                            bundle_certs = pem_blocks(handle.read())
                    except OSError as exc:
                        warnings.append(f"CA bundle {req.ca_bundle} could not be read ({exc}).")
            built, why = build_trusted(site.chain, bundle_certs) if site.chain else (None, site.cert_error or "")
            if built is None:
                problems.append(
                    f"{site.key}: ssl_stapling_verify is on but no ssl_trusted_certificate is set, and it "
                    f"could not be built from the served chain ({site.certificates[0] if site.certificates else '?'}) "
                    f"and the CA bundle {req.ca_bundle}: {why}. Without it nginx logs 'OCSP_basic_verify() "
                    f"failed ... unable to get local issuer certificate' and staples nothing. Set "
                    f"nginx_stapling_tuning.ssl_trusted_certificate to a PEM file holding the intermediate "
                    f"and root CA, or point nginx_stapling_ca_bundle at a bundle with the root.")
            else:
                # Named by content: a thousand sites with one CA share one file.
                digest = hashlib.sha256(built).hexdigest()[:16]
                site.trusted_built = os.path.join(trusted_dir, f"chain-{digest}.pem")
                site.built_pem = built
                desired["ssl_trusted_certificate"] = site.trusted_built
        elif trusted_value not in (None, "", "build"):
            desired["ssl_trusted_certificate"] = str(trusted_value)
        if responder and _value(tuning.get("ssl_stapling_responder")):
            desired["ssl_stapling_responder"] = responder
        resolver = _value(tuning.get("resolver"))
        if resolver:
            desired["resolver"] = resolver
        timeout = _value(tuning.get("resolver_timeout"))
        if timeout:
            desired["resolver_timeout"] = timeout
        if not (resolver or site.effective("resolver")):
            hostnames = [u for u in ([responder] if responder else urls) if _url_needs_resolver(u)]
            if hostnames:
                site.notes.append(f"the OCSP responder {hostnames[0]} is a host name and no resolver is "
                                  f"set: nginx resolves it once at start; set nginx_stapling_tuning.resolver "
                                  f"so it is looked up again")
                warnings.append(f"{site.key}: OCSP responder {hostnames[0]} is a host name and no "
                                f"'resolver' is in effect; set nginx_stapling_tuning.resolver.")
        site.desired = desired

    acting = [s for s in sites if s.action in ("enable", "disable")]

    # ---- placement
    why_not_http = []
    if req.state == "absent":
        why_not_http.append("state is absent")
    if scoped:
        why_not_http.append("only some server blocks are in scope")
    if any(s.action not in ("enable", "disable") for s in sites) and req.state != "absent":
        why_not_http.append("some TLS server blocks must not get the same directives ("
                            + ", ".join(f"{s.key}: {s.action}" for s in sites if s.action not in ("enable", "disable")) + ")")
    shapes = {tuple(sorted((k, v) for k, v in s.needed.items() if k != "ssl_trusted_certificate"
                           or not s.trusted_built)) for s in acting if s.needed}
    if len(shapes) > 1:
        why_not_http.append("the server blocks need different directives")
    for site in acting:
        own = [n for n in site.needed if site.own(n)]
        if own:
            why_not_http.append(f"{site.key} sets {', '.join(own)} itself (a server-level directive "
                                f"overrides http)")
    for name in sorted({n for s in acting for n in s.needed}):
        directive = config.http_directive(name)
        if directive is not None:
            why_not_http.append(f"http already sets {name} at {directive.location()} (a second one "
                                f"there is a duplicate)")
    http_includes = _http_include_patterns(config)
    include_target = os.path.normpath(req.http_include_file)
    covered = any(fnmatch(include_target, pattern) for pattern in http_includes)
    if not covered:
        why_not_http.append(f"no include at http level reads {req.http_include_file}")
    if protected:
        why_not_http.append("protected mode gives every site its own keeper include")
    if req.placement == "http" and why_not_http:
        problems.append("nginx_stapling_placement is http, but the directives cannot go at http level: "
                        + "; ".join(why_not_http) + ". Use placement server (or auto).")
    placement = "http" if (req.placement == "http" or (req.placement == "auto" and not why_not_http)) else "server"
    if req.state == "absent":
        placement = "none"

    # ---- render
    files: dict[str, dict[str, Any]] = {}  # host path -> stapling_change file entry
    keepers: list[dict[str, Any]] = []      # stapling_keeper certificates (protected mode)
    new_texts = dict(config.original)
    if placement == "http" and acting:
        directives: dict[str, str] = {}
        built = [s.built_pem for s in acting if s.trusted_built]
        for site in acting:
            for name, value in site.needed.items():
                directives[name] = value
            site.rendered = dict(site.needed)
        if built:
            trusted = os.path.join(trusted_dir, "http.pem")
            unique: list[bytes] = []
            for pem in built:
                for block in pem_blocks(pem):
                    if block not in unique:
                        unique.append(block)
            files[trusted] = _content(trusted, b"".join(unique).decode("ascii"))
            directives["ssl_trusted_certificate"] = trusted
            for site in acting:
                site.rendered["ssl_trusted_certificate"] = trusted
                site.trusted_built = trusted
        if directives:
            files[req.http_include_file] = _content(req.http_include_file, render_directives(
                directives, "http level: every server block that does not set them itself"))
    elif placement == "server":
        untouched = {(file, number): s.key for s in sites if s.action not in ("enable", "disable")
                     for name in MANAGED for d in s.own(name) for file, number in _span(d)}
        edits: dict[str, FileEdits] = {}
        for site in acting:
            render = site.needed
            keeper_include = None
            if protected and site.action == "enable":
                # The keeper's include sets ssl_stapling (and ssl_stapling_file): the block's
                # own lines for them are replaced, whatever their value.
                render = dict(render, ssl_stapling="on")
                keeper_include = os.path.join(keeper_dir, f"{site.key}.conf")
            if not render:
                continue
            replaced = [d for name in render for d in site.own(name)]
            if keeper_include:
                replaced += list(site.own("ssl_stapling_file"))
            for directive in replaced:
                if not _has_own_lines(directive):
                    problems.append(f"{directive.location()}: '{directive.name}' shares its line(s) with other "
                                    f"text (another directive, or a block's '{{' or '}}'); the role replaces a "
                                    f"directive by commenting out its own lines only. Put it on its own line(s) "
                                    f"and run again.")
                shared = next((untouched[key] for key in _span(directive) if key in untouched), None)
                if shared:
                    problems.append(f"{directive.location()} ('{directive.name}') is shared with server block "
                                    f"{shared}, which this run must not change; the role cannot replace that "
                                    f"line for one of them only. Give the blocks their own lines, or put both "
                                    f"in scope.")
                edits.setdefault(directive.file, FileEdits()).comment.update(n for _f, n in _span(directive))
            site.rendered = dict(render)
            site.replaced = [directive.location() for directive in replaced]
            if site.trusted_built and render.get("ssl_trusted_certificate") == site.trusted_built:
                files[site.trusted_built] = _content(site.trusted_built,
                                                     site.built_pem.decode("ascii"))
            path = os.path.join(sites_dir, f"{site.key}.conf")
            site.include = path
            where_text = f"server {' '.join(site.names) or '(no server_name)'} at {site.block.file}:{site.block.line}"
            if keeper_include:
                text = render_directives({k: v for k, v in render.items() if k != "ssl_stapling"}, where_text)
                text = (text if text.strip() else HEADER) + f"include {keeper_include};\n"
                files[path] = _content(path, text)
                problem = _keeper_entry(site, keeper_dir, keeper_include, files, keepers, config, req)
                if problem:
                    problems.append(problem)
            else:
                files[path] = _content(path, render_directives(render, where_text))
            where = _include_position(site, replaced, split_lines(config.original[site.block.file]), path)
            if isinstance(where, str):
                problems.append(where)
                continue
            number, line = where
            edits.setdefault(site.block.file, FileEdits()).inserts.setdefault(number, []).append(line)
        for file, file_edits in edits.items():
            new_texts[file] = file_edits.apply(config.original[file])
    # Stale managed files: everything under the managed dir (and the http file) not wanted now.
    for pattern in (os.path.join(sites_dir, "*.conf"), os.path.join(trusted_dir, "*.pem"),
                    os.path.join(keeper_dir, "*.conf"), os.path.join(keeper_dir, "*.issuer.pem")):
        for existing in sorted(glob.glob(config.host_path(pattern))):
            if existing not in files:
                files[existing] = {"path": existing, "state": "absent"}
    if req.http_include_file not in files and os.path.exists(req.http_include_file):
        files[req.http_include_file] = {"path": req.http_include_file, "state": "absent"}

    change_files = []
    operator_files = []
    for path, text in new_texts.items():
        current = config.current.get(path)
        if text != current:
            real = os.path.realpath(path)
            data = text.encode("utf-8", "surrogateescape")
            try:
                data.decode("utf-8")
                change_files.append({"path": real, "content": text})
            except UnicodeDecodeError:
                # Not UTF-8 (Latin-1 comments, say): module arguments cannot carry those bytes.
                change_files.append({"path": real, "content_base64": base64.b64encode(data).decode("ascii")})
            operator_files.append(real)
    change_files.extend(files.values())

    endpoints = []
    for site in sites:
        for endpoint in site.endpoints:
            if endpoint not in endpoints and endpoint["server_name"]:
                endpoints.append(endpoint)
    workers = next((d for d in config.tree if d.name == "worker_processes" and d.args), None)
    if workers is None:
        worker_processes = 1
    elif workers.args[0] == "auto":
        worker_processes = os.cpu_count() or 1
    else:
        worker_processes = int(workers.args[0]) if workers.args[0].isdigit() else 1
    return {
        "placement": placement,
        "mode": "protected" if protected else "standard",
        "keeper_certificates": keepers,
        "worker_processes": worker_processes,
        "why_not_http": why_not_http,
        "files": change_files,
        "operator_files": operator_files,
        "sites": [s.as_dict() for s in sites],
        "endpoints": endpoints,
        "warnings": warnings,
        "problems": list(dict.fromkeys(problems)),  # a snippet shared by blocks: said once
        "config_files": list(dict.fromkeys(config.files)),
    }


def _keeper_entry(site: Site, keeper_dir: str, include: str, files: dict, keepers: list,
                  config: NginxConfig, req: PlanRequest) -> str | None:
    """Plan the keeper's include and issuer file for ``site``; a problem sentence or None.

    The include exists before nginx reads it: the first one is the fallback (nginx fetches
    its own staple) and the keeper switches it to ``ssl_stapling_file`` once it holds a
    verified response. An include the keeper already wrote is left as it is, so running
    the role again does not take a site off its held response.
    """
    if len(site.chain) < 2:
        return (f"{site.key}: protected mode needs the issuer of {site.certificates[0] if site.certificates else '?'}, "
                f"and that file holds no intermediate after the certificate. Serve the full chain "
                f"(certificate then intermediate) in ssl_certificate, or leave the site out of protected mode.")
    issuer = os.path.join(keeper_dir, f"{site.key}.issuer.pem")
    files[issuer] = _content(issuer, _pem_text(site.chain[1]))
    trusted = site.rendered.get("ssl_trusted_certificate") or site.effective("ssl_trusted_certificate")
    host_include = config.host_path(include)
    try:
        with open(host_include, encoding="utf-8") as handle:
            current = handle.read()
    except (FileNotFoundError, UnicodeDecodeError):
        current = None
    if not nginx_snippet.is_keeper_snippet(current):
        files[include] = _content(include, nginx_snippet.render("fetch"))
    else:
        files[include] = _content(include, current)
    cert = site.certificates[0]
    cert = cert if os.path.isabs(cert) else os.path.join(config.conf_prefix, cert)
    keepers.append({"name": site.key, "cert": config.host_path(cert), "issuer": config.host_path(issuer),
                    "ca_file": config.host_path(trusted) if trusted else req.ca_bundle,
                    "response": config.host_path(os.path.join(keeper_dir, f"{site.key}.der")),
                    "snippet": host_include, "fallback": "fetch"})
    return None


def _pem_text(block: bytes) -> str:
    text = block.decode("ascii").strip()
    return text + "\n"


def _content(path: str, text: str) -> dict[str, Any]:
    return {"path": path, "content": text, "mode": "0644"}


def render_directives(directives: dict[str, str], where: str) -> str:
    lines = [HEADER, f"# Applies to: {where}.\n"]
    for name in MANAGED:
        if name in directives:
            lines.append(f"{name} {directives[name]};\n")
    return "".join(lines)


def _http_include_patterns(config: NginxConfig) -> list[str]:
    """Absolute patterns of the ``include`` lines directly inside ``http``."""
    out = []
    main = config.original.get(config.main_config) if isinstance(config, OriginalConfig) else None
    sources = [(config.main_config, main)] if main is not None else []
    for file, text in sources:
        for node in parse_text(text, file):
            if node.name == "http" and node.children is not None:
                for child in node.children:
                    if child.name == "include" and child.args:
                        pattern = child.args[0]
                        if not os.path.isabs(pattern):
                            pattern = os.path.join(config.conf_prefix, pattern)
                        out.append(os.path.normpath(pattern))
    return out


@dataclass
class FileEdits:
    """Edits of one file, in line numbers of the operator's original text."""

    comment: set[int] = field(default_factory=set)
    inserts: dict[int, list[str]] = field(default_factory=dict)  # before original line n

    def apply(self, text: str) -> str:
        lines = split_lines(text)
        out = []
        for number, line in enumerate(lines, 1):
            out.extend(self.inserts.get(number, ()))
            out.append(replaced_line(line) if number in self.comment else line)
        out.extend(self.inserts.get(len(lines) + 1, ()))
        return "".join(out)


def _span(directive) -> list[tuple[str, int]]:
    """(file, line) of every line a plain directive covers, from its name to its ';'."""
    return [(directive.file, n) for n in range(directive.line, directive.end_line + 1)]


def _has_own_lines(directive) -> bool:
    """No other token on the lines from its name to its ';' (comments may follow)."""
    after = directive.after_line
    return directive.before_line < directive.line and (after is None or after > directive.end_line)


def _include_position(site: Site, replaced: list, lines: list[str], path: str) -> tuple[int, str] | str:
    """Where the include line goes in the server block's own file: ``(line number it goes
    before, the line)``, or why there is no place for it.

    Below the first replaced directive of that file; else on the line after the block's
    ``{``; else after the first of the block's own directives that ends its line. Any of
    those is a line boundary between two statements of the block itself, where an
    ``include`` is valid.
    """
    server = site.block.block
    file = server.file
    mine = sorted((d for d in replaced if d.file == file), key=lambda d: d.line)
    if mine:
        first = lines[mine[0].line - 1]
        return mine[0].end_line + 1, include_line(_indent(first), path, _newline(lines[mine[0].end_line - 1]))
    boundaries = [(server.end_line, server.after_line)]
    for child in server.children or ():
        if child.file == file:
            boundaries.append((child.close_line, child.after_close_line) if child.children is not None
                              else (child.end_line, child.after_line))
    for end, after in boundaries:
        if after is not None and after > end:
            following = next((line for line in lines[end:after] if line.strip()), "")
            if following.lstrip().startswith("}"):
                indent = _indent(lines[server.line - 1]) + "    "
            else:
                indent = _indent(following)
            return end + 1, include_line(indent, path, _newline(lines[end - 1]))
    return (f"{file}:{server.line}: server block {site.key} is written on one line (no line break after "
            f"its '{{' or after any of its own directives); the role puts its include line on a line of "
            f"its own inside the block. Break the block over several lines, or use "
            f"nginx_stapling_placement: http.")


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


def _newline(line: str) -> str:
    return "\r\n" if line.endswith("\r\n") else "\n"


# --------------------------------------------------------------------------- configtest warnings

def configtest_warnings(output: str, sites: list[dict]) -> list[dict]:
    """``"ssl_stapling" ignored`` lines of ``nginx -t``, each matched to the sites serving that
    certificate. nginx -t exits 0 on them, and stapling is then off for that certificate."""
    found = []
    for line in (output or "").splitlines():
        match = _IGNORED.search(line)
        if not match:
            continue
        what, cert = match.group("what"), match.group("cert")
        if what.startswith("no OCSP responder URL"):
            kind = "no_ocsp_url"
        elif what.startswith("issuer certificate not found"):
            kind = "issuer_not_found"
        elif what.startswith("host not found"):
            kind = "host_not_found"
        else:
            kind = "other"
        names = [s["key"] for s in sites if cert in s.get("certificates", [])
                 or os.path.realpath(cert) in [os.path.realpath(c) for c in s.get("certificates", [])]]
        entry = {"kind": kind, "certificate": cert, "sites": names, "line": line.strip()}
        if entry not in found:
            found.append(entry)
    return found


def classify_configtest(output: str, sites: list[dict], block_on_warnings: bool = True
                        ) -> tuple[list[dict], list[str]]:
    """Per-site ``"ssl_stapling" ignored`` warnings and the problems they raise.

    A missing OCSP URL is reported only (the operator chose to enable such a site, or it
    is not ours to touch); an issuer that cannot be found or a responder host that does
    not resolve means the sites being enabled would serve no staple at all.
    """
    found = configtest_warnings(output, sites)
    enabling = {s["key"] for s in sites if s.get("action") == "enable"}
    problems = []
    for item in found:
        hit = [name for name in item["sites"] if name in enabling]
        if not hit or item["kind"] == "no_ocsp_url" or not block_on_warnings:
            continue
        advice = {
            "issuer_not_found": "nginx looks for the issuer in the ssl_certificate file and then in "
                                "ssl_trusted_certificate: put the intermediate after the leaf in the "
                                "certificate file, or set nginx_stapling_tuning.ssl_trusted_certificate",
            "host_not_found": "the host name in the certificate's OCSP URL does not resolve from this "
                              "host: fix DNS, or set nginx_stapling_tuning.resolver (and check "
                              "ssl_stapling_responder)",
        }.get(item["kind"], "read the nginx -t output above")
        problems.append(f"nginx -t accepts the candidate but ignores stapling for {', '.join(hit)}: "
                        f"{item['line']}. Nothing was changed. {advice}; or set "
                        f"nginx_stapling_fail_on_configtest_warnings: false to apply anyway.")
    return found, problems


_LOG_CERT = re.compile(r'certificate:? "(?P<cert>[^"]+)"')


def stapling_log_lines(log: str, certificates: list[str]) -> list[str]:
    """Error-log lines about stapling for these certificate files. nginx names the
    certificate in its OCSP errors (``certificate status "revoked" in the OCSP response ...
    certificate: "/etc/ssl/x.pem"``, ``OCSP_basic_verify() failed ...``)."""
    wanted = set(certificates) | {os.path.realpath(c) for c in certificates}
    out = []
    for line in (log or "").splitlines():
        match = _LOG_CERT.search(line)
        if match and (match.group("cert") in wanted or os.path.realpath(match.group("cert")) in wanted):
            text = re.sub(r"^\S+ \S+ ", "", line.strip())  # drop the timestamp
            if text not in out:
                out.append(text)
    return out


def action_of(site: dict) -> str | None:
    return site.get("action")


def judge_sites(sites: list[dict], results: list[dict], state: str, strict: bool = False,
                log: str = "") -> dict[str, Any]:
    """What each site serves after the change, against what the change meant to do.

    ``results`` are ``stapling_status`` endpoints (judged on the controller). nginx staples
    lazily per worker and refuses to staple a revoked certificate (with ssl_stapling_verify),
    so a site being enabled that shows ``missing`` is reported, and fails only when
    ``strict``; a disabled site that still staples, or any site that stops answering TLS,
    always fails.
    """
    by_endpoint: dict[tuple, list[dict]] = {}
    for r in results or []:
        by_endpoint.setdefault((r.get("host"), r.get("port"), r.get("server_name")), []).append(r)
    rows, failures, attention = [], [], []
    settled = True
    for site in sites:
        probes = next((by_endpoint[(e["host"], e["port"], e["server_name"])]
                       for e in site.get("endpoints", []) if (e["host"], e["port"], e["server_name"]) in by_endpoint),
                      None)
        if not probes:
            continue
        # Several handshakes per site reach different workers, each with its own staple
        # cache: one that staples shows stapling works; one that fails the handshake, or
        # staples after a disable, counts against the site.
        probe = (next((p for p in probes if not p.get("handshake_ok")), None)
                 or (next((p for p in probes if p.get("stapled")), None) if action_of(site) == "disable" else None)
                 or next((p for p in probes if p.get("verdict") == "good"), None)
                 or probes[0])
        verdict = probe.get("verdict")
        action = site.get("action")
        has_url = bool(site.get("ocsp_urls")) or bool(site.get("directives", {}).get("ssl_stapling_responder"))
        row = {"site": site["key"], "action": action, "verdict": verdict, "stapled": probe.get("stapled"),
               "handshake_ok": probe.get("handshake_ok"), "ok": True, "message": probe.get("message"),
               "handshakes": len(probes), "stapled_handshakes": sum(1 for p in probes if p.get("stapled"))}
        logged = stapling_log_lines(log, site.get("certificates", []))
        if logged:
            row["error_log"] = logged[-3:]
        if not probe.get("handshake_ok"):
            row["ok"] = False
            failures.append(f"{site['key']} does not complete a TLS handshake after the change: "
                            f"{probe.get('error_detail') or probe.get('error')}.")
        elif action == "enable" and has_url:
            row["expected"] = "good"
            if verdict != "good":
                settled = settled and verdict not in ("missing", "must_staple_missing")
                why = (f"nginx logged since the reload: {logged[-1]}" if logged else
                       "nginx fetches staples in the background and never staples a revoked certificate "
                       "(ssl_stapling_verify on); look for 'OCSP' lines in nginx's error log, and run "
                       "ocsp.stapling.ocsp_responder_check from this host")
                text = (f"{site['key']}: stapling is enabled but the verdict after warm-up is {verdict} "
                        f"({probe.get('message')}). {why}.")
                row["ok"] = not strict
                (failures if strict else attention).append(text)
        elif action == "enable":
            row["expected"] = "not_applicable"
            attention.append(f"{site['key']}: stapling is on but the certificate has no OCSP URL; nginx "
                             f"ignores it with a warning.")
        elif action == "disable":
            row["expected"] = "no staple"
            if probe.get("stapled"):
                row["ok"] = False
                failures.append(f"{site['key']} still staples after 'ssl_stapling off' was applied; another "
                                f"directive or server block may be answering for this name. Run "
                                f"'nginx -T' and look for its server block.")
            elif verdict == "must_staple_missing":
                attention.append(f"{site['key']}: its certificate requires a staple (Must-Staple) and is now "
                                 f"served without one: Firefox and curl --cert-status refuse it. Re-enable "
                                 f"stapling as soon as the responder answers.")
        rows.append(row)
    return {"ok": not failures, "settled": settled, "sites": rows, "failures": failures,
            "attention": attention}
