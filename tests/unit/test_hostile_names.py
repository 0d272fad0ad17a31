"""Site names and paths an operator (or a customer, on shared hosting) can choose: spaces,
quotes, ``$``, ``;``, newlines and bytes that are not UTF-8. None of it may reach a command
as shell text or a configuration file as a directive.

- nginx: a configuration tree under a directory whose name holds all of them, quoted
  server names holding them too; the disable plan is applied and the real ``nginx -t``
  (private prefix) must pass, every site must be off, the managed files must sit under the
  managed directory with plain names, and ``absent`` must give every byte back.
- commands: the change shape runs configtest and reload as argument lists; a path and an
  argument full of shell syntax arrive as one literal argument each, and nothing they
  spell out runs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.ocsp.stapling.plugins.module_utils.change.engine import (
    ChangeRequest,
    FileSpec,
    StaplingChange,
    split_command,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.servers.nginx import plan as ns
from tests.unit.servers.nginx.plan_helpers import NGINX, apply, effective
from tests.unit.ocsp_helpers import make_pki

#: case 22's characters in one directory name (\udcff is the byte 0xff). No ``$``: nginx
#: reads ``ssl_certificate`` paths as variables (1.15.9+) and has no escape for a literal
#: one, so such a path cannot be served at all; ``$`` is in the names and site files instead.
HOSTILE_DIR = "we ird 'q\" ;x `id` \udcff"
#: quoted nginx server names: a space, ``;``, ``$``, a newline and a would-be directive
HOSTILE_NAMES = ('"a b;c$d.lab.test"', '"evil.lab.test;\\n    ssl_stapling on"', "'q\"uote.lab.test'")


def q(text: str) -> str:
    """An nginx double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def hostile_tree(tmp_path: Path, pki) -> tuple[Path, Path]:
    root = tmp_path / HOSTILE_DIR
    conf_dir = root / "etc" / "nginx"
    for sub in ("conf.d", "sites-available", "sites-enabled", "ssl"):
        (conf_dir / sub).mkdir(parents=True, exist_ok=True)
    main = conf_dir / "nginx.conf"
    temp_paths = "".join(f"    {name}_temp_path {q(str(root / 'tmp' / name))};\n"
                         for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main.write_text(
        f"pid {q(str(root / 'run' / 'nginx.pid'))};\nerror_log {q(str(root / 'logs' / 'error.log'))} info;\n"
        "worker_processes 1;\nevents { worker_connections 64; }\nhttp {\n    access_log off;\n" + temp_paths
        + f"    include {q(str(conf_dir / 'conf.d') + '/*.conf')};\n"
        + f"    include {q(str(conf_dir / 'sites-enabled') + '/*')};\n}}\n",
        encoding="utf-8", errors="surrogateescape")
    for index, name in enumerate(HOSTILE_NAMES):
        leaf = pki.leaves["good"]
        cert = conf_dir / "ssl" / f"cert {index};x.pem"
        key = conf_dir / "ssl" / f"key {index};x.pem"
        shutil.copy(leaf.fullchain_path, cert)
        shutil.copy(leaf.key_path, key)
        available = conf_dir / "sites-available" / f"site {index}; $x"
        available.write_text(
            "server {\n"
            f"    listen 127.0.0.1:{18443 + index} ssl;\n"
            f"    server_name {name} site{index}.lab.test;\n"
            f"    ssl_certificate {q(str(cert))};\n"
            f"    ssl_certificate_key {q(str(key))};\n"
            "    ssl_stapling on;\n"
            f"    ssl_trusted_certificate {q(str(pki.trusted_chain))};\n"
            "    # a comment with a byte that is not UTF-8: \udcfe\n"
            "}\n", encoding="utf-8", errors="surrogateescape")
        (conf_dir / "sites-enabled" / available.name).symlink_to(available)
    return root, main


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file's bytes and every link's target (as bytes: names may not be UTF-8)."""
    return {str(path): (b"-> " + os.fsencode(os.readlink(path)) if path.is_symlink() else path.read_bytes())
            for path in sorted(directory.rglob("*")) if path.is_symlink() or path.is_file()}


def nginx_t(root: Path, conf: Path, *flags: str) -> subprocess.CompletedProcess:
    """The real ``nginx -t`` (or ``-T``) on a private prefix; output kept as bytes (0xff)."""
    for sub in ("run", "logs", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return subprocess.run([NGINX, "-p", str(root), "-c", str(conf), *(flags or ("-t",))], capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL, check=False)


def plan_request(main: Path, pki, state: str) -> ns.PlanRequest:
    return ns.PlanRequest(config=str(main), managed_dir=str(main.parent / "ocsp-stapling"),
                          http_include_file=str(main.parent / "conf.d" / "zz-ocsp-stapling.conf"),
                          ca_bundle=str(pki.ca_bundle), nginx_version="nginx version: nginx/1.22.1",
                          state=state)


@pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")
def test_nginx_disable_on_a_hostile_tree_passes_the_real_configtest_and_restores_every_byte(tmp_path, pki):
    root, main = hostile_tree(tmp_path, pki)
    first = nginx_t(root, main)
    assert first.returncode == 0, f"the fixture itself must pass nginx -t:\n{first.stderr}"
    before = snapshot(main.parent)

    result = ns.plan(plan_request(main, pki, "disabled"))
    assert result["problems"] == [], result["problems"]
    assert {s["action"] for s in result["sites"]} == {"disable"}, result["sites"]
    apply(result)

    test = nginx_t(root, main)
    assert test.returncode == 0, f"nginx -t fails on the disabled hostile tree:\n{test.stderr}"
    assert set(effective(main).values()) == {"off"}, effective(main)
    managed = main.parent / "ocsp-stapling"
    for entry in result["files"]:
        path = entry["path"]
        if path.startswith(str(managed) + os.sep):
            assert re.fullmatch(r"[A-Za-z0-9._-]+", os.path.basename(path)), path
            assert os.path.dirname(os.path.dirname(path)) == str(managed), path
        else:
            assert path in {str(p) for p in main.parent.rglob("*")}, f"the plan writes outside the tree: {path}"
    # No directive the names or paths spell out became real: each block has one ssl_stapling.
    dump = nginx_t(root, main, "-T").stdout.decode("utf-8", "surrogateescape")
    assert dump.count("ssl_stapling off;") == len(HOSTILE_NAMES), dump

    restored = ns.plan(plan_request(main, pki, "absent"))
    apply(restored)
    assert snapshot(main.parent) == before, "absent did not give the bytes back"
    assert nginx_t(root, main).returncode == 0


def test_commands_with_shell_syntax_run_as_literal_arguments(tmp_path):
    """configtest and reload are argument lists (or split like a shell, without one): the
    script in a hostile directory runs, receives its hostile argument verbatim, and the
    command substitution, the ``;`` and the backticks spell out nothing that runs."""
    canary = tmp_path / "canary"
    bin_dir = tmp_path / "b in;$(touch canary)`touch canary`"
    bin_dir.mkdir()
    argv_log = tmp_path / "argv.json"
    script = bin_dir / "record argv.py"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"with open({str(argv_log)!r}, 'a') as out:\n    out.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    script.chmod(0o755)
    hostile_arg = f"$(touch {canary}); touch {canary} `touch {canary}` \n'\"\udcff"
    conf = tmp_path / "etc" / "server.conf"
    conf.parent.mkdir()
    conf.write_text("SSLUseStapling On\n")
    request = ChangeRequest(files=[FileSpec(path=str(conf), block="SSLUseStapling off")],
                            configtest_command=[str(script), "-t", hostile_arg],
                            reload_command=[str(script), "graceful", hostile_arg],
                            backup_dir=str(tmp_path / "backups"), candidate_validation="swap")
    result = StaplingChange(request).run()
    assert result["changed"] and result["reload"]["rc"] == 0, result
    calls = [json.loads(line) for line in argv_log.read_text().splitlines()]
    printable = hostile_arg.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    assert calls == [["-t", printable], ["graceful", printable]], calls
    assert not canary.exists(), "a shell ran part of a command"
    # A string command is split like a shell would split it, and then run without one.
    assert split_command(f"'{script}' -t '$(touch {canary})'") == [str(script), "-t", f"$(touch {canary})"]
