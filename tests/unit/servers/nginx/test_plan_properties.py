"""Property tests on the nginx editor: for any valid file with any number of TLS server blocks,
written any way an operator might (indents, blank lines, comments, CRLF, directives over
several lines, a block's first directive on the line of its '{'), the plan passes the real
``nginx -t`` and does what it says, and ``absent`` gives the files back byte for byte."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import plan as ns
from tests.unit.servers.nginx.plan_helpers import PRIVATE, PRIVATE_HTTP, apply, effective, nginx_t, pending, request, snapshot
from tests.unit.ocsp_helpers import make_pki

LEAVES = ("good", "muststaple", "nourl", "revoked")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


indents = st.sampled_from(["", "  ", "    ", "\t"])
#: between two statements of a block: "same" keeps them on one line
separators = st.sampled_from(["\n", "\n", "\n\n", "\n    # a comment\n", "same"])


@st.composite
def resolver(draw) -> str:
    if draw(st.booleans()):
        return "resolver 127.0.0.1 valid=30s;"
    parts = ["resolver", "# first", "127.0.0.1", "# second", "127.0.0.2", "valid=60s;"]
    keep = [p for p in parts if not p.startswith("#") or draw(st.booleans())]
    return "\n  ".join(keep)


@st.composite
def server_block(draw, index: int) -> tuple[str, bool, str]:
    """(text, whether two statements share a line, leaf name)."""
    leaf = draw(st.sampled_from(LEAVES))
    statements = [f"listen 127.0.0.1:8443 ssl{' default_server' if index == 0 else ''};",
                  f"server_name s{index}.lab.test;",
                  f"ssl_certificate @PKI@/{leaf}.fullchain.pem;",
                  f"ssl_certificate_key @PKI@/{leaf}.key;"]
    optional = {
        "ssl_stapling": st.sampled_from(["ssl_stapling on;", "ssl_stapling off;"]),
        "ssl_stapling_verify": st.sampled_from(["ssl_stapling_verify on;", "ssl_stapling_verify off;"]),
        "ssl_trusted_certificate": st.just("ssl_trusted_certificate @PKI@/trusted-chain.pem;"),
        "resolver": resolver(),
        "location": st.sampled_from(['location / { return 200 "x\\n"; }',
                                     'location / {\n    return 200 "x\\n";\n}']),
        "comment": st.just("# operator's note"),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            statements.append(draw(strategy))
    statements = draw(st.permutations(statements))
    indent = draw(indents)
    opener = draw(st.sampled_from(["server {", "server\n{", "server {  # site"]))
    shared = False
    body = ""
    first = "\n" if opener.endswith("# site") else draw(st.sampled_from(["\n", "\n", "same"]))
    for position, statement in enumerate(statements):
        separator = first if position == 0 else draw(separators)
        if statement.startswith("#"):
            separator = "\n"  # a comment runs to the end of its line
        if separator == "same":
            if position and statements[position - 1].startswith("#"):
                separator = "\n"
            else:
                shared = True
                body += " "
                body += statement.replace("\n", "\n" + indent)
                continue
        body += separator.replace("\n", "\n" + indent) + statement.replace("\n", "\n" + indent)
    closer = "\n}\n" if statements[-1].startswith("#") or draw(st.booleans()) else " }\n"
    if closer == " }\n":
        shared = True
    return opener + body + closer, shared, leaf


@st.composite
def configurations(draw) -> dict:
    count = draw(st.integers(min_value=1, max_value=4))
    blocks = [draw(server_block(index)) for index in range(count)]
    split = draw(st.integers(min_value=1, max_value=count))  # blocks in the first file
    gaps = [draw(st.sampled_from(["", "\n", "\n# next site\n"])) for _block in blocks]
    files = {"a.conf": "".join(g + b[0] for g, b in zip(gaps[:split], blocks[:split])),
             "b.conf": "".join(g + b[0] for g, b in zip(gaps[split:], blocks[split:]))}
    if draw(st.booleans()):
        files = {k: v.replace("\n", "\r\n") for k, v in files.items()}
    return {"files": {k: v for k, v in files.items() if v}, "shared": any(b[1] for b in blocks),
            "leaves": {f"s{i}.lab.test": b[2] for i, b in enumerate(blocks)},
            "http": draw(st.sampled_from(["", "    ssl_stapling on;\n", "    ssl_stapling_verify on;\n"])),
            "state": draw(st.sampled_from(["enabled", "disabled"])),
            "tuning": draw(st.sampled_from([{}, {"ssl_stapling_verify": True},
                                            {"ssl_stapling_verify": True, "resolver": ["127.0.0.53"]}]))}


MAIN = PRIVATE + "events {{ worker_connections 64; }}\nhttp {{\n" + PRIVATE_HTTP + \
    "{http}    include {conf}/conf.d/*.conf;\n    include {conf}/sites/*.conf;\n}}\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=configurations())
def test_plan_then_restore_is_byte_identical_and_plan_passes_nginx_t(pki, case):
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        conf = root / "etc" / "nginx"
        (conf / "sites").mkdir(parents=True)
        (conf / "conf.d").mkdir()
        main = conf / "nginx.conf"
        main.write_text(MAIN.format(root=root, conf=conf, http=case["http"]))
        for name, text in case["files"].items():
            (conf / "sites" / name).write_bytes(text.replace("@PKI@", str(pki.trusted_chain.parent)).encode())
        live = nginx_t(root, main)
        assert live.returncode == 0, live.stderr  # the generator writes valid files only
        before = snapshot(conf)
        planned = ns.plan(request(main, pki, state=case["state"], tuning=case["tuning"]))
        event("refused" if planned["problems"] else "planned")
        if planned["problems"]:
            # Refused only where a directive to replace, or a whole block, shares its line.
            assert case["shared"], planned["problems"]
            assert all("shares its line" in p or "one line" in p for p in planned["problems"]), planned["problems"]
            return
        apply(planned)
        test = nginx_t(root, main)
        assert test.returncode == 0, test.stderr
        after = effective(main)
        for site, leaf in case["leaves"].items():
            if case["state"] == "disabled":
                assert after[site] in (None, "off"), site
            elif leaf != "nourl":
                assert after[site] == "on", site
        assert pending(ns.plan(request(main, pki, state=case["state"], tuning=case["tuning"]))) == []
        apply(ns.plan(request(main, pki, state="absent")))
        assert snapshot(conf) == before
