"""The nginx editor on the shapes operators write: several TLS server blocks in one file,
blocks without any stapling line, directives over several lines with comments, stapling set
at http level. Every planned output goes through the real ``nginx -t``; every restore must
give the files back byte for byte."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import plan as ns
from tests.unit.servers.nginx.plan_helpers import PRIVATE, PRIVATE_HTTP, apply, effective, nginx_t, pending, request, snapshot
from tests.unit.ocsp_helpers import make_pki

MAIN = PRIVATE + """\
events {{ worker_connections 64; }}
http {{
""" + PRIVATE_HTTP + """\
{http}
    include {conf}/sites/*.conf;
}}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def tree(root: Path, sites: dict[str, str], http: str = "", **values) -> Path:
    conf = root / "etc" / "nginx"
    (conf / "sites").mkdir(parents=True)
    (conf / "conf.d").mkdir()
    main = conf / "nginx.conf"
    main.write_text(MAIN.format(root=root, conf=conf, http=http))
    for name, text in sites.items():
        (conf / "sites" / name).write_bytes(text.format(**values).encode())
    return main


def certs(pki) -> dict[str, str]:
    return {f"{name}_{part}": str(getattr(leaf, f"{part}_path"))
            for name, leaf in pki.leaves.items() for part in ("fullchain", "key")} | {
        "trusted": str(pki.trusted_chain)}


def round_trip(main: Path, pki, state: str, **kwargs) -> dict:
    """Plan ``state``, apply it, nginx -t it; then absent: byte-identical again."""
    root = main.parents[2]
    apply(ns.plan(request(main, pki, state="absent")))  # from the operator's files
    before = snapshot(main.parent)
    planned = ns.plan(request(main, pki, state=state, **kwargs))
    assert planned["problems"] == [], planned["problems"]
    apply(planned)
    test = nginx_t(root, main)
    assert test.returncode == 0, test.stderr
    assert pending(ns.plan(request(main, pki, state=state, **kwargs))) == [], "the plan is not idempotent"
    after = effective(main)
    apply(ns.plan(request(main, pki, state="absent")))
    assert snapshot(main.parent) == before
    return dict(planned, effective=after)


THREE_BLOCKS = """\
# three sites, one file
server {{
    listen 127.0.0.1:8443 ssl;
    server_name one.lab.test;
    ssl_certificate {good_fullchain};
    ssl_certificate_key {good_key};
    ssl_stapling on;
    ssl_stapling_verify on;
    ssl_trusted_certificate {trusted};
}}

server {{
    listen 127.0.0.1:8443 ssl;
    server_name two.lab.test;
    ssl_certificate {muststaple_fullchain};
    ssl_certificate_key {muststaple_key};
    ssl_stapling on;
    ssl_stapling_verify on;
    ssl_trusted_certificate {trusted};
    location / {{ return 200 "two\\n"; }}
}}

server {{
    listen 127.0.0.1:8443 ssl;
    server_name three.lab.test;
    ssl_certificate {revoked_fullchain};
    ssl_certificate_key {revoked_key};
    ssl_stapling on;
    ssl_stapling_verify on;
    ssl_trusted_certificate {trusted};
}}
"""


def test_disable_three_blocks_in_one_file_comments_each_ssl_stapling_line(tmp_path, pki):
    main = tree(tmp_path, {"all.conf": THREE_BLOCKS}, **certs(pki))
    planned = ns.plan(request(main, pki, state="disabled"))
    assert planned["problems"] == []
    apply(planned)
    text = (main.parent / "sites" / "all.conf").read_text()
    assert text.count("# ocsp.stapling replaced: ssl_stapling on;\n") == 3
    assert "replaced: ssl_certificate_key" not in text and "replaced: ssl_stapling_verify" not in text
    for name in ("one", "two", "three"):
        assert f"    # ocsp.stapling replaced: ssl_stapling on;\n    include {main.parent}/ocsp-stapling/sites/" \
               f"{name}.lab.test.conf; # ocsp.stapling managed include\n" in text
    result = round_trip(main, pki, "disabled")
    assert result["effective"] == {"one.lab.test": "off", "two.lab.test": "off", "three.lab.test": "off"}


NO_STAPLING = """\
server {{
  listen 127.0.0.1:8443 ssl;
  server_name www.one.lab.test;
  ssl_certificate {good_fullchain};
  ssl_certificate_key {good_key};
  return 301 https://one.lab.test$request_uri;
}}
server {{
  # the canonical host
  listen 127.0.0.1:8443 ssl;

  server_name one.lab.test;
  ssl_certificate {good_fullchain};
  ssl_certificate_key {good_key};
}}
server
{{
  listen 127.0.0.1:8443 ssl;
  server_name cpanel.one.lab.test;
  ssl_certificate {good_fullchain};
  ssl_certificate_key {good_key};
}}
"""


def test_enable_blocks_without_any_stapling_line_in_one_file(tmp_path, pki):
    main = tree(tmp_path, {"one.conf": NO_STAPLING}, **certs(pki))
    planned = ns.plan(request(main, pki, state="enabled", placement="server",
                              tuning={"ssl_stapling_verify": True}))
    assert planned["problems"] == []
    apply(planned)
    lines = (main.parent / "sites" / "one.conf").read_text().splitlines()
    includes = [i for i, line in enumerate(lines) if line.endswith(ns.INCLUDE_TAG)]
    assert len(includes) == 3
    # each include line opens its block: right after the line holding the block's '{'
    assert [lines[i - 1] for i in includes] == ["server {", "server {", "{"]
    assert all(lines[i].startswith("  include ") for i in includes)
    result = round_trip(main, pki, "enabled", placement="server", tuning={"ssl_stapling_verify": True})
    assert set(result["effective"].values()) == {"on"}


def test_disable_blocks_without_any_stapling_line_needs_no_edit(tmp_path, pki):
    # nginx's default is ssl_stapling off: nothing to turn off, nothing refused.
    main = tree(tmp_path, {"one.conf": NO_STAPLING}, **certs(pki))
    planned = ns.plan(request(main, pki, state="disabled"))
    assert planned["problems"] == [] and planned["operator_files"] == []
    assert {s["action"] for s in planned["sites"]} == {"disable"}
    assert set(round_trip(main, pki, "disabled")["effective"].values()) == {None}


def test_block_opened_on_the_line_of_its_first_directive(tmp_path, pki):
    text = ("server {{ listen 127.0.0.1:8443 ssl;\n"
            "    server_name one.lab.test;\n    ssl_certificate {good_fullchain};\n"
            "    ssl_certificate_key {good_key}; }}\n"
            "server {{ listen 127.0.0.1:8443 ssl; server_name two.lab.test;\n"
            "    ssl_certificate {good_fullchain}; ssl_certificate_key {good_key};\n"
            "    ssl_stapling on; }}\n")
    main = tree(tmp_path, {"a.conf": text}, **certs(pki))
    result = round_trip(main, pki, "enabled", placement="server", tuning={})
    assert set(result["effective"].values()) == {"on"}
    # 'ssl_stapling on;' shares its line with '}': already on, nothing to replace for enable;
    # disabling has to replace it, and says why it cannot.
    refused = ns.plan(request(main, pki, state="disabled"))
    assert any("a.conf:7" in p and "ssl_stapling" in p and "own line" in p for p in refused["problems"])


def test_whole_block_on_one_line_is_refused_with_a_reason(tmp_path, pki):
    text = "server {{ listen 127.0.0.1:8443 ssl; server_name one.lab.test; " \
           "ssl_certificate {good_fullchain}; ssl_certificate_key {good_key}; }}\n"
    main = tree(tmp_path, {"a.conf": text}, **certs(pki))
    refused = ns.plan(request(main, pki, state="enabled", placement="server", tuning={}))
    assert any("a.conf:1" in p and "one line" in p for p in refused["problems"]), refused["problems"]


H5BP_OCSP = """\
# ----------------------------------------------------------------------
# | OCSP stapling, one snippet per server block                        |
# ----------------------------------------------------------------------

ssl_stapling on;
ssl_stapling_verify on;

resolver
  # (1) first resolver
  127.0.0.1 [::1]
  # (2) a second one
  127.0.0.2
  # (3) off for now
  # 127.0.0.3
  valid=60s;
resolver_timeout 2s;
"""

H5BP_SITE = """\
server {{
  listen 127.0.0.1:8443 ssl;

  server_name www.one.lab.test;

  include {conf}/h5bp/ocsp_stapling.conf;
  ssl_certificate {good_fullchain};
  ssl_certificate_key {good_key};
  ssl_trusted_certificate {trusted};

  return 301 https://one.lab.test$request_uri;
}}


server {{
  listen 127.0.0.1:8443 ssl;

  # The host name to respond to
  server_name one.lab.test;

  include {conf}/h5bp/ocsp_stapling.conf;
  ssl_certificate {good_fullchain};
  ssl_certificate_key {good_key};
  ssl_trusted_certificate {trusted};
}}
"""


def h5bp_tree(tmp_path: Path, pki) -> Path:
    conf = tmp_path / "etc" / "nginx"
    main = tree(tmp_path, {"one.conf": H5BP_SITE}, conf=conf, **certs(pki))
    (conf / "h5bp").mkdir()
    (conf / "h5bp" / "ocsp_stapling.conf").write_text(H5BP_OCSP)
    return main


def test_resolver_over_several_lines_with_comments_is_replaced_whole(tmp_path, pki):
    main = h5bp_tree(tmp_path, pki)
    tuning = {"resolver": ["127.0.0.53"], "ssl_stapling_verify": True}
    planned = ns.plan(request(main, pki, state="enabled", tuning=tuning))
    assert planned["problems"] == [], planned["problems"]
    apply(planned)
    snippet = (main.parent / "h5bp" / "ocsp_stapling.conf").read_text()
    assert "# ocsp.stapling replaced: resolver\n  # ocsp.stapling replaced: # (1) first resolver\n" in snippet
    assert "  # ocsp.stapling replaced: valid=60s;\nresolver_timeout 2s;\n" in snippet
    assert "replaced: ssl_stapling" not in snippet  # already on: kept
    result = round_trip(main, pki, "enabled", tuning=tuning)
    assert set(result["effective"].values()) == {"on"}
    assert set(effective(main, "resolver").values()) == {"127.0.0.1 [::1] 127.0.0.2 valid=60s"}


def test_snippet_shared_by_two_blocks_disables_both(tmp_path, pki):
    main = h5bp_tree(tmp_path, pki)
    result = round_trip(main, pki, "disabled")
    assert result["effective"] == {"www.one.lab.test": "off", "one.lab.test": "off"}


def test_directive_sharing_its_lines_with_another_is_refused_saying_which(tmp_path, pki):
    main = h5bp_tree(tmp_path, pki)
    snippet = main.parent / "h5bp" / "ocsp_stapling.conf"
    snippet.write_text(snippet.read_text().replace("  valid=60s;\nresolver_timeout 2s;",
                                                   "  valid=60s; resolver_timeout 2s;"))
    refused = ns.plan(request(main, pki, state="enabled", tuning={"resolver": ["127.0.0.53"]}))
    assert any("ocsp_stapling.conf:8" in p and "'resolver'" in p and "own line" in p
               for p in refused["problems"]), refused["problems"]


HTTP_STAPLING = """\
    ssl_stapling on;
    ssl_stapling_verify on;
    ssl_trusted_certificate {trusted};
"""


def test_http_level_stapling_on_needs_no_edit_to_enable(tmp_path, pki):
    main = tree(tmp_path, {"all.conf": NO_STAPLING}, http=HTTP_STAPLING.format(trusted=pki.trusted_chain),
                **certs(pki))
    before = snapshot(main.parent)
    planned = ns.plan(request(main, pki, state="enabled", tuning={"ssl_stapling_verify": True}))
    assert planned["problems"] == []
    assert planned["operator_files"] == []
    assert [f for f in planned["files"] if f.get("state") != "absent"] == []
    assert {s["action"] for s in planned["sites"]} == {"enable"}
    apply(planned)
    assert snapshot(main.parent) == before
    # disabling still works, per server block (a second ssl_stapling at http level is a duplicate)
    result = round_trip(main, pki, "disabled")
    assert set(result["effective"].values()) == {"off"}
