"""A private OpenSSH server on 127.0.0.1, so one fleet host is reached over a real ``ssh``.

    with SshServer.start(tmp_path / "sshd") as sshd:
        sshd.inventory_vars(python=sys.executable)   # ansible_connection: ssh, port, key, ...
        sshd.accepted_logins()                       # "Accepted publickey for root ..." lines

Everything lives under the given directory: the host key, a client key pair whose public
half is the only entry of ``AuthorizedKeysFile``, the ``sshd_config``, the PID file and the
log (``-E``, LogLevel VERBOSE, so every accepted login is recorded). sshd runs in the
foreground (``-D``) as our child and is stopped by that PID. It listens on 127.0.0.1 only.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.processes import LabError, port_open, stop_pid, wait_until
from tests.lab.responder import free_port

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                          "/usr/libexec/sftp-server")
# OpenSSH refuses to start without its compiled-in privilege separation directory.
PRIVSEP_DIR = Path("/run/sshd")

SSHD_CONFIG = """\
# Private lab sshd: loopback only, key authentication only, every path under {root}.
ListenAddress 127.0.0.1:{port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
LogLevel VERBOSE
MaxStartups 50:30:100
MaxSessions 50
{sftp}
"""


@dataclass
class SshServer:
    root: Path
    port: int = 0
    user: str = "root"
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def config(self) -> Path:
        return self.root / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.root / "authorized_keys"

    @property
    def pid_file(self) -> Path:
        return self.root / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.root / "sshd.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @classmethod
    def start(cls, root: Path | str, user: str = "root") -> "SshServer":
        server = cls(Path(root), free_port(), user)
        server._start()
        return server

    def __enter__(self) -> "SshServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _keygen(self, path: Path, comment: str) -> None:
        if path.exists():
            return
        result = subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                                capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                                check=False)
        if result.returncode != 0:
            raise LabError(f"ssh-keygen could not create {path} (exit {result.returncode}): "
                           f"{result.stderr.strip()}")

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._keygen(self.host_key, "ocsp.stapling lab sshd host key")
        self._keygen(self.client_key, "ocsp.stapling lab client")
        os.chmod(self.host_key, 0o600)
        os.chmod(self.client_key, 0o600)
        self.authorized_keys.write_text(Path(f"{self.client_key}.pub").read_text())
        sftp = next((p for p in SFTP_SERVER_CANDIDATES if Path(p).exists()), None)
        self.config.write_text(SSHD_CONFIG.format(
            root=self.root, port=self.port, host_key=self.host_key, pid_file=self.pid_file,
            authorized_keys=self.authorized_keys,
            sftp=f"Subsystem sftp {sftp}" if sftp else "# no sftp-server found: Ansible falls back to scp"))

    def _start(self) -> None:
        if not Path(SSHD).exists():
            raise LabError(f"{SSHD} is missing: install the openssh-server package "
                           f"(tests/bin/install-system-deps does) and run again")
        self.write_config()
        if not PRIVSEP_DIR.is_dir():
            # Debian's sshd unit creates it (RuntimeDirectory=sshd); without systemd we do.
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        test = subprocess.run([SSHD, "-t", "-f", str(self.config)], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL, check=False)
        if test.returncode != 0:
            raise LabError(f"sshd -t rejected the lab config {self.config} (exit {test.returncode}): "
                           f"{test.stderr.strip()}")
        # sshd insists on being started by its absolute path (it re-executes itself).
        self._proc = subprocess.Popen([SSHD, "-D", "-f", str(self.config), "-E", str(self.log)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until(lambda: self._proc.poll() is not None or self._banner(), 15,
                       f"sshd to answer with an SSH banner on 127.0.0.1:{self.port}")
        except LabError as exc:
            self.stop()
            raise LabError(f"{exc}; sshd log {self.log}:\n{self._log_tail()}") from None
        if self._proc.poll() is not None:
            code = self._proc.returncode
            self._proc = None
            raise LabError(f"sshd exited at start (exit {code}); its log {self.log}:\n{self._log_tail()}")

    def _banner(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log written)"

    def accepted_logins(self) -> list[str]:
        """sshd's log lines for every accepted public-key login (LogLevel VERBOSE)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines()
                if "Accepted publickey for" in line and "127.0.0.1" in line]

    def inventory_vars(self, python: str) -> dict:
        """Host vars that make Ansible reach this machine through this sshd."""
        return {
            "ansible_connection": "ssh",
            "ansible_host": "127.0.0.1",
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                       "-o IdentitiesOnly=yes -o BatchMode=yes",
            "ansible_python_interpreter": python,
        }

    def connections(self) -> list[int]:
        """PIDs of the per-connection sshd processes our listener forked."""
        if self._proc is None:
            return []
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self._proc.pid:
                children.append(int(stat.parent.name))
        return children

    def stop(self) -> None:
        if self._proc is None:
            return
        # Ansible's ssh ControlPersist masters keep a connection (and its sshd child) open for
        # a minute after the last task; end those children too, so nothing of ours outlives
        # the test. The client masters exit when their connection closes.
        for pid in self.connections():
            stop_pid(pid, timeout=5)
        stop_pid(self._proc.pid)
        try:
            self._proc.wait(timeout=5)  # reap it so it does not linger as a zombie
        except subprocess.TimeoutExpired:
            pass
        self._proc = None
