# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read nginx configuration the way nginx does, with file and line for everything.

Host side: Python standard library only.

:func:`parse_text` turns one file into a raw tree of :class:`Directive` objects.
:func:`load_nginx_config` reads the main file and splices every ``include`` (globs,
relative to the directory of the main config file, nginx's ``conf_prefix``) in place,
so the tree is what nginx sees. :class:`NginxConfig` answers the questions the facts
module and the nginx role ask: the ``server`` blocks of ``http``, which of them speak
TLS, and which stapling directives are in effect in each, inherited from ``http``.

Paths given to and reported by this module are as nginx sees them; ``root`` is a prefix
under which they are read.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Iterator

from ansible_collections.ocsp.stapling.plugins.module_utils.servers import config_tree
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.config_tree import RootedConfig, Setting, Site, walk

#: Stapling-related directives, in the order reported.
STAPLING_DIRECTIVES: tuple[str, ...] = (
    "ssl_stapling",
    "ssl_stapling_verify",
    "ssl_stapling_file",
    "ssl_stapling_responder",
    "ssl_trusted_certificate",
    "resolver",
    "resolver_timeout",
)

#: Key material directives (both may repeat: RSA + ECDSA).
CERTIFICATE_DIRECTIVES: tuple[str, ...] = ("ssl_certificate", "ssl_certificate_key")

#: Directives nginx allows more than once per block; a block that sets one of them
#: does not inherit any from the enclosing block (array merge in ngx_http_ssl_module).
REPEATABLE: frozenset[str] = frozenset({"ssl_certificate", "ssl_certificate_key", "listen", "server_name"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | "(?P<dq>(?:[^"\\]|\\.)*)"
  | '(?P<sq>(?:[^'\\]|\\.)*)'
  | (?P<punct>[;{}])
  | (?P<word>(?:\$\{[^}\s]*\}|\\.|[^\s;{}"'\\])(?:\$\{[^}\s]*\}|\\.|[^\s;{}\\])*)
    """,
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


class NginxConfigError(Exception):
    """The configuration cannot be read; the message says where and what to do."""


class Directive(config_tree.Directive):
    """One nginx directive; ``children`` is a list for block directives, else None.

    Besides ``line`` (its name's line) it knows the lines of its neighbours in its own file,
    which is what an editor needs to know whether it has lines of its own:
    ``end_line`` (its ``;`` or ``{``), ``close_line`` (a block's ``}``), ``before_line`` (the
    token before it, 0 at the start of the file), ``after_line`` (the token after its ``;`` or
    ``{``) and ``after_close_line`` (the token after a block's ``}``); None: end of file.
    """

    __slots__ = ("end_line", "close_line", "before_line", "after_line", "after_close_line")

    def __init__(self, name: str, args: list[str], file: str, line: int, children: list | None = None) -> None:
        super().__init__(name, args, file, line, children)
        self.end_line = line
        self.close_line: int | None = None
        self.before_line = 0
        self.after_line: int | None = None
        self.after_close_line: int | None = None

    def __repr__(self) -> str:
        return "<nginx %s %r at %s>" % (self.name, self.args, self.location())


def tokenize(text: str, file: str = "<string>") -> Iterator[tuple[str, int, bool]]:
    """Yield ``(token, line, quoted)``; ``;``, ``{`` and ``}`` come as unquoted tokens."""
    line = 1
    position = 0
    length = len(text)
    while position < length:
        match = _TOKEN.match(text, position)
        if match is None:
            raise NginxConfigError(
                "%s:%d: unterminated quote or stray backslash near %r. Close the quote."
                % (file, line, text[position:position + 30])
            )
        kind = match.lastgroup
        token = match.group(kind)  # type: ignore[arg-type]
        if kind == "dq" or kind == "sq":
            yield _UNESCAPE.sub(r"\1", token), line, True
        elif kind == "punct":
            yield token, line, False
        elif kind == "word":
            yield token, line, False
        line += match.group(0).count("\n")
        position = match.end()


def parse_text(text: str, file: str = "<string>") -> list[Directive]:
    """Parse one file into a raw tree (``include`` not followed)."""
    top: list[Directive] = []
    stack: list[tuple[Directive | None, list[Directive]]] = [(None, top)]
    words: list[str] = []
    start = 0
    previous = 0  # line of the last token seen
    before = 0
    waiting: list[tuple[Directive, str]] = []  # directives whose next token's line is not known yet
    for token, line, quoted in tokenize(text, file):
        for directive, slot in waiting:
            setattr(directive, slot, line)
        waiting = []
        if not quoted and token in (";", "{", "}"):
            if token == "}":
                if words:
                    raise NginxConfigError(
                        "%s:%d: '%s' is missing its ';' before '}'. Add the ';'." % (file, start, " ".join(words))
                    )
                if len(stack) == 1:
                    raise NginxConfigError("%s:%d: unexpected '}' (no block is open). Remove it." % (file, line))
                closed = stack.pop()[0]
                closed.close_line = line  # type: ignore[union-attr]
                waiting.append((closed, "after_close_line"))  # type: ignore[arg-type]
                previous = line
                continue
            if not words:
                raise NginxConfigError("%s:%d: unexpected '%s' with no directive before it." % (file, line, token))
            directive = Directive(words[0], words[1:], file, start, [] if token == "{" else None)
            directive.before_line = before
            directive.end_line = line
            waiting.append((directive, "after_line"))
            stack[-1][1].append(directive)
            if token == "{":
                stack.append((directive, directive.children))  # type: ignore[arg-type]
            words = []
            previous = line
            continue
        if not words:
            start = line
            before = previous
        words.append(token)
        previous = line
    if words:
        raise NginxConfigError("%s:%d: '%s' is not terminated by ';'. Add the ';'." % (file, start, " ".join(words)))
    if len(stack) > 1:
        opened = stack[-1][0]
        raise NginxConfigError(
            "%s:%d: block '%s' is never closed (end of file reached). Add the '}'."
            % (file, opened.line, opened.name)  # type: ignore[union-attr]
        )
    return top


class Listen:
    """One ``listen`` directive: address, port and parameters."""

    def __init__(self, directive: Directive) -> None:
        self.directive = directive
        target = directive.args[0] if directive.args else "*:80"
        self.params = directive.args[1:]
        self.address, self.port = parse_listen_target(target)

    @property
    def ssl(self) -> bool:
        return "ssl" in self.params

    def as_dict(self) -> dict:
        return {
            "address": self.address,
            "port": int(self.port) if str(self.port).isdigit() else self.port,
            "ssl": self.ssl,
            "params": list(self.params),
            "file": self.directive.file,
            "line": self.directive.line,
        }


def parse_listen_target(target: str) -> tuple[str, str | None]:
    """``127.0.0.1:443`` -> (``127.0.0.1``, ``443``); ``443`` -> (``*``, ``443``); unix -> (path, None)."""
    if target.startswith("unix:"):
        return target, None
    if target.startswith("["):
        host, _sep, rest = target[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else "80"
    if ":" in target:
        host, port = target.rsplit(":", 1)
        return host, port
    if target.isdigit():
        return "*", target
    return target, "80"


class ServerBlock(Site):
    """A ``server { }`` inside ``http`` with ``http``-level inheritance."""

    stapling_directives = STAPLING_DIRECTIVES

    def __init__(self, block: Directive, http: Directive | None) -> None:
        super().__init__(block)
        self.block = block
        self.http = http
        self._inherited: dict[str, list[Directive]] = {}
        for child in (http.children if http else None) or ():
            if child.children is None:
                self._inherited.setdefault(child.name, []).append(child)

    def lookup_all(self, name: str) -> list[Setting]:
        """Occurrences in effect: the server's own, else those of ``http``."""
        own = self._own.get(name)
        if own:
            return [Setting(d, False) for d in (own if name in REPEATABLE else own[-1:])]
        inherited = self._inherited.get(name)
        if inherited:
            return [Setting(d, True) for d in (inherited if name in REPEATABLE else inherited[-1:])]
        return []

    def lookup(self, name: str) -> Setting | None:
        found = self.lookup_all(name)
        return found[-1] if found else None

    @property
    def listens(self) -> list[Listen]:
        return [Listen(d) for d in self._own.get("listen", ())]

    @property
    def names(self) -> list[str]:
        out: list[str] = []
        for directive in self._own.get("server_name", ()):
            for name in directive.args:
                if name and name not in out:
                    out.append(name)
        return out

    @property
    def is_tls(self) -> bool:
        """A ``listen ... ssl`` or the pre-1.25 ``ssl on``."""
        if any(listen.ssl for listen in self.listens):
            return True
        setting = self.lookup("ssl")
        return bool(setting and setting.directive.value == "on")

    def __repr__(self) -> str:
        return "<server %s at %s:%d>" % (self.names, self.file, self.line)


class NginxConfig(RootedConfig):
    """An nginx configuration with includes spliced in. Build with :func:`load_nginx_config`."""

    def __init__(self, main_config: str, root: str = "/", prefix: str | None = None, max_include_depth: int = 32) -> None:
        self.main_config = main_config
        self.root = root or "/"
        self.conf_prefix = prefix or os.path.dirname(main_config)
        self.max_include_depth = max_include_depth
        self.files: list[str] = []
        self.warnings: list[str] = []
        self.tree: list[Directive] = []

    def load(self) -> NginxConfig:
        host = self.host_path(self.main_config)
        if not os.path.isfile(host):
            raise NginxConfigError(
                "nginx main config %s was not found (looked at %s). Pass the path from "
                "'nginx -V' (--conf-path) as nginx_config." % (self.main_config, host)
            )
        self.tree = self._read(self.main_config, 0)
        return self

    def _read(self, path: str, depth: int) -> list[Directive]:
        self.files.append(path)
        with open(self.host_path(path), encoding="utf-8", errors="surrogateescape") as handle:
            raw = parse_text(handle.read(), path)
        return self._splice(raw, depth)

    def _splice(self, nodes: list[Directive], depth: int) -> list[Directive]:
        out: list[Directive] = []
        for node in nodes:
            if node.name == "include" and node.children is None:
                if depth >= self.max_include_depth:
                    self.warnings.append(
                        "%s: includes nest deeper than %d levels (an include loop?); stopped. "
                        "Check the included files." % (node.location(), self.max_include_depth)
                    )
                    continue
                for path in self.expand_include(node.args[0] if node.args else "", node):
                    out.extend(self._read(path, depth + 1))
                continue
            if node.children is not None:
                node.children = self._splice(node.children, depth)
            out.append(node)
        return out

    def expand_include(self, pattern: str, node: Directive | None = None) -> list[str]:
        """Files an ``include pattern`` reads (relative to the conf prefix), sorted."""
        path = pattern if os.path.isabs(pattern) else os.path.join(self.conf_prefix, pattern)
        path = os.path.normpath(path)
        host = self.host_path(path)
        if any(c in path for c in "*?["):
            return [self._server_view(m) for m in sorted(glob.glob(host)) if os.path.isfile(m)]
        if os.path.isfile(host):
            return [path]
        self.warnings.append(
            "%s: include %s does not exist; nginx -t fails on this. Create it or remove the include."
            % (node.location() if node else path, pattern)
        )
        return []

    # -- queries ------------------------------------------------------------------

    def find(self, name: str) -> list[Directive]:
        return [d for d in walk(self.tree) if d.name == name]

    def http_blocks(self) -> list[Directive]:
        return [d for d in self.tree if d.name == "http" and d.children is not None]

    def server_blocks(self) -> list[ServerBlock]:
        """Every ``server`` in ``http`` (stream/mail servers are not HTTP sites)."""
        out: list[ServerBlock] = []
        for http in self.http_blocks():
            for child in http.children or ():
                if child.name == "server" and child.children is not None:
                    out.append(ServerBlock(child, http))
        return out

    def tls_server_blocks(self) -> list[ServerBlock]:
        return [s for s in self.server_blocks() if s.is_tls]

    def http_directive(self, name: str) -> Directive | None:
        """The last ``name`` directly in ``http`` (where a global stapling setting lives)."""
        found = None
        for http in self.http_blocks():
            for child in http.children or ():
                if child.name == name and child.children is None:
                    found = child
        return found

    def error_logs(self) -> list[str]:
        """File targets of ``error_log`` anywhere (``stderr``/``syslog:`` skipped)."""
        out: list[str] = []
        for directive in self.find("error_log"):
            if not directive.args:
                continue
            target = directive.args[0]
            if target == "stderr" or target.startswith("syslog:") or target.startswith("memory:"):
                continue
            if not os.path.isabs(target):
                target = os.path.normpath(os.path.join(self.conf_prefix, target))
            if target not in out:
                out.append(target)
        return out


def load_nginx_config(main_config: str, *, root: str = "/", prefix: str | None = None) -> NginxConfig:
    """Read ``main_config`` (as nginx sees it) under ``root``; includes are spliced in.

    ``prefix`` is where relative includes are resolved; nginx uses the main config's
    directory, which is the default.
    """
    return NginxConfig(main_config, root=root, prefix=prefix).load()
