# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small read-only view of LiteSpeed's native TLS sites, for facts.

Host side: Python standard library only. ``dialect_litespeed`` (the lossless editor)
parses the files; this module turns its trees into a small read-only view (keys with
file and line) and lists what is configured.

OpenLiteSpeed (text): ``listener NAME { address ..; secure 1; keyFile ..; map VH dom }``
in ``conf/httpd_config.conf``, ``virtualhost NAME { configFile .. }``, and in each
vhost's ``vhconf.conf`` a ``vhssl { ... }`` block. LSWS Enterprise (XML):
``<listenerList><listener>`` and ``<virtualHostList><virtualHost>`` in
``conf/httpd_config.xml``, ``<vhssl>`` in the vhost's XML. The SSL keys are the same in
both: ``keyFile``, ``certFile``, ``certChain``, ``CACertFile`` and the stapling keys.
"""
from __future__ import annotations

import bisect
import os
import re
from typing import Iterator

from ansible_collections.ocsp.stapling.plugins.module_utils.config_tree import host_path
from ansible_collections.ocsp.stapling.plugins.module_utils.dialect_litespeed import (
    STAPLING_KEYS,
    LiteSpeedConfigError,
    LswsXml,
    OlsBlock,
    OlsConfig,
    XmlNode,
)

#: Key material keys reported for each site.
CERTIFICATE_KEYS: tuple[str, ...] = ("keyFile", "certFile", "certChain", "CACertFile", "CACertPath")

#: Raised for a file that cannot be parsed (the dialect's error: its message says what to fix).
LiteSpeedReadError = LiteSpeedConfigError


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


# --------------------------------------------------------------------------- from the dialect's trees


def parse_ols_text(text: str, file: str = "<string>") -> Node:
    """The OpenLiteSpeed text format as a tree of :class:`Node` (parsed by ``OlsConfig``).

    Here-document keys (rewrite rules) are left out; ``map VHOST domains`` lines repeat,
    so each becomes a ``map`` child node, in file order with the blocks.
    """
    return _ols_node(OlsConfig(text, source=file).root, file)


def _ols_node(block: OlsBlock, file: str) -> Node:
    node = Node(block.kind, block.name, file, block.open_line + 1)
    ordered: list[tuple[int, Node]] = []
    for entry in block.directives:
        if entry.first != entry.last:
            continue  # a here-document
        if entry.key.lower() == "map":
            vhost, _sep, domains = entry.value.partition(" ")
            mapping = Node("map", vhost.strip(), file, entry.first + 1)
            mapping.values["domain"] = (domains.strip(), entry.first + 1)
            ordered.append((entry.first, mapping))
        else:
            node.values[entry.key.lower()] = (entry.value, entry.first + 1)
    ordered.extend((child.open_line, _ols_node(child, file)) for child in block.blocks)
    node.children = [child for _line, child in sorted(ordered, key=lambda pair: pair[0])]
    return node


def parse_xml(data: bytes, file: str = "<string>") -> Node:
    """LSWS XML (parsed by ``LswsXml``) as :class:`Node`: leaf elements become keys of
    their parent, with the line of their start tag; other elements become blocks."""
    document = LswsXml(data, source=file)
    newlines = [match.start() for match in re.finditer(b"\n", data)]
    top = Node("", "", file, 0)
    _xml_into(top, document.root, file, newlines)
    return top


def _xml_into(parent: Node, element: XmlNode, file: str, newlines: list[int]) -> None:
    line = bisect.bisect_left(newlines, element.start) + 1
    if not element.children:
        parent.values[element.tag.lower()] = (element.text.strip(), line)
        return
    node = Node(element.tag, "", file, line)
    parent.children.append(node)
    for child in element.children:
        _xml_into(node, child, file, newlines)
    node.name = node.get("name") or ""


# --------------------------------------------------------------------------- sites


def _substitute(value: str, server_root: str, vh_name: str = "", vh_root: str = "") -> str:
    value = value.replace("$SERVER_ROOT", server_root.rstrip("/")).replace("$VH_NAME", vh_name)
    value = value.replace("$VH_ROOT", vh_root.rstrip("/"))
    if value and not os.path.isabs(value):
        value = os.path.join(server_root, value)
    return os.path.normpath(value) if value else value


def _read_tree(path: str, root: str) -> Node | None:
    host = host_path(root, path)
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
