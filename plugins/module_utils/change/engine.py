# -*- coding: utf-8 -*-
# Copyright: contributors to ocsp.stapling
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one change shape every server dialect goes through.

    plan → validate the candidate → back up → swap atomically → reload gracefully
    → verify → (on any failure) restore, reload or start again, verify, explain.

Host side: Python standard library only. Nothing here knows Apache or nginx; a dialect
hands over *what* to write (files holding a managed block or whole managed content,
symlinks), *how* to test and reload (commands), and *what healthy looks like* afterwards
(a pid file, TLS endpoints, error-log patterns). See ``docs/change-shape.md``.

Why the candidate is validated inside a private mount namespace: a configtest can only
read the config from its real paths (Apache's ``Include`` lines are absolute or relative
to ``ServerRoot``), and writing the candidate there first would let a crash, a kill or a
concurrent reload pick up a config that was never tested. ``unshare --mount`` gives the
configtest a private view in which each changed directory is replaced by a copy holding
the candidate; the live tree is never touched. Where ``unshare`` cannot be used (not
root, a container without CAP_SYS_ADMIN) ``swap`` validation writes the candidate, tests
it and puts the old files back on failure, under a lock, and says so in a warning.

Why a configtest is not enough: ``apache2 -t`` stops after parsing, before mod_ssl sets
stapling up, so ``SSLUseStapling on`` without ``SSLStaplingCache`` passes ``-t`` and the
graceful restart then kills the whole server (AH01872, AH00020). Every reload is
therefore followed by a liveness check of the parent, a TLS handshake per endpoint and a
scan of the error log written since the reload.
"""
from __future__ import annotations

import base64
import difflib
import errno
import fcntl
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.ocsp.stapling.plugins.module_utils.change.atomic_write import write_atomic
from ansible_collections.ocsp.stapling.plugins.module_utils.change.managed_block import (
    DEFAULT_MARKER,
    BlockError,
    apply_block,
    decode,
    encode,
)
from ansible_collections.ocsp.stapling.plugins.module_utils.change.processes import pid_alive, read_pid

#: Error-log lines that mean the server did not survive the reload (or cannot staple at
#: all): AH00020 "Configuration Failed, exiting", AH01872 "Could not initialize stapling
#: cache. Exiting.", AH01958 "SSLStapling: no stapling cache available".
DEFAULT_FATAL_PATTERNS = ("AH00020", "AH01872", "AH01958")
#: Lines that mean a certificate cannot be stapled as configured, while the server keeps
#: running: AH02217 issuer certificate not found, AH02218 no OCSP URL in the certificate,
#: AH02604 "Unable to configure certificate ... for stapling". Reported, not fatal: the
#: lab's (and many real) URL-less certificates log them on every start.
DEFAULT_WARNING_PATTERNS = ("AH02217", "AH02218", "AH02604")
DEFAULT_BACKUP_DIR = "/var/backups/ocsp.stapling"
COMMAND_TIMEOUT = 180
MAX_LOG_READ = 4 * 1024 * 1024
#: The change lock's mode (``backup_dir/.lock``): only the runbook reads it.
LOCK_MODE = 0o600
#: After the parent is seen dead, how long to keep reading the error log for its last
#: words: Apache writes AH00020 itself just before it exits, but a piped ErrorLog's logger
#: (rotatelogs, a syslog relay) may write it after the parent has gone, later under load.
LOG_FLUSH_WAIT = 2.0
#: How many lines since the reload a failure message quotes when no fatal line was logged.
LAST_LINES = 5


class ChangeError(Exception):
    """The change failed; ``result`` says what ran, what was found and what was restored."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result or {}


# --------------------------------------------------------------------------- specs

@dataclass
class FileSpec:
    path: str
    block: str | None = None
    #: Whole file content: ``str`` (encoded UTF-8 with surrogateescape) or ``bytes``
    #: written as they are (a dialect that edits non-UTF-8 files byte for byte).
    content: str | bytes | None = None
    state: str = "present"
    marker: str = DEFAULT_MARKER
    insert_before: str | None = None
    insert_after: str | None = None
    mode: str | None = None
    owner: str | None = None
    group: str | None = None


@dataclass
class LinkSpec:
    path: str
    src: str | None = None
    state: str = "present"


@dataclass
class Endpoint:
    host: str = "127.0.0.1"
    port: int = 443
    server_name: str | None = None


@dataclass
class VerifySpec:
    pid_file: str | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    error_log: str | None = None
    fatal_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_FATAL_PATTERNS))
    warning_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_WARNING_PATTERNS))
    ready_patterns: list[str] = field(default_factory=list)
    timeout: float = 30.0
    settle: float = 1.0


@dataclass
class ChangeRequest:
    files: list[FileSpec] = field(default_factory=list)
    links: list[LinkSpec] = field(default_factory=list)
    configtest_command: str | list[str] | None = None
    reload_command: str | list[str] | None = None
    start_command: str | list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    candidate_validation: str = "auto"
    backup_dir: str = DEFAULT_BACKUP_DIR
    verify: VerifySpec | None = None
    reload: str = "on_change"
    check_mode: bool = False
    diff: bool = False
    #: Why there is no configtest_command, when the dialect has none on purpose (LSWS
    #: Enterprise: ``lshttpd -t`` checks the license, not the config). Replaces the
    #: "not validated" warning and is reported as ``configtest.skipped``.
    configtest_absent_reason: str | None = None
    #: Regular expressions that fail the configtest although it exits 0 (``nginx -t``
    #: warns ``"ssl_stapling" ignored`` and exits 0; stapling is then off).
    configtest_fail_patterns: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- plan

@dataclass
class PlannedFile:
    spec: FileSpec
    before: bytes | None
    after: bytes | None
    mode: int | None
    uid: int | None
    gid: int | None
    attributes_changed: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after or self.attributes_changed

    @property
    def path(self) -> str:
        return self.spec.path


