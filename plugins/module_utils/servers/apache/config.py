# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read Apache httpd configuration the way httpd does, with file and line for everything.

Host side: Python standard library only.

Two layers:

* :func:`parse_text` / :func:`parse_file` turn one file into a *raw* tree of
  :class:`Directive` objects (sections keep their children). Nothing is evaluated.
* :class:`ApacheConfig` (built by :func:`load_apache_config`) reads the main config the
  way httpd does at start-up: ``Include``/``IncludeOptional`` with globs relative to
  ``ServerRoot``, ``<IfModule>`` against the modules loaded *so far* (``LoadModule`` runs
  while the file is read, so order matters), ``<IfDefine>``, ``Define`` and ``${VAR}``.
  Conditional sections that hold are inlined (each directive remembers them in
  ``conditions``); those that do not are dropped. The result is an *effective* tree in
  which the only sections left are real scopes (``VirtualHost``, ``Directory`` ...).

Every path given to or reported by this module is the path as httpd sees it; ``root``
is a prefix under which those paths are read, so tests can point the parser at a
private tree.
"""
from __future__ import annotations

import contextlib
import gc
import glob
import os
import re
from typing import Iterable, Iterator

from ansible_collections.ocsp.stapling.plugins.module_utils.servers import config_tree
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.config_tree import RootedConfig, Setting, Site, walk

#: Directives that control OCSP stapling in mod_ssl (2.4). Order is the one reported.
STAPLING_DIRECTIVES: tuple[str, ...] = (
    "SSLUseStapling",
    "SSLStaplingCache",
    "SSLStaplingResponderTimeout",
    "SSLStaplingReturnResponderErrors",
    "SSLStaplingFakeTryLater",
    "SSLStaplingStandardCacheTimeout",
    "SSLStaplingErrorCacheTimeout",
    "SSLStaplingResponseTimeSkew",
    "SSLStaplingResponseMaxAge",
    "SSLStaplingForceURL",
    "SSLOCSPProxyURL",
)

#: Directives naming the key material of a TLS virtual host.
CERTIFICATE_DIRECTIVES: tuple[str, ...] = (
    "SSLEngine",
    "SSLCertificateFile",
    "SSLCertificateKeyFile",
    "SSLCertificateChainFile",
    "SSLCACertificateFile",
    "SSLCACertificatePath",
)

#: mod_ssl only accepts these in the main server scope (not in a VirtualHost).
SERVER_SCOPE_ONLY: frozenset[str] = frozenset({"sslstaplingcache"})

#: Modules compiled into Debian's apache2 (``apache2 -l``); cPanel and RHEL builds
#: compile in at least core, http_core and so. Pass ``static_modules`` for others.
DEFAULT_STATIC_MODULES: tuple[str, ...] = (
    "core.c",
    "mod_so.c",
    "mod_watchdog.c",
    "http_core.c",
    "mod_log_config.c",
    "mod_logio.c",
    "mod_version.c",
    "mod_unixd.c",
)

_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")
_GLOB_CHARS = frozenset("*?[")
_WORD = re.compile(r'"((?:[^"\\]|\\"|\\)*)"?|\'((?:[^\'\\]|\\\'|\\)*)\'?|(\S+)')


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large trees.

    A cPanel httpd.conf has hundreds of thousands of directives; every few hundred
    allocations would otherwise trigger a collection that walks all of them, making
    the parse quadratic in practice. The trees hold no reference cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ApacheConfigError(Exception):
    """The configuration cannot be read; the message says where and what to do."""


class Directive(config_tree.Directive):
    """One directive or section, with the file and line it was read from.

    ``children`` is ``None`` for a plain directive and a list for a section.
    ``conditions`` lists the enclosing ``<IfModule>``/``<IfDefine>`` tests that held,
    outermost first (for example ``("IfModule ssl_module",)``).
    """

    __slots__ = ("key", "conditions")

    def __init__(
        self,
        name: str,
        args: list[str],
        file: str,
        line: int,
        children: list[Directive] | None = None,
        conditions: tuple[str, ...] = (),
    ) -> None:
        # Assigned here, not through super().__init__: a cPanel httpd.conf makes hundreds
        # of thousands of these and the extra call shows in the parse time.
        self.name = name
        self.key = name.lower()
        self.args = args
        self.file = file
        self.line = line
        self.children = children
        self.conditions = conditions

    @property
    def is_section(self) -> bool:
        """True for ``<Section>`` blocks."""
        return self.children is not None

    def as_dict(self) -> dict:
        """A JSON-friendly summary (no children), with the conditions that held."""
        data = super().as_dict()
        data["conditions"] = list(self.conditions)
        return data

    def __repr__(self) -> str:
        kind = "section" if self.is_section else "directive"
        return "<%s %s %r at %s>" % (kind, self.name, self.args, self.location())


# --------------------------------------------------------------------------- lexing


def physical_lines(text: str, keepends: bool = False) -> list[str]:
    """The file's lines as httpd reads them: only ``\\n`` ends a line (``str.splitlines``
    would also split at form feeds, ``\\x1c``-``\\x1e``, ``\\x85`` and U+2028, which httpd
    keeps inside the line, so a directive or comment holding one would be misread)."""
    lines = text.split("\n")
    last = lines.pop()
    if keepends:
        lines = [line + "\n" for line in lines]
    if last:
        lines.append(last)
    return lines


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for each non-empty, non-comment logical line.

    Like httpd's ``ap_cfg_getline``: a backslash as the last character joins the next
    physical line (whose leading whitespace is kept); the joined line is stripped; a
    line whose first non-blank character is ``#`` is a comment (httpd has no trailing
    comments). The number is that of the first physical line.
    """
    pending: list[str] | None = None
    start = 0
    number = 0
    for number, raw in enumerate(physical_lines(text), 1):
        line = raw.rstrip()
        if line.endswith("\\"):
            if pending is None:
                pending = []
                start = number
            pending.append(line[:-1])
            continue
        if pending is not None:
            pending.append(line)
            line = "".join(pending)
            pending = None
            first = start
        else:
            first = number
        line = line.strip()
        if not line or line[0] == "#":
            continue
        yield first, line
    if pending is not None:
        line = "".join(pending).strip()
        if line and line[0] != "#":
            yield start, line


