"""nginx stapling plan: placement, marked edits, byte-for-byte restore, trusted chain, warnings."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import plan as ns
from tests.unit.ocsp_helpers import make_pki

MAIN = """\
user www-data;
worker_processes 2;
events { worker_connections 64; }
http {
    ssl_protocols TLSv1.2 TLSv1.3;
    include {conf}/conf.d/*.conf;
    include {conf}/sites-enabled/*;
}
"""

SITE = """\
server {{
    listen 127.0.0.1:8443 ssl;
    server_name {name};
    ssl_certificate {cert};
    ssl_certificate_key {key};
{extra}
    location / {{
        return 200 "{name}\\n";
    }}
}}
"""

STAPLING = ("    ssl_stapling on;\n    ssl_stapling_verify on;\n"
            "    ssl_trusted_certificate {trusted};\n")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def make_tree(root: Path, pki, sites=("good", "nourl", "muststaple"), stapling=True, extra=None) -> Path:
    conf = root / "etc" / "nginx"
    for sub in ("conf.d", "sites-available", "sites-enabled"):
        (conf / sub).mkdir(parents=True, exist_ok=True)
    (conf / "nginx.conf").write_text(MAIN.replace("{conf}", str(conf)))
    for name in sites:
        leaf = pki.leaves[name]
        body = STAPLING.format(trusted=pki.trusted_chain) if stapling else ""
        body += (extra or {}).get(name, "")
        available = conf / "sites-available" / name
        available.write_text(SITE.format(name=f"{name}.lab.test", cert=leaf.fullchain_path,
                                         key=leaf.key_path, extra=body))
        (conf / "sites-enabled" / name).symlink_to(available)
    return conf


def request(conf: Path, pki, **kwargs) -> ns.PlanRequest:
    return ns.PlanRequest(config=str(conf / "nginx.conf"), managed_dir=str(conf / "ocsp-stapling"),
                          http_include_file=str(conf / "conf.d" / "zz-ocsp-stapling.conf"),
                          ca_bundle=str(pki.ca_bundle), nginx_version="nginx version: nginx/1.22.1",
                          **kwargs)


def apply(result: dict) -> None:
    for entry in result["files"]:
        if entry.get("state") == "absent":
            if os.path.lexists(entry["path"]):
                os.unlink(entry["path"])
            continue
        Path(entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        Path(entry["path"]).write_bytes(entry["content"].encode("utf-8", "surrogateescape"))


def snapshot(conf: Path) -> dict[str, bytes]:
    return {str(p.relative_to(conf)): p.read_bytes() for p in sorted(conf.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def changes(result: dict) -> list[str]:
    """Paths whose planned content differs from what is on disk."""
    out = []
    for entry in result["files"]:
        path = Path(entry["path"])
        if entry.get("state") == "absent":
            if path.exists():
                out.append(str(path))
        elif not path.exists() or path.read_bytes() != entry["content"].encode("utf-8", "surrogateescape"):
            out.append(str(path))
    return out


def site(result: dict, key: str) -> dict:
    return next(s for s in result["sites"] if s["key"] == key)


# ------------------------------------------------------------------ certificates

def test_certificate_info_reads_ocsp_url_must_staple_and_name(pki):
    good = ns.certificate_info(ns.read_chain(str(pki.leaves["good"].fullchain_path))[0])
    nourl = ns.certificate_info(ns.read_chain(str(pki.leaves["nourl"].fullchain_path))[0])
    must = ns.certificate_info(ns.read_chain(str(pki.leaves["muststaple"].fullchain_path))[0])
    assert good["ocsp_urls"] == [pki.ocsp_url]
    assert good["common_name"] == "good.lab.test"
    assert not good["must_staple"]
    assert nourl["ocsp_urls"] == []
    assert must["must_staple"] and must["ocsp_urls"] == [pki.ocsp_url]


def test_trusted_chain_is_built_from_served_intermediate_and_bundle_root(pki):
    chain = ns.read_chain(str(pki.leaves["good"].fullchain_path))
    bundle = ns.read_chain(str(pki.ca_bundle))
    built, why = ns.build_trusted(chain, bundle)
    assert why == ""
    blocks = ns.pem_blocks(built)
    names = [ns.certificate_info(b)["common_name"] for b in blocks]
    assert names == ["Lab Intermediate CA", "Lab Root CA"]


def test_trusted_chain_without_root_in_bundle_says_why(pki):
    chain = ns.read_chain(str(pki.leaves["good"].fullchain_path))
    built, why = ns.build_trusted(chain, [])
    assert built is None
    assert "Lab Intermediate CA" in why and "CA bundle" in why


# ------------------------------------------------------------------ markers

def test_restore_text_undoes_include_and_replaced_lines_byte_for_byte():
    original = "server {\r\n    ssl_stapling on;  # keep\r\n    listen 443 ssl;\r\n}\r\n"
    line = original.splitlines(keepends=True)[1]
    edited = original.replace(line, ns.replaced_line(line) + ns.include_line("    ", "/x/y.conf", "\r\n"))
    assert "# ocsp.stapling replaced: ssl_stapling on;  # keep\r\n" in edited
    assert ns.restore_text(edited) == original
    assert ns.restore_text(original) == original


# ------------------------------------------------------------------ placement

def test_enable_replaces_only_differing_lines_and_absent_restores_bytes(tmp_path, pki):
    conf = make_tree(tmp_path, pki)
    before = snapshot(conf)
    tuning = {"ssl_stapling_verify": True, "ssl_trusted_certificate": "build", "resolver": ["127.0.0.1"],
              "resolver_timeout": "5s"}
    result = ns.plan(request(conf, pki, tuning=tuning))
    assert result["problems"] == []
    assert result["placement"] == "server"
    assert result["worker_processes"] == 2
    good = site(result, "good.lab.test")
    assert good["action"] == "enable"
    # ssl_stapling on / verify on already say so: kept; the trusted file is replaced.
    assert set(good["directives"]) == {"ssl_trusted_certificate", "resolver", "resolver_timeout"}
    assert site(result, "nourl.lab.test")["action"] == "skip_not_applicable"
    apply(result)
    text = (conf / "sites-available" / "good").read_text()
    assert f"    # ocsp.stapling replaced: ssl_trusted_certificate {pki.trusted_chain};\n" \
           f"    include {conf}/ocsp-stapling/sites/good.lab.test.conf; # ocsp.stapling managed include\n" in text
    assert (conf / "sites-enabled" / "good").is_symlink(), "the Debian symlink must survive"
    assert (conf / "sites-available" / "nourl").read_bytes() == before["sites-available/nourl"]
    include = (conf / "ocsp-stapling" / "sites" / "good.lab.test.conf").read_text()
    assert "resolver 127.0.0.1;\nresolver_timeout 5s;\n" in include
    assert "ssl_stapling on;" not in include  # would be a duplicate in the block
    trusted = good["directives"]["ssl_trusted_certificate"]
    assert Path(trusted).exists() and trusted == site(result, "muststaple.lab.test")["directives"]["ssl_trusted_certificate"]
    # Idempotent: the second plan writes nothing new.
    assert changes(ns.plan(request(conf, pki, tuning=tuning))) == []
    # absent: operator files byte for byte, managed files gone.
    gone = ns.plan(request(conf, pki, state="absent"))
    apply(gone)
    assert snapshot(conf) == before
    assert changes(ns.plan(request(conf, pki, state="absent"))) == []


def test_disable_puts_ssl_stapling_off_where_the_block_set_it_on(tmp_path, pki):
    conf = make_tree(tmp_path, pki)
    result = ns.plan(request(conf, pki, state="disabled"))
    assert result["problems"] == []
    assert {s["action"] for s in result["sites"]} == {"disable"}
    apply(result)
    text = (conf / "sites-available" / "nourl").read_text()
    assert "    # ocsp.stapling replaced: ssl_stapling on;\n    include " in text
    assert "ssl_stapling_verify on;" in text  # untouched: not needed for off
    assert (conf / "ocsp-stapling" / "sites" / "nourl.lab.test.conf").read_text().endswith("ssl_stapling off;\n")
    # enable again after disable: the replaced line comes back, no include needed at all
    again = ns.plan(request(conf, pki, state="enabled", tuning={}))
    apply(again)
    assert "ocsp.stapling" not in (conf / "sites-available" / "good").read_text()
    assert not list((conf / "ocsp-stapling" / "sites").glob("*.conf"))


def test_http_placement_when_no_block_sets_stapling(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good", "muststaple"), stapling=False)
    before = snapshot(conf)
    result = ns.plan(request(conf, pki, tuning={"ssl_stapling_verify": True}))
    assert result["problems"] == [] and result["placement"] == "http", result["why_not_http"]
    assert result["operator_files"] == []
    apply(result)
    http = (conf / "conf.d" / "zz-ocsp-stapling.conf").read_text()
    assert "ssl_stapling on;\nssl_stapling_verify on;\nssl_trusted_certificate " in http
    after = snapshot(conf)
    assert {k: v for k, v in after.items() if k.startswith("sites-")} == \
           {k: v for k, v in before.items() if k.startswith("sites-")}
    apply(ns.plan(request(conf, pki, state="absent")))
    assert snapshot(conf) == before


def test_url_less_site_forces_server_placement_and_stays_untouched(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good", "nourl"), stapling=False)
    result = ns.plan(request(conf, pki, tuning={"ssl_stapling_verify": True}))
    assert result["placement"] == "server"
    assert any("skip_not_applicable" in why for why in result["why_not_http"])
    assert site(result, "nourl.lab.test")["include"] is None
    enabled = ns.plan(request(conf, pki, tuning={}, skip_not_applicable=False))
    assert site(enabled, "nourl.lab.test")["action"] == "enable"


def test_include_line_goes_above_the_first_directive_when_nothing_is_replaced(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good", "nourl"), stapling=False)
    apply(ns.plan(request(conf, pki, tuning={}, placement="server")))
    lines = (conf / "sites-available" / "good").read_text().splitlines()
    assert lines[0] == "server {"
    assert lines[1].startswith(f"    include {conf}/ocsp-stapling/sites/good.lab.test.conf;")
    assert lines[2] == "    listen 127.0.0.1:8443 ssl;"


def test_scope_by_server_name_and_unknown_name(tmp_path, pki):
    conf = make_tree(tmp_path, pki)
    result = ns.plan(request(conf, pki, state="disabled", server_names=["good.lab.test", "nope.lab.test"]))
    assert site(result, "good.lab.test")["action"] == "disable"
    assert site(result, "muststaple.lab.test")["action"] == "out_of_scope"
    assert any("'nope.lab.test'" in p and "good.lab.test" in p for p in result["problems"])


def test_scope_by_config_file_real_path(tmp_path, pki):
    conf = make_tree(tmp_path, pki)
    result = ns.plan(request(conf, pki, state="disabled",
                             config_files=[str(conf / "sites-available" / "muststaple")]))
    assert [s["key"] for s in result["sites"] if s["action"] == "disable"] == ["muststaple.lab.test"]


def test_certificate_compression_refused_from_1_29_3(tmp_path, pki):
    conf = make_tree(tmp_path, pki, extra={"good": "    ssl_certificate_compression on;\n"})
    new = ns.plan(request(conf, pki, tuning={}))
    new_req = request(conf, pki, tuning={})
    new_req.nginx_version = "nginx version: nginx/1.29.3"
    assert not any("compression" in p for p in new["problems"])  # 1.22.1 (request default)
    refused = ns.plan(new_req)
    assert any("ssl_certificate_compression" in p and "good.lab.test" in p for p in refused["problems"])


def test_directive_sharing_a_line_is_refused(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good",), stapling=False,
                     extra={"good": "    ssl_stapling off; ssl_stapling_verify off;\n"})
    result = ns.plan(request(conf, pki, tuning={"ssl_stapling_verify": True}))
    assert any("own line" in p for p in result["problems"])


def test_missing_trusted_certificate_is_reported_when_it_cannot_be_built(tmp_path, pki):
    conf = make_tree(tmp_path, pki, sites=("good",), stapling=False)
    req = request(conf, pki, tuning={"ssl_stapling_verify": True})
    req.ca_bundle = str(tmp_path / "no-such-bundle.pem")
    result = ns.plan(req)
    assert any("OCSP_basic_verify" in p and "nginx_stapling_tuning.ssl_trusted_certificate" in p
               for p in result["problems"])


def test_scope_change_removes_stale_managed_files(tmp_path, pki):
    conf = make_tree(tmp_path, pki)
    apply(ns.plan(request(conf, pki, state="disabled")))
    narrowed = ns.plan(request(conf, pki, state="disabled", server_names=["good.lab.test"]))
    stale = {Path(f["path"]).name for f in narrowed["files"] if f.get("state") == "absent"}
    assert stale == {"nourl.lab.test.conf", "muststaple.lab.test.conf"}
    apply(narrowed)
    assert "ocsp.stapling" not in (conf / "sites-available" / "nourl").read_text()


# ------------------------------------------------------------------ nginx -t warnings

NGINX_T = """\
nginx: [warn] "ssl_stapling" ignored, no OCSP responder URL in the certificate "/p/nourl.pem"
nginx: [warn] "ssl_stapling" ignored, issuer certificate not found for certificate "/p/good.pem"
nginx: [warn] "ssl_stapling" ignored, host not found in OCSP responder "ocsp.example" in the certificate "/p/must.pem"
nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
"""
SITES = [
    {"key": "nourl", "action": "skip_not_applicable", "certificates": ["/p/nourl.pem"]},
    {"key": "good", "action": "enable", "certificates": ["/p/good.pem"]},
    {"key": "must", "action": "enable", "certificates": ["/p/must.pem"]},
]


def test_configtest_warnings_are_matched_to_sites_and_block_enabling():
    found, problems = ns.classify_configtest(NGINX_T, SITES)
    assert [(w["kind"], w["sites"]) for w in found] == [
        ("no_ocsp_url", ["nourl"]), ("issuer_not_found", ["good"]), ("host_not_found", ["must"])]
    assert len(problems) == 2
    assert "good" in problems[0] and "intermediate" in problems[0]
    assert "must" in problems[1] and "resolver" in problems[1]
    assert ns.classify_configtest(NGINX_T, SITES, block_on_warnings=False)[1] == []


# ------------------------------------------------------------------ judging after the reload

def _probe(name, verdict, stapled, ok=True):
    return {"host": "127.0.0.1", "port": 443, "server_name": name, "verdict": verdict, "stapled": stapled,
            "handshake_ok": ok, "message": verdict, "error": None if ok else "connection_refused"}


def _site(name, action, urls=True):
    return {"key": name, "action": action, "ocsp_urls": ["http://o/"] if urls else [],
            "endpoints": [{"host": "127.0.0.1", "port": 443, "server_name": name}], "directives": {}}


def test_judge_enable_missing_is_attention_unless_strict():
    sites = [_site("a", "enable"), _site("r", "enable")]
    results = [_probe("a", "good", True), _probe("r", "missing", False)]
    report = ns.judge_sites(sites, results, "enabled")
    assert report["ok"] and not report["settled"] and len(report["attention"]) == 1
    strict = ns.judge_sites(sites, results, "enabled", strict=True)
    assert not strict["ok"] and "r: stapling is enabled" in strict["failures"][0]


def test_judge_disable_still_stapling_or_dead_site_fails():
    sites = [_site("a", "disable"), _site("b", "disable"), _site("m", "disable")]
    results = [_probe("a", "good", True), _probe("b", "handshake_failed", False, ok=False),
               _probe("m", "must_staple_missing", False)]
    report = ns.judge_sites(sites, results, "disabled")
    assert not report["ok"]
    assert any("a still staples" in f for f in report["failures"])
    assert any("b does not complete a TLS handshake" in f for f in report["failures"])
    assert any("Must-Staple" in a for a in report["attention"])


def test_judge_quotes_the_error_log_line_for_the_site_certificate():
    sites = [dict(_site("r", "enable"), certificates=["/p/revoked.pem"]), _site("a", "enable")]
    log = ('2026/11/23 17:13:04 [error] 1#1: certificate status "revoked" in the OCSP response while '
           'requesting certificate status, responder: 127.0.0.1, peer: 127.0.0.1:1, certificate: "/p/revoked.pem"\n'
           '2026/11/23 17:13:04 [error] 1#1: OCSP_basic_verify() failed (SSL: error:1:unable to get local '
           'issuer certificate) while requesting certificate status, certificate: "/p/other.pem"\n')
    report = ns.judge_sites(sites, [_probe("r", "missing", False), _probe("a", "good", True)], "enabled", log=log)
    row = report["sites"][0]
    assert row["error_log"] == ['[error] 1#1: certificate status "revoked" in the OCSP response while requesting '
                                'certificate status, responder: 127.0.0.1, peer: 127.0.0.1:1, certificate: '
                                '"/p/revoked.pem"']
    assert 'nginx logged since the reload: [error] 1#1: certificate status "revoked"' in report["attention"][0]
    assert "error_log" not in report["sites"][1]


def test_non_utf8_operator_file_round_trips_through_module_arguments(tmp_path, pki):
    """Latin-1 bytes survive enable -> absent, carried as content_base64 through the
    stapling_change module's arguments (shared change.py: file_fields, display-only diff)."""
    from ansible_collections.ocsp.stapling.plugins.module_utils.change import engine as change

    conf = make_tree(tmp_path, pki, sites=("good",))
    site_file = conf / "sites-available" / "good"
    site_file.write_bytes(b"# caf\xe9 (Latin-1)\r\n" + site_file.read_bytes())
    before = site_file.read_bytes()
    result = ns.plan(request(conf, pki, state="disabled"))
    entry = next(f for f in result["files"] if f["path"] == str(site_file))
    assert "content" not in entry and "content_base64" in entry
    req = change.request_from_params({"files": result["files"]}, check_mode=True, diff=True)
    spec = next(f for f in req.files if f.path == str(site_file))
    assert isinstance(spec.content, bytes) and spec.content.startswith(b"# caf\xe9 (Latin-1)\r\n")
    diff = change.file_diff(change.plan_file(spec))
    assert "caf\ufffd" in diff["after"] and "ssl_stapling off" not in diff["after"]
    assert "# ocsp.stapling replaced: ssl_stapling on;" in diff["after"]
    apply_spec = {**entry, "content": spec.content.decode("utf-8", "surrogateescape")}
    apply({"files": [apply_spec]})
    assert site_file.read_bytes().startswith(b"# caf\xe9 (Latin-1)\r\n")
    gone = ns.plan(request(conf, pki, state="absent"))
    restored = next(f for f in gone["files"] if f["path"] == str(site_file))
    import base64
    assert base64.b64decode(restored["content_base64"]) == before


def test_judge_counts_a_site_as_stapling_when_one_worker_staples():
    sites = [_site("a", "enable"), _site("d", "disable")]
    results = [_probe("a", "missing", False), _probe("a", "good", True),
               _probe("d", "missing", False), _probe("d", "good", True)]
    report = ns.judge_sites(sites, results, "enabled")
    row_a, row_d = report["sites"]
    assert row_a["verdict"] == "good" and row_a["handshakes"] == 2 and row_a["stapled_handshakes"] == 1
    assert report["settled"]
    assert not row_d["ok"] and any("d still staples" in f for f in report["failures"])
