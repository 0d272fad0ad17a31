# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Apache dialect's plan: which files to write so stapling ends up in the state asked for.

Host side, standard library only. The configuration is read the way httpd reads it
(:mod:`dialect_apache`: ``Include``/``IncludeOptional`` order, globs, symlinks,
``<IfModule>``), and every plan is checked by reading the *candidate* the same way: a
virtual host's own ``SSLUseStapling`` beats the server scope, the last server-scope line
beats earlier ones, so the plan edits whatever wins until every TLS virtual host has the
switch asked for, or says which file and line it cannot change.

States:

``enabled``
    restore any line this collection replaced, then the role's server-scope settings
    (cache when none exists, tuning, ``SSLUseStapling On``).
``disabled``
    turn stapling off where it is on. Debian/RHEL: ``SSLUseStapling Off`` at server scope
    in the role's snippet (a file of its own when the role has none yet), then every
    ``SSLUseStapling on`` that still wins for a TLS virtual host (its own line, or a
    server-scope line read later) is replaced in place, marked (the original is kept on the
    line above), so ``restored`` gives every file back byte for byte. cPanel: never ``httpd.conf``
    (cPanel regenerates it); an ``Off`` block in the include files read after its stapling
    block and, for a virtual host that sets ``on`` itself, in its userdata include.
``restored``
    undo ``disabled`` exactly: marked lines back, disable blocks removed; the role's
    server-scope snippet (if it was there) is kept as it was.
``absent``
    ``restored`` plus removing everything else this collection wrote.

Modes (``mode``, for ``enabled``):

``standard``
    mod_ssl staples (``SSLUseStapling On`` and the role's tuning), as above.
``protected``
    mod_md staples instead (httpd >= 2.4.42): ``MDStapling on`` and ``MDStapleOthers on``
    for every certificate, responses persisted under ``MDStoreDir/ocsp/`` and refreshed in
    a watchdog, so a responder outage shorter than the response's validity is never seen by
    clients. mod_ssl's winning ``SSLUseStapling`` is turned off the way ``disabled`` does
    it (marked, restorable), so the two never both answer ``status_request``. Debian:
    ``mods-enabled/md.load`` is linked when mod_md is not loaded (the snippet notes it, so
    a later standard ``enabled`` or ``absent`` unlinks it again). A ``disabled`` on a
    protected host also turns ``MDStapling`` off (marked in the snippet; cPanel: in the
    disable block), and ``restored`` there keeps mod_ssl's winning switches off.

Protected mode has two mechanisms (``mechanism``): ``mod_md`` as above, and ``relay`` for
servers mod_md cannot serve (httpd < 2.4.42: RHEL 7/8, EasyApache 3; no mod_md). ``auto``
takes mod_md where it can staple and the relay otherwise. ``relay`` keeps mod_ssl stapling
and points it at the loopback relay (:mod:`protect.relay`), which answers from the keeper's
held responses: ``SSLStaplingForceURL <relay>`` and ``SSLStaplingFakeTryLater off`` at server
scope with ``SSLUseStapling On`` (mod_ssl merges both into every virtual host that does not
set its own), and every winning per-vhost ``SSLStaplingForceURL`` or ``SSLStaplingFakeTryLater``
that says otherwise replaced, marked, like a disable's lines. The plan also lists the
keeper's certificates (one per certificate file served with stapling on, its issuer taken
from the file or ``SSLCertificateChainFile``) for the role to write the keeper
configuration the relay reads. ``restored`` on a relay host points the vhosts at the relay
again; a standard enable or ``absent`` gives every line back.
"""
from __future__ import annotations

import base64
import fnmatch
import grp
import os
import pwd
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.ocsp.stapling.plugins.module_utils.ocsp import der
from ansible_collections.ocsp.stapling.plugins.module_utils.protect.issuer import issuer_after_leaf
from ansible_collections.ocsp.stapling.plugins.module_utils.servers import layouts
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import config as dialect_apache
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.config_tree import host_path
from ansible_collections.ocsp.stapling.plugins.module_utils.change.managed_block import apply_block, decode, encode

STATES = ("enabled", "disabled", "restored", "absent")
MODES = ("standard", "protected")
MECHANISMS = ("auto", "mod_md", "relay")
DEFAULT_RELAY_URL = "http://127.0.0.1:8088/"
#: MDStapling and MDStapleOthers arrived with mod_md 2.2 in httpd 2.4.42.
MD_STAPLING_SINCE = (2, 4, 42)
PROTECTED_NOTE = "# OCSP stapling by mod_md (protected mode): responses kept in MDStoreDir survive responder outages."
MD_LINK_NOTE = "# md.load was linked by ocsp.stapling; a standard enable or state=absent unlinks it."
RELAY_HINT = ("Use the relay instead (apache_stapling_protected_mechanism: relay, or auto): mod_ssl is pointed "
              "at a local caching OCSP relay with SSLStaplingForceURL, which needs no mod_md.")
RELAY_NOTE = ("# OCSP stapling through the local relay (protected mode): mod_ssl asks the relay, which answers "
              "from the keeper's held responses.")
#: What relay mode needs in every TLS virtual host with stapling on, besides the relay's URL:
#: the relay's 503 (nothing valid held) must lead to no staple, not a synthesized tryLater.
RELAY_FAKE_TRYLATER = "off"
_KEEPER_NAME = re.compile(r"[^A-Za-z0-9._-]+")
REPLACED_PREFIX = "# ocsp.stapling replaced: "
ENABLE_MARKER = "# {mark} ocsp.stapling managed block"
DISABLE_MARKER = "# {mark} ocsp.stapling disabled"
#: Apache bug 57121: a short responder timeout (handshakes wait at most this long when the
#: responder hangs), keep good responses 48 h, retry failures after a minute, and never
#: staple a synthesized tryLater (FakeTryLater off: nothing is stapled or cached, so Apache
#: recovers at the first handshake after the responder is back).
RESILIENT = {
    "SSLStaplingResponderTimeout": 4,
    "SSLStaplingReturnResponderErrors": "off",
    "SSLStaplingStandardCacheTimeout": 172800,
    "SSLStaplingErrorCacheTimeout": 60,
    "SSLStaplingFakeTryLater": "off",
}
DISABLE_HEADER = "# Managed by ocsp.stapling: stapling turned off by a disable; state=restored removes it.\n"
USERDATA_HEADER = "# Managed by ocsp.stapling: stapling off for this site; state=restored removes it.\n"
#: What a file is created with so that cPanel's rebuildhttpdconf writes an Include for it:
#: ea4_main.default includes an includes file only if it exists, and ssl_vhost.default a
#: userdata directory only if it holds a .conf file. It sets nothing.
INCLUDE_PLACEHOLDER = ("# Created by ocsp.stapling so that cPanel's rebuildhttpdconf includes this file (it writes an\n"
                       "# Include only for files that exist). It sets nothing; settings may be added below.\n")
USERDATA_PLACEHOLDER = ("# Created by ocsp.stapling so that cPanel's rebuildhttpdconf includes this directory (it writes an\n"
                        "# Include only for directories holding a .conf file). It sets nothing.\n")
_HINT = re.compile(r"(?i)^\s*#\s*Include\s+\"?([^\"\s]+/ssl/[^\"\s]+)")
_REPLACED = re.compile(r"^([ \t]*)" + re.escape(REPLACED_PREFIX) + r"(.*)$")
_INCLUDE = re.compile(r"(?i)^\s*Include(Optional)?\s+\"?([^\"\s]+)")
_MAX_ROUNDS = 64


class PlanError(Exception):
    """The configuration cannot be changed safely; the message says why and what to do."""


@dataclass
class ApachePlanRequest:
    state: str
    layout: str                      # debian | rhel | cpanel_ea4 | cpanel_ea3
    main_config: str
    server: str = "apache"           # apache | litespeed (LiteSpeed reading cPanel's config)
    server_root: str | None = None
    envvars: str | None = None
    root: str = "/"
    server_version: str | None = None
    snippet: str | None = None       # Debian/RHEL: the role's server-scope file
    link: str | None = None          # Debian: conf-enabled link to it
    link_src: str | None = None
    includes_dir: str | None = None  # cPanel
    userdata_dir: str | None = None  # cPanel
    ea4_conf: str | None = None      # cPanel EA4: WHM's Global Configuration (JSON), read and reported
    cache_path: str = "/run/apache2/ocsp_stapling_cache"
    cache_size: int = 0
    certificate_count: int = 0
    tuning: Any = "resilient"        # resilient | server_default | {directive: value}
    resilient: dict = field(default_factory=lambda: dict(RESILIENT))
    force_url: str = ""
    proxy_url: str = ""
    reason: str = ""
    endpoints: list = field(default_factory=list)
    mode: str = "standard"           # standard | protected (mod_md staples)
    md_store_dir: str = ""           # protected: MDStoreDir to write; "" keeps the server's own
    md_renew_window: str = "33%"     # protected: MDStaplingRenewWindow
    md_keep_response: str = "7d"     # protected: MDStaplingKeepResponse
    md_module_file: str = ""         # RHEL: mod_md.so to load when no LoadModule md_module exists
    mechanism: str = "mod_md"        # protected: auto | mod_md | relay (the module and the role default to auto)
    relay_url: str = DEFAULT_RELAY_URL   # relay: what SSLStaplingForceURL points at
    keeper_dir: str = "/etc/ocsp-stapling/apache"   # relay: the issuer files the keeper reads
    keeper_config: str = ""          # the keeper's configuration: pruned after a change when it exists
    ca_bundle: str = "/etc/ssl/certs/ca-certificates.crt"   # relay: trust anchors for the responder's signature


# --------------------------------------------------------------------------- marked lines

def replaced_lines(line: str, new: str) -> str:
    """``  SSLUseStapling on`` -> the original behind a marker comment, then ``new``.

    Apache allows no comment after a directive, so the marker is a line of its own.
    """
    body = line.rstrip("\r\n")
    eol = line[len(body):] or "\n"
    indent = body[:len(body) - len(body.lstrip(" \t"))]
    return f"{indent}{REPLACED_PREFIX}{body[len(indent):]}{eol}{indent}{new}{eol}"


def restore_text(text: str) -> str:
    """The operator's text: each marked replacement back to the line it replaced."""
    lines = dialect_apache.physical_lines(text, keepends=True)
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        body = line.rstrip("\r\n")
        match = _REPLACED.match(body)
        if match:
            out.append(match.group(1) + match.group(2) + line[len(body):])
            index += 2  # the replacement line written under the marker
            continue
        out.append(line)
        index += 1
    return "".join(out)


