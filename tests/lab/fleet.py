"""A small fleet for the runbook: many web server instances, one PKI, one OCSP responder.

    with Fleet.start(tmp_path / "fleet", count=10, ssh=True) as fleet:
        fleet.write_inventory(tmp_path / "inventory.json")
        fleet.break_configtest("web03")          # an Include of a missing file
        fleet.config_digest("web03")             # sha256 of every file under its etc/
        fleet.probe("web01", "good").verdict

Each host is an Apache instance (``tests.lab.apache``; nginx with ``servers=...``) under its
own private prefix, laid out like Debian's ``/etc``. They all serve certificates from the
one lab PKI and ask the one lab responder, so ten hosts cost ten small server processes and
one responder, not ten labs. Local hosts use ``ansible_connection: local``; with ``ssh=True``
one more host (``viassh``) is reached through a private ``sshd`` on 127.0.0.1
(``tests.lab.sshd``). Every process is stopped by PID.
"""
from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.lab import inventory as lab_inventory
from tests.lab.apache import ApacheInstance
from tests.lab.lab import Lab
from tests.lab.nginx import NginxInstance
from tests.lab.pki import LEAF_HOSTS
from tests.lab.probe import Staple, probe
from tests.lab.processes import LabError, pid_alive
from tests.lab.responder import free_port
from tests.lab.sites import lab_sites
from tests.lab.sshd import SshServer

# good: the site whose staple the runbook turns off and on; nourl: a certificate without an
# OCSP URL (nothing to staple). Two vhosts per host keep ten hosts cheap.
FLEET_SITES = ("good", "nourl")
SSH_HOST = "viassh"
BROKEN_INCLUDE = "00-fleet-broken.conf"


@dataclass
class FleetHost:
    name: str
    server: str                       # apache | nginx
    instance: ApacheInstance | NginxInstance
    connection: str = "local"         # local | ssh

    @property
    def root(self) -> Path:
        return self.instance.root

    @property
    def etc(self) -> Path:
        return self.instance.conf_dir


