"""Where a session goes: every process of its tree, the hosts in their argv, the peers of their
TCP connections.

sshproxy picks the backend itself, a ProxyCommand hop runs ``nc HOST PORT``, a jump-host shell
runs ``ssh target`` three times: none of that is in sshrec's own argv. The watch walks the
session's process tree (``/proc/PID/task/TID/children`` from the command down, a few syscalls
for a small tree) every SCAN_INTERVAL; for each new process it reads the argv once and looks
for established TCP connections among its file descriptors (socket inode ->
``/proc/PID/net/tcp{,6}``: the real address and port even when the argv has only an alias), on
every scan while the process is YOUNG, then every SOCKET_RECHECK.

The recorder is the subreaper of its session when the optional ``_proctl`` module is built,
so orphaned descendants stay in the tree; without it the processes of the command's session
(setsid) are looked for in all of /proc, every ORPHAN_SCAN_INTERVAL. Processes that live
less than a scan interval may be missed.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .context import detect_destination

SCAN_INTERVAL = 0.2
YOUNG = 2.0  # seconds a new process's sockets are looked at on every scan
SOCKET_RECHECK = 1.0  # then this often (a long-lived process may connect later)
ORPHAN_SCAN_INTERVAL = 5.0
MAX_PROCESSES = 4096  # processes remembered per session
MAX_DESTINATIONS = 1000
ESTABLISHED = "01"

try:
    from . import _proctl
except ImportError:  # no C compiler when sshrec was installed
    _proctl = None  # type: ignore[assignment]


def become_subreaper() -> bool:
    """Adopt orphaned descendants (see module doc); False when it cannot be done here."""
    if _proctl is None:
        return False
    try:
        _proctl.set_child_subreaper()
    except OSError:
        return False
    return True


class Destination:
    """One host a session reached (plain class: the login path)."""

    __slots__ = ("destination", "addr", "via", "at", "pid")

    def __init__(self, destination: str | None, addr: str | None, via: str, at: float, pid: int) -> None:
        self.destination = destination
        self.addr = addr
        self.via = via
        self.at = at
        self.pid = pid

    def name(self) -> str:
        return self.destination or self.addr or "?"

    def to_dict(self) -> dict[str, object]:
        return {"destination": self.name(), "addr": self.addr, "via": self.via, "at": round(self.at, 3)}


class _Seen:
    __slots__ = ("start", "argv0", "sockets", "destination", "first_seen", "next_socket_check")

    def __init__(self, start: bytes, argv0: str, now: float) -> None:
        self.start = start
        self.argv0 = argv0
        self.sockets: set[int] = set()
        self.destination: Destination | None = None
        self.first_seen = now
        self.next_socket_check = now


class TreeWatch:
    """Scans the tree under ``root`` and reports each new destination to ``found``."""

    def __init__(self, root: int, started: float, found: Callable[[Destination], None],
                 subreaper: bool, self_pid: int | None = None) -> None:
        self.root = root
        self.started = started
        self.found = found
        self.subreaper = subreaper
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.seen: dict[int, _Seen] = {}
        self.destinations: list[Destination] = []
        self.next_scan = started
        self.next_orphan_scan = started + ORPHAN_SCAN_INTERVAL
        self.scans = 0

    def due_in(self, now: float) -> float:
        return max(0.0, self.next_scan - now)

    def scan(self, now: float) -> None:
        self.next_scan = now + SCAN_INTERVAL
        self.scans += 1
        pids = self._tree()
        if not self.subreaper and now >= self.next_orphan_scan:
            self.next_orphan_scan = now + ORPHAN_SCAN_INTERVAL
            pids |= session_members(self.root)
        for pid in pids:
            self._look_at(pid, now)
        for gone in [pid for pid in self.seen if pid not in pids]:
            del self.seen[gone]

    def _tree(self) -> set[int]:
        found: set[int] = set()
        todo = [self.root]
        if self.subreaper:
            todo += [pid for pid in children_of(self.self_pid) if pid != self.root]
        while todo and len(found) < MAX_PROCESSES:
            pid = todo.pop()
            if pid in found:
                continue
            found.add(pid)
            todo.extend(children_of(pid))
        return found

    def _look_at(self, pid: int, now: float) -> None:
        identity = identity_of(pid)
        if identity is None:
            return
        seen = self.seen.get(pid)
        if seen is None or seen.start != identity:  # a new process, or one that exec'd another program
            argv = cmdline(pid)
            seen = _Seen(identity, os.path.basename(argv[0]) if argv else "?", now)
            self.seen[pid] = seen
            host = detect_destination(argv) if argv else None
            if host:
                seen.destination = self._report(Destination(host, None, seen.argv0, now - self.started, pid))
        if now < seen.next_socket_check:
            return
        seen.next_socket_check = now + (0.0 if now - seen.first_seen < YOUNG else SOCKET_RECHECK)
        inodes = socket_inodes(pid) - seen.sockets
        if not inodes:
            return
        seen.sockets |= inodes
        for peer in tcp_peers(pid, inodes):
            if seen.destination is not None and seen.destination.addr is None:
                seen.destination.addr = peer
            elif not any(d.addr == peer and d.pid == pid for d in self.destinations):
                self._report(Destination(None, peer, seen.argv0, now - self.started, pid))

    def _report(self, destination: Destination) -> Destination:
        if len(self.destinations) < MAX_DESTINATIONS:
            self.destinations.append(destination)
            self.found(destination)
        return destination


def children_of(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (CONFIG_PROC_CHILDREN, Linux 4.2 and later)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        data = _read(f"/proc/{pid}/task/{task}/children")
        if data:
            found.extend(int(word) for word in data.split())
    return found


def _read(path: str, size: int = 65536) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)


def identity_of(pid: int) -> bytes | None:
    """Start time and program name from /proc/PID/stat: with the pid, which process runs which
    program (the name changes at exec, the start time does not); None for a zombie."""
    data = _read(f"/proc/{pid}/stat", 1024)
    if not data:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) <= 19 or fields[0] == b"Z":
        return None
    return fields[19] + b" " + data[data.find(b"(") + 1 : data.rfind(b")")]


def cmdline(pid: int) -> list[str]:
    data = _read(f"/proc/{pid}/cmdline") or b""
    return [word.decode("utf-8", "replace") for word in data.split(b"\0") if word]


def session_members(session: int) -> set[int]:
    """Every process of the session ``session`` (a whole /proc scan: the slow fallback)."""
    found: set[int] = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            data = _read(f"/proc/{name}/stat", 1024)
            if data:
                fields = data[data.rfind(b")") + 2 :].split()
                if len(fields) > 3 and fields[3] == str(session).encode():
                    found.add(int(name))
    return found


def socket_inodes(pid: int) -> set[int]:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_peers(pid: int, inodes: set[int]) -> list[str]:
    """``host:port`` of the established TCP connections among ``inodes`` (the process's own
    network namespace's tables)."""
    peers = []
    for table, ipv6 in (("tcp", False), ("tcp6", True)):
        data = _read(f"/proc/{pid}/net/{table}")
        if not data:
            continue
        for line in data.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3].decode() == ESTABLISHED and int(fields[9]) in inodes:
                peers.append(_address(fields[2].decode(), ipv6))
    return peers


def _address(hex_address: str, ipv6: bool) -> str:
    """``0100007F:0016`` (or 32 hex digits for IPv6, in 32-bit little-endian words) -> text."""
    import ipaddress

    address, port = hex_address.split(":")
    raw = bytes.fromhex(address)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    text = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{text}:{int(port, 16)}"