def has_marks(text: str) -> bool:
    return REPLACED_PREFIX in text


# --------------------------------------------------------------------------- candidate reading

class CandidateConfig(dialect_apache.ApacheConfig):
    """An :class:`ApacheConfig` that reads some files from memory: the candidate.

    ``overlay`` maps a real host path (symlinks resolved) to its candidate text, or None
    for a file the candidate removes. Globs also match candidate files that do not exist yet.
    """

    def __init__(self, *args, overlay: dict[str, str | None] | None = None,
                 links: dict[str, str | None] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.overlay = overlay or {}
        self.links = links or {}   # link path as httpd sees it -> real target (None: removed)

    def _real(self, path: str) -> str:
        if path in self.links and self.links[path]:
            return self.links[path]
        return os.path.realpath(self.host_path(path))

    def _raw(self, path: str) -> list[dialect_apache.Directive]:
        real = self._real(path)
        if real in self.overlay:
            text = self.overlay[real]
            return dialect_apache.parse_text(text or "", path)
        return super()._raw(path)

    def expand_include(self, pattern: str, node=None, optional: bool = False) -> list[str]:
        files = super().expand_include(pattern, node, True)
        wanted = self.resolve_path(pattern)
        virtual = [self._server_view(real) for real, text in self.overlay.items() if text is not None]
        virtual += [view for view, target in self.links.items() if target]
        for view in virtual:
            if view not in files and (fnmatch.fnmatch(view, wanted) or view.startswith(wanted.rstrip("/") + "/")):
                files.append(view)
        files = sorted(f for f in files if f not in self.links or self.links[f])
        files = [f for f in files if self.overlay.get(self._real(f), "") is not None]
        if not files and not optional:
            super().expand_include(pattern, node, False)  # the warning httpd would print
        return files


def read_config(req: ApachePlanRequest, overlay: dict[str, str | None] | None = None,
                links: dict[str, str | None] | None = None) -> CandidateConfig:
    variables: dict[str, str] = {}
    envvars = req.envvars
    if envvars is None and req.layout == "debian":
        envvars = os.path.join(os.path.dirname(req.main_config), "envvars")
    if envvars:
        variables = dialect_apache.read_envvars(host_path(req.root, envvars))
    server_root = req.server_root
    if server_root is None:
        directory = os.path.dirname(req.main_config)
        server_root = os.path.dirname(directory) if os.path.basename(directory) == "conf" else directory
    config = CandidateConfig(
        req.main_config, server_root=server_root, root=req.root, variables=variables,
        extra_modules=("Litespeed",) if req.server == "litespeed" else (),
        server_version=req.server_version, overlay=overlay, links=links)
    try:
        return config.load()
    except dialect_apache.ApacheConfigError as exc:
        raise PlanError(str(exc)) from exc


# --------------------------------------------------------------------------- the plan

class Plan:
    """Files to write (for ``stapling_change``), what wins per site, and why not."""

    def __init__(self, req: ApachePlanRequest) -> None:
        if req.state not in STATES:
            raise PlanError("state must be one of %s, not %r." % (", ".join(STATES), req.state))
        if req.mode not in MODES:
            raise PlanError("mode must be one of %s, not %r." % (", ".join(MODES), req.mode))
        if req.mechanism not in MECHANISMS:
            raise PlanError("mechanism must be one of %s, not %r." % (", ".join(MECHANISMS), req.mechanism))
        self.req = req
        # protected: mod_md staples; relay: mod_ssl staples through the relay (decided in run()).
        self.protected = req.mode == "protected" and req.state == "enabled"
        self.relay = False
        self.relay_url = ""            # relay (or restored on a relay host): what every vhost must ask
        self.mechanism: str | None = None
        self.keepers: list[dict] = []
        self.keeper_files: list[dict] = []
        self.md_store = ""
        self.md_load: list[str] = []   # RHEL: LoadModule line for the snippet
        self.md_linked = False         # Debian: md.load linked by this plan
        self.md_loading = False        # this change loads mod_md (not loaded before)
        self.root = req.root
        self.overlay: dict[str, str | None] = {}
        self.original: dict[str, str | None] = {}
        self.links: list[dict] = []
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.edits: list[str] = []
        # cPanel: files httpd.conf must include before the change can be made there; created,
        # then rebuildhttpdconf, then planned again (the role does that flow).
        self.includes_needed: list[dict] = []
        self.whm: dict | None = None

    # -- file helpers --------------------------------------------------------------

    def _real(self, path: str) -> str:
        return os.path.realpath(host_path(self.root, path))

    def _view(self, real: str) -> str:
        root = os.path.realpath(self.root)
        if root != "/" and (real == root or real.startswith(root + os.sep)):
            return "/" + os.path.relpath(real, root)
        return real

    def text(self, path: str) -> str | None:
        real = self._real(path)
        if real in self.overlay:
            return self.overlay[real]
        try:
            with open(real, "rb") as handle:
                return decode(handle.read())
        except FileNotFoundError:
            return None

    def write(self, path: str, text: str | None) -> None:
        real = self._real(path)
        if real not in self.original:
            self.original[real] = self.text(path)
        self.overlay[real] = text

    # -- entry point ---------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        req = self.req
        live = read_config(req)
        self.warnings.extend(live.warnings)
        if not live.has_module("ssl_module") and req.server == "apache":
            self.problems.append(
                "mod_ssl is not loaded in %s (no LoadModule ssl_module found), so no site serves TLS and "
                "there is no stapling to change. Enable it (a2enmod ssl) or check apache_stapling_layout."
                % req.main_config)
        for vhost, directive in live.misplaced_stapling_caches():
            self.problems.append(dialect_apache.misplaced_cache_problem(vhost, directive))
        if req.state != "disabled":
            self._restore_marks(live)
        if self.protected:
            self._choose_mechanism(live)
        if self.protected:
            self._check_protected(live)
        elif self.relay:
            self._check_relay()
        elif req.state == "restored":
            self.relay_url = self._relay_host_url()
        cpanel = req.layout.startswith("cpanel")
        if req.layout == "cpanel_ea4" and req.ea4_conf:
            self._whm_stapling()
        if cpanel:
            self._cpanel(live)
            if self.includes_needed and not self.edits_possible():
                # One rebuild for everything: the vhosts whose own 'on' in httpd.conf will need
                # their userdata directory too.
                if req.state == "disabled" or self.protected:
                    for vhost in live.tls_virtual_hosts():
                        setting = vhost.lookup("SSLUseStapling")
                        if (setting and not setting.inherited and setting.directive.value.lower() == "on"
                                and self._real(setting.directive.file) == self._real(req.main_config)):
                            self._cpanel_userdata_off(vhost, setting.directive)
                return self._result(live, live)
        else:
            self._snippet(live)
        candidate = self._settle()
        if self.relay_url and not self.problems and req.state in ("enabled", "restored"):
            candidate = self._settle_relay()
        if self.relay and not self.problems:
            self._relay_keepers(candidate)
        return self._result(live, candidate)

    def edits_possible(self) -> bool:
        """False when the server-scope include is missing: nothing can be planned before the rebuild."""
        return not any(item["scope"] == "server" for item in self.includes_needed)

    # -- cPanel EA4: WHM's own switch -----------------------------------------------

    def _whm_stapling(self) -> None:
        """Read WHM's SSLUseStapling (ea4.conf) and say how it meets this change.

        cPanel renders httpd.conf's server-scope ``SSLUseStapling`` from it at every
        rebuildhttpdconf; this role's blocks sit in pre_virtualhost_global.conf, read after
        that block, so they win either way and survive rebuilds.
        """
        req = self.req
        whm = layouts.read_whm_stapling(host_path(self.root, req.ea4_conf), req.ea4_conf)
        self.whm = whm
        if whm["problem"]:
            self.warnings.append(whm["problem"])
            return
        where = ("%s (sslusestapling %s)" % (whm["file"], whm["value"]) if whm["value"]
                 else "%s (no sslusestapling value: cPanel's default, On)" % whm["file"])
        if req.state == "disabled" and whm["enabled"]:
            self.warnings.append(
                "WHM's Global Configuration has SSLUseStapling On, %s; cPanel writes it into httpd.conf's stapling "
                "block at every rebuildhttpdconf. This disable sits in pre_virtualhost_global.conf, read after that "
                "block, so it wins and survives rebuilds until a re-enable removes it. To turn stapling off for good, "
                "set SSLUseStapling Off in WHM > Apache Configuration > Global Configuration." % where)
        elif req.state == "enabled" and whm["enabled"] is False:
            self.warnings.append(
                "WHM's Global Configuration has SSLUseStapling Off, %s, so httpd.conf's own block turns stapling "
                "off; this enable in pre_virtualhost_global.conf is read later and wins. Set SSLUseStapling On in "
                "WHM > Apache Configuration > Global Configuration so the two agree." % where)

    # -- protected mode: can mod_md staple here? -------------------------------------

    def _choose_mechanism(self, live: dialect_apache.ApacheConfig) -> None:
        """``auto``: mod_md where it can staple, else the relay; an explicit choice is kept."""
        req = self.req
        if req.mechanism == "relay":
            self.protected, self.relay = False, True
        elif req.mechanism == "auto":
            missing = self._md_missing(live)
            if missing:
                self.protected, self.relay = False, True
                self.warnings.append("Protected mode uses the relay here, not mod_md: %s" % missing)
        self.mechanism = "relay" if self.relay else "mod_md"

    def _md_unsupported(self) -> str | None:
        """Why mod_md can never staple on this server (a sentence), or None."""
        req = self.req
        if req.server == "litespeed":
            return "Protected mode staples with Apache's mod_md, which LiteSpeed does not run (server is litespeed)."
        version = re.search(r"(\d+\.\d+\.\d+)", req.server_version or "")
        if version and dialect_apache._version_tuple(version.group(1)) < MD_STAPLING_SINCE:
            return ("Protected mode needs httpd 2.4.42 or later (MDStapling arrived in mod_md 2.2 with 2.4.42); this "
                    "server is %s." % version.group(1))
        return None

    def _md_missing(self, live: dialect_apache.ApacheConfig) -> str | None:
        """Why mod_md cannot staple here (not supported, not loaded and not loadable), or None."""
        unsupported = self._md_unsupported()
        if unsupported or live.has_module("md_module"):
            return unsupported
        probe = Plan(self.req)
        probe._load_md()
        return probe.problems[0].replace(" " + RELAY_HINT, "") if probe.problems else None

    def _check_protected(self, live: dialect_apache.ApacheConfig) -> None:
        req = self.req
        unsupported = self._md_unsupported()
        if unsupported:
            self.problems.append("%s Nothing was changed. %s" % (unsupported, RELAY_HINT))
            return
        own = [d for d in live.find("LoadModule") if d.args and d.args[0] == "md_module"
               and req.snippet and self._real(d.file) == self._real(req.snippet)]
        if own:
            # RHEL: the role's snippet is what loads mod_md; keep it loading.
            self.md_load = ["<IfModule !md_module>", "    LoadModule md_module %s" % own[0].args[1], "</IfModule>"]
        elif not live.has_module("md_module"):
            self._load_md()
        if self.problems:
            return
        self._check_store(live)

    # -- protected mode through the relay -----------------------------------------

    def _check_relay(self) -> None:
        req = self.req
        if req.server == "litespeed":
            self.problems.append(
                "The relay is pointed at with Apache's SSLStaplingForceURL, and this server is LiteSpeed, which "
                "takes its responder from its own ocspResponder setting. Point LiteSpeed's ocspResponder at the "
                "relay, or leave this server in the standard mode. Nothing was changed.")
            return
        if not re.match(r"^http://[^/\s]+(/\S*)?$", req.relay_url or ""):
            self.problems.append(
                "apache_stapling_relay_url is %r; mod_ssl's OCSP client speaks plain HTTP only, so it must be "
                "http://<loopback address>:<port>/ (the relay's default is %s). Nothing was changed."
                % (req.relay_url, DEFAULT_RELAY_URL))
            return
        self.relay_url = req.relay_url
        if req.force_url and req.force_url != req.relay_url:
            self.warnings.append(
                "apache_stapling_force_url %s is replaced by the relay's %s in protected mode; the relay asks each "
                "certificate's own responder (its AIA OCSP URL)." % (req.force_url, req.relay_url))

    def _own_files(self) -> list[str]:
        """The files the role's server-scope settings live in (as planned)."""
        req = self.req
        if req.layout.startswith("cpanel"):
            return [req.includes_dir + "/pre_main_global.conf", req.includes_dir + "/pre_virtualhost_global.conf"]
        return [req.snippet] if req.snippet else []

    def _relay_host_url(self) -> str:
        """The relay URL the role's own files point at (a relay host), or ""."""
        for path in self._own_files():
            text = self.text(path) or ""
            if RELAY_NOTE in text:
                match = re.search(r"(?im)^\s*SSLStaplingForceURL\s+(\S+)\s*$", text)
                if match:
                    return match.group(1)
        return ""

    def _settle_relay(self) -> CandidateConfig:
        """Every TLS vhost with stapling on asks the relay, with FakeTryLater off: edit what says otherwise."""
        wanted = {"SSLStaplingForceURL": self.relay_url, "SSLStaplingFakeTryLater": RELAY_FAKE_TRYLATER}
        for _round in range(_MAX_ROUNDS):
            candidate = read_config(self.req, self.overlay, self._virtual_links())
            first: dict[tuple[str, int], tuple] = {}
            for vhost in candidate.tls_virtual_hosts():
                switch = vhost.lookup("SSLUseStapling")
                if not switch or switch.directive.value.lower() != "on":
                    continue
                for name, value in wanted.items():
                    setting = vhost.lookup(name)
                    if setting is None:
                        self.problems.append(
                            "%s (%s:%d) has no %s in effect after the change, though the role writes it at server "
                            "scope; the server-scope file is not read. Check that the role's file is included, "
                            "then run again. Nothing was changed."
                            % (vhost.server_name or "a virtual host", self._view(self._real(vhost.file)), vhost.line, name))
                        return candidate
                    if setting.directive.value.lower() != value.lower():
                        key = (self._real(setting.directive.file), setting.directive.line)
                        first.setdefault(key, (vhost, setting.directive, name, value))
            if not first:
                return candidate
            for key in sorted(first, key=lambda k: (k[0], -k[1])):
                self._replace_value(*first[key])
            if self.problems:
                return candidate
        raise PlanError("Pointing the virtual hosts at the relay did not settle after %d rounds of edits; the "
                        "configuration includes itself in a way this role cannot follow. Nothing was changed." % _MAX_ROUNDS)

    def _replace_value(self, vhost, directive, name: str, value: str) -> None:
        req = self.req
        where = vhost.server_name or "the server"
        if req.layout.startswith("cpanel") and self._real(directive.file) == self._real(req.main_config):
            self.problems.append(
                "%s: %s %s wins for %s in cPanel's httpd.conf, which cPanel regenerates, so it cannot be replaced "
                "there. Remove it from the site's userdata include or WHM's configuration (relay mode needs %s %s), "
                "then run again. Nothing was changed." % (self._location(directive), name, directive.value, where, name, value))
            return
        text = self.text(directive.file) or ""
        lines = dialect_apache.physical_lines(text, keepends=True)
        index = directive.line - 1
        if index >= len(lines) or not re.match(r"(?i)^\s*%s\s+\S+\s*$" % name, lines[index].rstrip("\r\n")):
            self.problems.append(
                "%s: %s wins for %s but is not a line of its own (continued or shared), so it cannot be replaced "
                "safely. Put it on a line of its own, then run again. Nothing was changed."
                % (directive.location(), name, where))
            return
        lines[index] = replaced_lines(lines[index], "%s %s" % (name, value))
        self.write(directive.file, "".join(lines))
        self.edits.append("%s: %s %s replaced by %s (for %s)" % (self._location(directive), name, directive.value, value, where))

    def _relay_keepers(self, candidate: CandidateConfig) -> None:
        """One keeper entry per certificate file served with stapling on, and its issuer file."""
        req = self.req
        seen: dict[str, str] = {}
        names: set[str] = set()
        for vhost in candidate.tls_virtual_hosts():
            switch = vhost.lookup("SSLUseStapling")
            if not switch or switch.directive.value.lower() != "on":
                continue
            chain = vhost.lookup("SSLCertificateChainFile")
            for setting in vhost.lookup_all("SSLCertificateFile"):
                if not setting.directive.args:
                    continue
                cert = host_path(self.root, candidate.resolve_path(setting.directive.args[0]))
                if os.path.realpath(cert) in seen:
                    continue
                issuer = self._issuer_pem(vhost, cert, chain, candidate)
                if issuer is None:
                    continue
                base = _KEEPER_NAME.sub("_", vhost.server_name or "vhost-%d" % vhost.line).strip("._-")[:96] or "vhost"
                name, number = base, 1
                while name in names:
                    number += 1
                    name = "%s-%d" % (base, number)
                names.add(name)
                seen[os.path.realpath(cert)] = name
                issuer_path = os.path.join(req.keeper_dir, name + ".issuer.pem")
                self.keeper_files.append({"path": issuer_path, "content": issuer, "mode": "0644"})
                self.keepers.append({"name": name, "cert": cert, "issuer": host_path(self.root, issuer_path),
                                     "ca_file": req.ca_bundle})

    def _issuer_pem(self, vhost, cert: str, chain, candidate: CandidateConfig) -> str | None:
        """The PEM of ``cert``'s issuer: the next certificate in its file, else SSLCertificateChainFile's first."""
        where = vhost.server_name or "%s:%d" % (self._view(self._real(vhost.file)), vhost.line)
        try:
            blocks = der.read_chain(cert)
            if len(blocks) < 2 and chain is not None and chain.directive.args:
                blocks = blocks[:1] + der.read_chain(host_path(self.root, candidate.resolve_path(chain.directive.args[0])))
        except OSError as exc:
            self.problems.append(
                "%s: the keeper needs the certificate and its issuer, and %s could not be read (%s). Check "
                "SSLCertificateFile / SSLCertificateChainFile, then run again. Nothing was changed."
                % (where, exc.filename or cert, exc.strerror))
            return None
        issuer, problem = issuer_after_leaf(
            blocks, cert, where, "neither that file nor an SSLCertificateChainFile holds a certificate after the "
            "leaf. Serve the chain (certificate then intermediate, or SSLCertificateChainFile), then run again.")
        if problem:
            self.problems.append(problem)
        return issuer

    def _stale_keeper_files(self) -> list[str]:
        """The issuer files in keeper_dir this plan no longer needs (enabled, absent), as paths."""
        req = self.req
        if req.state not in ("enabled", "absent") or not req.keeper_dir:
            return []
        directory = host_path(self.root, req.keeper_dir)
        try:
            present = sorted(n for n in os.listdir(directory) if n.endswith(".issuer.pem"))
        except (FileNotFoundError, NotADirectoryError):
            return []
        wanted = {os.path.basename(item["path"]) for item in self.keeper_files}
        return [os.path.join(req.keeper_dir, name) for name in present if name not in wanted]

    def _load_md(self) -> None:
        req = self.req
        if req.layout == "debian":
            conf_dir = os.path.dirname(req.main_config)
            available = os.path.join(conf_dir, "mods-available", "md.load")
            if os.path.isfile(host_path(self.root, available)):
                self.links.append({"path": os.path.join(conf_dir, "mods-enabled", "md.load"),
                                   "src": "../mods-available/md.load", "state": "present"})
                self.md_linked = self.md_loading = True
                return
            self.problems.append(
                "Protected mode needs mod_md, and %s does not exist (found no LoadModule md_module either). Install "
                "the apache2 package that ships mod_md (Debian 11+ / Ubuntu 20.04+ include it) or check "
                "apache_stapling_debian_main_config, then run again. %s" % (available, RELAY_HINT))
        elif req.layout == "rhel":
            module = req.md_module_file or os.path.join(req.server_root or "/etc/httpd", "modules", "mod_md.so")
            if os.path.isfile(host_path(self.root, module)):
                self.md_load = ["<IfModule !md_module>", "    LoadModule md_module %s" % module, "</IfModule>"]
                self.md_loading = True
                return
            self.problems.append(
                "Protected mode needs mod_md: no LoadModule md_module is in effect and %s does not exist. Install it "
                "(dnf install mod_md; RHEL 9 and later), then run again. %s" % (module, RELAY_HINT))
        elif req.layout == "cpanel_ea4":
            self.problems.append(
                "Protected mode needs mod_md, which this EasyApache 4 server does not load (no LoadModule "
                "md_module). Install it (yum install ea-apache24-mod_md, or add it in WHM > EasyApache 4), then "
                "run again. %s" % RELAY_HINT)
        else:
            self.problems.append(
                "Protected mode needs mod_md (httpd 2.4.42 or later), which the %s layout does not have. %s"
                % (req.layout, RELAY_HINT))

    def _check_store(self, live: dialect_apache.ApacheConfig) -> None:
        """mod_md persists every response under MDStoreDir/ocsp/: it must be a directory root can write."""
        req = self.req
        # The role's own MDStoreDir, else the server's (mod_md's default: ServerRoot/md).
        store = req.md_store_dir or live.md_store_dir()[0]
        self.md_store = store
        path = host_path(self.root, store)
        probe = path
        while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        if not os.path.isdir(probe):
            found = "a file that is not a directory"
        elif not os.access(probe, os.W_OK | os.X_OK):
            info = os.stat(probe)
            found = "a directory this user (uid %d) cannot write (mode %04o, owner uid %d)" % (
                os.geteuid(), info.st_mode & 0o7777, info.st_uid)
        else:
            blocked = self._untraversable(live, path)
            if not blocked:
                return
            self.problems.append(
                "MDStoreDir %s cannot be reached by httpd's User %s: %s (mode %04o, owner uid %d) does not let it "
                "in. mod_md's OCSP watchdog runs in a child as that user and writes the responses under %s/ocsp/, so "
                "nothing would be stored and protected mode would not survive an outage. Let the user traverse every "
                "directory on the way (for example chmod o+x), or set apache_stapling_md_store_dir to a directory "
                "under /var/lib, then run again. Nothing was changed."
                % (store, blocked[0], self._view(blocked[1]), blocked[2], blocked[3], store))
            return
        where = store if probe == path else "%s (its nearest existing parent %s)" % (store, self._view(probe))
        self.problems.append(
            "MDStoreDir %s is %s. mod_md keeps the stapled responses there (ocsp/) and httpd's parent, running as "
            "root, must be able to create and write it, or protected mode loses its responses at every restart. "
            "Make it a writable directory (for example chown root and chmod 0755 it) or set "
            "apache_stapling_md_store_dir to one, then run again. Nothing was changed." % (where, found))

    @staticmethod
    def _untraversable(live: dialect_apache.ApacheConfig, path: str) -> tuple | None:
        """The first existing directory on the way to ``path`` that httpd's ``User`` cannot enter, or None.

        mod_md's OCSP watchdog runs in a child process as ``User`` (measured: ``mk_group_dir``
        fails with EACCES under a root-only directory although the parent created ``ocsp/``).
        """
        directive = live.server_directive("User")
        if directive is None or not directive.args:
            return None
        name = directive.args[0]
        try:
            entry = pwd.getpwuid(int(name[1:])) if name.startswith("#") else pwd.getpwnam(name)
        except (KeyError, ValueError):
            return None
        if entry.pw_uid == 0:
            return None
        gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
        on_the_way = [os.sep]
        for part in [p for p in os.path.abspath(path).split(os.sep) if p]:
            nxt = os.path.join(on_the_way[-1], part)
            if not os.path.isdir(nxt):
                break
            on_the_way.append(nxt)
        for current in on_the_way:
            info = os.stat(current)
            if info.st_uid == entry.pw_uid:
                allowed = info.st_mode & stat.S_IXUSR
            elif info.st_gid in gids:
                allowed = info.st_mode & stat.S_IXGRP
            else:
                allowed = info.st_mode & stat.S_IXOTH
            if not allowed:
                return (name, current, info.st_mode & 0o7777, info.st_uid)
        return None

    def _md_directives(self) -> list[str]:
        req = self.req
        lines = list(self.md_load)
        if req.md_store_dir:
            lines.append("MDStoreDir %s" % req.md_store_dir)
        lines += ["MDStapling on", "MDStapleOthers on", "MDStaplingRenewWindow %s" % req.md_renew_window]
        if req.md_keep_response:
            lines.append("MDStaplingKeepResponse %s" % req.md_keep_response)
        return lines

    # -- restoring -----------------------------------------------------------------

    def _restore_marks(self, config: dialect_apache.ApacheConfig) -> None:
        for path in dict.fromkeys(config.files):
            text = self.text(path)
            if text and text.startswith(USERDATA_HEADER):
                # A file created for cPanel's Include goes back to that placeholder: httpd.conf's
                # 'Include <dir>/*.conf' fails on a directory with no match.
                placeholder = USERDATA_PLACEHOLDER in text
                self.write(path, USERDATA_PLACEHOLDER if placeholder else None)
                self.edits.append("%s: %s (stapling back to the site's own setting)"
                                  % (self._view(self._real(path)), "placeholder kept" if placeholder else "removed"))
            elif text and has_marks(text):
                self.write(path, restore_text(text))
                self.edits.append("%s: replaced SSLUseStapling lines restored" % self._view(self._real(path)))

    # -- Debian / RHEL -------------------------------------------------------------

    def _snippet(self, live: dialect_apache.ApacheConfig) -> None:
        req = self.req
        if not req.snippet:
            raise PlanError("The %s layout needs the snippet path (apache_stapling_%s_snippet)." % (req.layout, req.layout))
        current = self.text(req.snippet)
        linked_md = current is not None and MD_LINK_NOTE in current
        if linked_md and req.layout == "debian" and (req.state == "absent" or (req.state == "enabled" and not self.protected)):
            conf_dir = os.path.dirname(req.main_config)
            self.links.append({"path": os.path.join(conf_dir, "mods-enabled", "md.load"),
                               "src": "../mods-available/md.load", "state": "absent"})
        if self.protected and linked_md:
            self.md_linked = True   # still needed: linked by an earlier protected enable
        if req.state == "absent" or (req.state == "restored" and current is not None
                                     and current.startswith(DISABLE_HEADER)):
            self.write(req.snippet, None)
            if req.link:
                self.links.append({"path": req.link, "src": req.link_src, "state": "absent"})
            return
        if req.state == "disabled" and current is not None and PROTECTED_NOTE in current:
            self._md_stapling_off(req.snippet, current)
        if req.state == "disabled" and current is None:
            # The role owns no snippet yet: an Off at server scope in a file of its own keeps
            # the operator's files untouched wherever the server scope decides.
            self.write(req.snippet, DISABLE_HEADER + self._render_body(["SSLUseStapling Off"]))
            if req.link:
                self.links.append({"path": req.link, "src": req.link_src, "state": "present"})
            return
        if req.state != "enabled":
            return  # the role's own snippet is edited like any file by _settle, so restored gives it back
        if self.protected:
            self.write(req.snippet, self._render_protected())
        else:
            own = self._real(req.snippet)
            cache = next((d for d in live.find("SSLStaplingCache")
                          if self._real(d.file) != own and not self._in_vhost(live, d)), None)
            self.write(req.snippet, self._render_snippet(self._global_directives(live, cache)))
        if req.link:
            self.links.append({"path": req.link, "src": req.link_src, "state": "present"})

    @staticmethod
    def _in_vhost(config: dialect_apache.ApacheConfig, directive) -> bool:
        return any(directive in v.own(directive.name) for v in config.virtual_hosts())

    def _global_directives(self, live: dialect_apache.ApacheConfig, cache) -> list[str]:
        req = self.req
        lines = []
        if cache is None:
            if not live.has_module("socache_shmcb_module") and req.server == "apache":
                self.problems.append(
                    "SSLUseStapling on needs an SSLStaplingCache, and none is set at server scope; the "
                    "shmcb cache this role would add needs mod_socache_shmcb, which is not loaded. Without a "
                    "cache 'apache2 -t' still passes but a graceful restart exits the server (AH01872). "
                    "Enable it (a2enmod socache_shmcb) or set SSLStaplingCache yourself, then run again.")
            count = max(int(req.certificate_count or 0), len(req.endpoints or ()))
            size = int(req.cache_size or 0) or max(128000, count * 10240)
            lines.append("SSLStaplingCache shmcb:%s(%d)" % (req.cache_path, size))
        lines.extend("%s %s" % (k, v) for k, v in self.tuning().items())
        return lines

    def tuning(self) -> dict[str, Any]:
        req = self.req
        if req.tuning == "resilient":
            tuning = dict(req.resilient)
        elif req.tuning == "server_default":
            tuning = {}
        elif isinstance(req.tuning, dict):
            bad = [k for k in req.tuning if not re.match(r"(?i)^SSL(Stapling|OCSP)", str(k))]
            if bad:
                raise PlanError(
                    "apache_stapling_tuning must be resilient, server_default, or a dict of SSLStapling*/"
                    "SSLOCSP* directives (for example {SSLStaplingResponderTimeout: 5}); found %s." % ", ".join(bad))
            tuning = dict(req.tuning)
        else:
            raise PlanError("apache_stapling_tuning must be resilient, server_default or a dict, not %r." % (req.tuning,))
        if req.force_url:
            tuning["SSLStaplingForceURL"] = req.force_url
        if req.proxy_url:
            tuning["SSLOCSPProxyURL"] = req.proxy_url
        if self.relay:
            # mod_ssl asks the relay for every certificate (SSLStaplingForceURL overrides the AIA URL).
            tuning["SSLStaplingForceURL"] = self.relay_url
            tuning["SSLStaplingFakeTryLater"] = RELAY_FAKE_TRYLATER
        return {k: ("on" if v is True else "off" if v is False else v) for k, v in tuning.items()}

    def _render_snippet(self, directives: list[str]) -> str:
        return ("# Managed by ocsp.stapling (role ocsp.stapling.apache); state=absent removes it.\n"
                + (RELAY_NOTE + "\n" if self.relay else "")
                + self._render_body(directives + ["SSLUseStapling On"]))

    def _render_protected(self) -> str:
        lines = ["# Managed by ocsp.stapling (role ocsp.stapling.apache); state=absent removes it.",
                 PROTECTED_NOTE,
                 "# mod_ssl's SSLUseStapling is off so that only mod_md answers status_request."]
        if self.md_linked:
            lines.append(MD_LINK_NOTE)
        if self.req.reason:
            lines.append("# Reason: %s" % " ".join(self.req.reason.split()))
        lines += self._md_directives()
        lines += ["<IfModule ssl_module>", "    SSLUseStapling Off", "</IfModule>"]
        return "\n".join(lines) + "\n"

    def _md_stapling_off(self, path: str, text: str) -> None:
        """A disable on a protected host: mod_md's switch off too, marked so restored gives it back."""
        lines = text.splitlines(keepends=True)
        changed = False
        for index, line in enumerate(lines):
            if re.match(r"(?i)^\s*MDStapling\s+on\s*$", line.rstrip("\r\n")):
                lines[index] = replaced_lines(line, "MDStapling off")
                changed = True
        if changed:
            self.write(path, "".join(lines))
            self.edits.append("%s: MDStapling on replaced by off" % self._view(self._real(path)))

    def _render_body(self, directives: list[str]) -> str:
        lines = [
            "# OCSP stapling, server scope. This file sorts after the other conf snippets so these",
            "# directives win over earlier server-scope ones; a <VirtualHost> that sets its own",
            "# SSLUseStapling still overrides it.",
        ]
        if self.req.reason:
            lines.append("# Reason: %s" % " ".join(self.req.reason.split()))
        lines.append("<IfModule ssl_module>")
        lines.extend("    " + d for d in directives)
        lines.append("</IfModule>")
        return "\n".join(lines) + "\n"

    # -- cPanel ----------------------------------------------------------------------

    def _cpanel(self, live: dialect_apache.ApacheConfig) -> None:
        req = self.req
        scan = scan_cpanel_main(host_path(self.root, req.main_config))
        if not scan["pre_virtualhost_global_line"]:
            path = req.includes_dir + "/pre_virtualhost_global.conf"
            exists = self.text(path) is not None
            self.includes_needed.append({
                "path": path, "exists": exists, "content": INCLUDE_PLACEHOLDER, "scope": "server",
                "why": "every virtual host reads it after httpd.conf's stapling block"})
            self.problems.append(
                "%s does not include %s%s, so a setting written there would not take effect (cPanel writes an "
                "Include only for include files that exist when httpd.conf is rebuilt). %s it, run "
                "/usr/local/cpanel/scripts/rebuildhttpdconf (the role does both when "
                "apache_stapling_cpanel_rebuild_command is set, outside check mode), then run again. httpd.conf "
                "was not changed." % (req.main_config, path, "" if exists else ", which does not exist",
                                      "Rebuild httpd.conf so it includes" if exists else "Create"))
            return
        if scan["pre_virtualhost_global_line"] <= scan["stapling_block_line"]:
            raise PlanError(
                "%s does not include pre_virtualhost_global.conf after its server-scope stapling block "
                "(block ends at line %d, pre_virtualhost_global.conf include at line %d), so a setting written "
                "there would not take effect. The httpd.conf template was changed: compare "
                "/var/cpanel/templates/apache2_4/ with cPanel's ea4_main.default, run "
                "/usr/local/cpanel/scripts/rebuildhttpdconf, then run this role again. httpd.conf was not changed."
                % (req.main_config, scan["stapling_block_line"], scan["pre_virtualhost_global_line"]))
        includes = req.includes_dir
        litespeed = req.server == "litespeed"
        ifmodule = "Litespeed" if litespeed else "ssl_module"
        use_files = [includes + "/pre_virtualhost_global.conf"]
        if scan["pre_virtualhost_2_line"] > scan["stapling_block_line"]:
            use_files.append(includes + "/pre_virtualhost_2.conf")
        if litespeed:
            use_files.append(req.userdata_dir + "/lscache_vhosts.conf")
        # pre_main_global.conf is read before EA4's stapling block: global directives go there
        # only when httpd.conf reads it after the block (EA3 without a block).
        if scan["pre_main_global_line"] > scan["stapling_block_line"]:
            global_file = includes + "/pre_main_global.conf"
        else:
            global_file = includes + "/pre_virtualhost_global.conf"
        enable = req.state == "enabled"
        enabled_blocks: dict[str, list[str]] = {p: [] for p in [includes + "/pre_main_global.conf", global_file] + use_files}
        if enable and self.protected:
            enabled_blocks[global_file] += self._md_directives()
            for path in use_files:
                enabled_blocks[path].append("SSLUseStapling Off")
        elif enable:
            cache = live.stapling_cache() if scan["cache"] else None
            enabled_blocks[global_file] += self._global_directives(live, cache)
            for path in use_files:
                enabled_blocks[path].append("SSLUseStapling On")
        if req.state in ("enabled", "absent"):
            for path, lines in enabled_blocks.items():
                self._block(path, ENABLE_MARKER, lines if enable else [], ifmodule)
        # A disable on a protected host turns mod_md's stapling off too, in the disable block
        # (read after the enable block), so restored brings it back by removing the block.
        md_on = req.state == "disabled" and any(PROTECTED_NOTE in (self.text(p) or "") for p in enabled_blocks)
        for path in use_files:
            lines = ["SSLUseStapling Off"] if req.state == "disabled" else []
            if md_on and path == use_files[0]:
                lines = ["MDStapling off"] + lines
            self._block(path, DISABLE_MARKER, lines, ifmodule)

    def _block(self, path: str, marker: str, lines: list[str], ifmodule: str) -> None:
        """Put (or take out) one marked block in a cPanel include file, the rest kept byte for byte."""
        body = []
        if lines and self.req.reason:
            body.append("# Reason: %s" % " ".join(self.req.reason.split()))
        md = [line for line in lines if line.startswith("MD")]
        lines = [line for line in lines if not line.startswith("MD")]
        if md:
            body.append(PROTECTED_NOTE)
            body += md   # mod_md's directives need no <IfModule>: a missing mod_md fails the configtest
        if self.relay and any(line.startswith("SSLStaplingForceURL ") for line in lines):
            body.append(RELAY_NOTE)
        if lines or not md:
            body += ["<IfModule %s>" % ifmodule] + ["    " + line for line in lines] + ["</IfModule>"]
        text = self.text(path)
        if text is None and not lines:
            return
        new = apply_block(text or "", "\n".join(body) + "\n", "present" if lines else "absent", marker=marker)
        if new != (text or ""):
            self.write(path, new)

    # -- settling: edit what wins until every TLS vhost has the switch asked for ----------

    def _protected_host(self) -> bool:
        """Whether the role's own files (as planned) carry protected mode's mod_md settings."""
        return any(PROTECTED_NOTE in (self.text(path) or "") for path in self._own_files())

    def _virtual_links(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for item in self.links:
            target = None
            if item["state"] == "present":
                target = os.path.realpath(os.path.join(os.path.dirname(host_path(self.root, item["path"])), item["src"]))
            out[item["path"]] = target
        return out

    def _settle(self) -> CandidateConfig:
        want = {"enabled": None, "disabled": "off", "restored": None, "absent": None}[self.req.state]
        if self.protected or (self.req.state == "restored" and self._protected_host()):
            want = "off"   # mod_md staples; mod_ssl's switch must stay off wherever it wins
        for _round in range(_MAX_ROUNDS):
            candidate = read_config(self.req, self.overlay, self._virtual_links())
            if want != "off":
                return candidate
            stuck = [(v, s) for v in candidate.tls_virtual_hosts()
                     for s in [v.lookup("SSLUseStapling")] if s and s.directive.value.lower() == "on"]
            if not stuck:
                return candidate
            # Every winning line of this round at once (a cPanel box can have thousands of
            # vhosts with their own 'on': one re-read per round, not per vhost), bottom-up
            # within a file so the marker line inserted above an edit shifts no later edit.
            first: dict[tuple[str, int], tuple] = {}
            for vhost, setting in stuck:
                first.setdefault((self._real(setting.directive.file), setting.directive.line), (vhost, setting.directive))
            for key in sorted(first, key=lambda k: (k[0], -k[1])):
                self._turn_off(*first[key])
            if self.problems:
                return candidate
        raise PlanError("Turning SSLUseStapling off did not settle after %d rounds of edits; the configuration "
                        "includes itself in a way this role cannot follow. Nothing was changed." % _MAX_ROUNDS)

    def _turn_off(self, vhost, directive) -> None:
        req = self.req
        if req.layout.startswith("cpanel") and self._real(directive.file) == self._real(req.main_config):
            self._cpanel_userdata_off(vhost, directive)
            return
        text = self.text(directive.file) or ""
        lines = dialect_apache.physical_lines(text, keepends=True)
        index = directive.line - 1
        if index >= len(lines) or not re.match(r"(?i)^\s*SSLUseStapling\s+on\s*$", lines[index].rstrip("\r\n")):
            self.problems.append(
                "%s: SSLUseStapling on wins for %s but is not a line of its own (continued or shared), so "
                "it cannot be replaced safely. Put it on a line of its own, then run again."
                % (directive.location(), vhost.server_name or vhost.file))
            return
        lines[index] = replaced_lines(lines[index], "SSLUseStapling Off")
        self.write(directive.file, "".join(lines))
        self.edits.append("%s: SSLUseStapling on replaced by Off (for %s)"
                          % (self._location(directive), vhost.server_name or "the server"))

    def _cpanel_userdata_off(self, vhost, directive) -> None:
        """A cPanel vhost sets ``on`` itself in httpd.conf: its userdata include is the supported place."""
        name = vhost.server_name or ""
        raw = scan_vhost_includes(host_path(self.root, self.req.main_config), vhost.line)
        target = next((pattern for line, pattern in raw if line > directive.line and "/ssl/" in pattern), None)
        if not target:
            # ssl_vhost.default always writes the place as a comment: '# Include ".../<user>/<domain>/*.conf"'.
            hint = next((h for h in scan_vhost_hints(host_path(self.root, self.req.main_config), vhost.line)), None)
            place = os.path.dirname(hint) if hint else "%s/ssl/2_4/<user>/%s" % (self.req.userdata_dir, name)
            if hint:
                self.includes_needed.append({
                    "path": os.path.join(place, "ocsp-stapling.conf"), "exists": False, "content": USERDATA_PLACEHOLDER,
                    "scope": "vhost", "why": "%s sets SSLUseStapling on itself in httpd.conf" % name})
            self.problems.append(
                "%s: <VirtualHost> %s sets SSLUseStapling on in cPanel's httpd.conf, which cPanel regenerates, "
                "and has no userdata Include after it to override it. cPanel writes that Include only for a "
                "directory holding a .conf file: put one in %s/, run /usr/local/cpanel/scripts/rebuildhttpdconf "
                "(the role does both when apache_stapling_cpanel_rebuild_command is set, outside check mode), then "
                "run again. Nothing was changed." % (self._location(directive), name, place))
            return
        path = os.path.join(os.path.dirname(target), "ocsp-stapling.conf")
        keep = USERDATA_PLACEHOLDER if self.text(path) == USERDATA_PLACEHOLDER else ""
        self.write(path, USERDATA_HEADER + "SSLUseStapling Off\n" + keep)
        self.edits.append("%s: SSLUseStapling Off for %s" % (path, name))

    def _location(self, directive) -> str:
        return "%s:%d" % (self._view(self._real(directive.file)), directive.line)

    # -- result ------------------------------------------------------------------------

    def _result(self, live, candidate: CandidateConfig) -> dict[str, Any]:
        files = []
        for real, text in self.overlay.items():
            view = self._view(real)
            if text == self.original.get(real):
                continue
            if text is None:
                files.append({"path": view, "state": "absent"})
            else:
                files.append(file_entry(view, text))
        sites = []
        for vhost in candidate.tls_virtual_hosts():
            setting = vhost.lookup("SSLUseStapling")
            value = setting.directive.value.lower() if setting else "off"
            sites.append({
                "names": vhost.names,
                "file": self._view(self._real(vhost.file)), "line": vhost.line,
                "stapling": value,
                "winner": ("%s SSLUseStapling %s" % (self._location(setting.directive), setting.directive.value)
                           if setting else "none (Apache's default is off)"),
            })
        overrides = [
            {"where": "%s %s SSLUseStapling %s" % (self._location(s.directive), v.server_name or "", s.directive.value),
             "setting": s.directive.value.lower(), "names": v.names}
            for v in live.tls_virtual_hosts() for s in [v.lookup("SSLUseStapling")] if s and not s.inherited
        ]
        return {
            "layout": self.req.layout, "server": self.req.server, "state": self.req.state,
            "mode": self.req.mode if self.req.state == "enabled" else None,
            "md_store_dir": self.md_store or None,
            # mod_md loaded by a graceful restart takes that pass for its dry run and starts
            # only at the next one (measured on 2.4.71): the role reloads a second time.
            "md_loaded_by_change": self.md_loading,
            "mechanism": self.mechanism,
            "relay_url": self.relay_url or None,
            # relay: the keeper's certificates (stapling_keeper's certificates) and the issuer
            # files they name, written before the relay is checked; stale: issuer files to remove.
            "keeper_certificates": self.keepers,
            "keeper_files": self.keeper_files,
            "keeper_stale_files": self._stale_keeper_files(),
            # Only a keeper configuration that exists can list a certificate to stop keeping.
            "keeper_config_present": bool(self.req.keeper_config)
            and os.path.isfile(host_path(self.root, self.req.keeper_config)),
            "files": files, "links": self.links, "edits": self.edits,
            "sites": sites, "vhost_overrides": overrides,
            "problems": self.problems, "warnings": list(dict.fromkeys(self.warnings)),
            "files_read": len(live.files),
            "includes_needed": self.includes_needed,
            "whm_stapling": self.whm,
        }


# --------------------------------------------------------------------------- cPanel httpd.conf scan

def scan_cpanel_main(path: str) -> dict[str, Any]:
    """Where, in cPanel's generated httpd.conf, the server-scope stapling block and the
    include files sit (line numbers, 0 when missing), and whether the block sets a cache."""
    found = {"stapling_block_line": 0, "cache": False, "pre_main_global_line": 0,
             "pre_virtualhost_global_line": 0, "pre_virtualhost_2_line": 0}
    try:
        with open(path, "rb") as handle:
            text = decode(handle.read())
    except OSError as exc:
        raise PlanError("cPanel's httpd.conf %s could not be read (%s). Check apache_stapling_ea4_main_config / "
                        "ea3_main_config or /etc/cpanel/ea4/paths.conf's file_conf." % (path, exc.strerror)) from exc
    depth = 0
    for number, raw in enumerate(dialect_apache.physical_lines(text), 1):
        line = raw.strip()
        if re.match(r"(?i)<VirtualHost[\s>]", line):
            depth += 1
        elif re.match(r"(?i)</VirtualHost", line):
            depth = max(0, depth - 1)
        elif depth == 0 and re.match(r"(?i)SSL(UseStapling|Stapling[A-Za-z]+)\s", line):
            found["stapling_block_line"] = number
            if re.match(r"(?i)SSLStaplingCache\s", line):
                found["cache"] = True
        else:
            match = _INCLUDE.match(line)
            if match:
                for name in ("pre_main_global", "pre_virtualhost_global", "pre_virtualhost_2"):
                    if os.path.basename(match.group(2)) == name + ".conf":
                        found[name + "_line"] = number
    return found


def scan_vhost_includes(path: str, start: int) -> list[tuple[int, str]]:
    """``(line, pattern)`` of each Include inside the ``<VirtualHost>`` opening at ``start``."""
    out = []
    with open(path, "rb") as handle:
        lines = dialect_apache.physical_lines(decode(handle.read()))
    for number in range(start, len(lines) + 1):
        line = lines[number - 1].strip()
        if number > start and re.match(r"(?i)</VirtualHost", line):
            break
        match = _INCLUDE.match(line)
        if match:
            out.append((number, match.group(2)))
    return out


def scan_vhost_hints(path: str, start: int) -> list[str]:
    """The commented ``# Include ".../ssl/..."`` hints inside the ``<VirtualHost>`` opening at ``start``."""
    out = []
    with open(path, "rb") as handle:
        lines = dialect_apache.physical_lines(decode(handle.read()))
    for number in range(start, len(lines) + 1):
        line = lines[number - 1]
        if number > start and re.match(r"(?i)\s*</VirtualHost", line):
            break
        match = _HINT.match(line)
        if match:
            out.append(match.group(1))
    return out


def file_entry(path: str, text: str) -> dict[str, Any]:
    """A ``stapling_change`` file entry; base64 when the text carries bytes that are not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return {"path": path, "content_base64": base64.b64encode(encode(text)).decode("ascii"), "state": "present"}
    return {"path": path, "content": text, "state": "present"}


def plan(req: ApachePlanRequest) -> dict[str, Any]:
    """Plan ``req``; raises :class:`PlanError` with an operator-facing sentence."""
    return Plan(req).run()