def split_arguments(text: str) -> list[str]:
    """Split a directive's argument text into words like httpd's ``ap_getword_conf``.

    A word starting with ``"`` or ``'`` runs to the matching quote (a backslash before
    that quote escapes it; other backslashes stay as written); any other word runs to
    the next whitespace, quotes included. An unterminated quote runs to the end.
    """
    if '"' not in text and "'" not in text:
        return text.split()
    words: list[str] = []
    for match in _WORD.finditer(text):
        double, single, plain = match.groups()
        if double is not None:
            words.append(double.replace('\\"', '"') if "\\" in double else double)
        elif single is not None:
            words.append(single.replace("\\'", "'") if "\\" in single else single)
        else:
            words.append(plain)
    return words


def parse_text(text: str, file: str = "<string>") -> list[Directive]:
    """Parse one file's text into a raw tree (no includes or conditions evaluated).

    Raises :class:`ApacheConfigError` when sections do not nest.
    """
    top: list[Directive] = []
    stack: list[Directive] = []
    current = top
    for number, line in logical_lines(text):
        if line[0] == "<":
            if line.startswith("</"):
                name = line[2:].rstrip(">").strip()
                if not stack:
                    raise ApacheConfigError(
                        "%s:%d closes <%s> but no section is open. Remove the stray "
                        "'</%s>' or add the missing opening line." % (file, number, name, name)
                    )
                opened = stack.pop()
                if opened.key != name.lower():
                    raise ApacheConfigError(
                        "%s:%d closes <%s> but the open section is <%s> from line %d. "
                        "Fix the nesting of these sections." % (file, number, name, opened.name, opened.line)
                    )
                current = stack[-1].children if stack else top  # type: ignore[assignment]
                continue
            if not line.endswith(">"):
                raise ApacheConfigError(
                    "%s:%d opens a section without a closing '>': %r. Add the '>'." % (file, number, line)
                )
            body = line[1:-1].strip()
            parts = body.split(None, 1)
            if not parts:
                raise ApacheConfigError("%s:%d has an empty section tag '<>'." % (file, number))
            section = Directive(parts[0], split_arguments(parts[1]) if len(parts) > 1 else [], file, number, [])
            current.append(section)
            stack.append(section)
            current = section.children  # type: ignore[assignment]
            continue
        parts = line.split(None, 1)
        current.append(Directive(parts[0], split_arguments(parts[1]) if len(parts) > 1 else [], file, number))
    if stack:
        opened = stack[-1]
        raise ApacheConfigError(
            "%s:%d opens <%s> which is never closed (end of file reached). Add '</%s>'."
            % (file, opened.line, opened.name, opened.name)
        )
    return top


