"""SFTP (version 3, as OpenSSH speaks it) decoded on the way through: which files were opened,
read, written, removed, renamed, and how many bytes moved.

The decoder only watches bytes the relay has already passed on; it never holds them back.
It reads what a hostile client sends, so every length is checked, at most PREFIX bytes of a
data packet and MAX_HEADER of any other are kept, and what it remembers (requests in flight,
open handles, operations) is capped. Anything it cannot read ends the decoding, not the
session: ``stopped`` says why, and the bytes go on flowing untouched.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

# Packet types (draft-ietf-secsh-filexfer-02) and the OpenSSH extensions with paths.
INIT, VERSION, OPEN, CLOSE, READ, WRITE = 1, 2, 3, 4, 5, 6
LSTAT, FSTAT, SETSTAT, FSETSTAT, OPENDIR, READDIR, REMOVE, MKDIR, RMDIR = 7, 8, 9, 10, 11, 12, 13, 14, 15
REALPATH, STAT, RENAME, READLINK, SYMLINK = 16, 17, 18, 19, 20
STATUS, HANDLE, DATA, NAME, ATTRS = 101, 102, 103, 104, 105
EXTENDED, EXTENDED_REPLY = 200, 201
FLAG_WRITE, FLAG_CREAT, FLAG_TRUNC, FLAG_APPEND = 0x02, 0x08, 0x10, 0x04
STATUS_NAMES = {0: "ok", 1: "eof", 2: "no such file", 3: "permission denied", 4: "failure",
                5: "bad message", 6: "no connection", 7: "connection lost", 8: "unsupported"}
PATH_OPS = {REMOVE: "remove", MKDIR: "mkdir", RMDIR: "rmdir", SETSTAT: "setstat"}
TWO_PATH_OPS = {RENAME: "rename", SYMLINK: "symlink"}
EXTENDED_TWO_PATHS = {b"posix-rename@openssh.com": "rename", b"hardlink@openssh.com": "hardlink"}
EXTENDED_ONE_PATH = {b"lsetstat@openssh.com": "setstat"}

MAX_PACKET = 1 << 20  # OpenSSH never sends more than 256 KiB; larger means this is not SFTP
MAX_HEADER = 64 * 1024  # what is kept of a packet that is not file data
PREFIX = 1024  # what is kept of a WRITE or DATA packet: its fields before the data
MAX_PENDING = 4096  # requests awaiting their reply
MAX_HANDLES = 1024
MAX_OPS = 10_000

Op = dict[str, object]


class Malformed(ValueError):
    """A packet that does not parse; decoding stops."""


class Fields:
    """Reads SFTP fields from one packet, refusing to run past its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise Malformed("packet ends inside a number")
        (value,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return int(value)

    def u64(self) -> int:
        if self.pos + 8 > len(self.data):
            raise Malformed("packet ends inside a number")
        (value,) = struct.unpack_from(">Q", self.data, self.pos)
        self.pos += 8
        return int(value)

    def string(self) -> bytes:
        size = self.u32()
        if self.pos + size > len(self.data):
            raise Malformed("packet ends inside a string")
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def length_of_string(self) -> int:
        """The declared size of a string whose bytes may lie past what was kept (file data)."""
        return self.u32()


class _Open:
    """An open file or directory handle: what it is and what went through it."""

    __slots__ = ("path", "flags", "directory", "read", "written", "at")

    def __init__(self, path: str, flags: int, directory: bool, at: float) -> None:
        self.path = path
        self.flags = flags
        self.directory = directory
        self.read = 0
        self.written = 0
        self.at = at


class _Request:
    """A request waiting for its reply."""

    __slots__ = ("what", "path", "to", "flags", "directory", "handle", "size")

    def __init__(self, what: str, path: str = "", to: str | None = None, flags: int = 0,
                 directory: bool = False, handle: bytes = b"", size: int = 0) -> None:
        self.what = what  # open, close, read, write, or an operation name
        self.path = path
        self.to = to
        self.flags = flags
        self.directory = directory
        self.handle = handle
        self.size = size


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class PacketStream:
    """Splits one direction of the byte stream into packets; calls ``on_packet(type, body)``
    with at most PREFIX (file data) or MAX_HEADER (anything else) bytes of each."""

    def __init__(self, on_packet: Callable[[int, bytes], None], data_type: int) -> None:
        self.on_packet = on_packet
        self.data_type = data_type  # WRITE from the client, DATA from the server
        self.buffer = bytearray()
        self.want = 0  # bytes of the current packet to keep; 0 between packets
        self.skip = 0  # bytes of the last packet still to pass over

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.skip and not self.want:
                step = min(self.skip, len(view))
                self.skip -= step
                view = view[step:]
                continue
            target = self.want or 5  # the length and the type come first
            need = target - len(self.buffer)
            self.buffer += view[:need]
            view = view[need:]
            if len(self.buffer) < target:
                return
            if not self.want:
                self._header()
                if len(self.buffer) < self.want:
                    continue
            kept, self.buffer, self.want = bytes(self.buffer), bytearray(), 0
            self.on_packet(kept[4], kept[5:])

    def _header(self) -> None:
        (length,) = struct.unpack_from(">I", self.buffer)
        if length < 1 or length > MAX_PACKET:
            raise Malformed(f"packet length {length} (not SFTP?)")
        total = 4 + length
        self.want = min(total, PREFIX if self.buffer[4] == self.data_type else MAX_HEADER)
        self.skip = total - self.want


class SftpDecoder:
    """Feed it the client's bytes and the server's; ``ops`` are the file operations seen."""

    def __init__(self, clock: Callable[[], float], on_op: Callable[[Op], None] | None = None) -> None:
        self.clock = clock
        self.on_op = on_op
        self.ops: list[Op] = []
        self.dropped = 0
        self.stopped: str | None = None
        self.pending: dict[int, _Request] = {}
        self.handles: dict[bytes, _Open] = {}
        self.requests = PacketStream(self._request, WRITE)
        self.replies = PacketStream(self._reply, DATA)

    def client(self, data: bytes) -> None:
        self._feed(self.requests, data)

    def server(self, data: bytes) -> None:
        self._feed(self.replies, data)

    def _feed(self, stream: PacketStream, data: bytes) -> None:
        if self.stopped is not None:
            return
        try:
            stream.feed(data)
        except Malformed as exc:
            self.stop(f"sftp decoding stopped: {exc}")
        except Exception as exc:  # a decoder bug must never end the session it watches
            self.stop(f"sftp decoding stopped: internal error {exc!r}")

    def stop(self, reason: str) -> None:
        self.stopped = reason
        self.pending.clear()
        self.requests.buffer = bytearray()
        self.replies.buffer = bytearray()

    def finish(self) -> None:
        """The session is over: files still open are reported as they stand."""
        for state in self.handles.values():
            self._closed(state, "not closed")
        self.handles.clear()

    # -- client to server --------------------------------------------------------------

    def _request(self, kind: int, body: bytes) -> None:
        if kind in (INIT, VERSION):
            return
        fields = Fields(body)
        number = fields.u32()
        request = self._parse_request(kind, fields)
        if request is None:
            return
        if len(self.pending) >= MAX_PENDING:
            self.pending.pop(next(iter(self.pending)))
        self.pending[number] = request

    @staticmethod
    def _parse_request(kind: int, fields: Fields) -> _Request | None:
        if kind in (OPEN, OPENDIR):
            path = text(fields.string())
            return _Request("open", path, flags=fields.u32() if kind == OPEN else 0, directory=kind == OPENDIR)
        if kind == CLOSE:
            return _Request("close", handle=fields.string())
        if kind == READ:
            return _Request("read", handle=fields.string())
        if kind == WRITE:
            handle = fields.string()
            fields.u64()
            return _Request("write", handle=handle, size=fields.length_of_string())
        if kind in PATH_OPS:
            return _Request(PATH_OPS[kind], text(fields.string()))
        if kind in TWO_PATH_OPS:
            first = text(fields.string())
            return _Request(TWO_PATH_OPS[kind], first, text(fields.string()))
        if kind == EXTENDED:
            name = fields.string()
            if name in EXTENDED_TWO_PATHS:
                first = text(fields.string())
                return _Request(EXTENDED_TWO_PATHS[name], first, text(fields.string()))
            if name in EXTENDED_ONE_PATH:
                return _Request(EXTENDED_ONE_PATH[name], text(fields.string()))
        return None

    # -- server to client --------------------------------------------------------------

    def _reply(self, kind: int, body: bytes) -> None:
        if kind == VERSION:
            return
        fields = Fields(body)
        request = self.pending.pop(fields.u32(), None)
        if request is None:
            return
        if kind == HANDLE and request.what == "open":
            if len(self.handles) < MAX_HANDLES:
                opened = _Open(request.path, request.flags, request.directory, self.clock())
                self.handles[fields.string()] = opened
        elif kind == DATA and request.what == "read":
            state = self.handles.get(request.handle)
            if state is not None:
                state.read += fields.length_of_string()
        elif kind == STATUS:
            self._status(request, fields.u32())

    def _status(self, request: _Request, code: int) -> None:
        error = None if code == 0 else STATUS_NAMES.get(code, f"status {code}")
        if request.what == "write":
            state = self.handles.get(request.handle)
            if state is not None and error is None:
                state.written += request.size
        elif request.what == "close":
            state = self.handles.pop(request.handle, None)
            if state is not None:
                self._closed(state, None)
        elif request.what == "open":  # a HANDLE would have opened it: this is a refusal
            op = "list" if request.directory else "write" if request.flags & FLAG_WRITE else "read"
            self._emit({"op": op, "path": request.path, "error": error or "refused"})
        elif request.what != "read":
            found: Op = {"op": request.what, "path": request.path}
            if request.to is not None:
                found["to"] = request.to
            if error:
                found["error"] = error
            self._emit(found)

    def _closed(self, state: _Open, note: str | None) -> None:
        if state.directory:
            op: Op = {"op": "list", "path": state.path}
        elif state.written or state.flags & (FLAG_WRITE | FLAG_CREAT | FLAG_TRUNC | FLAG_APPEND):
            op = {"op": "write", "path": state.path, "bytes": state.written}
        else:
            op = {"op": "read", "path": state.path, "bytes": state.read}
        if note:
            op["note"] = note
        self._emit(op, state.at)

    def _emit(self, op: Op, at: float | None = None) -> None:
        if len(self.ops) >= MAX_OPS:
            self.dropped += 1
            return
        op["at"] = round(self.clock() if at is None else at, 3)
        self.ops.append(op)
        if self.on_op is not None:
            self.on_op(op)
