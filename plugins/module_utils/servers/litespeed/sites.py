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

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.config_tree import host_path
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed.config import (
    ENTERPRISE,
    OPENLITESPEED,
    STAPLING_KEYS,
    LiteSpeedConfigError,
    LswsXml,
    OlsBlock,
    OlsConfig,
    XmlNode,
    discover,
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


def read_sites(server_root: str = "/usr/local/lsws", root: str = "/") -> dict:
    """List LiteSpeed's secure listeners and the vhosts (and vhost templates) with their own
    SSL block, as ``dialect_litespeed.discover`` finds them (includes followed).

    Returns ``{"config": path|None, "edition": "openlitespeed"|"lsws"|None,
    "reads_apache_config": bool, "sites": [...], "warnings": [...]}``. Each site has
    ``kind`` (``listener``/``vhost``/``template``), ``name``, ``names``, ``listen``, the
    certificate keys, ``stapling``: ``{key: {value, file, line, inherited}}`` and
    ``stapling_enabled``. A vhost's stapling comes from its ``vhssl`` block alone:
    OpenLiteSpeed builds the vhost's SSL context from it and ``enableStapling`` defaults to
    0 there, whatever the listener says (``inherited`` is always false). A template's
    ``members`` are its vhosts (``$VH_NAME`` expanded in their domains).
    """
    result: dict = {"config": None, "edition": None, "reads_apache_config": False, "sites": [], "warnings": []}
    for name, edition, flavor in (("httpd_config.conf", "openlitespeed", OPENLITESPEED),
                                  ("httpd_config.xml", "lsws", ENTERPRISE)):
        path = os.path.join(server_root, "conf", name)
        if not os.path.isfile(host_path(root, path)):
            continue
        try:
            tree, main, listeners, vhosts, _log = discover(server_root, flavor, root=root)
        except LiteSpeedReadError as exc:
            result["warnings"].append(str(exc))
            continue
        result["config"] = main
        result["edition"] = edition
        top = [(main, [])] if flavor == OPENLITESPEED else [(main, [])]
        result["reads_apache_config"] = (tree.get(top, "loadApacheConf") or "0").strip() == "1"
        result["sites"] = _sites(tree, listeners, vhosts)
        result["warnings"].extend(tree.notes)
        break
    return result


def _settings(tree, segments: list, keys: tuple[str, ...]) -> dict[str, dict]:
    out = {}
    for key in keys:
        found = tree.locate(segments, key)
        if found:
            out[key] = dict(found, inherited=False)
    return out


def _enabled(stapling: dict) -> bool:
    entry = stapling.get("enableStapling")
    return bool(entry) and entry["value"].strip() == "1"


def _sites(tree, listeners: list, vhosts: list) -> list[dict]:
    sites: list[dict] = []
    mapped: dict[str, list] = {}
    by_name = {}
    for listener in listeners:
        by_name[listener.name] = listener
        if (tree.get(listener.segments, "secure") or "0").strip() != "1":
            continue
        for vhost, domains in listener.maps:
            mapped.setdefault(vhost, []).append((listener, domains))
        stapling = _settings(tree, listener.segments, STAPLING_KEYS)
        path, block = listener.segments[0]
        sites.append({
            "server": "litespeed",
            "kind": "listener",
            "name": listener.name,
            "names": [d for _vh, domains in listener.maps for d in domains],
            "listen": [_address(listener)],
            "file": path,
            "line": tree.open(path).line(block),
            "certificates": _settings(tree, listener.segments, CERTIFICATE_KEYS),
            "stapling": stapling,
            "stapling_enabled": _enabled(stapling),
        })
    for vhost in vhosts:
        if not vhost.segments:
            continue
        stapling = _settings(tree, vhost.segments, STAPLING_KEYS)
        path, block = vhost.segments[0]
        if vhost.kind == "template":
            listen = [_address(by_name[n]) for n in vhost.listeners
                      if n in by_name and (tree.get(by_name[n].segments, "secure") or "0").strip() == "1"]
            names = list(vhost.names)
        else:
            found = mapped.get(vhost.name, [])
            listen = [_address(listener) for listener, _d in found]
            names = vhost.names + [d for _l, domains in found for d in domains if d not in vhost.names]
        site = {
            "server": "litespeed",
            "kind": vhost.kind,
            "name": vhost.name,
            "names": names,
            "listen": listen,
            "file": path,
            "line": tree.open(path).line(block),
            "certificates": _settings(tree, vhost.segments, CERTIFICATE_KEYS),
            "stapling": stapling,
            "stapling_enabled": _enabled(stapling),
        }
        if vhost.kind == "template":
            site["members"] = vhost.members
        sites.append(site)
    return sites


def _address(listener) -> dict:
    address = listener.address or ""
    host, _sep, port = address.rpartition(":")
    return {"address": host or "*", "port": int(port) if port and port.isdigit() else (port or None), "listener": listener.name}