def parse_file(path: str, display_path: str | None = None) -> list[Directive]:
    """Parse a file from disk; ``display_path`` is the name recorded in directives."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse_text(handle.read(), display_path or path)


# --------------------------------------------------------------------------- modules


def module_names(identifier_or_file: str) -> tuple[str, str]:
    """Return ``(identifier, source_file)`` for a module name in either spelling.

    ``ssl_module``, ``mod_ssl.c``, ``mod_ssl.so`` and ``ssl`` all give
    ``("ssl_module", "mod_ssl.c")``; ``http_core.c`` gives ``("http_module", ...)``.
    Names are lower-cased: httpd compares them case-sensitively, but the spelling in
    configs varies (``<IfModule Litespeed>``) and a false negative is worse here.
    """
    name = os.path.basename(identifier_or_file.strip()).lower()
    if name.endswith(".so") or name.endswith(".c"):
        stem = name.rsplit(".", 1)[0]
        base = stem[4:] if stem.startswith("mod_") else stem
        if stem == "http_core":
            return "http_module", "http_core.c"
        if stem == "core":
            return "core_module", "core.c"
        return base + "_module", stem + ".c"
    if name.endswith("_module"):
        base = name[: -len("_module")]
        if base == "http":
            return name, "http_core.c"
        if base == "core":
            return name, "core.c"
        return name, "mod_" + base + ".c"
    return name + "_module", "mod_" + name + ".c"


# --------------------------------------------------------------------------- virtual hosts


def parse_address(text: str) -> tuple[str, str]:
    """Split ``addr:port`` (``[::1]:443``, ``*:443``, ``_default_``) into ``(addr, port)``.

    A missing port is reported as ``"*"``: the virtual host matches any port.
    """
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else "*"
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, "*"


class VirtualHost(Site):
    """A ``<VirtualHost>`` with main-server inheritance of directives.

    mod_ssl merges each virtual host's server config over the main server's, so a
    directive not set in the virtual host comes from the main server scope.
    """

    stapling_directives = STAPLING_DIRECTIVES

    def __init__(self, section: Directive, main_scope: dict[str, Directive]) -> None:
        super().__init__(section)
        self.section = section
        self.addresses: list[tuple[str, str]] = [parse_address(a) for a in section.args]
        self._main = main_scope

    @staticmethod
    def _key(name: str) -> str:
        return name.lower()   # httpd directive names are case-insensitive

    def lookup(self, name: str) -> Setting | None:
        """The directive in effect: the last one in the vhost, else the main server's."""
        key = name.lower()
        own = self._own.get(key)
        if own:
            return Setting(own[-1], False)
        if key in self._main:
            return Setting(self._main[key], True)
        return None

    def lookup_all(self, name: str) -> list[Setting]:
        """Every occurrence in effect (for repeatable directives like SSLCertificateFile)."""
        own = self._own.get(name.lower())
        if own:
            return [Setting(d, False) for d in own]
        setting = self.lookup(name)
        return [setting] if setting else []

    @property
    def server_name(self) -> str | None:
        setting = self.lookup("ServerName")
        if not setting or not setting.directive.args:
            return None
        name = setting.directive.args[0]
        # "ServerName host:port" and "ServerName https://host": the host part only.
        if "://" in name:
            name = name.split("://", 1)[1]
        if name.count(":") == 1:
            name = name.split(":")[0]
        return name

    @property
    def aliases(self) -> list[str]:
        return [a for d in self._own.get("serveralias", ()) for a in d.args]

    @property
    def names(self) -> list[str]:
        """ServerName first, then every ServerAlias, without duplicates."""
        out: list[str] = []
        for name in ([self.server_name] if self.server_name else []) + self.aliases:
            if name not in out:
                out.append(name)
        return out

    @property
    def is_tls(self) -> bool:
        """True when ``SSLEngine`` in effect is ``on`` (or ``optional``)."""
        setting = self.lookup("SSLEngine")
        return bool(setting and setting.directive.value.lower() in ("on", "optional"))

    def __repr__(self) -> str:
        return "<VirtualHost %s %s at %s:%d>" % (" ".join(self.section.args), self.server_name, self.file, self.line)


