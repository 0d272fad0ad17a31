"""The Apache plan on configurations written in the shapes of public ones: cPanel's
ea-apache24-config (``ea4_main.default`` rendered: the stapling block inside
``<IfModule socache_shmcb_module>``, include files only where they exist, userdata includes in
``ssl_vhost.default``'s place), h5bp's server-configs-apache (``h5bp/tls/*.conf`` snippets
included by relative path into each host, ``ocsp_stapling.conf`` at server scope, a hidden
``vhosts/.000-default.conf``) and the Mozilla SSL configuration generator's Apache output
(intermediate profile pasted as one Debian site: stapling and a ServerRoot-relative cache at
server scope, after the virtual hosts, read after the role's conf snippet).

Each is parsed, planned enabled and disabled, applied into a private copy, checked with the
real ``apache2 -t`` (Debian's modules, private ServerRoot), and given back byte for byte."""
from __future__ import annotations

import base64
import grp
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import config as dialect_apache
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache import plan as apache_plan
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.apache.plan import ApachePlanRequest
from tests.unit.ocsp_helpers import make_pki
from tests.unit.paths import FIXTURES as UNIT_FIXTURES

FIXTURES = UNIT_FIXTURES / "configs"
APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"

#: fixture -> TLS virtual hosts -> SSLUseStapling in effect (live, after enable, after disable)
EXPECTED = {
    "apache_h5bp": {"example.com": ("on", "on", "off"), "blog.example.com": ("on", "on", "off")},
    "apache_mozilla": {
        "mozilla.example.com": ("on", "on", "off"), "api.example.com": ("on", "on", "off"),
        "legacy.example.com": ("off", "off", "off"),   # the operator's own Off is left alone
    },
    "cpanel_ea4": {
        "alice.example": ("on", "on", "off"),
        "bob.example": ("on", "on", "off"),     # 'on' from his userdata include
        "carol.example": ("off", "off", "off"),  # cPanel writes Off: no OCSP URL in her certificate
    },
}

