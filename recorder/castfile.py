"""The direct sink: asciicast lines appended to a file in the spool.

Only complete lines reach the file, so a recorder killed at any moment leaves a playable
prefix. Lines are buffered and written at least every FLUSH_INTERVAL while output flows;
the SHA-256 of everything written is kept as it goes, so closing costs one fsync.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

from sshrec.schema.asciicast import EventEncoder, Utf8Stream, json_string_bytes

FLUSH_INTERVAL = 0.25
FLUSH_BYTES = 256 * 1024


class CastFile:
    """Encodes events into an asciicast file; on a write error it stops recording and says why once."""

    def __init__(
        self,
        path: str,
        header_line: str,
        version: int,
        on_error: Callable[[OSError], None],
        mode: int = 0o600,
        mirror_fd: int | None = None,
    ) -> None:
        self.path = path
        self._fd: int | None = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, mode
        )
        self._encoder = EventEncoder(version)
        self._out = Utf8Stream()
        self._in = Utf8Stream()
        self._hash = hashlib.sha256()
        self._buf = bytearray(header_line.encode() + b"\n")
        self._on_error = on_error
        self.mirror_fd = mirror_fd  # a second copy of every line (sshrec serve --log)
        self.mirror_error: OSError | None = None
        self.error: OSError | None = None
        self.stop_reason: str | None = None
        self.start = time.monotonic()
        self._last_flush = self.start
        self.bytes_out = 0
        self.bytes_in = 0
        self.last_event = 0.0
        self.flush()

    @property
    def invalid_bytes(self) -> int:
        return self._out.invalid

    def output(self, data: bytes) -> None:
        """The hot path: one call (into the C accelerator when built) per read."""
        self.bytes_out += len(data)
        if self._fd is None:
            return
        now = time.monotonic()
        if self._encoder.append(self._buf, now - self.start, 111, self._out, data):  # "o"
            self.last_event = now - self.start
            if len(self._buf) >= FLUSH_BYTES or now - self._last_flush >= FLUSH_INTERVAL:
                self.flush()

    def input(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self._fd is None:
            return
        now = time.monotonic()
        if self._encoder.append(self._buf, now - self.start, 105, self._in, data):  # "i"
            self.last_event = now - self.start
            if len(self._buf) >= FLUSH_BYTES or now - self._last_flush >= FLUSH_INTERVAL:
                self.flush()

    def count_input(self, size: int) -> None:
        self.bytes_in += size

    def count_output(self, size: int) -> None:
        self.bytes_out += size

    def resize(self, cols: int, rows: int) -> None:
        self._event(b"r", json_string_bytes(f"{cols}x{rows}".encode()))

    def marker(self, label: str) -> None:
        self._event(b"m", json_string_bytes(label.encode("utf-8", "replace")))

    def exit(self, status: int) -> None:
        """v3 has an exit event; v2 readers would reject an unknown code, so it is v3 only."""
        if self._encoder.version == 3:
            self._event(b"x", json_string_bytes(str(status).encode()))

    def _event(self, code: bytes, literal: bytes) -> None:
        """``literal``: the event's data, already a JSON string."""
        if literal == b'""' or self._fd is None:
            return
        now = time.monotonic()
        self.last_event = now - self.start
        self._buf += self._encoder.line_literal(self.last_event, code, literal)
        if len(self._buf) >= FLUSH_BYTES or now - self._last_flush >= FLUSH_INTERVAL:
            self.flush()

    def io(self) -> None:
        """A file needs no polling (the collector's sink has a socket)."""
        return None

    def on_io(self, events: int) -> None:
        """Nothing to do: see io."""

    def congested(self) -> bool:
        return False

    def flush_due_in(self) -> float | None:
        """Seconds until buffered lines must be written, or None when nothing is buffered."""
        if not self._buf:
            return None
        return max(0.0, self._last_flush + FLUSH_INTERVAL - time.monotonic())

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buf or self._fd is None:
            return
        view = memoryview(self._buf)
        try:
            while view:
                written = os.write(self._fd, view)
                self._hash.update(view[:written])
                view = view[written:]
        except OSError as exc:
            self._fail(exc)
        finally:
            view.release()
            self._mirror()
            self._buf.clear()

    def _mirror(self) -> None:
        if self.mirror_fd is None or not self._buf:
            return
        try:
            view = memoryview(self._buf)
            while view:
                view = view[os.write(self.mirror_fd, view):]
        except OSError as exc:
            self.mirror_error = exc
            self.mirror_fd = None

    def _fail(self, exc: OSError) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.error = exc
        self._on_error(exc)

    def close(self) -> str | None:
        """Flush, fsync and close; returns the file's SHA-256 (None when recording failed)."""
        if self._fd is None:
            return None
        self._event(b"o", self._out.feed_literal(b"", final=True))
        self._event(b"i", self._in.feed_literal(b"", final=True))
        self.flush()
        if self._fd is None:
            return None
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._fail(exc)
            return None
        os.close(self._fd)
        self._fd = None
        return self._hash.hexdigest()