@dataclass
class PlannedLink:
    spec: LinkSpec
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def path(self) -> str:
        return self.spec.path


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ChangeError(f"{path} is a directory; the change expects a config file there. "
                          "Point the role's path variable at the file, not its directory.") from None


def _uid(owner: str | None) -> int | None:
    if owner is None:
        return None
    if owner.isdigit():
        return int(owner)
    import pwd
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ChangeError(f"owner {owner!r} does not exist on this host; give an existing user "
                          "or leave owner unset to keep the file's current owner") from None


def _gid(group: str | None) -> int | None:
    if group is None:
        return None
    if group.isdigit():
        return int(group)
    import grp
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ChangeError(f"group {group!r} does not exist on this host; give an existing group "
                          "or leave group unset to keep the file's current group") from None


def _content_bytes(content: str | bytes) -> bytes:
    return bytes(content) if isinstance(content, (bytes, bytearray)) else encode(content)


def plan_file(spec: FileSpec) -> PlannedFile:
    if spec.state not in ("present", "absent"):
        raise ChangeError(f"{spec.path}: state must be present or absent, not {spec.state!r}")
    if spec.block is not None and spec.content is not None:
        raise ChangeError(f"{spec.path}: give either block (a managed block inside the file) or "
                          "content (the whole file), not both")
    before = _read(spec.path)
    if spec.content is not None or (spec.block is None and spec.state == "absent"):
        after = _content_bytes(spec.content) if spec.state == "present" and spec.content is not None else None
        if spec.state == "present" and spec.content is None:
            raise ChangeError(f"{spec.path}: state=present needs block or content")
    else:
        if spec.state == "present" and spec.block is None:
            raise ChangeError(f"{spec.path}: state=present needs block or content")
        if before is None and spec.state == "absent":
            after = None
        else:
            try:
                text = apply_block(decode(before or b""), spec.block, spec.state, spec.marker,
                                   spec.insert_before, spec.insert_after)
            except BlockError as exc:
                raise ChangeError(f"{spec.path}: {exc}") from None
            except re.error as exc:
                raise ChangeError(f"{spec.path}: insert_before/insert_after is not a valid "
                                  f"regular expression ({exc})") from None
            after = encode(text)
    mode = int(spec.mode, 8) if spec.mode else None
    uid, gid = _uid(spec.owner), _gid(spec.group)
    attributes_changed = False
    if before is not None and after is not None:
        st = os.stat(spec.path)
        attributes_changed = ((mode is not None and (st.st_mode & 0o7777) != mode)
                              or (uid is not None and st.st_uid != uid)
                              or (gid is not None and st.st_gid != gid))
    return PlannedFile(spec, before, after, mode, uid, gid, attributes_changed)


def plan_link(spec: LinkSpec) -> PlannedLink:
    if spec.state not in ("present", "absent"):
        raise ChangeError(f"{spec.path}: link state must be present or absent, not {spec.state!r}")
    if os.path.islink(spec.path):
        before = os.readlink(spec.path)
    elif os.path.lexists(spec.path):
        raise ChangeError(f"{spec.path} exists and is not a symlink; the change expected to manage "
                          f"a symlink there (a2enconf style). Move the file away or point the "
                          f"role's link path elsewhere.")
    else:
        before = None
    if spec.state == "present" and not spec.src:
        raise ChangeError(f"{spec.path}: a present link needs src")
    after = spec.src if spec.state == "present" else None
    return PlannedLink(spec, before, after)


def file_diff(item: PlannedFile) -> dict[str, str]:
    return {"before_header": item.path if item.before is not None else "/dev/null",
            "after_header": item.path if item.after is not None else "/dev/null",
            # For display only: bytes that are not UTF-8 are shown as U+FFFD (a module result
            # cannot carry them; the files themselves are written byte for byte).
            "before": item.before.decode("utf-8", "replace") if item.before is not None else "",
            "after": item.after.decode("utf-8", "replace") if item.after is not None else ""}


def link_diff(item: PlannedLink) -> dict[str, str]:
    return {"before_header": f"{item.path} (symlink)", "after_header": f"{item.path} (symlink)",
            "before": f"-> {item.before}\n" if item.before else "",
            "after": f"-> {item.after}\n" if item.after else ""}


def unified(item: PlannedFile) -> str:
    diff = file_diff(item)
    return "".join(difflib.unified_diff(diff["before"].splitlines(True), diff["after"].splitlines(True),
                                        diff["before_header"], diff["after_header"]))


# --------------------------------------------------------------------------- commands

def split_command(command: str | list[str] | None) -> list[str] | None:
    if command is None or command == "" or command == []:
        return None
    if isinstance(command, str):
        return shlex.split(command)
    return [str(part) for part in command]


def run_command(argv: list[str], environment: dict[str, str], timeout: float = COMMAND_TIMEOUT
                ) -> tuple[int, str]:
    env = dict(os.environ, **{k: str(v) for k, v in environment.items()})
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]}: command not found"
    except PermissionError:
        return 126, f"{argv[0]}: permission denied (not executable?)"
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode("utf-8", "replace") if exc.output else ""
        return 124, f"{out}\n{shlex.join(argv)}: no exit within {timeout:.0f}s"
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------- namespace

def unshare_available(environment: dict[str, str] | None = None) -> tuple[bool, str]:
    """Can this process create a private mount namespace (root, CAP_SYS_ADMIN)?"""
    unshare = shutil.which("unshare")
    if not unshare:
        return False, "unshare(1) is not installed"
    rc, out = run_command([unshare, "--mount", "--propagation", "private", "true"], {}, 30)
    if rc != 0:
        return False, f"unshare --mount failed ({out.strip() or 'rc ' + str(rc)})"
    return True, ""


