"""Process-tree inspection (psutil): which processes a session started, which ports they listen on."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import select
import signal
import threading
from dataclasses import dataclass

import psutil

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to us instead of init, so a leak stays visible."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Make this process get `sig` when its parent exits (Linux), so a worker whose parent was
    killed or interrupted cannot wait forever on a queue nobody writes.

    `parent_pid` is the process that should own us. A forkserver child's real parent is the
    forkserver, which itself lives until its children exit: the kernel's parent-death signal
    would never fire there, so such a child watches `parent_pid` from a thread instead."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if parent_pid is None or parent_pid == os.getppid():
        return armed
    try:
        pidfd = os.pidfd_open(parent_pid)
    except ProcessLookupError:  # already gone
        os.kill(os.getpid(), sig)
        return True
    except (OSError, AttributeError):
        return False

    def watch() -> None:
        select.select([pidfd], [], [])  # readable once the process has exited
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="scalebench-parent-watch", daemon=True).start()
    return True


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """Live (non-zombie) descendants of `pid` (default: this process)."""
    try:
        procs = psutil.Process(pid or os.getpid()).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def describe(p: psutil.Process, cmdline: list[str] | None = None) -> str:
    """'PID command line' (cut at 160 characters); `cmdline` when the caller has just read it."""
    try:
        return f"{p.pid} {' '.join(p.cmdline() if cmdline is None else cmdline)[:160]}"
    except psutil.Error:
        return str(p.pid)


@dataclass(frozen=True)
class Listener:
    pid: int
    ip: str
    port: int
    command: str


def net_namespace(pid: int) -> str | None:
    """'net:[inode]': the network namespace `pid` lives in (None: gone or not readable)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def loopback_only_namespace(pid: int) -> bool:
    """True when `pid` lives in a network namespace other than ours whose only interface is lo."""
    if net_namespace(pid) in (None, net_namespace(os.getpid())):
        return False
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            ifaces = {line.split(":")[0].strip() for line in f.readlines()[2:]}
    except OSError:
        return False
    return ifaces == {"lo"}


def listeners(procs: list[psutil.Process]) -> list[Listener]:
    """Every TCP socket in LISTEN state (and bound UDP socket) held by `procs`."""
    found = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN or (c.type == 2 and c.laddr and not c.raddr):  # SOCK_DGRAM
                found.append(Listener(p.pid, c.laddr.ip, c.laddr.port, describe(p)))
    return found


LOOPBACK_IP = "127.0.0.1"
"""The address every local cluster binds and advertises (the suite's safe default)."""


def is_loopback_host(host: str | None) -> bool:
    """True for a loopback address or 'localhost' (None: no host given, so local); a host name
    other than localhost is not assumed to be loopback."""
    if host is None or host == "localhost":
        return True
    try:
        return is_loopback(host)
    except ValueError:
        return False


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, and IPv4-mapped loopback (::ffff:127.0.0.1, as Ray's gRPC reports it)."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def exposed(found: list[Listener]) -> list[Listener]:
    """Listeners reachable from off this machine: not loopback, not in a loopback-only namespace."""
    return [x for x in found if not is_loopback(x.ip) and not loopback_only_namespace(x.pid)]


def machine_identity() -> tuple[str, str]:
    """(boot id, pid namespace) of the calling process. Two processes whose identities are equal
    share a kernel and a pid space, so a pid one reports names the same process for the other:
    how a connected cluster's processes are known to be on this machine (also on test hosts,
    which are network namespaces of it), whatever address they listen on."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return boot, os.readlink("/proc/self/ns/pid")
    except OSError:
        return "", ""


def pid_and_machine() -> tuple[int, tuple[str, str]]:
    """Run inside a cluster's process (Dask's client.run): its pid and machine_identity()."""
    return os.getpid(), machine_identity()


def children_naming(text: str) -> list[psutil.Process]:
    """Our live descendants whose command line contains `text` (a framework's daemons that we
    started, found by a marker in their arguments)."""
    found = []
    for proc in descendants():
        try:
            if any(text in arg for arg in proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def terminate_all(procs: list[psutil.Process], timeout: float = 5.0) -> list[psutil.Process]:
    """SIGTERM, wait, SIGKILL what is left, wait; returns the processes that still survive."""
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(alive, timeout=timeout)
    return alive
