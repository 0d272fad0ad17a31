"""A private network namespace where IPv6 to the OCSP responder is broken.

    with BrokenIPv6Namespace.create() as ns:
        subprocess.run(ns.command([sys.executable, "-m", "tests.integration.netns_runbook", ...]),
                       timeout=300)

The namespace (``ip netns add``, a unique name, removed on exit) holds only its own
loopback, up, so no packet can leave it. Inside it the documentation prefix
``2001:db8:6::/64`` (RFC 3849) has an ``unreachable`` route: connecting to
:data:`RESPONDER_IPV6` fails at once with "No route to host", as on a host whose IPv6
uplink is gone. The loopback also carries :data:`HOST_IPV4` and :data:`REFUSED_IPV6`
(documentation addresses, inside the namespace only): a host with an IPv4 and an IPv6
address of its own, so ``getaddrinfo``'s ``AI_ADDRCONFIG`` (APR, hence Apache, asks for it)
keeps both families, and an IPv6 address where nothing listens, which glibc sorts before
127.0.0.1 (a usable global IPv6 address outranks IPv4 in RFC 6724's precedence): a
connection there is refused. ``ip netns exec`` bind-mounts ``/etc/netns/<name>/hosts``
over ``/etc/hosts`` for what it runs (this module writes that file, and a ``resolv.conf``
that points at the namespace's own loopback so no lookup leaves it), giving the
responder names:

- :data:`IPV6_ONLY` resolves to :data:`RESPONDER_IPV6` only;
- :data:`DUAL_STACK` resolves to 127.0.0.1 (where the lab responder listens) and
  :data:`RESPONDER_IPV6` (sorted last: it has no route);
- :data:`DUAL_STACK_REFUSED` resolves to :data:`REFUSED_IPV6`, sorted first, and
  127.0.0.1: a client that tries the addresses in order is refused over IPv6 first.

:func:`ipv6_packets_sent` reads the namespace's own IPv6 counter (``/proc/net/snmp6``
is per namespace), so a test can tell whether a server tried IPv6 at all.

Everything started inside is stopped by PID (the lab does it itself; whatever is left in
the namespace when it is removed was started there by us, and ``ip netns pids`` names it).
Needs root and iproute2; :func:`unavailable` says why not when they are missing.
"""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from tests.lab.processes import LabError, pid_alive, wait_until

NETNS_ETC = Path("/etc/netns")
BROKEN_PREFIX = "2001:db8:6::/64"
RESPONDER_IPV6 = "2001:db8:6::1"
REFUSED_IPV6 = "2001:db8:7::1"
HOST_IPV4 = "192.0.2.1"
IPV6_ONLY = "ocsp6.lab.test"
DUAL_STACK = "ocsp46.lab.test"
DUAL_STACK_REFUSED = "ocsp46-refused.lab.test"
HOSTS = {IPV6_ONLY: [RESPONDER_IPV6], DUAL_STACK: ["127.0.0.1", RESPONDER_IPV6],
         DUAL_STACK_REFUSED: [REFUSED_IPV6, "127.0.0.1"]}
COMMAND_TIMEOUT = 20


def unavailable() -> str | None:
    """Why a namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    return None


def ipv6_packets_sent() -> int:
    """Ip6OutRequests of the network namespace this process runs in."""
    for line in Path("/proc/net/snmp6").read_text().splitlines():
        name, dummy, value = line.partition(" ")
        if name == "Ip6OutRequests":
            return int(value.strip())
    raise LabError("/proc/net/snmp6 has no Ip6OutRequests counter")


def _ip(*args: str) -> subprocess.CompletedProcess:
    completed = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                               stdin=subprocess.DEVNULL, check=False)
    if completed.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed (exit {completed.returncode}): {completed.stderr.strip()}")
    return completed


class BrokenIPv6Namespace:
    """One namespace of ours, its /etc/netns directory, and how to run things inside it."""

    def __init__(self, name: str):
        self.name = name
        self.etc = NETNS_ETC / name
        self._made_netns_etc = False

    @classmethod
    def create(cls, hosts: dict[str, list[str]] | None = None) -> "BrokenIPv6Namespace":
        reason = unavailable()
        if reason:
            raise LabError(f"cannot make a network namespace: {reason}")
        ns = cls(f"ocspst-{os.getpid()}-{secrets.token_hex(3)}")
        try:
            ns._write_etc(HOSTS if hosts is None else hosts)
            _ip("netns", "add", ns.name)
            _ip("-n", ns.name, "link", "set", "lo", "up")
            _ip("-n", ns.name, "-6", "route", "add", "unreachable", BROKEN_PREFIX)
            _ip("-n", ns.name, "addr", "add", f"{HOST_IPV4}/32", "dev", "lo")
            _ip("-n", ns.name, "addr", "add", f"{REFUSED_IPV6}/128", "dev", "lo", "nodad")
        except BaseException:
            ns.remove()
            raise
        return ns

    def _write_etc(self, hosts: dict[str, list[str]]) -> None:
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += [f"{address} {name}" for name, addresses in hosts.items() for address in addresses]
        # Other namespaces' runs may create or remove /etc/netns at the same time: bounded retries.
        for dummy in range(5):
            try:
                self._made_netns_etc = self._made_netns_etc or not NETNS_ETC.exists()
                NETNS_ETC.mkdir(mode=0o755, exist_ok=True)
                self.etc.mkdir(mode=0o755)
                break
            except FileNotFoundError:
                continue
        else:
            raise LabError(f"could not create {self.etc}")
        (self.etc / "hosts").write_text("\n".join(lines) + "\n")
        # Lookups the hosts file does not answer go to the namespace's own loopback, where
        # nothing listens: refused at once, never sent anywhere else.
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace, with its hosts and resolv.conf."""
        return ["ip", "netns", "exec", self.name, *argv]

    def pids(self) -> list[int]:
        completed = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True,
                                   timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
        return [int(word) for word in completed.stdout.split() if word.isdigit()]

    def remove(self) -> None:
        """Stop what still runs inside (ours: nothing else can be in it), remove the namespace
        and its /etc/netns directory."""
        if Path("/run/netns", self.name).exists():
            for sig in (signal.SIGTERM, signal.SIGKILL):
                left = self.pids()
                for pid in left:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                try:
                    wait_until(lambda: not any(pid_alive(pid) for pid in left), 10, f"the processes in {self.name} to exit")
                    break
                except LabError:
                    continue
            _ip("netns", "del", self.name)
        shutil.rmtree(self.etc, ignore_errors=True)
        if self._made_netns_etc:
            try:
                NETNS_ETC.rmdir()
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    raise

    def __enter__(self) -> "BrokenIPv6Namespace":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