# --------------------------------------------------------------------------- effective config


class ApacheConfig(RootedConfig):
    """An Apache configuration read like httpd reads it. Build with :func:`load_apache_config`.

    Attributes after loading:

    ``tree``
        the effective top-level directives and sections;
    ``files``
        every file read, in order (paths as httpd sees them);
    ``loaded_modules``
        module identifiers and source names (``ssl_module``, ``mod_ssl.c``) that are
        compiled in, given as ``extra_modules``, or loaded by ``LoadModule``;
    ``load_module_lines``
        ``{identifier: Directive}`` for each ``LoadModule`` seen;
    ``defines`` / ``variables``
        ``-D`` names and ``Define``d variables at the end of the read;
    ``warnings``
        problems httpd would warn about or refuse (missing includes, unknown
        variables), as sentences.
    """

    def __init__(
        self,
        main_config: str,
        server_root: str | None = None,
        root: str = "/",
        defines: Iterable[str] = (),
        static_modules: Iterable[str] = DEFAULT_STATIC_MODULES,
        extra_modules: Iterable[str] = (),
        variables: dict[str, str] | None = None,
        server_version: str | None = None,
        max_include_depth: int = 32,
    ) -> None:
        self.root = root or "/"
        self.main_config = main_config
        self.server_root = server_root or os.path.dirname(main_config)
        self.defines: set[str] = set(defines)
        self.variables: dict[str, str] = dict(variables or {})
        self.server_version = server_version
        self.max_include_depth = max_include_depth
        self.loaded_modules: set[str] = set()
        for name in list(static_modules) + list(extra_modules):
            self.loaded_modules.update(module_names(name))
        self.load_module_lines: dict[str, Directive] = {}
        self.files: list[str] = []
        self.warnings: list[str] = []
        self._raw_cache: dict[str, list[Directive]] = {}
        self.tree: list[Directive] = []

    # -- path helpers -------------------------------------------------------------

    def resolve_path(self, path: str) -> str:
        """Make ``path`` absolute against ``ServerRoot`` as httpd does."""
        if os.path.isabs(path):
            return os.path.normpath(path)
        return os.path.normpath(os.path.join(self.server_root, path))

    # -- loading ------------------------------------------------------------------

    def load(self) -> ApacheConfig:
        """Read the main config and everything it includes. Returns ``self``."""
        host = self.host_path(self.main_config)
        if not os.path.isfile(host):
            raise ApacheConfigError(
                "Apache main config %s was not found (looked at %s). Pass the path httpd "
                "uses (see 'httpd -V', SERVER_CONFIG_FILE) as apache_config." % (self.main_config, host)
            )
        self.tree = []
        with gc_paused():
            self._read_into(self.main_config, self.tree, 0, ())
        return self

    def _raw(self, path: str) -> list[Directive]:
        cached = self._raw_cache.get(path)
        if cached is None:
            cached = parse_file(self.host_path(path), path)
            self._raw_cache[path] = cached
        return cached

    def _read_into(self, path: str, out: list[Directive], depth: int, conditions: tuple[str, ...]) -> None:
        self.files.append(path)
        try:
            raw = self._raw(path)
        except OSError as exc:
            self.warnings.append("Could not read %s: %s. Check its permissions." % (path, exc.strerror))
            return
        self._walk(raw, out, depth, conditions)

    def _expand(self, args: list[str], where: Directive) -> list[str]:
        out = []
        for arg in args:
            if "${" in arg:
                arg = _VARIABLE.sub(lambda m: self._variable(m, where), arg)
            out.append(arg)
        return out

    def _variable(self, match: re.Match, where: Directive) -> str:
        name = match.group(1)
        if name in self.variables:
            return self.variables[name]
        self.warnings.append(
            "%s uses ${%s}, which is not defined (httpd leaves it as written). Define it "
            "or pass it in variables (on Debian, from /etc/apache2/envvars)." % (where.location(), name)
        )
        return match.group(0)

    def _walk(self, nodes: list[Directive], out: list[Directive], depth: int, conditions: tuple[str, ...]) -> None:
        for node in nodes:
            key = node.key
            args = node.args
            if any("${" in a for a in args):
                args = self._expand(args, node)
            if node.children is not None:
                test = self._condition(key, args, node)
                if test is not None:
                    if test:
                        label = "%s %s" % (node.name, " ".join(args))
                        self._walk(node.children, out, depth, conditions + (label,))
                    continue
                section = Directive(node.name, args, node.file, node.line, [], conditions)
                self._walk(node.children, section.children, depth, ())  # type: ignore[arg-type]
                out.append(section)
                continue
            if key == "include" or key == "includeoptional":
                self._include(node, args, key == "includeoptional", out, depth, conditions)
                continue
            if key == "define" and args:
                if len(args) > 1:
                    self.variables[args[0]] = " ".join(args[1:])
                else:
                    self.defines.add(args[0])
            elif key == "undefine" and args:
                self.defines.discard(args[0])
                self.variables.pop(args[0], None)
            elif key == "loadmodule" and len(args) >= 2:
                identifier = args[0].lower()
                self.loaded_modules.add(identifier)
                self.loaded_modules.add(module_names(args[1])[1])
                self.load_module_lines[identifier] = node
            elif key == "serverroot" and args:
                self.server_root = args[0]
            if args is node.args and not conditions:
                out.append(node)
            else:
                out.append(Directive(node.name, args, node.file, node.line, None, conditions))

    def _condition(self, key: str, args: list[str], node: Directive) -> bool | None:
        """Evaluate a conditional section; ``None`` when ``node`` is a real scope."""
        if key == "ifmodule":
            return self._negatable(args, self.has_module)
        if key == "ifdefine":
            return self._negatable(args, lambda name: name in self.defines or name in self.variables)
        if key == "iffile":
            return self._negatable(args, lambda name: os.path.exists(self.host_path(self.resolve_path(name))))
        if key == "ifversion":
            return self._version_test(args)
        if key in ("ifdirective", "ifsection"):
            # Whether this httpd knows a directive: assume it does (warn-free over-inclusion).
            return True
        return None

    @staticmethod
    def _negatable(args: list[str], test) -> bool:
        if not args:
            return False
        name = args[0]
        if name.startswith("!"):
            return not test(name[1:])
        return bool(test(name))

    def _version_test(self, args: list[str]) -> bool:
        if not self.server_version or not args:
            return True
        op, wanted = ("=", args[0]) if len(args) == 1 else (args[0], args[1])
        if op.startswith("!"):
            negate, op = True, op[1:]
        else:
            negate = False
        have = _version_tuple(self.server_version)
        want = _version_tuple(wanted.strip("/~"))
        if op in ("=", "=="):
            result = have[: len(want)] == want
        elif op in (">", ">=", "<", "<="):
            result = {">": have > want, ">=": have >= want, "<": have < want, "<=": have <= want}[op]
        else:  # regular expressions (~, /re/): not worth evaluating here
            result = True
        return not result if negate else result

    def _include(
        self,
        node: Directive,
        args: list[str],
        optional: bool,
        out: list[Directive],
        depth: int,
        conditions: tuple[str, ...],
    ) -> None:
        if not args:
            return
        if depth >= self.max_include_depth:
            self.warnings.append(
                "%s: includes nest deeper than %d levels (an include loop?); stopped here. "
                "Check that the included files do not include each other." % (node.location(), self.max_include_depth)
            )
            return
        for path in self.expand_include(args[0], node, optional):
            self._read_into(path, out, depth + 1, conditions)

    def expand_include(self, pattern: str, node: Directive | None = None, optional: bool = False) -> list[str]:
        """The files an ``Include`` of ``pattern`` reads, in httpd's (sorted) order."""
        path = self.resolve_path(pattern)
        host = self.host_path(path)
        where = node.location() if node else path
        if _GLOB_CHARS & set(path):
            matches = sorted(m for m in glob.glob(host) if os.path.isfile(m) or os.path.isdir(m))
            if not matches and not optional:
                self.warnings.append(
                    "%s: Include %s matches no file; httpd refuses to start on this. Use "
                    "IncludeOptional or create a matching file." % (where, pattern)
                )
        elif os.path.isdir(host) or os.path.isfile(host):
            matches = [host]
        else:
            if not optional:
                self.warnings.append(
                    "%s: Include %s does not exist; httpd refuses to start on this. Create "
                    "it or remove the Include." % (where, pattern)
                )
            return []
        files: list[str] = []
        for match in matches:
            if os.path.isdir(match):
                for dirpath, dirnames, filenames in os.walk(match):
                    dirnames.sort()
                    files.extend(os.path.join(dirpath, f) for f in sorted(filenames))
            else:
                files.append(match)
        return [self._server_view(f) for f in files]

    # -- queries for facts and roles ----------------------------------------------

    def has_module(self, name: str) -> bool:
        """Whether a module is loaded: ``ssl``, ``ssl_module`` or ``mod_ssl.c`` all work."""
        lowered = name.lower()
        if lowered in self.loaded_modules:
            return True
        identifier, source = module_names(name)
        return identifier in self.loaded_modules or source in self.loaded_modules

    def server_scope(self) -> list[Directive]:
        """Plain directives of the main server (outside every section), in order."""
        return [d for d in self.tree if d.children is None]

    def server_directive(self, name: str) -> Directive | None:
        """The last ``name`` in the main server scope (the one in effect), or None."""
        key = name.lower()
        found = None
        for directive in self.tree:
            if directive.children is None and directive.key == key:
                found = directive
        return found

    def md_store_dir(self) -> tuple[str, bool]:
        """mod_md's store as httpd resolves it, and whether ``MDStoreDir`` sets it.

        The last ``MDStoreDir`` at server scope (mod_md takes it from the main server only),
        relative paths against ``ServerRoot``; without one, mod_md's default ``md`` under
        ``ServerRoot``. mod_md keeps its stapled OCSP responses under ``<store>/ocsp/``.
        """
        own = self.server_directive("MDStoreDir")
        if own is not None and own.args:
            return self.resolve_path(own.args[0]), True
        return self.resolve_path("md"), False

    def find(self, name: str) -> list[Directive]:
        """Every occurrence of directive or section ``name`` anywhere, in read order."""
        key = name.lower()
        return [d for d in walk(self.tree) if d.key == key]

    def virtual_hosts(self) -> list[VirtualHost]:
        """Every ``<VirtualHost>``, with inheritance from the main server scope."""
        main: dict[str, Directive] = {}
        for directive in self.tree:
            if directive.children is None:
                main[directive.key] = directive
        return [VirtualHost(d, main) for d in self.tree if d.key == "virtualhost" and d.children is not None]

    def tls_virtual_hosts(self) -> list[VirtualHost]:
        """The virtual hosts with ``SSLEngine on`` in effect."""
        return [v for v in self.virtual_hosts() if v.is_tls]

    def misplaced_stapling_caches(self) -> list[tuple[VirtualHost, Directive]]:
        """Each ``SSLStaplingCache`` inside a ``<VirtualHost>`` (directly or from a file it
        includes): mod_ssl accepts it only at server scope and httpd refuses to start."""
        return [(vhost, directive) for vhost in self.virtual_hosts() for directive in vhost.own("SSLStaplingCache")]

    def stapling_cache(self) -> Directive | None:
        """``SSLStaplingCache`` in the main server scope, the only place mod_ssl reads it."""
        return self.server_directive("SSLStaplingCache")

    def error_logs(self) -> list[str]:
        """Absolute paths of file ``ErrorLog``s (main server first); pipes and syslog skipped."""
        out: list[str] = []
        for directive in self.find("ErrorLog"):
            if not directive.args:
                continue
            target = directive.args[0]
            if target.startswith("|") or target.startswith("syslog"):
                continue
            path = self.resolve_path(target)
            if path not in out:
                out.append(path)
        return out


