"""The old scp protocol (``scp -O``: rcp over SSH) decoded on the way through: each file's
path and size, from the control lines the sending side writes (RFC-less, see OpenSSH scp.c).

``scp -t DIR`` on this host receives: the client sends ``C<mode> <size> <name>`` then the
bytes, ``D<mode> 0 <name>`` to enter a folder, ``E`` to leave it, ``T...`` for times.
``scp -f PATH`` sends: the same lines come from this side. Like the sftp decoder it only
watches bytes already relayed, keeps at most MAX_LINE bytes, and stops (not the session) on
anything it cannot read.
"""

from __future__ import annotations

import os
from collections.abc import Callable

MAX_LINE = 4096  # PATH_MAX-sized names and a little more
MAX_DEPTH = 256
MAX_OPS = 10_000

Op = dict[str, object]


class ScpDecoder:
    """Feed it the stream the sending side writes (client's for -t, server's for -f)."""

    def __init__(self, paths: list[str], receiving: bool, clock: Callable[[], float],
                 on_op: Callable[[Op], None] | None = None) -> None:
        self.paths = paths or ["."]  # the target folder or file (-t), the sources (-f)
        self.receiving = receiving
        self.op = "upload" if receiving else "download"
        self.clock = clock
        self.on_op = on_op
        self.ops: list[Op] = []
        self.dropped = 0
        self.stopped: str | None = None
        self.line = bytearray()
        self.skip = 0  # file bytes (and the status byte after them) to pass over
        self.folders: list[str] = []
        self.target_is_folder = receiving and os.path.isdir(self.paths[0])

    def feed(self, data: bytes) -> None:
        if self.stopped is not None:
            return
        try:
            self._feed(memoryview(data))
        except ValueError as exc:
            self.stopped = f"scp decoding stopped: {exc}"
        except Exception as exc:  # never end the session it watches
            self.stopped = f"scp decoding stopped: internal error {exc!r}"

    def _feed(self, view: memoryview) -> None:
        while view:
            if self.skip:
                step = min(self.skip, len(view))
                self.skip -= step
                view = view[step:]
                continue
            if not self.line and view[0] in (0, 1, 2):  # a status byte (an acknowledgement)
                view = view[1:]
                continue
            end = bytes(view[: MAX_LINE + 1]).find(b"\n")
            if end < 0:
                self.line += view
                if len(self.line) > MAX_LINE:
                    raise ValueError("control line too long")
                return
            self.line += view[:end]
            view = view[end + 1 :]
            line, self.line = bytes(self.line), bytearray()
            self._control(line.decode("utf-8", "surrogateescape"))

    def _control(self, line: str) -> None:
        kind, rest = line[:1], line[1:]
        if kind == "T":
            return
        if kind == "E":
            if self.folders:
                self.folders.pop()
            return
        if kind not in ("C", "D"):
            raise ValueError(f"unexpected control line {line[:40]!r}")
        parts = rest.split(" ", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2] or "/" in parts[2]:
            raise ValueError(f"bad {kind} line {line[:40]!r}")
        name = parts[2]
        if kind == "D":
            if len(self.folders) >= MAX_DEPTH:
                raise ValueError("folders nested too deep")
            self.folders.append(name)
            return
        size = int(parts[1])
        self.skip = size + 1  # the file, then the sender's status byte
        self._emit({"op": self.op, "path": self._path(name), "bytes": size})

    def _path(self, name: str) -> str:
        """Where on this host the file is: the top folder of a recursive copy is the named
        source (-f) or, when the target does not exist yet, the target itself (-t)."""
        if self.receiving:
            target = self.paths[0]
            if self.target_is_folder:
                return os.path.join(target, *self.folders, name)
            return os.path.join(target, *self.folders[1:], name) if self.folders else target
        top = self.folders[0] if self.folders else name
        source = next((p for p in self.paths if os.path.basename(p.rstrip("/")) == top), self.paths[0])
        return os.path.join(source, *self.folders[1:], name) if self.folders else source

    def _emit(self, op: Op) -> None:
        if len(self.ops) >= MAX_OPS:
            self.dropped += 1
            return
        op["at"] = round(self.clock(), 3)
        self.ops.append(op)
        if self.on_op is not None:
            self.on_op(op)
