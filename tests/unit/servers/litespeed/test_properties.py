"""Property tests on the LiteSpeed editor: any valid file, any number of blocks, parsed and
rendered is byte-identical; plan (enable) then restore (absent) is byte-identical."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.litespeed.config import (
    LswsXml,
    OlsConfig,
    StaplingSettings,
    plan_stapling,
    record_originals,
)

KEY = st.sampled_from(["keyFile", "certFile", "certChain", "sslProtocol", "enableECDHE", "ciphers",
                       "enableStapling", "ocspRespMaxAge", "note", "CACertFile"])
VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/._-:%{} ", min_size=0, max_size=20).map(str.strip).filter(lambda v: not v.endswith("{"))
SPACE = st.sampled_from([" ", "  ", "\t", "                 "])
INDENT = st.sampled_from(["", "  ", "    ", "\t"])
EOL = st.sampled_from(["\n", "\r\n"])
COMMENT = st.sampled_from(["# note", "#", "  # indented note", ""])


@st.composite
def directive(draw, indent):
    value = draw(VALUE)
    return "%s%s%s%s" % (indent, draw(KEY), draw(SPACE) if value else "", value)


@st.composite
def block(draw, depth=0):
    indent = "  " * depth
    kind = draw(st.sampled_from(["vhssl", "listener SSL", "index", "context /x", "rewrite"]))
    lines = ["%s%s {" % (indent, kind) if draw(st.booleans()) else "%s%s{" % (indent, kind)]
    for _index in range(draw(st.integers(0, 5))):
        choice = draw(st.integers(0, 4 if depth < 2 else 3))
        if choice == 4:
            lines.extend(draw(block(depth + 1)))
        elif choice == 3:
            lines.append(draw(COMMENT))
        else:
            lines.append(draw(directive("  " * (depth + 1))))
    lines.append("%s}%s" % (indent, draw(st.sampled_from(["", " # end", "  "]))))
    return lines


@st.composite
def ols_file(draw):
    lines = []
    for _index in range(draw(st.integers(0, 6))):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            lines.extend(draw(block()))
        elif choice == 1:
            lines.append(draw(directive("")))
        else:
            lines.append(draw(COMMENT))
    eol = draw(EOL)
    return eol.join(lines) + (eol if draw(st.booleans()) else "")


@given(ols_file())
@settings(max_examples=300, deadline=None)
def test_any_ols_file_round_trips(text):
    assert OlsConfig(text).text == text


@st.composite
def xml_file(draw):
    eol = draw(EOL)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<virtualHostConfig>"]
    for _index in range(draw(st.integers(0, 4))):
        parts.append("  <vhssl>")
        for _index in range(draw(st.integers(0, 5))):
            key = draw(KEY)
            value = draw(VALUE).replace("<", "").replace("&", "")
            parts.append("    <%s>%s</%s>" % (key, value, key) if value or draw(st.booleans()) else "    <%s/>" % key)
        parts.append("  </vhssl>")
    parts.append("</virtualHostConfig>")
    return (eol.join(parts) + eol).encode()


@given(xml_file())
@settings(max_examples=200, deadline=None)
def test_any_lsws_xml_round_trips(data):
    assert LswsXml(data).data == data


@st.composite
def ols_tree(draw):
    """A main config with any number of secure listeners (inline keys) and vhosts whose
    vhconf.conf has a vhssl block with any subset of the stapling keys."""
    eol = draw(EOL)
    listeners = draw(st.integers(0, 3))
    vhosts = draw(st.integers(0, 3))
    main = ["serverName test"]
    vhconfs = {}
    for number in range(listeners):
        main.append("listener L%d {" % number)
        main.append("  address                 *:%d" % (8443 + number))
        main.append("  secure                  %d" % draw(st.integers(0, 1)))
        for key in draw(st.lists(st.sampled_from(["enableStapling", "ocspRespMaxAge", "certChain"]), unique=True)):
            main.append("  %s%s%s" % (key, draw(SPACE), draw(st.sampled_from(["0", "1", "3600"]))))
        main.append("}" + draw(st.sampled_from(["", " # L%d" % number])))
    for number in range(vhosts):
        name = "V%d" % number
        main.extend(["virtualhost %s {" % name, "  vhRoot /srv/%s/" % name,
                     "  configFile $SERVER_ROOT/conf/vhosts/$VH_NAME/vhconf.conf", "}"])
        lines = ["docRoot $VH_ROOT/html/", "vhssl  {"]
        for key in draw(st.lists(st.sampled_from(["enableStapling", "ocspRespMaxAge", "sslProtocol"]), unique=True)):
            lines.append("  %s%s%s" % (key, draw(SPACE), draw(st.sampled_from(["0", "1", "86400", "24"]))))
        lines.append("}")
        vhconfs[name] = eol.join(lines) + (eol if draw(st.booleans()) else "")
    return eol.join(main) + eol, vhconfs


@given(ols_tree(), st.one_of(st.none(), st.integers(60, 360000)), st.sampled_from(["absent", "disabled"]))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_plan_then_restore_is_byte_identical(tree, max_age, undo):
    main, vhconfs = tree
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "conf").mkdir()
        (root / "conf" / "httpd_config.conf").write_text(main, newline="")
        for name, text in vhconfs.items():
            (root / "conf" / "vhosts" / name).mkdir(parents=True)
            (root / "conf" / "vhosts" / name / "vhconf.conf").write_text(text, newline="")
        original = {p: p.read_bytes() for p in root.rglob("*.conf")}
        plan = plan_stapling(str(root), StaplingSettings(state="enabled", max_age=max_age))
        for path in plan.changed_files:
            Path(path).write_bytes(plan.after[path])
        record = record_originals(plan, "enabled", {})
        plan = plan_stapling(str(root), StaplingSettings(state=undo, originals=record))
        for path in plan.changed_files:
            Path(path).write_bytes(plan.after[path])
        now = {p: p.read_bytes() for p in root.rglob("*.conf")}
        if undo == "absent":
            assert now == original
        else:
            # every block is off, and a file whose blocks all had stapling off is the original
            for target in plan.targets:
                value = OlsConfig(Path(target.path).read_text()).get(target.block, "enableStapling")
                assert value != "1", (target.name, value)  # an invalid value reads as the default, 0
            for path in original:
                owners = [t for t in plan.targets if Path(t.path) == path]
                if owners and all(((record.get(t.id) or {}).get("enableStapling") or {"original": "1"})["original"]
                                  in (None, "0") for t in owners):
                    assert now[path] == original[path], path
        shutil.rmtree(root / "conf")