class Fleet:
    def __init__(self, directory: Path, lab: Lab, hosts: list[FleetHost], sshd: SshServer | None):
        self.directory = directory
        self.lab = lab
        self.hosts = {host.name: host for host in hosts}
        self.sshd = sshd

    @classmethod
    def start(cls, directory: Path | str, count: int = 10, ssh: bool = True,
              servers: tuple[str, ...] = ("apache",), sites: tuple[str, ...] = FLEET_SITES,
              parallel: int = 4) -> "Fleet":
        """``count`` local hosts (server kinds taken round-robin from ``servers``), plus the ssh host."""
        directory = Path(directory)
        lab = Lab.start(directory / "lab", servers=())
        fleet = cls(directory, lab, [], None)
        try:
            site_list = lab_sites(lab.pki, sites)
            names = [f"web{i:02d}" for i in range(1, count + 1)] + ([SSH_HOST] if ssh else [])
            hosts = []
            for index, name in enumerate(names):
                kind = servers[index % len(servers)]
                root = directory / "hosts" / name
                if kind == "apache":
                    # Stapling on with Apache's defaults: what the runbook finds on a real box.
                    instance = ApacheInstance(root, free_port(), site_list)
                elif kind == "nginx":
                    instance = NginxInstance(root, free_port(), site_list, lab.pki.trusted_chain)
                else:
                    raise LabError(f"unknown fleet server kind {kind!r}; expected apache or nginx")
                hosts.append(FleetHost(name, kind, instance, "ssh" if name == SSH_HOST else "local"))
            fleet.hosts = {host.name: host for host in hosts}
            # Starting is mostly waiting on apache2ctl; a few at a time keeps two cores usable.
            with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
                for future in [pool.submit(host.instance.start) for host in hosts]:
                    future.result()
            if ssh:
                fleet.sshd = SshServer.start(directory / "sshd")
        except BaseException:
            fleet.stop()
            raise
        return fleet

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def host(self, name: str) -> FleetHost:
        try:
            return self.hosts[name]
        except KeyError:
            raise LabError(f"no fleet host {name!r}; the fleet has {sorted(self.hosts)}") from None

    # -- inventory -------------------------------------------------------------------------

    def record(self, host: FleetHost) -> dict:
        """The host's ``lab.json``-shaped record: one server under the host's prefix."""
        instance = host.instance
        server = {"port": instance.port, "pid": instance.pid, "root": str(instance.root),
                  "conf": str(instance.conf), "error_log": str(instance.error_log),
                  "pid_file": str(instance.pid_file), "commands": instance.commands()}
        if host.server == "apache":
            server["environment"] = instance.environment
        return {"directory": str(host.root), "pki": str(self.lab.pki.directory),
                "responder": self.lab.record()["responder"], "servers": {host.server: server},
                "sites": {site.name: LEAF_HOSTS[site.name] for site in instance.sites}}

    def host_vars(self, host: FleetHost, python: str = sys.executable) -> dict:
        """The lab's one inventory mapping (``tests.lab.inventory``) for this host's prefix,
        with the ssh host's connection variables in place of the local connection."""
        hostvars = lab_inventory.host_vars(self.record(host), python, state_dir=host.root / "runbook")
        if host.connection == "ssh":
            if self.sshd is None:
                raise LabError(f"{host.name} is an ssh host but the fleet was started without sshd")
            hostvars.update(self.sshd.inventory_vars(python))
        hostvars.update({"fleet_server": host.server, "fleet_root": str(host.root),
                         "fleet_port": host.instance.port})
        return hostvars

    def inventory(self, python: str = sys.executable, group: str = "webservers") -> dict:
        return {"all": {"children": {group: {"hosts": {
            name: self.host_vars(host, python) for name, host in self.hosts.items()}}}}}

    def write_inventory(self, path: Path | str, python: str = sys.executable) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.inventory(python), indent=2))
        return path

    # -- faults and evidence ---------------------------------------------------------------

    def break_configtest(self, name: str) -> Path:
        """Make the host's configtest fail the way a half-finished edit does: an Include of a
        file that does not exist. The running server is not reloaded, so it keeps serving."""
        host = self.host(name)
        missing = host.etc / "fleet-missing.conf"
        if host.server == "apache":
            broken = host.etc / "conf-enabled" / BROKEN_INCLUDE
            broken.write_text(f"# Written by the fleet test: this file does not exist.\nInclude {missing}\n")
        else:
            broken = host.etc / "conf.d" / BROKEN_INCLUDE
            broken.write_text(f"# Written by the fleet test: this file does not exist.\ninclude {missing};\n")
        return broken

    def config_digest(self, name: str) -> dict[str, str]:
        """sha256 of every file under the host's config tree, and the target of every link."""
        etc = self.host(name).etc
        digest = {}
        for path in sorted(etc.rglob("*")):
            key = str(path.relative_to(etc))
            if path.is_symlink():
                digest[key] = "link:" + str(path.readlink())
            elif path.is_file():
                digest[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return digest

    def probe(self, name: str, site: str, timeout: float = 15.0) -> Staple:
        return probe(self.host(name).instance.port, LEAF_HOSTS.get(site, site), timeout=timeout)

    def running(self, name: str) -> bool:
        instance = self.host(name).instance
        if isinstance(instance, ApacheInstance):
            return instance.running()
        pid = instance.pid
        return bool(pid) and pid_alive(pid)

    def stop(self) -> None:
        errors = []
        for host in self.hosts.values():
            try:
                host.instance.stop()
            except LabError as exc:  # keep stopping the others
                errors.append(f"{host.name}: {exc}")
        if self.sshd is not None:
            self.sshd.stop()
        self.lab.stop()
        if errors:
            raise LabError("some fleet servers did not stop: " + "; ".join(errors))
