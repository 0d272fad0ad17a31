# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Apache and nginx dialects share: directives with file and line, settings in
effect, the tree walk, and paths as the server sees them read under a private ``root``.

Host side: Python standard library only. The dialects subclass or re-export these, so
``dialect_apache.Setting`` and ``dialect_nginx.Setting`` are this one class.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator


def host_path(root: str, path: str) -> str:
    """``path`` as the server sees it, found under ``root`` on this machine."""
    if not root or root == "/":
        return path
    return os.path.join(root, path.lstrip("/"))


def server_view(root: str, path: str) -> str:
    """The inverse of :func:`host_path`: a path found under ``root`` as the server sees it."""
    if not root or root == "/":
        return path
    prefix = root.rstrip("/")
    if path.startswith(prefix + "/"):
        return path[len(prefix):]
    return path


class Directive:
    """One directive or block; ``children`` is None for a plain directive, a list for a block."""

    __slots__ = ("name", "args", "file", "line", "children")

    def __init__(self, name: str, args: list[str], file: str, line: int, children: list | None = None) -> None:
        self.name = name
        self.args = args
        self.file = file
        self.line = line
        self.children = children

    @property
    def value(self) -> str:
        """The arguments joined by single spaces."""
        return " ".join(self.args)

    def location(self) -> str:
        """``file:line``, for messages."""
        return "%s:%d" % (self.file, self.line)

    def as_dict(self) -> dict:
        """A JSON-friendly summary (no children)."""
        return {"name": self.name, "value": self.value, "args": list(self.args), "file": self.file, "line": self.line}


def walk(nodes: Iterable[Directive]) -> Iterator[Directive]:
    """Every directive and block in ``nodes``, depth first, in file order."""
    for node in nodes:
        yield node
        if node.children:
            yield from walk(node.children)


class Setting:
    """A directive in effect in a site (virtual host, server block) and whether it was
    inherited from the enclosing scope (Apache's main server, nginx's ``http``)."""

    __slots__ = ("directive", "inherited")

    def __init__(self, directive: Directive, inherited: bool) -> None:
        self.directive = directive
        self.inherited = inherited

    def as_dict(self) -> dict:
        """JSON-friendly: the directive's summary without its name, plus ``inherited``."""
        data = self.directive.as_dict()
        del data["name"]
        data["inherited"] = self.inherited
        return data


class RootedConfig:
    """A configuration whose paths are the server's, read from disk under ``self.root``."""

    root: str = "/"

    def host_path(self, path: str) -> str:
        """Where ``path`` (as the server sees it) is on this machine, under ``root``."""
        return host_path(self.root, path)

    def _server_view(self, path: str) -> str:
        return server_view(self.root, path)


class Site:
    """A site's scope (``<VirtualHost>``, ``server { }``): its own plain directives by
    name, where it was read from, and its stapling settings in effect.

    A dialect sets ``stapling_directives``, ``_key`` (how names compare) and ``lookup``
    (how a setting is inherited from the enclosing scope).
    """

    stapling_directives: tuple[str, ...] = ()

    def __init__(self, scope: Directive) -> None:
        self._scope = scope
        self._own: dict[str, list[Directive]] = {}
        for child in scope.children or ():
            if child.children is None:
                self._own.setdefault(self._key(child.name), []).append(child)

    @staticmethod
    def _key(name: str) -> str:
        return name

    @property
    def file(self) -> str:
        return self._scope.file

    @property
    def line(self) -> int:
        return self._scope.line

    def own(self, name: str) -> list[Directive]:
        """Every occurrence of ``name`` directly in this site, in file order."""
        return list(self._own.get(self._key(name), ()))

    def lookup(self, name: str) -> Setting | None:
        raise NotImplementedError

    def stapling(self) -> dict[str, Setting]:
        """The stapling directives in effect, by canonical name (absent ones left out)."""
        out: dict[str, Setting] = {}
        for name in self.stapling_directives:
            setting = self.lookup(name)
            if setting:
                out[name] = setting
        return out
