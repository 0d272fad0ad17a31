"""The nginx plan on configurations written in the shapes of public ones: cPanel ea-nginx
(one file per user, many TLS server blocks, per-domain includes), h5bp server-configs-nginx
(snippets included into several blocks, a resolver over several lines with comments) and the
Mozilla SSL configuration generator's output (CRLF, Debian symlinks). Each is parsed, planned
enabled and disabled, checked with the real ``nginx -t``, and restored byte for byte."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import plan as ns
from tests.unit.servers.nginx.plan_helpers import apply, effective, nginx_t, pending, request, snapshot
from tests.unit.ocsp_helpers import make_pki
from tests.unit.paths import FIXTURES as UNIT_FIXTURES

FIXTURES = UNIT_FIXTURES / "configs"

#: fixture -> TLS server blocks -> (stapling in effect after enable, after disable)
EXPECTED = {
    "nginx_ea_nginx": {
        "example.com": ("on", None), "shop.example.com": ("on", "off"), "cpanel.example.com": ("on", None),
        "webmail.example.com": ("on", None), "webdisk.example.com": (None, None),  # no OCSP URL
    },
    "nginx_h5bp": {
        "www.example.com": ("on", "off"), "example.com": ("on", "off"), "blog.example.com": ("on", None),
    },
    "nginx_mozilla": {
        "mozilla.example.com": ("on", "off"), "api.example.com": ("on", "off"),
        "legacy.example.com": ("on", "off"),  # the operator's 'on' is left alone when enabling
    },
}


#: Files saved from Windows editors end their lines with CRLF; the repository keeps LF
#: (ansible-test's line-endings check), so the test writes them back as CRLF.
CRLF_FILES = {"nginx_mozilla": ["etc/nginx/sites-available/mozilla.example.com"]}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def install(name: str, root: Path, pki) -> Path:
    """The fixture under ``root`` with its placeholders filled in; symlinks kept."""
    shutil.copytree(FIXTURES / name, root, symlinks=True)
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            path.write_bytes(data.replace(b"@ROOT@", str(root).encode())
                             .replace(b"@PKI@", str(pki.trusted_chain.parent).encode()))
    for relative in CRLF_FILES.get(name, ()):
        path = root / relative
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    (root / "etc" / "nginx" / "conf.d").mkdir(exist_ok=True)
    return root / "etc" / "nginx" / "nginx.conf"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_public_shape_parse_plan_configtest_restore(tmp_path, pki, name):
    root = tmp_path / "root"
    main = install(name, root, pki)
    live = nginx_t(root, main)
    assert live.returncode == 0, live.stderr  # the fixture itself is valid
    before = snapshot(main.parent)
    tuning = {"ssl_stapling_verify": True}  # the role's default
    for index, state in enumerate(("enabled", "disabled")):
        planned = ns.plan(request(main, pki, state=state, tuning=tuning))
        assert planned["problems"] == [], planned["problems"]
        assert {s["key"] for s in planned["sites"]} == set(EXPECTED[name])
        apply(planned)
        test = nginx_t(root, main)
        assert test.returncode == 0, f"{state}: {test.stderr}"
        assert effective(main) == {key: values[index] for key, values in EXPECTED[name].items()}, state
        assert pending(ns.plan(request(main, pki, state=state, tuning=tuning))) == [], f"{state}: not idempotent"
        apply(ns.plan(request(main, pki, state="absent")))
        assert snapshot(main.parent) == before, f"{state} then absent did not give the files back"
    # straight from disabled to enabled, then absent: still the operator's bytes
    apply(ns.plan(request(main, pki, state="disabled")))
    apply(ns.plan(request(main, pki, state="enabled", tuning=tuning)))
    assert nginx_t(root, main).returncode == 0
    apply(ns.plan(request(main, pki, state="absent")))
    assert snapshot(main.parent) == before


def test_ea_nginx_disable_comments_the_per_domain_include_only(tmp_path, pki):
    main = install("nginx_ea_nginx", tmp_path / "root", pki)
    planned = ns.plan(request(main, pki, state="disabled"))
    changed = sorted(Path(p).relative_to(main.parent).as_posix() for p in planned["operator_files"])
    assert changed == ["conf.d/users/alice.conf", "conf.d/users/alice/shop.example.com/stapling.conf"]
    apply(planned)
    text = (main.parent / "conf.d" / "users" / "alice.conf").read_text()
    assert text.count(ns.INCLUDE_TAG) == 1  # shop only: the others never stapled
    assert "server {\n    include " in text and "shop.example.com.conf; " + ns.INCLUDE_TAG in text


def test_h5bp_enable_goes_to_http_level_and_leaves_operator_files_alone(tmp_path, pki):
    main = install("nginx_h5bp", tmp_path / "root", pki)
    planned = ns.plan(request(main, pki, state="enabled", tuning={"ssl_stapling_verify": True}))
    assert planned["placement"] == "http", planned["why_not_http"]
    assert planned["operator_files"] == []