def _anchor(path: str) -> tuple[str, str]:
    """(nearest existing ancestor directory of path's parent, path relative to it)."""
    parent = os.path.dirname(os.path.abspath(path))
    anchor = parent
    while not os.path.isdir(anchor):
        up = os.path.dirname(anchor)
        if up == anchor:
            break
        anchor = up
    return anchor, os.path.relpath(os.path.abspath(path), anchor)


class CandidateTree:
    """Shallow copies of every changed directory, holding the candidate files.

    Each copy holds the directory's files and symlinks; its subdirectories are empty
    mount points onto which the live subdirectories are bind-mounted inside the
    namespace, so only the changed directories' own files are copied, however big the
    tree under them is (cPanel's ``userdata/`` can hold thousands of users).
    """

    def __init__(self, files: list[PlannedFile], links: list[PlannedLink]) -> None:
        self.staging = tempfile.mkdtemp(prefix="ocsp-stapling-candidate-")
        self.copies: dict[str, str] = {}
        self.mounts: list[tuple[str, str]] = []
        changes: dict[str, list[tuple[str, object]]] = {}
        for item in [*files, *links]:
            if item.changed:
                anchor, rel = _anchor(item.path)
                changes.setdefault(anchor, []).append((rel, item))
        for index, anchor in enumerate(sorted(changes, key=lambda d: (-d.count(os.sep), d))):
            copy = os.path.join(self.staging, str(index))
            os.mkdir(copy)
            shutil.copystat(anchor, copy)
            submounts = []
            with os.scandir(anchor) as entries:
                for entry in entries:
                    target = os.path.join(copy, entry.name)
                    if entry.is_symlink():
                        os.symlink(os.readlink(entry.path), target)
                    elif entry.is_dir():
                        os.mkdir(target)
                        submounts.append((entry.path, target))
                    elif entry.is_file():
                        shutil.copy2(entry.path, target)
            for rel, item in changes[anchor]:
                target = os.path.join(copy, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.lexists(target) and not os.path.isdir(target):
                    os.unlink(target)
                if isinstance(item, PlannedFile) and item.after is not None:
                    with open(target, "wb") as handle:
                        handle.write(item.after)
                    if item.mode is not None:
                        os.chmod(target, item.mode)
                elif isinstance(item, PlannedLink) and item.after is not None:
                    os.symlink(item.after, target)
            # Deepest directories first: a changed subdirectory is mounted over its live
            # path before its parent's copy picks that path up with --rbind.
            self.mounts.extend(submounts)
            self.mounts.append((copy, anchor))
            self.copies[anchor] = copy

    def command(self, argv: list[str]) -> list[str]:
        script = ["set -e"]
        args: list[str] = []
        for source, target in self.mounts:
            script.append(f'mount --rbind "${{{len(args) + 1}}}" "${{{len(args) + 2}}}"')
            args.extend([source, target])
        script.append(f"shift {len(args)}")
        script.append('exec "$@"')
        return [shutil.which("unshare") or "unshare", "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", "; ".join(script), "ocsp-stapling-configtest", *args, *argv]

    def cleanup(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


# --------------------------------------------------------------------------- verify

def log_size(path: str | None) -> int:
    if not path:
        return 0
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_log_since(path: str | None, offset: int) -> str:
    if not path:
        return ""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if size < offset:  # rotated or truncated: read the new file from its start
                offset = 0
            offset = max(offset, size - MAX_LOG_READ)
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def matching_lines(text: str, patterns: list[str]) -> list[str]:
    if not patterns:
        return []
    compiled = [re.compile(p) for p in patterns]
    return [line for line in text.splitlines() if any(c.search(line) for c in compiled)]


def tls_handshake(endpoint: Endpoint, timeout: float = 5.0) -> dict[str, Any]:
    """One TLS handshake with SNI; no certificate checks (we ask "does it answer TLS")."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    result: dict[str, Any] = {"host": endpoint.host, "port": endpoint.port,
                              "server_name": endpoint.server_name, "ok": False}
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=endpoint.server_name or None) as tls:
                result.update(ok=True, protocol=tls.version())
    except (OSError, ssl.SSLError) as exc:
        result["error"] = str(exc) or exc.__class__.__name__
    return result


def last_lines(text: str, count: int = LAST_LINES) -> list[str]:
    """The last ``count`` non-blank lines of ``text``."""
    return [line for line in text.splitlines() if line.strip()][-count:]


def read_last_words(spec: VerifySpec, log_offset: int, sleep: Callable[[float], None] = time.sleep,
                    flush_wait: float = LOG_FLUSH_WAIT) -> str:
    """The error log since ``log_offset``, read to its end once the parent is seen dead.

    A parent that fails a graceful restart writes its reason (AH01872, AH00020) and exits
    at once: a read that came just before the exit misses the line while the liveness
    check just after it finds no process. So read again, and keep reading (at most
    ``flush_wait`` seconds) until a fatal line shows up, for loggers that flush late.
    """
    deadline = time.monotonic() + flush_wait
    while True:
        log = read_log_since(spec.error_log, log_offset)
        if not spec.error_log or matching_lines(log, spec.fatal_patterns) or time.monotonic() >= deadline:
            return log
        sleep(0.05)


def verify_server(spec: VerifySpec, log_offset: int, sleep: Callable[[float], None] = time.sleep,
                  flush_wait: float = LOG_FLUSH_WAIT) -> dict[str, Any]:
    """Wait until the reloaded server is healthy, or say exactly why it is not.

    Healthy: the parent in the pid file is alive (not a zombie), every ready pattern (if
    any) showed up in the log since ``log_offset``, no fatal pattern did, and every
    endpoint completes a TLS handshake. Each verdict reads the log *after* the liveness
    check it rests on, so a line written just before the parent exits is never missed.
    ``last_lines`` holds the last lines logged since ``log_offset``, for the message.
    """
    started = time.monotonic()
    deadline = started + spec.timeout
    result: dict[str, Any] = {"ok": False, "pid": None, "pid_alive": None, "ready": None,
                              "endpoints": [], "fatal_lines": [], "warning_lines": [], "last_lines": [],
                              "problem": None}

    def scan(text: str) -> None:
        result["fatal_lines"] = matching_lines(text, spec.fatal_patterns)[-20:]
        result["warning_lines"] = matching_lines(text, spec.warning_patterns)[-20:]
        result["last_lines"] = last_lines(text)

    while True:
        now = time.monotonic()
        log = read_log_since(spec.error_log, log_offset)
        scan(log)
        if spec.pid_file:
            result["pid"] = read_pid(spec.pid_file)
            result["pid_alive"] = pid_alive(result["pid"])
        if result["fatal_lines"]:
            # The server may still be on its way out; give it a moment so pid_alive is true.
            if result["pid_alive"] and now < started + spec.settle:
                sleep(0.1)
                continue
            result["problem"] = "the error log shows a fatal line since the reload"
            break
        if spec.pid_file and not result["pid_alive"]:
            if now >= started + spec.settle or now >= deadline:
                # The log was read before the liveness check: the parent may have logged
                # why it exits in between. Read it again, to its end.
                scan(read_last_words(spec, log_offset, sleep, flush_wait))
                result["problem"] = (f"the server's parent process ({result['pid'] or 'no pid in ' + spec.pid_file})"
                                     " is not running")
                if result["fatal_lines"]:
                    result["problem"] += " and the error log shows a fatal line since the reload"
                elif spec.error_log:
                    # It died without a word (measured: Debian's apache2 sometimes segfaults in
                    # a graceful restart that would have failed with AH01872).
                    result["problem"] += (" and it logged no reason before it went (a crash: the kernel log, "
                                          "dmesg, names a segfault if it was one)")
                break
            sleep(0.1)
            continue
        ready_lines = matching_lines(log, spec.ready_patterns)
        result["ready"] = bool(ready_lines) if spec.ready_patterns else None
        if (not spec.ready_patterns or ready_lines) and now >= started + spec.settle:
            result["endpoints"] = [tls_handshake(e, timeout=min(5.0, max(1.0, deadline - now)))
                                   for e in spec.endpoints]
            if all(e["ok"] for e in result["endpoints"]):
                # One more liveness look: a parent that dies late still counts.
                if spec.pid_file:
                    result["pid_alive"] = pid_alive(read_pid(spec.pid_file))
                    if not result["pid_alive"]:
                        continue
                # And one more read of the log, after that look: a fatal line logged
                # during the handshakes is the next round's verdict, not a pass.
                scan(read_log_since(spec.error_log, log_offset))
                if result["fatal_lines"]:
                    continue
                result["ok"] = True
                break
        if now >= deadline:
            if spec.ready_patterns and not ready_lines:
                result["problem"] = (f"none of {spec.ready_patterns} appeared in {spec.error_log} "
                                     f"within {spec.timeout:g}s of the reload")
            else:
                failed = [e for e in result["endpoints"] if not e["ok"]]
                result["problem"] = "TLS handshakes failed: " + "; ".join(
                    f"{e['host']}:{e['port']} ({e['server_name']}): {e.get('error')}" for e in failed)
            break
        sleep(0.1)
    result["elapsed"] = round(time.monotonic() - started, 2)
    return result


# --------------------------------------------------------------------------- backup / swap

def _set_link(path: str, src: str | None) -> None:
    if src is None:
        if os.path.islink(path):
            os.unlink(path)
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.ocsp-stapling")
    if os.path.lexists(temp):
        os.unlink(temp)
    os.symlink(src, temp)
    os.replace(temp, path)


class Backup:
    """Copies of every file and link the change touches, plus a manifest, on disk."""

    def __init__(self, root: str, files: list[PlannedFile], links: list[PlannedLink]) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.directory = tempfile.mkdtemp(prefix=f"{stamp}-", dir=root)
        self.stamp = stamp
        self.files = [f for f in files if f.changed]
        self.links = [link for link in links if link.changed]
        self.paths: dict[str, str | None] = {}
        try:
            self._write()
        except BaseException:
            # A half-written backup (a full disk) must not pass for one later.
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def _write(self) -> None:
        manifest = {"created": self.stamp, "files": [], "links": []}
        for item in self.files:
            if item.before is None:
                self.paths[item.path] = None
            else:
                copy = os.path.join(self.directory, "files", os.path.abspath(item.path).lstrip("/"))
                os.makedirs(os.path.dirname(copy), exist_ok=True)
                shutil.copy2(item.path, copy)
                self.paths[item.path] = copy
            manifest["files"].append({"path": item.path, "backup": self.paths[item.path],
                                      "existed": item.before is not None})
        for link in self.links:
            manifest["links"].append({"path": link.path, "target": link.before})
        with open(os.path.join(self.directory, "manifest.json"), "w") as handle:
            json.dump(manifest, handle, indent=2)

    def restore(self) -> list[str]:
        """Put every file and link back as it was; return the problems (empty = all back)."""
        problems = []
        for item in self.files:
            try:
                copy = self.paths[item.path]
                if copy is None:
                    if os.path.lexists(item.path):
                        os.unlink(item.path)
                else:
                    st = os.stat(copy)
                    with open(copy, "rb") as handle:
                        data = handle.read()
                    if _holds(item.path, data, st):
                        continue    # never swapped (the swap stopped before it): nothing to undo
                    write_atomic(item.path, data, st.st_mode & 0o7777, st.st_uid, st.st_gid)
            except OSError as exc:
                problems.append(f"{item.path}: {exc}")
        for link in self.links:
            try:
                current = os.readlink(link.path) if os.path.islink(link.path) else None
                if current != link.before:
                    _set_link(link.path, link.before)
            except OSError as exc:
                problems.append(f"{link.path}: {exc}")
        return problems


def _holds(path: str, data: bytes, st: os.stat_result) -> bool:
    """Does ``path`` already hold ``data`` with the mode and owner of ``st``?"""
    try:
        now = os.stat(path)
        if (now.st_mode, now.st_uid, now.st_gid) != (st.st_mode, st.st_uid, st.st_gid):
            return False
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def swap(files: list[PlannedFile], links: list[PlannedLink]) -> None:
    """Write every changed file and link; an OSError names the live path that failed (not
    the temp file beside it)."""
    for item in files:
        if not item.changed:
            continue
        try:
            if item.after is None:
                if os.path.lexists(item.path):
                    os.unlink(item.path)
            else:
                write_atomic(item.path, item.after, item.mode, item.uid, item.gid)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, item.path) from exc
    for link in links:
        if link.changed:
            try:
                _set_link(link.path, link.after)
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, link.path) from exc


def unwritable(exc: OSError, what: str) -> str:
    """Why a write failed, in the operator's terms, with where to look."""
    where = exc.filename or what
    if exc.errno == errno.ENOSPC:
        hint = f"its file system is full: free space there (df -h {os.path.dirname(str(where)) or '/'})"
    elif exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
        hint = ("it or its directory is read-only: an immutable attribute (lsattr; chattr -i), a "
                "read-only mount (mount -o remount,rw) or permissions; as root, mode bits alone do not stop a write")
    else:
        hint = "see the error above"
    return f"{where} could not be written ({exc.strerror or exc}): {hint}"


PENDING_PREFIX = "pending-reload-"


def write_pending(backup: Backup, reload_command: Any, pid_file: str | None = None) -> str:
    """Note, next to the backups, that files are about to go live unreloaded. Removed once
    the reload (or the rollback) is done: only a run killed in between leaves it, and the
    next run that plans any of these files reloads even with nothing left to change."""
    path = os.path.join(os.path.dirname(backup.directory),
                        f"{PENDING_PREFIX}{os.path.basename(backup.directory)}.json")
    data = {"backup": backup.directory, "pid": os.getpid(), "reload_command": split_command(reload_command),
            "pid_file": pid_file,
            "files": [item.path for item in backup.files], "links": [link.path for link in backup.links]}
    write_atomic(path, json.dumps(data, indent=2) + "\n", LOCK_MODE)
    return path


def pending_reloads(backup_dir: str, paths: set[str], pid_file: str | None = None) -> list[dict[str, Any]]:
    """Journals of earlier runs that swapped any of ``paths`` in, or changed the server whose
    parent is in ``pid_file`` (a plan lists only what still differs: after the swap, often
    nothing), and never reloaded."""
    found = []
    try:
        names = sorted(os.listdir(backup_dir))
    except OSError:
        return found
    for name in names:
        if not (name.startswith(PENDING_PREFIX) and name.endswith(".json")):
            continue
        path = os.path.join(backup_dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            data = {"files": [], "links": []}
        if not isinstance(data, dict):
            data = {"files": [], "links": []}
        touched = set(data.get("files") or []) | set(data.get("links") or [])
        if touched & paths or not touched or (pid_file and data.get("pid_file") == pid_file):
            found.append(dict(data, journal=path))
    return found


def clear_pending(journals: list[str]) -> None:
    for path in journals:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class _Lock:
    """One change at a time per backup directory (per host, with the default)."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, ".lock")
        # Owner-only, like the backups beside it; a lock left 0644 by an older version is tightened.
        self.handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT, LOCK_MODE), "w")
        try:
            os.fchmod(self.handle.fileno(), LOCK_MODE)
        except PermissionError:
            pass

    def __enter__(self) -> "_Lock":
        deadline = time.monotonic() + 300
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise ChangeError("another ocsp.stapling change has held the lock "
                                      f"{self.handle.name} for 5 minutes; wait for it to finish "
                                      "or remove a stale lock holder") from None
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# --------------------------------------------------------------------------- the shape

class StaplingChange:
    """Run one :class:`ChangeRequest` through the shape; :meth:`run` returns the result
    dict or raises :class:`ChangeError` with the result attached."""

    def __init__(self, request: ChangeRequest,
                 runner: Callable[[list[str], dict[str, str], float], tuple[int, str]] = run_command,
                 namespace_probe: Callable[[dict[str, str]], tuple[bool, str]] = unshare_available,
                 post_swap: Callable[[dict[str, Any]], list[str] | None] | None = None,
                 configtest_check: Callable[[str], list[str]] | None = None,
                 ) -> None:
        """``post_swap`` is a dialect's own step between the swap and the reload (LiteSpeed:
        clear the OCSP cache files). It runs in real runs only, once the candidate is live
        (or, with ``reload: always`` and nothing to change, right before the reload),
        receives the result so far (``files[].backup`` filled in) and returns warnings. If
        it raises, the backups are put back and nothing is reloaded."""
        self.request = request
        self.runner = runner
        self.namespace_probe = namespace_probe
        self.post_swap = post_swap
        self.configtest_check = configtest_check
        self.warnings: list[str] = []
        self.result: dict[str, Any] = {
            "changed": False, "files": [], "links": [], "configtest": {"ran": False},
            "reload": {"ran": False}, "verification": None, "rolled_back": False,
            "backup_dir": None, "warnings": self.warnings,
        }
        self._reload_offset = 0

    # -- helpers
    def _run(self, command, what: str) -> tuple[int, str]:
        argv = split_command(command)
        if argv is None:
            return 0, f"(no {what} command configured)"
        return self.runner(argv, self.request.environment, COMMAND_TIMEOUT)

    def _validation_method(self) -> str:
        method = self.request.candidate_validation
        if method not in ("namespace", "swap", "auto"):
            raise ChangeError(f"candidate_validation must be namespace, swap or auto, not {method!r}")
        if method == "swap":
            return "swap"
        ok, why = self.namespace_probe(self.request.environment)
        if ok:
            return "namespace"
        if method == "namespace":
            raise ChangeError(f"candidate_validation=namespace, but a private mount namespace is not "
                              f"available: {why}. Run as root on a host that allows unshare(1), or "
                              f"use candidate_validation=swap (briefly writes the candidate to the "
                              f"live files, under a lock).")
        self.warnings.append(f"Validating the candidate by swapping it in and restoring on failure "
                             f"(a private mount namespace is not available: {why}); the live files "
                             f"held the untested candidate for the length of one configtest.")
        return "swap"

    def _configtest_namespace(self, files, links) -> tuple[int, str]:
        argv = split_command(self.request.configtest_command)
        tree = CandidateTree(files, links)
        try:
            return self.runner(tree.command(argv), self.request.environment, COMMAND_TIMEOUT)
        finally:
            tree.cleanup()

    # -- the shape
    def run(self) -> dict[str, Any]:
        req = self.request
        if req.reload not in ("on_change", "always", "never"):
            raise ChangeError(f"reload must be on_change, always or never, not {req.reload!r}")
        files = [plan_file(spec) for spec in req.files]
        links = [plan_link(spec) for spec in req.links]
        changed = any(f.changed for f in files) or any(link.changed for link in links)
        self.result["files"] = [{"path": f.path, "changed": f.changed, "backup": None,
                                 "exists": f.after is not None} for f in files]
        self.result["links"] = [{"path": link.path, "changed": link.changed,
                                 "target": link.after} for link in links]
        if req.diff:
            self.result["diff"] = ([file_diff(f) for f in files if f.changed]
                                   + [link_diff(link) for link in links if link.changed])
        pending = [] if changed else pending_reloads(
            req.backup_dir, {f.path for f in files} | {link.path for link in links},
            req.verify.pid_file if req.verify else None)
        if pending and req.check_mode:
            self.warnings.append(
                f"An earlier run swapped these files in and stopped before its reload (killed or crashed; "
                f"backup {pending[0].get('backup')}): the server may still run the configuration from before. "
                f"A real run reloads it.")
        if not changed and req.reload != "always" and not pending:
            return self.result
        if req.check_mode:
            self.result["changed"] = True
            if changed and split_command(req.configtest_command):
                method = self._validation_method()
                if method == "namespace":
                    rc, out = self._configtest_namespace(files, links)
                    self._record_configtest(rc, out, method)
                    if not self.result["configtest"]["passed"]:
                        self.warnings.append("The candidate configuration FAILS configtest; a real "
                                             "run would stop here and change nothing.")
                else:
                    self.warnings.append("Check mode did not run configtest: without a private mount "
                                         "namespace that would need writing the live files.")
            return self.result
        try:
            lock = _Lock(req.backup_dir)
        except OSError as exc:
            raise ChangeError(f"Could not take the change lock in the backup directory {req.backup_dir}: "
                              f"{unwritable(exc, req.backup_dir)}. Nothing was changed and the server was not "
                              f"reloaded; fix that and run again.", self.result) from None
        with lock:
            return self._apply(files, links, changed, [item["journal"] for item in pending])

    def _apply(self, files, links, changed: bool, pending: list[str] | None = None) -> dict[str, Any]:
        # Looked at again under the lock: a change that held it meanwhile has reloaded and
        # removed its note, and must not cost the server a second reload.
        journals = [path for path in pending or [] if os.path.exists(path)]
        if journals:
            self.warnings.append(
                "An earlier run swapped these files in and stopped before its reload (killed or crashed; "
                f"{', '.join(journals)}): the server may still have run the configuration from before. "
                "Reloaded it, so it runs what is on disk.")
        try:
            result = self._apply_journaled(files, links, changed, journals)
        except ChangeError:
            clear_pending(journals)     # restored, or reported with what to do by hand
            raise
        clear_pending(journals)
        return result

    def _apply_journaled(self, files, links, changed: bool, journals: list[str]) -> dict[str, Any]:
        req = self.request
        backup = None
        swapped = False
        if changed:
            method = self._validation_method() if split_command(req.configtest_command) else None
            if method == "namespace":
                rc, out = self._configtest_namespace(files, links)
                self._record_configtest(rc, out, method)
                if not self.result["configtest"]["passed"]:
                    self._fail_configtest(out)
            try:
                backup = Backup(req.backup_dir, files, links)
            except OSError as exc:
                raise ChangeError(f"Could not back up the files this change touches into {req.backup_dir}: "
                                  f"{unwritable(exc, req.backup_dir)}. Nothing was changed and the server was "
                                  f"not reloaded; fix that and run again.", self.result) from None
            self.result["backup_dir"] = backup.directory
            for entry in self.result["files"]:
                entry["backup"] = backup.paths.get(entry["path"])
            try:
                journals.append(write_pending(backup, req.reload_command, req.verify.pid_file if req.verify else None))
                swap(files, links)
            except OSError as exc:
                why = unwritable(exc, "a configuration file")
                problems = backup.restore()
                if problems:
                    raise ChangeError(self._unrestorable("the swap failed", why, backup, problems),
                                      self.result) from None
                raise ChangeError(f"Could not swap the new configuration in: {why}. Every file this run had "
                                  f"already written was put back from {backup.directory} and the server was "
                                  f"not reloaded, so it still runs its old configuration. Make the file "
                                  f"writable and run again.", self.result) from None
            swapped = True
            self.result["changed"] = True
            if method == "swap":
                rc, out = self._run(req.configtest_command, "configtest")
                self._record_configtest(rc, out, method)
                if not self.result["configtest"]["passed"]:
                    problems = backup.restore()
                    self.result["rolled_back"] = not problems
                    if problems:
                        raise ChangeError(self._unrestorable("the candidate failed configtest", out,
                                                             backup, problems), self.result)
                    self._fail_configtest(out, restored=True)
            if method is None and req.configtest_absent_reason:
                self.result["configtest"]["skipped"] = req.configtest_absent_reason
            elif method is None:
                self.warnings.append("No configtest command is configured: the candidate was not "
                                     "validated before it went live.")
        if self.post_swap is not None:
            self._run_post_swap(backup)
        if req.reload == "never" or (not changed and not journals and req.reload == "on_change"):
            return self.result
        self.result["changed"] = True
        offset = log_size(req.verify.error_log if req.verify else None)
        self._reload_offset = offset
        rc, out = self._run(req.reload_command, "reload")
        self.result["reload"] = {"ran": True, "rc": rc, "output": out[-4000:],
                                 "command": split_command(req.reload_command)}
        verification = None
        if rc == 0 and req.verify:
            verification = verify_server(req.verify, offset)
            self.result["verification"] = verification
        if req.verify and verification and verification["warning_lines"]:
            self.warnings.append("The error log since the reload shows certificates that cannot be "
                                 "stapled as configured: " + " | ".join(verification["warning_lines"][-5:]))
        if rc == 0 and (verification is None or verification["ok"]):
            return self.result
        if rc != 0 and req.verify and req.verify.error_log:
            # No verification ran; the server may still have said why in its log.
            logged = read_log_since(req.verify.error_log, offset)
            verification = {"fatal_lines": matching_lines(logged, req.verify.fatal_patterns)[-20:],
                            "last_lines": last_lines(logged)}
        what = ((f"the reload command {shlex.join(split_command(req.reload_command) or [])} exited {rc}: "
                 f"{out.strip()[-1500:]}" if rc != 0 else
                 f"after the reload {verification['problem']}")
                + self._findings(verification, req.verify))
        if not swapped:
            raise ChangeError(f"The server was reloaded without a configuration change and is not "
                              f"healthy: {what}. Nothing was changed on disk, so there is nothing to "
                              f"roll back; look at the error log and start or reload it by hand.",
                              self.result)
        self._rollback(backup, what)
        raise AssertionError("unreachable")  # _rollback always raises

    def _run_post_swap(self, backup: Backup | None) -> None:
        try:
            self.warnings.extend(self.post_swap(self.result) or [])
        except Exception as exc:  # a dialect's step: whatever it raises, put the files back
            detail = exc.message if isinstance(exc, ChangeError) else f"{exc.__class__.__name__}: {exc}"
            if backup is None:
                raise ChangeError(f"The step after the swap failed: {detail}. No file had changed and "
                                  f"the server was not reloaded.", self.result) from None
            problems = backup.restore()
            if problems:
                raise ChangeError(self._unrestorable("the step after the swap failed", detail, backup,
                                                     problems), self.result) from None
            self.result["rolled_back"] = True
            raise ChangeError(f"The step after the swap failed: {detail}. The old files are back "
                              f"(backup: {backup.directory}) and the server was not reloaded, so it "
                              f"still runs the old configuration.", self.result) from None

    # -- failures
    def configtest_problems(self, output: str) -> list[str]:
        """Why a configtest that exited 0 still fails: a ``configtest_fail_patterns`` line,
        or what the dialect's ``configtest_check`` finds in the output."""
        problems = [f"configtest printed {line.strip()!r} (matches a configtest_fail_patterns entry)"
                    for line in matching_lines(output, self.request.configtest_fail_patterns)]
        if self.configtest_check is not None:
            problems.extend(self.configtest_check(output))
        return problems

    def _record_configtest(self, rc: int, out: str, method: str) -> None:
        problems = self.configtest_problems(out) if rc == 0 else []
        self.result["configtest"] = {"ran": True, "rc": rc, "output": out[-4000:], "method": method,
                                     "passed": rc == 0 and not problems}
        if problems:
            self.result["configtest"]["problems"] = problems

    def _fail_configtest(self, out: str, restored: bool = False) -> None:
        req = self.request
        live_rc, _live_out = self._run(req.configtest_command, "configtest")
        live = ("The live configuration passes configtest, so the failure comes from this change."
                if live_rc == 0 else
                "The live configuration FAILS configtest as well (before this change): fix that "
                "first, or the next restart of the server will fail.")
        changed = ", ".join(f["path"] for f in self.result["files"] if f["changed"])
        problems = self.result["configtest"].get("problems") or []
        said = " ".join(problems) if problems else out.strip()[-1500:]
        raise ChangeError(
            f"The candidate configuration failed configtest "
            f"({shlex.join(split_command(req.configtest_command) or [])}): {said}. "
            + (f"The candidate was briefly swapped in for the test and the old files are back "
               f"({changed or 'links only'}); " if restored else
               f"No live file was changed ({changed or 'links only'} still hold the old content) and ")
            + f"the server was not reloaded. {live}", self.result)

    @staticmethod
    def _findings(verification: dict | None, spec: VerifySpec | None = None) -> str:
        """What the server said: its fatal lines first, else its last lines since the
        reload (or that it logged nothing), then the TLS errors."""
        if not verification:
            return ""
        parts = []
        where = f"the error log ({spec.error_log})" if spec and spec.error_log else "the error log"
        if verification.get("fatal_lines"):
            parts.append(f"{where}: " + " | ".join(verification["fatal_lines"][-5:]))
        elif verification.get("last_lines"):
            parts.append(f"last lines in {where} since the reload: " + " | ".join(verification["last_lines"]))
        elif spec and spec.error_log:
            parts.append(f"nothing was written to {where} since the reload")
        failed = [e for e in verification.get("endpoints", []) if not e["ok"]]
        if failed:
            parts.append("TLS: " + "; ".join(f"{e['server_name'] or e['host']}:{e['port']} "
                                             f"{e.get('error')}" for e in failed))
        return f" ({'; '.join(parts)})" if parts else ""

    def _unrestorable(self, what: str, detail: str, backup: Backup, problems: list[str]) -> str:
        req = self.request
        return (f"{what} ({detail.strip()[-800:]}) and the old configuration could NOT be restored: "
                f"{'; '.join(problems)}. The backup is in {backup.directory} (manifest.json lists each "
                f"file). Copy those files back by hand, run "
                f"'{shlex.join(split_command(req.configtest_command) or ['<configtest>'])}', then "
                f"'{shlex.join(split_command(req.reload_command) or ['<reload>'])}' (or "
                f"'{shlex.join(split_command(req.start_command) or ['<start>'])}' if the server is down).")

    def _rollback(self, backup: Backup, what: str) -> None:
        req = self.request
        problems = backup.restore()
        if problems:
            raise ChangeError(self._unrestorable(what, "", backup, problems), self.result)
        self.result["rolled_back"] = True
        parent_alive = True
        if req.verify and req.verify.pid_file:
            pid = read_pid(req.verify.pid_file)
            # Read the log again rather than trust the verification's last read: a parent
            # that logged AH00020 after it must be let go, not sent a reload it will not see.
            fatal = matching_lines(read_log_since(req.verify.error_log, self._reload_offset),
                                   req.verify.fatal_patterns)
            if fatal:
                # The parent logged that it is exiting (AH00020); give it time to go.
                deadline = time.monotonic() + 10
                while pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
            parent_alive = pid_alive(pid)
            if not parent_alive and pid and os.path.exists(req.verify.pid_file):
                # A dead parent leaves its pid file behind, and an unreaped zombie still
                # answers kill -0, so "apachectl -k start" would say "already running".
                try:
                    os.unlink(req.verify.pid_file)
                    self.warnings.append(f"Removed the stale pid file {req.verify.pid_file} (pid {pid} "
                                         "is no longer running) before starting the server again.")
                except OSError:
                    pass
        offset = log_size(req.verify.error_log if req.verify else None)
        if parent_alive:
            action, command = "reloaded", req.reload_command
        else:
            action, command = "started", req.start_command
        recovery: dict[str, Any] = {"action": action, "command": split_command(command)}
        if split_command(command) is None:
            recovery.update(rc=None, output="no command configured")
            self.result["recovery"] = recovery
            raise ChangeError(
                f"The change failed: {what}. The old configuration is back on disk (backup: "
                f"{backup.directory}), but the server is down and no start command is configured: "
                f"start it by hand now.", self.result)
        rc, out = self._run(command, action)
        recovery.update(rc=rc, output=out[-2000:])
        check = verify_server(req.verify, offset) if req.verify and rc == 0 else None
        recovery["verification"] = check
        self.result["recovery"] = recovery
        if rc == 0 and (check is None or check["ok"]):
            raise ChangeError(
                f"The change failed: {what}. The old configuration was restored from {backup.directory} "
                f"and the server was {action} with it"
                + (" and verified: it is running and answering TLS again." if check else ".")
                + " Nothing is broken now; fix the cause above before trying again.", self.result)
        detail = out.strip()[-800:] if rc != 0 else (check or {}).get("problem")
        raise ChangeError(
            f"The change failed: {what}. The old configuration was restored from {backup.directory}, "
            f"but the server could not be {action} with it: {detail}{self._findings(check, req.verify)}. The server "
            f"may be DOWN: run '{shlex.join(split_command(req.configtest_command) or ['<configtest>'])}' "
            f"and '{shlex.join(split_command(req.start_command) or ['<start>'])}' by hand and read its "
            f"error log.", self.result)


def file_fields(item: dict[str, Any]) -> dict[str, Any]:
    """A module ``files[]`` entry as FileSpec fields; ``content_base64`` becomes bytes
    ``content`` (module arguments cannot carry bytes that are not UTF-8)."""
    fields = {k: v for k, v in item.items() if v is not None and k != "content_base64"}
    if item.get("content_base64") is not None:
        fields["content"] = base64.b64decode(item["content_base64"])
    return fields


def request_from_params(params: dict[str, Any], check_mode: bool = False, diff: bool = False
                        ) -> ChangeRequest:
    """Build a :class:`ChangeRequest` from the module's parameters."""
    files = [FileSpec(**file_fields(item)) for item in params.get("files") or []]
    links = [LinkSpec(**{k: v for k, v in item.items() if v is not None}) for item in params.get("links") or []]
    verify = None
    if params.get("verify"):
        raw = {k: v for k, v in params["verify"].items() if v is not None}
        raw["endpoints"] = [Endpoint(**{k: v for k, v in e.items() if v is not None})
                            for e in raw.get("endpoints") or []]
        verify = VerifySpec(**raw)
    return ChangeRequest(
        files=files, links=links,
        configtest_command=params.get("configtest_command"),
        reload_command=params.get("reload_command"),
        start_command=params.get("start_command"),
        environment=params.get("environment") or {},
        candidate_validation=params.get("candidate_validation") or "auto",
        backup_dir=params.get("backup_dir") or DEFAULT_BACKUP_DIR,
        verify=verify, reload=params.get("reload") or "on_change",
        configtest_fail_patterns=list(params.get("configtest_fail_patterns") or []),
        check_mode=check_mode, diff=diff)


def apply_plan(plan: Any, runner: Callable[[list[str], dict[str, str], float], tuple[int, str]] = run_command
               ) -> dict[str, Any]:
    """Run any dialect's plan (``servers.contract.ServerPlan``: ``change``, ``post_swap``,
    ``configtest_check``) through the shape; returns the engine's result or raises
    :class:`ChangeError` with it attached. The one place a server's change is applied."""
    change = StaplingChange(plan.change, runner=runner, post_swap=plan.post_swap,
                            configtest_check=plan.configtest_check)
    return change.run()
