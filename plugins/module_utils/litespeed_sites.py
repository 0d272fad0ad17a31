# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small read-only view of LiteSpeed's native TLS sites, for facts.

Host side: Python standard library only. Editing LiteSpeed configuration is
``dialect_litespeed``'s job (a lossless round-trip editor); this reader only lists
what is configured, with file and line, and stays independent of that editor's API.

OpenLiteSpeed (text): ``listener NAME { address ..; secure 1; keyFile ..; map VH dom }``
in ``conf/httpd_config.conf``, ``virtualhost NAME { configFile .. }``, and in each
vhost's ``vhconf.conf`` a ``vhssl { ... }`` block. LSWS Enterprise (XML):
``<listenerList><listener>`` and ``<virtualHostList><virtualHost>`` in
``conf/httpd_config.xml``, ``<vhssl>`` in the vhost's XML. The SSL keys are the same in
both: ``keyFile``, ``certFile``, ``certChain``, ``CACertFile`` and the stapling keys.
"""
from __future__ import annotations

import os
from typing import Iterator
from xml.parsers import expat

#: Stapling keys, shared by listeners and vhost SSL blocks (OLS manual, "OCSP Stapling").
STAPLING_KEYS: tuple[str, ...] = ("enableStapling", "ocspRespMaxAge", "ocspResponder", "ocspCACerts")
#: Key material keys reported for each site.
CERTIFICATE_KEYS: tuple[str, ...] = ("keyFile", "certFile", "certChain", "CACertFile")


class LiteSpeedReadError(Exception):
    """A LiteSpeed file could not be read; the message says which and what to do."""


class Node:
    """A block (OLS ``kind name { }`` or an XML element) with its keys and line numbers."""

    def __init__(self, kind: str, name: str, file: str, line: int) -> None:
        self.kind = kind
        self.name = name
        self.file = file
        self.line = line
        self.values: dict[str, tuple[str, int]] = {}  # lower-cased key -> (value, line)
        self.children: list[Node] = []

    def get(self, key: str) -> str | None:
        found = self.values.get(key.lower())
        return found[0] if found else None

    def setting(self, key: str) -> dict | None:
        found = self.values.get(key.lower())
        if not found:
            return None
        return {"value": found[0], "file": self.file, "line": found[1]}

    def blocks(self, kind: str) -> Iterator[Node]:
        for child in self.children:
            if child.kind.lower() == kind.lower():
                yield child


# --------------------------------------------------------------------------- OLS text


def parse_ols_text(text: str, file: str = "<string>") -> Node:
    """Parse the OpenLiteSpeed text format into a tree of :class:`Node` (read only)."""
    top = Node("", "", file, 0)
    stack = [top]
    heredoc: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if heredoc is not None:
            if line == heredoc:
                heredoc = None
            continue
        if not line or line.startswith("#"):
            continue
        if line == "}":
            if len(stack) == 1:
                raise LiteSpeedReadError("%s:%d: '}' closes no block. Remove it." % (file, number))
            stack.pop()
            continue
        if line.endswith("{"):
            words = line[:-1].split(None, 1)
            block = Node(words[0] if words else "", words[1].strip() if len(words) > 1 else "", file, number)
            stack[-1].children.append(block)
            stack.append(block)
            continue
        key, _sep, value = line.partition(" ")
        value = value.strip()
        if value.startswith("<<<"):
            heredoc = value[3:].strip()
            continue
        if key.lower() == "map":
            # "map VHOST domain1, domain2" repeats; keep every one.
            stack[-1].children.append(_map_node(value, file, number))
            continue
        stack[-1].values[key.lower()] = (value, number)
    if len(stack) > 1:
        raise LiteSpeedReadError(
            "%s:%d: block '%s %s' is never closed. Add the '}'." % (file, stack[-1].line, stack[-1].kind, stack[-1].name)
        )
    return top


def _map_node(value: str, file: str, line: int) -> Node:
    vhost, _sep, domains = value.partition(" ")
    node = Node("map", vhost.strip(), file, line)
    node.values["domain"] = (domains.strip(), line)
    return node


# --------------------------------------------------------------------------- LSWS XML


def parse_xml(data: bytes, file: str = "<string>") -> Node:
    """Parse LSWS XML into :class:`Node`: leaf elements become keys, others blocks.

    expat is used directly (ElementTree's parser, without its line-less tree) so each
    key keeps its line number.
    """
    parser = expat.ParserCreate()
    top = Node("", "", file, 0)
    stack: list[Node] = [top]
    texts: list[list[str]] = [[]]
    has_elements: set[int] = set()

    def start(tag: str, _attrs: dict) -> None:
        node = Node(tag, "", file, parser.CurrentLineNumber)
        has_elements.add(id(stack[-1]))
        stack[-1].children.append(node)
        stack.append(node)
        texts.append([])

    def end(tag: str) -> None:
        node = stack.pop()
        text = "".join(texts.pop()).strip()
        parent = stack[-1]
        if id(node) not in has_elements:
            # A leaf: <keyFile>/path</keyFile> becomes parent's key.
            parent.values[tag.lower()] = (text, node.line)
            parent.children.remove(node)
        else:
            name = node.get("name")
            node.name = name or ""

    def chars(data_text: str) -> None:
        texts[-1].append(data_text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise LiteSpeedReadError("%s is not well-formed XML (%s). Fix or restore it from its backup." % (file, exc))
    return top


# --------------------------------------------------------------------------- sites


def _host(root: str, path: str) -> str:
    return path if root in ("", "/") else os.path.join(root, path.lstrip("/"))


def _substitute(value: str, server_root: str, vh_name: str = "", vh_root: str = "") -> str:
    value = value.replace("$SERVER_ROOT", server_root.rstrip("/")).replace("$VH_NAME", vh_name)
    value = value.replace("$VH_ROOT", vh_root.rstrip("/"))
    if value and not os.path.isabs(value):
        value = os.path.join(server_root, value)
    return os.path.normpath(value) if value else value


def _read_tree(path: str, root: str) -> Node | None:
    host = _host(root, path)
    if not os.path.isfile(host):
        return None
    with open(host, "rb") as handle:
        data = handle.read()
    if path.endswith(".xml"):
        return parse_xml(data, path)
    return parse_ols_text(data.decode("utf-8", errors="replace"), path)


def _ssl_settings(node: Node, keys: tuple[str, ...]) -> dict[str, dict]:
    out = {}
    for key in keys:
        setting = node.setting(key)
        if setting:
            out[key] = setting
    return out


def _listener_maps(listener: Node) -> list[tuple[str, list[str]]]:
    """``(vhost, [domains])`` for each mapping of a listener (text ``map`` or XML vhostMap)."""
    out = []
    for child in listener.children:
        if child.kind == "map":
            out.append((child.name, _split_domains(child.get("domain") or "")))
        elif child.kind.lower() == "vhostmaplist":
            for mapping in child.children:
                out.append((mapping.get("vhost") or "", _split_domains(mapping.get("domain") or "")))
    for mapping in listener.children:
        if mapping.kind.lower() == "vhostmap":
            out.append((mapping.get("vhost") or "", _split_domains(mapping.get("domain") or "")))
    return out


def _split_domains(text: str) -> list[str]:
    return [d.strip() for d in text.replace(",", " ").split() if d.strip()]


def read_sites(server_root: str = "/usr/local/lsws", root: str = "/") -> dict:
    """List LiteSpeed's secure listeners and the vhosts with their own SSL block.

    Returns ``{"config": path|None, "edition": "openlitespeed"|"lsws"|None,
    "reads_apache_config": bool, "sites": [...], "warnings": [...]}``. Each site has
    ``kind`` (``listener``/``vhost``), ``name``, ``names``, ``listen``, the certificate
    keys and ``stapling``: ``{key: {value, file, line, inherited}}``; a vhost inherits
    the keys it does not set from the listeners that map it.
    """
    result: dict = {"config": None, "edition": None, "reads_apache_config": False, "sites": [], "warnings": []}
    for name, edition in (("httpd_config.conf", "openlitespeed"), ("httpd_config.xml", "lsws")):
        path = os.path.join(server_root, "conf", name)
        try:
            tree = _read_tree(path, root)
        except LiteSpeedReadError as exc:
            result["warnings"].append(str(exc))
            continue
        if tree is None:
            continue
        if tree.children and tree.children[0].kind == "httpServerConfig":
            tree = tree.children[0]
        result["config"] = path
        result["edition"] = edition
        result["reads_apache_config"] = (tree.get("loadApacheConf") or "0").strip() == "1"
        result["sites"] = _sites(tree, server_root, root, result["warnings"])
        break
    return result


def _listeners(tree: Node) -> list[Node]:
    found = list(tree.blocks("listener"))
    for holder in tree.blocks("listenerList"):
        found.extend(holder.blocks("listener"))
    return found


def _vhosts(tree: Node) -> list[Node]:
    found = list(tree.blocks("virtualhost"))
    for holder in tree.blocks("virtualHostList"):
        found.extend(holder.blocks("virtualHost"))
    return found


def _sites(tree: Node, server_root: str, root: str, warnings: list[str]) -> list[dict]:
    sites: list[dict] = []
    mapped: dict[str, list[tuple[Node, list[str]]]] = {}
    for listener in _listeners(tree):
        if (listener.get("secure") or "0").strip() != "1":
            continue
        maps = _listener_maps(listener)
        for vhost, domains in maps:
            mapped.setdefault(vhost, []).append((listener, domains))
        stapling = {k: dict(v, inherited=False) for k, v in _ssl_settings(listener, STAPLING_KEYS).items()}
        sites.append({
            "server": "litespeed",
            "kind": "listener",
            "name": listener.name,
            "names": [d for _vh, domains in maps for d in domains],
            "listen": [_address(listener)],
            "file": listener.file,
            "line": listener.line,
            "certificates": _ssl_settings(listener, CERTIFICATE_KEYS),
            "stapling": stapling,
        })
    for vhost in _vhosts(tree):
        vh_root = _substitute(vhost.get("vhRoot") or "", server_root, vhost.name)
        config_file = vhost.get("configFile")
        ssl_block = next(iter(vhost.blocks("vhssl")), None)
        domains_here: list[str] = []
        if config_file:
            path = _substitute(config_file, server_root, vhost.name, vh_root)
            try:
                vh_tree = _read_tree(path, root)
            except LiteSpeedReadError as exc:
                warnings.append(str(exc))
                vh_tree = None
            if vh_tree is None:
                warnings.append(
                    "LiteSpeed vhost %s names configFile %s, which was not found or not readable."
                    % (vhost.name, path)
                )
            else:
                if vh_tree.children and vh_tree.children[0].kind == "virtualHostConfig":
                    vh_tree = vh_tree.children[0]
                ssl_block = next(iter(vh_tree.blocks("vhssl")), ssl_block)
                domains_here = _split_domains((vh_tree.get("vhDomain") or "") + " " + (vh_tree.get("vhAliases") or ""))
        if ssl_block is None:
            continue
        listeners = mapped.get(vhost.name, [])
        stapling = {k: dict(v, inherited=False) for k, v in _ssl_settings(ssl_block, STAPLING_KEYS).items()}
        for listener, _domains in listeners:
            for key, setting in _ssl_settings(listener, STAPLING_KEYS).items():
                stapling.setdefault(key, dict(setting, inherited=True))
        names = domains_here + [d for _l, domains in listeners for d in domains if d not in domains_here]
        sites.append({
            "server": "litespeed",
            "kind": "vhost",
            "name": vhost.name,
            "names": names,
            "listen": [_address(listener) for listener, _d in listeners],
            "file": ssl_block.file,
            "line": ssl_block.line,
            "certificates": _ssl_settings(ssl_block, CERTIFICATE_KEYS),
            "stapling": stapling,
        })
    return sites


def _address(listener: Node) -> dict:
    address = listener.get("address") or ""
    host, _sep, port = address.rpartition(":")
    return {"address": host or "*", "port": int(port) if port and port.isdigit() else (port or None), "listener": listener.name}
