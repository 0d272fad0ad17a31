"""The whole lab: PKI, OCSP responder, nginx and apache2, all on 127.0.0.1.

    with Lab.start(tmp_path) as lab:
        lab.responder.set_mode("down")
        lab.probe("apache", "good").verdict

Every port is picked free on 127.0.0.1; every process is stopped by PID on exit.
``lab.json`` in the lab directory records what runs where, for the CLI and for playbooks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.apache import ApacheInstance
from tests.lab.nginx import NginxInstance
from tests.lab.pki import LEAF_HOSTS, LabPKI
from tests.lab.probe import Staple, probe
from tests.lab.processes import LabError, pid_alive, port_open, stop_pid, wait_until
from tests.lab.responder import CA_ISSUERS_PATH, free_port
from tests.lab.sites import Site, lab_sites
from tests.lab.sites import extra_sites as make_extra_sites

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ResponderProcess:
    """The responder subprocess and its control port."""

    pki_dir: Path
    port: int
    control_port: int
    validity: int = 3600
    engine: str = "cryptography"
    log: Path | None = None
    pid: int | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        command = [sys.executable, "-m", "tests.lab.responder", "--pki", str(self.pki_dir),
                   "--port", str(self.port), "--control-port", str(self.control_port),
                   "--validity", str(self.validity), "--engine", self.engine]
        log = open(self.log or os.devnull, "ab")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self._proc = subprocess.Popen(command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.pid = self._proc.pid
        try:
            wait_until(lambda: port_open(self.control_port) or self._proc.poll() is not None, 20,
                       f"the OCSP responder control port {self.control_port}")
        except LabError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise LabError(f"the lab OCSP responder exited at start (exit {self._proc.returncode}); "
                           f"see {self.log}")

    def control(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control_port}/{path}", timeout=10) as resp:
            return json.loads(resp.read())

    def set_mode(self, mode: str) -> dict:
        return self.control(f"mode/{mode}")

    def state(self) -> dict:
        return self.control("state")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None
        elif self.pid:
            stop_pid(self.pid)
        self.pid = None


class Lab:
    """PKI + responder + nginx + apache2 under one directory."""

    def __init__(self, directory: Path, pki: LabPKI, responder: ResponderProcess,
                 nginx: NginxInstance | None, apache: ApacheInstance | None):
        self.directory = directory
        self.pki = pki
        self.responder = responder
        self.nginx = nginx
        self.apache = apache

    @classmethod
    def start(cls, directory: Path | str, servers: tuple[str, ...] = ("nginx", "apache"),
              sites: list[Site] | None = None, validity: int = 3600,
              apache_options: dict | None = None, nginx_options: dict | None = None,
              engine: str = "cryptography", extra_sites: int = 0, aia_leaf: bool = False,
              ocsp_host: str = "127.0.0.1") -> "Lab":
        """``extra_sites``: that many more vhosts (``good0.lab.test``...) serving the good leaf.

        ``ocsp_host``: the host the certificates' OCSP URLs name (the responder still listens
        on 127.0.0.1 only): a name that resolves, where the lab runs, to whatever the test
        needs (``tests/lab/netns.py`` gives names IPv6 addresses with a broken route).

        ``aia_leaf``: also make ``pki.extra_leaves["aia"]``, whose AIA caIssuers URL is the
        responder's ``/ca/intermediate.der`` (no web server serves it).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ocsp_port, control_port = free_port(), free_port()
        ca_issuers_url = f"http://127.0.0.1:{ocsp_port}{CA_ISSUERS_PATH}" if aia_leaf else None
        pki = LabPKI.create(directory / "pki", ocsp_url=f"http://{ocsp_host}:{ocsp_port}/",
                            ca_issuers_url=ca_issuers_url)
        responder = ResponderProcess(directory / "pki", ocsp_port, control_port, validity=validity,
                                     engine=engine, log=directory / "responder.log")
        lab = cls(directory, pki, responder, None, None)
        try:
            responder.start()
            site_list = (sites or lab_sites(pki)) + (make_extra_sites(pki, extra_sites) if extra_sites else [])
            if "nginx" in servers:
                lab.nginx = NginxInstance(directory / "nginx", free_port(), site_list,
                                          pki.trusted_chain, **(nginx_options or {}))
                lab.nginx.start()
            if "apache" in servers:
                lab.apache = ApacheInstance(directory / "apache", free_port(), site_list,
                                            **(apache_options or {}))
                lab.apache.start()
        except BaseException:
            lab.stop()
            raise
        lab.write_record()
        return lab

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def server(self, name: str):
        instance = getattr(self, name)
        if instance is None:
            raise LabError(f"the lab was started without {name}")
        return instance

    def probe(self, server: str, site: str, timeout: float = 15.0, tls: str | None = None) -> Staple:
        return probe(self.server(server).port, LEAF_HOSTS.get(site, site), timeout=timeout, tls=tls)

    def wait_for_verdict(self, server: str, site: str, verdict: str, timeout: float = 30.0) -> Staple:
        """Probe until the site's staple verdict is ``verdict`` (nginx staples lazily)."""
        seen: list[str] = []

        def check():
            staple = self.probe(server, site)
            seen.append(staple.verdict)
            return staple if staple.verdict == verdict else None
        try:
            return wait_until(check, timeout, f"{server} {site} to staple {verdict}", interval=0.1)
        except LabError as exc:
            raise LabError(f"{exc}; verdicts seen: {seen[-5:]}") from None

    def record(self) -> dict:
        servers = {}
        for name in ("nginx", "apache"):
            instance = getattr(self, name)
            if instance is not None:
                servers[name] = {"port": instance.port, "pid": instance.pid, "root": str(instance.root),
                                 "conf": str(instance.conf), "error_log": str(instance.error_log),
                                 "pid_file": str(instance.pid_file), "commands": instance.commands()}
                if name == "apache":
                    servers[name]["environment"] = instance.environment
        return {
            "directory": str(self.directory),
            "pki": str(self.pki.directory),
            "responder": {"url": self.responder.url, "port": self.responder.port,
                          "control_port": self.responder.control_port, "pid": self.responder.pid},
            "servers": servers,
            "sites": dict(LEAF_HOSTS),
        }

    def write_record(self) -> Path:
        path = self.directory / "lab.json"
        path.write_text(json.dumps(self.record(), indent=2))
        return path

    def stop(self) -> None:
        for instance in (self.apache, self.nginx):
            if instance is not None:
                instance.stop()
        self.responder.stop()


def stop_recorded(directory: Path) -> None:
    """Stop a lab started by another process (the CLI), from its ``lab.json`` PIDs."""
    record = json.loads((Path(directory) / "lab.json").read_text())
    for server in record["servers"].values():
        pid_file = Path(server["pid_file"])
        pids = {server.get("pid")}
        if pid_file.exists() and pid_file.read_text().strip().isdigit():
            pids.add(int(pid_file.read_text().strip()))
        for pid in pids:
            if pid and pid_alive(pid):
                stop_pid(pid)
    stop_pid(record["responder"]["pid"])
