# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LiteSpeed native configuration: OpenLiteSpeed text files and LSWS Enterprise XML.

Runs on the managed host, so it uses the Python standard library only.

Both editors are lossless: a file that is parsed and rendered without an edit comes back
byte for byte, and an edit touches only the bytes of the keys it changes (comments, key
order, alignment, unknown keys and line endings stay as they were).

* ``OlsConfig`` edits the OpenLiteSpeed format (``conf/httpd_config.conf``,
  ``conf/vhosts/*/vhconf.conf``): ``key value`` lines inside ``name [arg] { ... }`` blocks,
  ``#`` comments, and ``key <<<MARKER ... MARKER`` here-documents (rewrite rules).
* ``LswsXml`` edits LSWS Enterprise XML (``conf/httpd_config.xml``, vhost XML). It parses
  with expat (the parser under ``xml.etree``), which reports the byte offset of every tag,
  and edits text inside an element's span: re-serialising through ElementTree would
  reformat the whole file. Every result is re-parsed with ElementTree and read back.

``plan_stapling()`` puts both together: it finds the secure listeners and the virtual hosts
with an SSL block under a server root and computes the edited files, without writing.

Where the keys live (OpenLiteSpeed Users' Manual, "Listeners SSL" and "Virtual Host SSL",
section "OCSP Stapling"; the WebAdmin table ``LVT_SSL_OCSP`` is shared by listeners and
vhosts): ``enableStapling`` (bool), ``ocspRespMaxAge`` (seconds, default 86400, -1 turns
the limit off), ``ocspResponder`` (an ``http://`` URL overriding the certificate's AIA),
``ocspCACerts`` (file used to verify responses; falls back to ``CACertFile``). In the text
format they sit in ``listener NAME { ... }`` and in the vhost's ``vhssl { ... }``; in XML in
``<listener>`` and ``<vhssl>`` elements.
"""
from __future__ import annotations

import fnmatch
import glob
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.parsers import expat
from xml.sax.saxutils import escape as _xml_escape

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.config_tree import host_path, server_view

ENABLE_KEY = "enableStapling"
MAX_AGE_KEY = "ocspRespMaxAge"
RESPONDER_KEY = "ocspResponder"
CA_CERTS_KEY = "ocspCACerts"
STAPLING_KEYS = (ENABLE_KEY, MAX_AGE_KEY, RESPONDER_KEY, CA_CERTS_KEY)

# Keys naming files the server opens when it sets up a listener or vhost SSL context.
# certChain is a 0/1 flag in the OpenLiteSpeed format but holds a file name in some LSWS
# configurations, so it is checked only when it does not look like a flag.
REFERENCED_FILE_KEYS = ("keyFile", "certFile", "certChain", "certChainFile", "CACertFile",
                        CA_CERTS_KEY)
_FLAG_VALUES = ("", "0", "1")

OPENLITESPEED = "openlitespeed"
ENTERPRISE = "enterprise"

# Error-log lines written after a restart. OpenLiteSpeed's SSL context setup logs "[SSL] Config
# SSL Context with Certificate File: ... get SSL error: ..." when a listener's or vhost's
# certificate or key cannot be loaded: that listener or site then serves no TLS at all, so the
# change is rolled back. "[OCSP] ..." lines come from its stapling code and mean a certificate
# is not being stapled while the server keeps serving: a warning.
FATAL_LOG_PATTERNS = (r"\[SSL\] Config SSL Context with Certificate File",)
WARNING_LOG_PATTERNS = (r"\[OCSP\]",)


class LiteSpeedConfigError(ValueError):
    """A configuration file could not be parsed or edited; the message says what to do."""


# --------------------------------------------------------------------------------------
# OpenLiteSpeed text format
# --------------------------------------------------------------------------------------

_OPEN_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<header>[^\s#{}][^{}]*?)[ \t]*\{[ \t]*$")
# OpenLiteSpeed pops the block at a line starting with "}" and reads the rest of the line
# as a line of its own (plainconf::parseLine), so "} # comment" closes a block too.
_CLOSE_RE = re.compile(r"^[ \t]*\}[ \t]*(?:#.*)?$")
_DIRECTIVE_RE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<key>[^\s#{}]+)(?P<sep>[ \t]*)(?P<value>.*?)(?P<trail>[ \t]*)$")
_HEREDOC_RE = re.compile(r"<<<(?P<marker>\S+)$")


def _split_eol(line: str) -> tuple[str, str]:
    """Split a line into its body and its line ending ('\\r\\n', '\\n' or '')."""
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith("\n") or line.endswith("\r"):
        return line[:-1], line[-1]
    return line, ""


@dataclass
class OlsDirective:
    """One ``key value`` entry; ``first``..``last`` are its line indexes (a here-document
    spans several lines)."""

    key: str
    value: str
    first: int
    last: int


@dataclass
class OlsBlock:
    """A ``kind [name] { ... }`` block. The file itself is the root block (kind '')."""

    kind: str
    name: str
    indent: str
    open_line: int
    close_line: int = -1
    directives: list = field(default_factory=list)
    blocks: list = field(default_factory=list)

    def matches(self, selector: str) -> bool:
        """``"listener SSL"`` matches kind and name, ``"vhssl"`` matches the kind only.
        Kinds and keys compare case-insensitively, as LiteSpeed reads them; names exactly."""
        parts = selector.split(None, 1)
        if not parts or parts[0].lower() != self.kind.lower():
            return False
        return len(parts) == 1 or parts[1].strip() == self.name

    def directive(self, key: str) -> OlsDirective | None:
        """The last entry for ``key`` (the one the server ends up with), or None."""
        found = [d for d in self.directives if d.key.lower() == key.lower()]
        return found[-1] if found else None

    def value(self, key: str) -> str | None:
        entry = self.directive(key)
        return None if entry is None else entry.value


class _Lookup:
    """What both native formats do with a path: the first match, a key's value, or a refusal
    naming what is missing. Each format says how it matches (``find``), reads a key
    (``_value``) and names a node (``NODE``, ``SEPARATOR``)."""

    NODE = "block"
    SEPARATOR = " > "
    source = "<string>"

    def find(self, path) -> list:
        raise NotImplementedError

    def _value(self, node, key: str) -> str | None:
        raise NotImplementedError

    def first(self, path):
        """The first node at ``path``; refuses when there is none (edits never create one)."""
        found = self.find(path)
        if not found:
            raise LiteSpeedConfigError(
                "%s: no %s %s. Expected it to exist before its keys are edited; add it "
                "in WebAdmin (or by hand) first." % (self.source, self.NODE, self.SEPARATOR.join(_as_list(path))))
        return found[0]

    def get(self, path, key: str) -> str | None:
        found = self.find(path)
        return self._value(found[0], key) if found else None


class OlsConfig(_Lookup):
    """A lossless OpenLiteSpeed configuration file: lines kept verbatim, a block tree on top.

    Every edit rewrites only the affected lines and re-parses, so indexes never go stale.
    """

    def __init__(self, text: str, source: str = "<string>") -> None:
        self.source = source
        self.lines = text.splitlines(keepends=True)
        self.root = self._parse()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    # -- parsing ---------------------------------------------------------------------
    def _parse(self) -> OlsBlock:
        root = OlsBlock(kind="", name="", indent="", open_line=-1)
        stack = [root]
        index = 0
        while index < len(self.lines):
            body, _eol = _split_eol(self.lines[index])
            stripped = body.strip()
            if not stripped or stripped.startswith("#"):
                index += 1
                continue
            if _CLOSE_RE.match(body):
                if len(stack) == 1:
                    raise LiteSpeedConfigError(
                        "%s line %d: found a '}' that closes no block. Expected every '}' "
                        "to match an earlier 'name {' line; fix the file (or restore it "
                        "from a backup) and run again." % (self.source, index + 1))
                stack.pop().close_line = index
                index += 1
                continue
            opened = _OPEN_RE.match(body)
            if opened:
                words = opened.group("header").split(None, 1)
                block = OlsBlock(kind=words[0], name=" ".join(words[1].split()) if len(words) > 1 else "",
                                 indent=opened.group("indent"), open_line=index)
                stack[-1].blocks.append(block)
                stack.append(block)
                index += 1
                continue
            # Anything else is "key value": a brace inside a value ("%{HTTPS}") is data,
            # as it is to LiteSpeed, which only opens a block on a line ending in "{".
            match = _DIRECTIVE_RE.match(body)
            if match is None:  # pragma: no cover - the regex accepts any non-blank line
                raise LiteSpeedConfigError("%s line %d: cannot read %r."
                                           % (self.source, index + 1, stripped))
            first = index
            value = match.group("value")
            heredoc = _HEREDOC_RE.search(value)
            if heredoc:
                marker = heredoc.group("marker")
                index += 1
                while index < len(self.lines) and _split_eol(self.lines[index])[0].strip() != marker:
                    index += 1
                if index >= len(self.lines):
                    raise LiteSpeedConfigError(
                        "%s line %d: the here-document started with '<<<%s' never ends. "
                        "Expected a line reading '%s'; add it and run again."
                        % (self.source, first + 1, marker, marker))
                value = "".join(self.lines[first + 1:index]).rstrip("\r\n")
            stack[-1].directives.append(
                OlsDirective(key=match.group("key"), value=value, first=first, last=index))
            index += 1
        if len(stack) > 1:
            block = stack[-1]
            raise LiteSpeedConfigError(
                "%s line %d: block '%s %s' is never closed. Expected a '}' line before the "
                "end of the file; fix the file (or restore it from a backup) and run again."
                % (self.source, block.open_line + 1, block.kind, block.name))
        root.close_line = len(self.lines)
        return root

    # -- lookup ----------------------------------------------------------------------
    def find(self, path) -> list:
        """All blocks matching ``path``, a selector or a list of selectors from the top,
        e.g. ``["listener SSL"]`` or ``["virtualHost Example", "vhssl"]``."""
        if isinstance(path, str):
            path = [path]
        level = [self.root]
        for selector in path:
            level = [child for block in level for child in block.blocks if child.matches(selector)]
        return level

    def _value(self, node: OlsBlock, key: str) -> str | None:
        return node.value(key)

    # -- editing ---------------------------------------------------------------------
    def _eol(self) -> str:
        for line in self.lines:
            eol = _split_eol(line)[1]
            if eol:
                return eol
        return "\n"

    def set(self, path, key: str, value: str) -> bool:
        """Set ``key`` in the first block matching ``path``; True when the text changed.

        An existing entry keeps its spelling, indentation and alignment (every duplicate is
        set, so the server cannot pick an old one); a new one goes after the block's other
        stapling keys, or last, aligned like its neighbours.
        """
        if "\n" in value or "\r" in value:
            raise LiteSpeedConfigError("%s: the value for %s must be a single line, got %r."
                                       % (self.source, key, value))
        block = self.first(path)
        entries = [d for d in block.directives if d.key.lower() == key.lower()]
        if entries and all(d.value == value and d.first == d.last for d in entries):
            return False
        if entries:
            for entry in reversed(entries):
                body, eol = _split_eol(self.lines[entry.first])
                match = _DIRECTIVE_RE.match(body)
                sep = match.group("sep") or " " * max(
                    1, _value_column(block, self.lines) - len(match.group("indent") + entry.key))
                trail = match.group("trail") if entry.first == entry.last else ""
                eol = _split_eol(self.lines[entry.last])[1] or eol
                self.lines[entry.first:entry.last + 1] = [
                    match.group("indent") + entry.key + sep + value + trail + eol]
        else:
            self._insert(block, key, value)
        self.root = self._parse()
        return True

    def remove(self, path, key: str) -> bool:
        """Remove every ``key`` entry from the first block matching ``path``."""
        found = self.find(path)
        if not found:
            return False
        entries = [d for d in found[0].directives if d.key.lower() == key.lower()]
        if not entries:
            return False
        for entry in reversed(entries):
            del self.lines[entry.first:entry.last + 1]
        self.root = self._parse()
        return True

    def _insert(self, block: OlsBlock, key: str, value: str) -> None:
        siblings = [d for d in block.directives if d.key.lower() in {k.lower() for k in STAPLING_KEYS}]
        if siblings:
            position = siblings[-1].last + 1
        elif block.close_line >= 0 and block is not self.root:
            position = block.close_line
        else:
            position = len(self.lines)
        if block.directives:
            reference = block.directives[-1]
            indent = _DIRECTIVE_RE.match(_split_eol(self.lines[reference.first])[0]).group("indent")
        else:
            indent = block.indent + self._indent_unit() if block is not self.root else ""
        pad = " " * max(1, _value_column(block, self.lines) - len(indent + key))
        eol = self._eol()
        if position > 0 and not _split_eol(self.lines[position - 1])[1]:
            self.lines[position - 1] += eol  # the file ended without a newline
        self.lines.insert(position, indent + key + pad + value + eol)

    def _indent_unit(self) -> str:
        """The indentation step the file uses inside top-level blocks ("  " if none)."""
        for block in self.root.blocks:
            for entry in block.directives:
                indent = _DIRECTIVE_RE.match(_split_eol(self.lines[entry.first])[0]).group("indent")
                if len(indent) > len(block.indent):
                    return indent[len(block.indent):]
        return "  "


def _value_column(block: OlsBlock, lines: list | None = None) -> int:
    """The column values start at in ``block`` (the last aligned entry decides)."""
    if lines is None:
        return 0
    for entry in reversed(block.directives):
        body = _split_eol(lines[entry.first])[0]
        match = _DIRECTIVE_RE.match(body)
        if match and match.group("sep") and match.group("value"):
            return len(match.group("indent") + match.group("key") + match.group("sep"))
    return 0


def _as_list(path) -> list:
    return [path] if isinstance(path, str) else list(path)


# --------------------------------------------------------------------------------------
# LSWS Enterprise XML
# --------------------------------------------------------------------------------------

_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")


@dataclass
class XmlNode:
    """An element and its byte span: ``start`` at '<', ``inner_start`` after the start tag,
    ``inner_end`` at the end tag's '</', ``end`` after it (inner_* == end when empty)."""

    tag: str
    start: int
    inner_start: int = 0
    inner_end: int = 0
    end: int = 0
    empty: bool = False
    text: str = ""
    children: list = field(default_factory=list)

    def child(self, tag: str):
        for node in self.children:
            if node.tag == tag:
                return node
        return None

    def child_text(self, tag: str) -> str | None:
        node = self.child(tag)
        return None if node is None else node.text.strip()


def _tag_end(data: bytes, offset: int) -> int:
    """Offset just after the '>' closing the tag that starts at ``offset``."""
    quote = None
    for index in range(offset, len(data)):
        char = data[index:index + 1]
        if quote:
            if char == quote:
                quote = None
        elif char in (b'"', b"'"):
            quote = char
        elif char == b">":
            return index + 1
    raise LiteSpeedConfigError("unterminated tag at byte %d" % offset)


class LswsXml(_Lookup):
    """A lossless LSWS XML document: the original bytes plus a tree of element spans."""

    NODE = "element"
    SEPARATOR = "/"

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.source = source
        self.data = data
        match = _XML_DECL_ENCODING.match(data)
        self.encoding = match.group(1).decode("ascii") if match else "utf-8"
        self.root = self._parse()

    def _parse(self) -> XmlNode:
        parser = expat.ParserCreate()
        stack: list = []
        holder: list = []
        data = self.data

        def start(tag, _attrs):
            offset = parser.CurrentByteIndex
            tag_end = _tag_end(data, offset)
            node = XmlNode(tag=tag, start=offset, inner_start=tag_end,
                           empty=data[tag_end - 2:tag_end] == b"/>")
            if stack:
                stack[-1].children.append(node)
            else:
                holder.append(node)
            stack.append(node)

        def end(_tag):
            node = stack.pop()
            if node.empty:
                node.inner_end = node.end = node.inner_start
            else:
                node.inner_end = parser.CurrentByteIndex
                node.end = _tag_end(data, node.inner_end)

        def chars(text):
            if stack:
                stack[-1].text += text

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = chars
        try:
            parser.Parse(data, True)
        except expat.ExpatError as exc:
            raise LiteSpeedConfigError(
                "%s is not well-formed XML (%s). Expected a configuration LiteSpeed itself "
                "wrote; fix the file or restore it from a backup, then run again."
                % (self.source, exc)) from None
        return holder[0]

    def find(self, path) -> list:
        """Elements under the root along ``path`` (tag names); a step ``tag[name=X]``
        keeps only elements whose ``<name>`` child reads X."""
        level = [self.root]
        for step in _as_list(path):
            wanted = index = None
            if "[name=" in step:
                step, wanted = step[:-1].split("[name=", 1)
            elif "[#" in step:  # the Nth element with that tag (members have no <name>)
                step, number = step[:-1].split("[#", 1)
                index = int(number)
            level = [child for node in level for child in node.children
                     if child.tag == step and (wanted is None or child.child_text("name") == wanted)]
            if index is not None:
                level = level[index:index + 1]
        return level

    def _value(self, node: XmlNode, key: str) -> str | None:
        return node.child_text(key)

    def _replace(self, begin: int, finish: int, new: bytes) -> None:
        self.data = self.data[:begin] + new + self.data[finish:]
        self.root = self._parse()

    def set(self, path, key: str, value: str) -> bool:
        node = self.first(path)
        encoded = _xml_escape(value).encode(self.encoding)
        entries = [c for c in node.children if c.tag == key]
        if entries and all(c.text.strip() == value and not c.children for c in entries):
            return False
        if entries:
            for entry in reversed(entries):
                if entry.empty:
                    self._replace(entry.start, entry.end,
                                  b"<" + key.encode() + b">" + encoded + b"</" + key.encode() + b">")
                else:
                    self._replace(entry.inner_start, entry.inner_end, encoded)
            return True
        element = b"<" + key.encode() + b">" + encoded + b"</" + key.encode() + b">"
        siblings = [c for c in node.children if c.tag in STAPLING_KEYS]
        anchor = siblings[-1] if siblings else (node.children[-1] if node.children else None)
        if anchor is not None:
            separator = self._leading_space(node, anchor)
            self._replace(anchor.end, anchor.end, separator + element)
        else:
            line_start = self.data.rfind(b"\n", 0, node.start) + 1
            indent = self.data[line_start:node.start]
            indent = indent if not indent.strip() else b""
            newline = b"\r\n" if b"\r\n" in self.data else b"\n"
            inner = self.data[node.inner_start:node.inner_end]
            if node.empty:
                tag = node.tag.encode()
                self._replace(node.start, node.end, b"<" + tag + b">" + newline + indent + b"    "
                              + element + newline + indent + b"</" + tag + b">")
            elif not inner.strip():
                self._replace(node.inner_start, node.inner_end,
                              newline + indent + b"    " + element + newline + indent)
            else:
                self._replace(node.inner_end, node.inner_end, element)
        return True

    def _leading_space(self, parent: XmlNode, child: XmlNode) -> bytes:
        """The whitespace before ``child`` (from its previous sibling or the parent's start
        tag), reused so a new element lines up with its neighbours."""
        index = parent.children.index(child)
        begin = parent.children[index - 1].end if index else parent.inner_start
        gap = self.data[begin:child.start]
        if gap.strip():
            newline = gap.rfind(b"\n")
            gap = gap[newline:] if newline >= 0 and not gap[newline:].strip() else b"\n"
        return gap or b"\n"

    def remove(self, path, key: str) -> bool:
        found = self.find(path)
        if not found:
            return False
        entries = [c for c in found[0].children if c.tag == key]
        if not entries:
            return False
        for _entry in entries:
            node = self.first(path)
            current = [c for c in node.children if c.tag == key][-1]
            index = node.children.index(current)
            begin = node.children[index - 1].end if index else node.inner_start
            if self.data[begin:current.start].strip():  # keep a comment before it
                begin = current.start
            self._replace(begin, current.end, b"")
        return True

    def check(self) -> ET.Element:
        """Parse the current bytes with ElementTree: proof the edit left well-formed XML."""
        try:
            return ET.fromstring(self.data)
        except ET.ParseError as exc:  # pragma: no cover - expat accepted the same bytes
            raise LiteSpeedConfigError("%s: edit produced invalid XML (%s); nothing was written."
                                       % (self.source, exc)) from None


# --------------------------------------------------------------------------------------
# Planning a stapling change over a server root
# --------------------------------------------------------------------------------------

@dataclass
class StaplingSettings:
    """What the operator asked for. ``None`` leaves a key as it is; an empty string removes
    ``ocspResponder`` / ``ocspCACerts`` so the server falls back to its own default (the
    certificate's AIA URL, ``CACertFile``).

    ``originals`` is the record of what the operator's files held before the collection
    first changed a key (:func:`record_originals`): ``{target id: {key: {"original": value
    or None, "applied": value}}}``. ``absent`` puts those values back; ``disabled`` does the
    same for a target whose original had stapling off (a missing ``enableStapling`` is off,
    default 0), so enable then disable gives back the original keys, absent staying absent.
    """

    state: str = "enabled"
    max_age: int | None = None
    responder: str | None = None
    ca_certs: str | None = None
    originals: dict = field(default_factory=dict)

    def operations(self) -> list:
        ops = [(ENABLE_KEY, "1" if self.state == "enabled" else "0")]
        if self.max_age is not None:
            ops.append((MAX_AGE_KEY, str(self.max_age)))
        if self.responder is not None:
            ops.append((RESPONDER_KEY, self.responder or None))
        if self.ca_certs is not None:
            ops.append((CA_CERTS_KEY, self.ca_certs or None))
        return ops


@dataclass
class StaplingTarget:
    """A listener, virtual host or vhost template whose SSL settings the plan edits.

    ``segments`` are the places the block's keys are read from, in the server's order: the
    block itself, then the files its ``include`` lines pull in (OpenLiteSpeed splices an
    included file into the block holding the ``include``). ``path`` and ``block`` are the
    first segment, where a new key goes.
    """

    kind: str  # "listener", "vhost" or "template"
    name: str
    path: str  # file holding the SSL block
    block: object  # OLS selector list or XML element path
    address: str = ""
    vh_root: str = ""
    segments: list = field(default_factory=list)  # [(path, block)]
    names: list = field(default_factory=list)  # vhDomain + vhAliases, $VH_NAME expanded
    members: list = field(default_factory=list)  # a template's member vhosts
    listeners: list = field(default_factory=list)  # a template's listeners
    maps: list = field(default_factory=list)  # a listener's [(vhost, [domains])]
    changes: dict = field(default_factory=dict)  # key -> [before, after]
    referenced_files: dict = field(default_factory=dict)  # key -> resolved path

    @property
    def id(self) -> str:
        return "%s:%s" % (self.kind, self.name)

    def as_dict(self) -> dict:
        out = {"kind": self.kind, "name": self.name, "file": self.path, "names": list(self.names),
               "changes": {k: {"before": v[0], "after": v[1]} for k, v in self.changes.items()},
               "certificates": sorted(v for k, v in self.referenced_files.items() if k.startswith("certFile"))}
        if self.kind == "template":
            out["members"] = [m["name"] for m in self.members]
        return out


@dataclass
class StaplingPlan:
    flavor: str
    server_root: str
    main_config: str
    targets: list = field(default_factory=list)
    before: dict = field(default_factory=dict)  # path -> original bytes
    after: dict = field(default_factory=dict)  # path -> edited bytes
    notes: list = field(default_factory=list)  # things skipped, for warnings
    error_log: str = ""  # the server's error log, as the main config sets it

    @property
    def changed_files(self) -> list:
        return sorted(p for p in self.after if self.after[p] != self.before[p])

    def problems(self) -> list:
        """Referenced files missing or unreadable, one sentence each."""
        found = []
        for target in self.targets:
            for key, path in sorted(target.referenced_files.items()):
                if not os.path.exists(path):
                    found.append("%s %s: %s %s does not exist" % (target.kind, target.name, key, path))
                elif not os.access(path, os.R_OK):
                    found.append("%s %s: %s %s is not readable" % (target.kind, target.name, key, path))
        return found

    def probe_endpoints(self) -> list:
        """Host and port of each secure listener in the plan, for probing after a restart."""
        endpoints = []
        for target in self.targets:
            if target.kind != "listener" or not target.address:
                continue
            endpoint = address_to_endpoint(target.address)
            if endpoint:
                endpoint["listener"] = target.name
                endpoints.append(endpoint)
        return endpoints


def address_to_endpoint(address: str) -> dict | None:
    """``*:443`` -> 127.0.0.1:443, ``[::]:443`` -> ::1, ``192.0.2.1:443`` stays."""
    host, _sep, port = address.strip().rpartition(":")
    if not port.isdigit():
        return None
    host = host.strip("[]")
    if host in ("", "*", "0.0.0.0", "ANY"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return {"host": host, "port": int(port)}


def detect_flavor(server_root: str) -> str:
    if os.path.isfile(os.path.join(server_root, "conf", "httpd_config.conf")):
        return OPENLITESPEED
    if os.path.isfile(os.path.join(server_root, "conf", "httpd_config.xml")):
        return ENTERPRISE
    raise LiteSpeedConfigError(
        "Found neither conf/httpd_config.conf (OpenLiteSpeed) nor conf/httpd_config.xml "
        "(LiteSpeed Enterprise) under %s. Set server_root to the directory that holds "
        "LiteSpeed's conf/ (normally /usr/local/lsws)." % server_root)


def default_error_log(server_root: str) -> str:
    """``$SERVER_ROOT/logs/error.log``, where both flavours log unless ``errorlog`` moves it."""
    return os.path.join(server_root, "logs", "error.log")


def default_cache_dirs(server_root: str, flavor: str) -> list:
    """Where each flavour keeps OCSP responses on disk (docs.litespeedtech.com: LSWS
    ``/dev/shm/lsws/ocspcache/``; OpenLiteSpeed under its RAM disk, ``/dev/shm/ols/``, else
    ``$SERVER_ROOT/tmp/ocspcache/``; ``$SERVER_ROOT/temp/ocspcache/`` on old releases)."""
    shm = "/dev/shm/lsws/ocspcache" if flavor == ENTERPRISE else "/dev/shm/ols/ocspcache"
    return [shm, os.path.join(server_root, "tmp", "ocspcache"),
            os.path.join(server_root, "temp", "ocspcache")]


def resolve_path(value: str, server_root: str, vh_name: str = "", vh_root: str = "") -> str:
    """Expand LiteSpeed's ``$SERVER_ROOT``, ``$VH_NAME`` and ``$VH_ROOT``; relative paths are
    relative to the server root, as the manual says for every file setting."""
    path = value.replace("$VH_ROOT", vh_root.rstrip("/") if vh_root else "$VH_ROOT")
    path = path.replace("$SERVER_ROOT", server_root.rstrip("/")).replace("$VH_NAME", vh_name)
    if not os.path.isabs(path):
        path = os.path.join(server_root, path)
    return os.path.normpath(path)


class _OlsFile:
    def __init__(self, path: str, data: bytes) -> None:
        self.doc = OlsConfig(data.decode("utf-8", "surrogateescape"), source=path)

    def node(self, block):
        found = self.doc.find(block)
        return found[0] if found else None

    def get(self, block, key):
        return self.doc.get(block, key)

    def locate(self, block, key):
        """``(value, line)`` of the entry the server uses, or None."""
        node = self.node(block)
        entry = node.directive(key) if node is not None else None
        return None if entry is None else (entry.value, entry.first + 1)

    def line(self, block) -> int:
        node = self.node(block)
        return node.open_line + 1 if node is not None and node.open_line >= 0 else 1

    def set(self, block, key, value):
        return self.doc.set(block, key, value)

    def remove(self, block, key):
        return self.doc.remove(block, key)

    def render(self) -> bytes:
        return self.doc.text.encode("utf-8", "surrogateescape")


class _XmlFile:
    def __init__(self, path: str, data: bytes) -> None:
        self.doc = LswsXml(data, source=path)

    def _line(self, offset: int) -> int:
        return self.doc.data.count(b"\n", 0, offset) + 1

    def node(self, block):
        found = self.doc.find(block)
        return found[0] if found else None

    def get(self, block, key):
        return self.doc.get(block, key)

    def locate(self, block, key):
        node = self.node(block)
        if node is None:
            return None
        entries = [c for c in node.children if c.tag == key]
        return (entries[-1].text.strip(), self._line(entries[-1].start)) if entries else None

    def line(self, block) -> int:
        node = self.node(block)
        return self._line(node.start) if node is not None else 1

    def set(self, block, key, value):
        return self.doc.set(block, key, value)

    def remove(self, block, key):
        return self.doc.remove(block, key)

    def render(self) -> bytes:
        self.doc.check()
        return self.doc.data


def include_files(value: str, including_file: str, server_root: str, root: str = "/") -> list:
    """The files an OpenLiteSpeed ``include`` line pulls in, in the order it reads them.

    As plainconf::getIncludeFile and loadConfFile do: an absolute path, ``$SERVER_ROOT/...``,
    or a path relative to the including file's directory; a wildcard expands (sorted); a
    directory brings in its ``*.conf`` files and subdirectories, sorted, skipping names
    ending in ``~``; a path that does not exist is skipped by the server, so here too.
    """
    value = value.strip()
    if not value:
        return []
    if value.startswith("/"):
        path = value
    elif value.lower().startswith("$server_root/"):
        path = os.path.join(server_root, value[len("$server_root/"):])
    elif value.startswith("$"):
        return []
    else:
        path = os.path.join(os.path.dirname(including_file), value)
    path = os.path.normpath(path)
    host = host_path(root, path)
    if any(char in path for char in "*?["):
        return [found for match in sorted(server_view(root, m) for m in glob.glob(host))
                if match != including_file
                for found in (include_files(match, including_file, server_root, root)
                              if os.path.isdir(host_path(root, match)) else [match])]
    if os.path.isdir(host):
        found = []
        for name in sorted(os.listdir(host)):
            full = os.path.join(path, name)
            if name.endswith("~"):
                continue
            if os.path.isdir(host_path(root, full)):
                found.extend(include_files(full, including_file, server_root, root))
            elif fnmatch.fnmatch(name, "*.conf"):
                found.append(full)
        return found
    return [path] if os.path.isfile(host) else []


class _Tree:
    """The files of one server root, opened once, and the block scopes across includes."""

    def __init__(self, server_root: str, flavor: str, root: str = "/") -> None:
        self.server_root = server_root
        self.flavor = flavor
        self.root = root
        self.files: dict = {}
        self.before: dict = {}
        self.notes: list = []

    def open(self, path: str):
        if path not in self.files:
            data = _read(host_path(self.root, path))
            self.before[path] = data
            self.files[path] = _OlsFile(path, data) if self.flavor == OPENLITESPEED else _XmlFile(path, data)
        return self.files[path]

    def exists(self, path: str) -> bool:
        return os.path.isfile(host_path(self.root, path))

    def segments(self, path: str, block, _seen=()) -> list:
        """``(path, block)`` and, recursively, the roots of the files its includes pull in."""
        found = [(path, block)]
        if self.flavor != OPENLITESPEED:
            return found
        node = self.open(path).node(block)
        if node is None:
            return found
        for entry in node.directives:
            if entry.key.lower() != "include":
                continue
            for included in include_files(entry.value, path, self.server_root, self.root):
                if included in _seen or included == path:
                    raise LiteSpeedConfigError(
                        "%s line %d: include %s pulls in %s, which includes it again. Expected "
                        "includes without a loop; remove one of them and run again."
                        % (path, entry.first + 1, entry.value.strip(), included))
                found.extend(self.segments(included, [], _seen + (path,)))
        return found

    def children(self, segments: list, kind: str) -> list:
        """``(name, [segments])`` of every child block of ``kind`` across ``segments``."""
        out = []
        for path, block in segments:
            handle = self.open(path)
            node = handle.node(block)
            if node is None:
                continue
            if self.flavor == OPENLITESPEED:
                for child in node.blocks:
                    if child.kind.lower() == kind.lower():
                        selector = list(block) + ["%s %s" % (child.kind, child.name) if child.name else child.kind]
                        out.append((child.name, self.segments(path, selector)))
            else:
                same = [child for child in node.children if child.tag == kind]
                for number, child in enumerate(same):
                    name = child.child_text("name") or child.child_text("vhName") or ""
                    step = "%s[name=%s]" % (kind, name) if child.child_text("name") else "%s[#%d]" % (kind, number)
                    out.append((name, [(path, list(block) + [step])]))
        return out

    def get(self, segments: list, key: str):
        value = None
        for path, block in segments:
            found = self.open(path).get(block, key)
            if found is not None:
                value = found
        return value

    def locate(self, segments: list, key: str):
        """``{value, file, line}`` of the entry the server uses, or None."""
        found = None
        for path, block in segments:
            hit = self.open(path).locate(block, key)
            if hit is not None:
                found = {"value": hit[0], "file": path, "line": hit[1]}
        return found

    def set(self, segments: list, key: str, value: str) -> bool:
        holders = [(p, b) for p, b in segments if self.open(p).get(b, key) is not None]
        changed = False
        for path, block in holders or segments[:1]:
            changed = self.open(path).set(block, key, value) or changed
        return changed

    def remove(self, segments: list, key: str) -> bool:
        changed = False
        for path, block in segments:
            changed = self.open(path).remove(block, key) or changed
        return changed


def _domains(value: str | None, vh_name: str) -> list:
    """``vhDomain`` / ``vhAliases`` as names, ``$VH_NAME`` expanded as the server does."""
    text = (value or "").replace("$VH_NAME", vh_name)
    return [d.strip() for d in text.replace(",", " ").split() if d.strip()]


def _listener_maps(tree: _Tree, segments: list) -> list:
    """``[(vhost, [domains])]`` of a listener: ``map VH dom, dom`` lines (text) or
    ``<vhostMapList><vhostMap>`` (XML)."""
    maps = []
    for path, block in segments:
        handle = tree.open(path)
        node = handle.node(block)
        if node is None:
            continue
        if tree.flavor == OPENLITESPEED:
            for entry in node.directives:
                if entry.key.lower() == "map":
                    vhost, _sep, domains = entry.value.strip().partition(" ")
                    maps.append((vhost.strip(), _domains(domains, vhost.strip())))
        else:
            holders = [c for c in node.children if c.tag == "vhostMapList"] + [node]
            for holder in holders:
                for mapping in holder.children:
                    if mapping.tag == "vhostMap":
                        vhost = mapping.child_text("vhost") or ""
                        maps.append((vhost, _domains(mapping.child_text("domain"), vhost)))
    return maps


def discover(server_root: str, flavor: str = "auto", root: str = "/") -> tuple:
    """Every listener, virtual host and vhost template under ``server_root``.

    Returns ``(tree, main config path, listeners, vhosts, error_log)``. Listeners are
    :class:`StaplingTarget` with ``address``, ``maps`` and a ``secure`` key readable through
    the tree; vhosts and templates are targets whose ``segments`` are their SSL block (empty
    when they have none). What OpenLiteSpeed does, read from its source:

    * a vhost's SSL context is built from its ``vhssl`` block alone (HttpVHost::config ->
      newSSLContext(vhssl)); nothing is inherited from the listener, and ``enableStapling``
      defaults to 0 there;
    * a ``vhTemplate`` member is configured from the template file's ``virtualHostConfig``
      (HttpServerImpl::configVHTemplateToListenerMap), so the template's ``vhssl`` is the
      member's, and editing it changes every member; ``vhDomain`` defaults to the member name;
    * ``include`` lines are spliced into the block that holds them (plainconf).
    """
    server_root = os.path.normpath(server_root)
    if flavor == "auto":
        flavor = detect_flavor(host_path(root, server_root)) if root != "/" else detect_flavor(server_root)
    main = os.path.join(server_root, "conf",
                        "httpd_config.conf" if flavor == OPENLITESPEED else "httpd_config.xml")
    tree = _Tree(server_root, flavor, root)
    if not tree.exists(main):
        raise LiteSpeedConfigError(
            "%s does not exist. Expected the %s main configuration there; check server_root "
            "and flavor." % (main, "OpenLiteSpeed" if flavor == OPENLITESPEED else "LiteSpeed Enterprise"))
    if flavor == OPENLITESPEED:
        top = tree.segments(main, [])
        listener_kind, vhost_kind, template_kind = "listener", "virtualHost", "vhTemplate"
        listener_scopes = tree.children(top, listener_kind)
        vhost_scopes = tree.children(top, vhost_kind)
        template_scopes = tree.children(top, template_kind)
        error_logs = [name for name, _segments in tree.children(top, "errorlog") if name]
    else:
        top = [(main, [])]
        listener_scopes = tree.children(tree.children(top, "listenerList")[0][1] if tree.children(top, "listenerList") else [], "listener")
        vhost_scopes = tree.children(tree.children(top, "virtualHostList")[0][1] if tree.children(top, "virtualHostList") else [], "virtualHost")
        template_scopes = tree.children(tree.children(top, "vhTemplateList")[0][1] if tree.children(top, "vhTemplateList") else [], "vhTemplate")
        error_logs = [tree.get(segments, "fileName") for _n, segments in
                      tree.children(tree.children(top, "logging")[0][1] if tree.children(top, "logging") else [], "log")]
        error_logs = [log for log in error_logs if (log or "").strip()]
    # "errorlog <file> { ... }" (text) or <logging><log><fileName> (XML); else the default.
    error_log = (resolve_path(error_logs[0].strip(), server_root) if error_logs
                 else default_error_log(server_root))

    listeners = []
    for name, segments in listener_scopes:
        target = StaplingTarget(kind="listener", name=name, path=segments[0][0], block=segments[0][1],
                                segments=segments, address=tree.get(segments, "address") or "")
        target.maps = _listener_maps(tree, segments)
        listeners.append(target)

    vhosts = []
    for name, segments in vhost_scopes:
        vh_root_value = tree.get(segments, "vhRoot")
        vh_root = resolve_path(vh_root_value, server_root, name) if vh_root_value else ""
        target = StaplingTarget(kind="vhost", name=name, path=main, block=None, vh_root=vh_root)
        names_from = segments
        ssl = tree.children(segments, "vhssl")
        config_file = tree.get(segments, "configFile")
        if not ssl and config_file:
            path = resolve_path(config_file, server_root, name, vh_root)
            if not tree.exists(path):
                tree.notes.append("virtual host %s: config file %s does not exist; skipped" % (name, path))
            else:
                conf = tree.segments(path, [])
                if flavor == ENTERPRISE:
                    holder = tree.children(conf, "virtualHostConfig")
                    conf = holder[0][1] if holder else conf
                names_from = segments + conf
                ssl = tree.children(conf, "vhssl")
        elif not ssl:
            tree.notes.append("virtual host %s has no configFile and no SSL block; skipped" % name)
        # without vhDomain the server uses the vhost name; the listeners' map lines name the
        # real domains then, so only a configured vhDomain is listed here
        target.names = _domains(tree.get(names_from, "vhDomain"), name) + list(
            _domains(tree.get(names_from, "vhAliases"), name))
        if ssl:
            target.segments = ssl[0][1]
            target.path, target.block = target.segments[0]
        vhosts.append(target)

    for name, segments in template_scopes:
        template_file = tree.get(segments, "templateFile")
        target = StaplingTarget(kind="template", name=name, path=main, block=None)
        target.listeners = [w.strip() for w in (tree.get(segments, "listeners") or "").split(",") if w.strip()]
        members = tree.children(segments, "member")
        if flavor == OPENLITESPEED:  # "member NAME" on one line: the value is the name
            for path, block in segments:
                node = tree.open(path).node(block)
                for entry in node.directives if node is not None else []:
                    if entry.key.lower() == "member" and entry.value.strip():
                        members.append((entry.value.strip(), []))
        for member_name, member in members:
            member_name = member_name or tree.get(member, "vhName") or ""
            if member_name:
                target.members.append({
                    "name": member_name,
                    "names": _domains(tree.get(member, "vhDomain") or member_name, member_name)
                    + _domains(tree.get(member, "vhAliases"), member_name)})
        target.names = [n for m in target.members for n in m["names"]]
        if not template_file:
            tree.notes.append("vhost template %s has no templateFile; skipped" % name)
        else:
            path = resolve_path(template_file, server_root)
            if not tree.exists(path):
                tree.notes.append("vhost template %s: template file %s does not exist; skipped" % (name, path))
            else:
                conf = tree.children(tree.segments(path, []), "virtualHostConfig")
                ssl = tree.children(conf[0][1], "vhssl") if conf else []
                if ssl:
                    target.segments = ssl[0][1]
                    target.path, target.block = target.segments[0]
                    vh_root_value = tree.get(tree.segments(path, []), "vhRoot")
                    target.vh_root = vh_root_value or ""
        vhosts.append(target)
    return tree, main, listeners, vhosts, error_log


def _select(kind: str, available: list, wanted: list, main_config: str) -> list:
    if any(w == "all" for w in wanted):
        return available
    names = []
    for target in available:
        names.append(target.name)
        names.extend(m["name"] for m in target.members)
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise LiteSpeedConfigError(
            "No %s named %s in %s. Found: %s. Use one of those names or 'all'."
            % (kind, ", ".join(sorted(unknown)), main_config, ", ".join(names) or "none"))
    return [t for t in available if t.name in wanted or any(m["name"] in wanted for m in t.members)]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise LiteSpeedConfigError("Cannot read %s (%s). Expected a readable LiteSpeed "
                                   "configuration file; check the path and permissions."
                                   % (path, exc.strerror)) from None


def _restore_operations(target: StaplingTarget, recorded: dict, tree: _Tree, notes: list) -> list:
    """Put back what ``recorded`` says the operator had, key by key; a key changed since the
    collection set it (WebAdmin, by hand) is the operator's again and left alone."""
    ops = []
    for key, entry in sorted(recorded.items()):
        current = tree.get(target.segments, key)
        if current != entry.get("applied"):
            notes.append("%s %s: %s is %s now, not the %s this collection set, so it was "
                         "changed since and is left as it is"
                         % (target.kind, target.name, key, _show(current), _show(entry.get("applied"))))
            continue
        ops.append((key, entry.get("original")))
    return ops


def _show(value) -> str:
    return "absent" if value is None else repr(value)


def _originally_off(recorded: dict) -> bool:
    entry = recorded.get(ENABLE_KEY)
    return entry is not None and (entry.get("original") or "0").strip() != "1"


def plan_stapling(server_root: str, settings: StaplingSettings, listeners=("all",),
                  vhosts=("all",), flavor: str = "auto") -> StaplingPlan:
    """Compute the edits for ``settings`` on the listeners and vhosts asked for.

    Reads files only. Secure listeners are listener targets; a vhost (or a vhost template,
    selected by its name or a member's) is a target when it has its own SSL block
    (``vhssl``). A vhost without one serves TLS with its listener's context, so it is
    noted and skipped.
    """
    tree, main, found_listeners, found_vhosts, error_log = discover(server_root, flavor)
    plan = StaplingPlan(flavor=tree.flavor, server_root=tree.server_root, main_config=main)
    plan.error_log = error_log
    plan.notes.extend(tree.notes)

    for target in _select("listener", found_listeners, list(listeners), main):
        secure = tree.get(target.segments, "secure")
        if (secure or "0").strip() != "1":
            if not any(w == "all" for w in listeners):
                plan.notes.append("listener %s is not secure (secure %s), so it has no OCSP "
                                  "stapling to change; skipped" % (target.name, secure or "unset"))
            continue
        plan.targets.append(target)

    for target in _select("virtual host", found_vhosts, list(vhosts), main):
        if not target.segments:
            if not any(w == "all" for w in vhosts) or target.kind == "template":
                plan.notes.append("%s %s has no vhssl block, so it serves TLS with its listener's "
                                  "certificate and stapling setting; skipped"
                                  % ("vhost template" if target.kind == "template" else "virtual host", target.name))
            continue
        if target.kind == "template" and not any(w == "all" for w in vhosts):
            others = [m["name"] for m in target.members if m["name"] not in vhosts]
            if others:
                plan.notes.append("vhost template %s: its vhssl block is shared, so the change also "
                                  "applies to %s" % (target.name, ", ".join(others)))
        plan.targets.append(target)

    for target in plan.targets:
        recorded = settings.originals.get(target.id) or {}
        if settings.state == "absent" or (settings.state == "disabled" and _originally_off(recorded)):
            operations = _restore_operations(target, recorded, tree, plan.notes)
        else:
            operations = settings.operations()
        for key, value in operations:
            before = tree.get(target.segments, key)
            if key == ENABLE_KEY and value == "0" and before is None:
                continue  # no enableStapling means stapling is off: nothing to write
            if value is None:
                changed = tree.remove(target.segments, key)
            else:
                changed = tree.set(target.segments, key, value)
            after = tree.get(target.segments, key)
            if changed:
                target.changes[key] = [before, after]
        for key in REFERENCED_FILE_KEYS:
            value = tree.get(target.segments, key)
            if value is None or (key == "certChain" and value.strip() in _FLAG_VALUES) or not value.strip():
                continue
            if "$VH_NAME" in value and target.kind == "template":
                for member in target.members:
                    target.referenced_files["%s (%s)" % (key, member["name"])] = resolve_path(
                        value.strip(), plan.server_root, member["name"],
                        resolve_path(target.vh_root, plan.server_root, member["name"]) if target.vh_root else "")
                continue
            target.referenced_files[key] = resolve_path(value.strip(), plan.server_root,
                                                        target.name if target.kind == "vhost" else "",
                                                        target.vh_root)

    for path, handle in tree.files.items():
        plan.before[path] = tree.before[path]
        plan.after[path] = handle.render()
    return plan


def record_originals(plan: StaplingPlan, state: str, originals: dict) -> dict:
    """The record after ``plan`` is live: the first value the collection replaced stays the
    original; ``applied`` follows each change. A restored target leaves the record, the
    keys changed since by someone else too: they are the operator's values now."""
    originals = originals or {}
    record = {target_id: dict(keys) for target_id, keys in originals.items()}
    for target in plan.targets:
        if state == "absent" or (state == "disabled" and _originally_off(originals.get(target.id) or {})):
            record.pop(target.id, None)
            continue
        keys = record.setdefault(target.id, {})
        for key, (before, after) in target.changes.items():
            entry = keys.setdefault(key, {"original": before})
            entry["applied"] = after
        if not keys:
            del record[target.id]
    return record


def stale_cache_files(cache_dirs) -> list:
    """Files under existing OCSP cache directories (directories themselves are kept:
    LiteSpeed's docs say to remove the cache files, never the folder)."""
    found = []
    for directory in cache_dirs:
        if not os.path.isdir(directory):
            continue
        for current, _dirs, names in os.walk(directory):
            for name in sorted(names):
                found.append(os.path.join(current, name))
    return found