#: cPanel's paths are absolute in the generated httpd.conf; the copy moves them under the root.
CPANEL_PREFIXES = re.compile(r"(?<=[\s\"'=:])(/etc/apache2|/run/apache2|/var/cpanel|/home|/opt/cpanel)(?=[/\"\s]|$)", re.M)
#: cPanel keeps key, certificate and chain in one ``combined`` file per domain.
CPANEL_CERTS = {"alice.example": "good", "bob.example": "good", "carol.example": "nourl"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def install(name: str, root: Path, pki) -> Path:
    """The fixture under ``root`` with its paths pointing into ``root``; symlinks kept."""
    shutil.copytree(FIXTURES / name, root, symlinks=True)
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        text = path.read_bytes().decode("latin-1")
        text = text.replace("@ROOT@", str(root)).replace("@PKI@", str(pki.trusted_chain.parent))
        if name == "cpanel_ea4":
            text = CPANEL_PREFIXES.sub(lambda m: str(root) + m.group(1), text)
        path.write_bytes(text.encode("latin-1"))
    if name == "cpanel_ea4":
        for domain, leaf in CPANEL_CERTS.items():
            target = root / "var/cpanel/ssl/apache_tls" / domain / "combined"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(pki.leaves[leaf].combined_path, target)
        os.symlink(MODULES, root / "etc/apache2/modules")
        # cPanel builds mod_log_config shared; Debian's apache2 has it built in and refuses
        # to load it again, so this copy loads it only where it is not there already.
        log_config = root / "etc/apache2/conf.modules.d/110_mod_log_config.conf"
        log_config.write_text("<IfModule !log_config_module>\n%s</IfModule>\n" % log_config.read_text())
        # RHEL-family hosts have a group "nobody"; Debian calls it "nogroup".
        if not _group_exists("nobody"):
            main = root / "etc/apache2/conf/httpd.conf"
            main.write_text(main.read_text().replace("\nGroup nobody\n", "\nGroup nogroup\n"))
        for sub in ["run/apache2", "etc/apache2/logs/domlogs"] + [f"home/{u}/public_html" for u in ("alice", "bob", "carol")]:
            (root / sub).mkdir(parents=True, exist_ok=True)
    elif name == "apache_h5bp":
        os.symlink(MODULES, root / "usr/local/apache2/modules")
    else:
        for sub in ("var/run/apache2", "var/lock/apache2", "var/log/apache2"):
            (root / sub).mkdir(parents=True)
    return root


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def request(name: str, root: Path, state: str, **kwargs) -> ApachePlanRequest:
    if name == "apache_h5bp":
        base = root / "usr/local/apache2"
        return ApachePlanRequest(state=state, layout="rhel", main_config=str(base / "conf/httpd.conf"),
                                 server_root=str(base), snippet=str(base / "vhosts/zz-ocsp-stapling.conf"),
                                 cache_path=str(base / "logs/ocsp_stapling_cache"), **kwargs)
    if name == "apache_mozilla":
        etc = root / "etc/apache2"
        return ApachePlanRequest(state=state, layout="debian", main_config=str(etc / "apache2.conf"),
                                 server_root=str(etc), snippet=str(etc / "conf-available/zz-ocsp-stapling.conf"),
                                 link=str(etc / "conf-enabled/zz-ocsp-stapling.conf"),
                                 link_src="../conf-available/zz-ocsp-stapling.conf",
                                 cache_path=str(root / "var/run/apache2/ocsp_stapling_cache"), **kwargs)
    etc = root / "etc/apache2"
    return ApachePlanRequest(state=state, layout="cpanel_ea4", main_config=str(etc / "conf/httpd.conf"),
                             server_root=str(etc), includes_dir=str(etc / "conf.d/includes"),
                             userdata_dir=str(etc / "conf.d/userdata"),
                             cache_path=str(root / "run/apache2/ocsp_stapling_cache"), **kwargs)


def apply(result: dict) -> None:
    """Write a plan's files and links the way stapling_change does (bytes kept)."""
    for item in result["files"]:
        path = Path(item["path"])
        if item["state"] == "absent":
            if os.path.lexists(path):
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if "content_base64" in item:
            path.write_bytes(base64.b64decode(item["content_base64"]))
        else:
            path.write_bytes(item["content"].encode("utf-8", "surrogateescape"))
    for item in result["links"]:
        path = Path(item["path"])
        if os.path.lexists(path):
            path.unlink()
        if item["state"] == "present":
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(item["src"], path)


def pending(result: dict) -> list[str]:
    """What applying ``result`` would still change (empty: the plan is idempotent)."""
    out = []
    for item in result["files"]:
        path = Path(item["path"])
        if item["state"] == "absent":
            if os.path.lexists(path):
                out.append(str(path))
            continue
        data = (base64.b64decode(item["content_base64"]) if "content_base64" in item
                else item["content"].encode("utf-8", "surrogateescape"))
        if not path.is_file() or path.read_bytes() != data:
            out.append(str(path))
    for item in result["links"]:
        path = Path(item["path"])
        if (item["state"] == "present") != (path.is_symlink() and os.readlink(path) == item["src"]):
            out.append(str(path))
    return out


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file's bytes and every symlink's target under ``root``."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            out[key] = path.read_bytes()
    return out


def configtest(req: ApachePlanRequest) -> subprocess.CompletedProcess:
    """The real ``apache2 -t`` on the tree (Debian's envvars exported when there are some)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
    envvars = Path(req.main_config).parent / "envvars"
    if req.layout == "debian" and envvars.is_file():
        env.update(dialect_apache.read_envvars(str(envvars)))
    return subprocess.run([APACHE, "-d", req.server_root, "-f", req.main_config, "-t"], capture_output=True,
                          text=True, timeout=30, env=env, stdin=subprocess.DEVNULL, check=False)


def in_effect(req: ApachePlanRequest) -> dict[str, str | None]:
    """What httpd would read now: each TLS virtual host's SSLUseStapling (lower case)."""
    config = apache_plan.read_config(req)
    out = {}
    for vhost in config.tls_virtual_hosts():
        setting = vhost.lookup("SSLUseStapling")
        out[vhost.server_name] = setting.directive.value.lower() if setting else None
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_public_shape_parse_plan_configtest_restore(tmp_path, pki, name):
    root = install(name, tmp_path / "root", pki)
    live = configtest(request(name, root, "enabled"))
    assert live.returncode == 0, live.stderr   # the fixture itself loads in the real apache2
    before = snapshot(root)
    assert in_effect(request(name, root, "enabled")) == {k: v[0] for k, v in EXPECTED[name].items()}
    undo = {"enabled": "absent", "disabled": "restored"}
    for index, state in ((1, "enabled"), (2, "disabled")):
        req = request(name, root, state)
        planned = apache_plan.plan(req)
        assert planned["problems"] == [], planned["problems"]
        assert {s["names"][0] for s in planned["sites"]} == set(EXPECTED[name])
        assert {s["names"][0]: s["stapling"] for s in planned["sites"]} == {k: v[index] for k, v in EXPECTED[name].items()}
        apply(planned)
        test = configtest(req)
        assert test.returncode == 0, f"{state}: {test.stderr}"
        assert in_effect(req) == {k: v[index] for k, v in EXPECTED[name].items()}, state
        assert pending(apache_plan.plan(request(name, root, state))) == [], f"{state}: not idempotent"
        apply(apache_plan.plan(request(name, root, undo[state])))
        assert configtest(req).returncode == 0
        assert snapshot(root) == before, f"{state} then {undo[state]} did not give the files back"
    # An incident's whole round: disable, re-enable (restore), then remove what the role wrote.
    apply(apache_plan.plan(request(name, root, "disabled")))
    apply(apache_plan.plan(request(name, root, "restored")))
    assert snapshot(root) == before
    apply(apache_plan.plan(request(name, root, "enabled")))
    apply(apache_plan.plan(request(name, root, "disabled")))
    assert configtest(request(name, root, "disabled")).returncode == 0
    apply(apache_plan.plan(request(name, root, "absent")))
    assert snapshot(root) == before


def test_h5bp_enable_keeps_the_snippet_cache_and_the_hidden_host_is_no_site(tmp_path, pki):
    root = install("apache_h5bp", tmp_path / "root", pki)
    planned = apache_plan.plan(request("apache_h5bp", root, "enabled"))
    snippet = next(f for f in planned["files"] if f["path"].endswith("zz-ocsp-stapling.conf"))
    # ocsp_stapling.conf (Included by a path relative to ServerRoot) already sets the cache:
    # a second SSLStaplingCache would be the role's, not the operator's.
    assert "SSLStaplingCache" not in snippet["content"]
    assert [f["path"] for f in planned["files"]] == [snippet["path"]]
    # vhosts/*.conf does not match .000-default.conf (httpd skips leading dots as glob(3) does).
    disabled = apache_plan.plan(request("apache_h5bp", root, "disabled"))
    assert not any(".000-default" in f["path"] for f in disabled["files"])
    changed = sorted(Path(f["path"]).relative_to(root / "usr/local/apache2").as_posix() for f in disabled["files"])
    assert changed == ["vhosts/blog.example.com.conf", "vhosts/zz-ocsp-stapling.conf"]
    apply(disabled)
    blog = (root / "usr/local/apache2/vhosts/blog.example.com.conf").read_text()
    assert "\t# ocsp.stapling replaced: SSLUseStapling on\n\tSSLUseStapling Off\n" in blog
    assert "replaced" not in (root / "usr/local/apache2/h5bp/tls/ocsp_stapling.conf").read_text()


def test_mozilla_server_scope_on_read_after_the_role_snippet_is_replaced_in_the_site_file(tmp_path, pki):
    root = install("apache_mozilla", tmp_path / "root", pki)
    etc = root / "etc/apache2"
    planned = apache_plan.plan(request("apache_mozilla", root, "disabled"))
    assert sorted(Path(f["path"]).relative_to(etc).as_posix() for f in planned["files"]) == [
        "conf-available/zz-ocsp-stapling.conf", "sites-available/mozilla.example.com.conf"]
    apply(planned)
    site = (etc / "sites-available/mozilla.example.com.conf").read_text()
    assert "\n# ocsp.stapling replaced: SSLUseStapling On\nSSLUseStapling Off\n" in site
    assert (etc / "sites-enabled/mozilla.example.com.conf").is_symlink()
    assert "replaced" not in (etc / "sites-available/staging.example.com.conf").read_text()   # not enabled
    winners = {s["names"][0]: s["winner"] for s in planned["sites"]}
    assert "sites-available/mozilla.example.com.conf:" in winners["api.example.com"]
    # The enable finds the generator's ServerRoot-relative cache: no second one.
    apply(apache_plan.plan(request("apache_mozilla", root, "restored")))
    enabled = apache_plan.plan(request("apache_mozilla", root, "enabled"))
    assert all("SSLStaplingCache" not in f.get("content", "") for f in enabled["files"])


def test_cpanel_disable_never_touches_httpd_conf_and_turns_the_userdata_on_off(tmp_path, pki):
    root = install("cpanel_ea4", tmp_path / "root", pki)
    etc = root / "etc/apache2"
    planned = apache_plan.plan(request("cpanel_ea4", root, "disabled"))
    assert sorted(Path(f["path"]).relative_to(etc).as_posix() for f in planned["files"]) == [
        "conf.d/includes/pre_virtualhost_global.conf", "conf.d/userdata/ssl/2_4/bob/bob.example/stapling.conf"]
    apply(planned)
    text = (etc / "conf.d/includes/pre_virtualhost_global.conf").read_text()
    assert text.startswith("# Added by an operator during the 2026-11 incident\n")
    assert "# BEGIN ocsp.stapling disabled" in text and "SSLUseStapling Off" in text
    bob = (etc / "conf.d/userdata/ssl/2_4/bob/bob.example/stapling.conf").read_text()
    assert "# ocsp.stapling replaced: SSLUseStapling on\nSSLUseStapling Off\n" in bob


def test_snippet_with_a_cache_included_inside_a_virtual_host_is_named_and_apache_refuses_it(tmp_path, pki):
    """h5bp's ocsp_stapling.conf carries SSLStaplingCache; Included inside a <VirtualHost> it
    makes httpd refuse the configuration. The plan says which file and line, and refuses."""
    root = install("apache_h5bp", tmp_path / "root", pki)
    blog = root / "usr/local/apache2/vhosts/blog.example.com.conf"
    blog.write_text(blog.read_text().replace("\tSSLUseStapling on\n", "    Include h5bp/tls/ocsp_stapling.conf\n"))
    req = request("apache_h5bp", root, "disabled")
    assert configtest(req).returncode != 0   # the premise: Apache refuses it
    planned = apache_plan.plan(req)
    snippet = root / "usr/local/apache2/h5bp/tls/ocsp_stapling.conf"
    line = next(n for n, t in enumerate(snippet.read_text().splitlines(), 1) if "SSLStaplingCache" in t)
    assert any(f"{snippet}:{line}" in p and "<VirtualHost *:443>" in p for p in planned["problems"]), planned["problems"]
