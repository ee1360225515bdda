"""Read a cast's events from any byte offset, knowing where each one lies in the file.

:class:`~sshrec.schema.asciicast.CastReader` reads a whole file from its start; the player
also starts in the middle (after a seek, from a point the seek index knows the absolute time
and line number of) and waits at the end of a file that is still growing (``--follow``).
Both need the byte offset of every event, so this reads lines from a binary file itself and
decodes each one with the shared codec. A recording is a local path or a stored object
(:class:`~sshrec.schema.storage.Blob`): the same code reads both, an object by ranged reads.
"""

from __future__ import annotations

import os

from sshrec.schema.asciicast import CastError, CastHeader, parse_event, parse_header
from sshrec.schema.storage import Blob, open_source, source_name, source_size


class CursorEvent:
    """One event: absolute ``time``, ``code``, ``data``; ``offset``/``end`` are its bytes."""

    __slots__ = ("time", "code", "data", "offset", "end", "line")

    def __init__(self, time: float, code: str, data: str, offset: int, end: int, line: int) -> None:
        self.time = time
        self.code = code
        self.data = data
        self.offset = offset
        self.end = end
        self.line = line

    def __repr__(self) -> str:
        return f"CursorEvent({self.time!r}, {self.code!r}, {self.data!r}, @{self.offset})"


def read_header(source: str | Blob) -> tuple[CastHeader, int]:
    """The header and the offset of the first event line."""
    path = source_name(source)
    with open_source(source) as handle:
        first = handle.readline(4 << 20)
    if not first.strip():
        raise CastError(path, 1, "file is empty (no asciicast header)")
    if not first.endswith(b"\n"):
        raise CastError(path, 1, "header line is incomplete (no newline)")
    return parse_header(path, first.decode("utf-8", "replace")), len(first)


class EventCursor:
    """Events from ``offset`` on. ``time`` is the absolute time just before that offset and
    ``line`` its 1-based line number (both known from the start of the file or a seek index)."""

    def __init__(self, source: str | Blob, version: int, offset: int, time: float = 0.0, line: int = 2) -> None:
        self.source = source
        self.path = source_name(source)
        self.relative = version == 3
        self._handle = open_source(source)
        self._handle.seek(offset)
        self.offset = offset  # where the next complete line starts
        self.time = time
        self.line = line
        self.truncated = False  # a torn last line was seen (and skipped)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> EventCursor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def size(self) -> int:
        if isinstance(self.source, Blob):
            return source_size(self.source)
        return os.fstat(self._handle.fileno()).st_size

    def next(self) -> CursorEvent | None:
        """The next complete event, or None at the end for now (a torn line is left unread,
        so a growing file can be read again later)."""
        handle = self._handle
        while True:
            start = self.offset
            raw = handle.readline()
            if not raw:
                return None
            if not raw.endswith(b"\n"):
                handle.seek(start)
                self.truncated = True
                return None
            self.offset = start + len(raw)
            number = self.line
            self.line += 1
            stripped = raw.strip()
            if not stripped or stripped.startswith(b"#"):
                continue
            t, code, data = parse_event(self.path, number, raw.decode("utf-8", "replace"))
            if self.relative:
                t += self.time
            elif t < self.time - 1e-6:
                raise CastError(self.path, number, f"event time {t} goes back (previous {self.time})")
            self.time = t
            return CursorEvent(t, code, data, start, self.offset, number)

    def peek_time(self) -> float | None:
        """The time of the next complete event without consuming it."""
        state = (self.offset, self.time, self.line, self.truncated)
        event = self.next()
        self.offset, self.time, self.line, self.truncated = state
        self._handle.seek(self.offset)
        return None if event is None else event.time