def misplaced_cache_problem(vhost: VirtualHost, directive: Directive) -> str:
    """The sentence for an ``SSLStaplingCache`` found inside a ``<VirtualHost>``."""
    return ("%s sets SSLStaplingCache inside <VirtualHost %s> (%s:%d); Apache allows it only at server scope "
            "and refuses to start with it there. Move it out of the virtual host (a file included at server "
            "scope), then run again." % (directive.location(), " ".join(vhost.section.args), vhost.file, vhost.line))


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in re.split(r"[.\-]", text):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def read_envvars(path: str) -> dict[str, str]:
    """Read ``export NAME=value`` lines from Debian's ``/etc/apache2/envvars``.

    Only plain assignments are understood; ``$SUFFIX`` (empty for the default
    instance) and earlier variables are substituted. Missing file: empty dict.
    """
    values: dict[str, str] = {"SUFFIX": ""}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    assignment = re.compile(r"^\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$")
    for line in lines:
        match = assignment.match(line)
        if not match or "`" in line or "$(" in line:
            continue
        name, value = match.group(1), match.group(2).strip().strip("'\"")
        value = re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: values.get(m.group(1), ""), value)
        values[name] = value
    values.pop("SUFFIX", None)
    return values


def load_apache_config(
    main_config: str,
    *,
    server_root: str | None = None,
    root: str = "/",
    defines: Iterable[str] = (),
    static_modules: Iterable[str] = DEFAULT_STATIC_MODULES,
    extra_modules: Iterable[str] = (),
    variables: dict[str, str] | None = None,
    server_version: str | None = None,
) -> ApacheConfig:
    """Read ``main_config`` (a path as httpd sees it) under ``root`` and return the result.

    ``server_root`` defaults to the config's directory's parent for ``conf/httpd.conf``
    layouts and to its directory otherwise (``/etc/apache2/apache2.conf``).
    ``extra_modules`` are treated as loaded (LiteSpeed reading Apache config answers
    ``<IfModule Litespeed>``). ``variables`` feed ``${VAR}`` (Debian's envvars).
    """
    if server_root is None:
        directory = os.path.dirname(main_config)
        server_root = os.path.dirname(directory) if os.path.basename(directory) == "conf" else directory
    config = ApacheConfig(
        main_config,
        server_root=server_root,
        root=root,
        defines=defines,
        static_modules=static_modules,
        extra_modules=extra_modules,
        variables=variables,
        server_version=server_version,
    )
    return config.load()
