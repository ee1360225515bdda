"""The direct sink: asciicast lines appended to a file in the spool.

Only complete lines reach the file, so a recorder killed at any moment leaves a playable
prefix. The relay hands over raw bytes with their time and goes back to the session at once;
a writer thread turns them into lines (escaping in C with the GIL released), keeps the
SHA-256 of everything written, and writes at least every FLUSH_INTERVAL while output flows
(the file is at most that far behind the screen, plus a burst: recorder/burst.py). Closing
drains it and costs one fsync. With more than MAX_QUEUED bytes not yet encoded the relay
stops reading the session until the writer catches up: memory stays bounded, nothing is lost.
"""

from __future__ import annotations

import _thread  # not threading: its import alone costs ~4 ms of every login
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable

from sshrec.schema.asciicast import EventEncoder, Utf8Stream, json_string_bytes

FLUSH_INTERVAL = 0.25
FLUSH_BYTES = 256 * 1024
MAX_QUEUED = 1 << 20  # raw bytes waiting for the writer before the session is held
CONGESTED_RECHECK = 0.01  # seconds the relay waits before looking again while held

# What the queue holds: (time, code, data, kind); kind says how data becomes the event's text.
RAW = 0  # terminal bytes, through the direction's UTF-8 stream (an incomplete character waits)
TEXT = 1  # complete text (resize, marker, exit)
FLUSH = 2  # write what is buffered now
CLOSE = 3  # the end: flush, fsync, close


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
        self.bytes_out = 0
        self.bytes_in = 0
        self.last_event = 0.0
        # Shared with the writer thread: the queue (deque appends and pops are atomic) and two
        # byte counts, each written by one side only; everything else is the writer's alone.
        self._queue: deque[tuple[float, int, bytes, int]] = deque()
        self._put_bytes = 0  # raw bytes queued (the relay's thread counts)
        self._taken_bytes = 0  # raw bytes encoded (the writer counts)
        self._failed: OSError | None = None  # set by the writer, reported on the relay's thread
        self._digest: str | None = None
        self._write_now()  # the header is on disk before the session starts (a failure is said
        # at the first event, when the session holds this object)
        self._wake = _thread.allocate_lock()
        self._wake.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._closed = False
        _thread.start_new_thread(self._writer, ())

    @property
    def invalid_bytes(self) -> int:
        return self._out.invalid

    # -- the relay's side -------------------------------------------------------------------

    def output(self, data: bytes) -> None:
        """The hot path: a tuple onto a queue."""
        self.bytes_out += len(data)
        self._put(111, data, RAW)  # "o"

    def input(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._put(105, data, RAW)  # "i"

    def count_input(self, size: int) -> None:
        self.bytes_in += size

    def count_output(self, size: int) -> None:
        self.bytes_out += size

    def resize(self, cols: int, rows: int) -> None:
        self._put(114, f"{cols}x{rows}".encode(), TEXT)  # "r"

    def marker(self, label: str) -> None:
        self._put(109, label.encode("utf-8", "replace"), TEXT)  # "m"

    def exit(self, status: int) -> None:
        """v3 has an exit event; v2 readers would reject an unknown code, so it is v3 only."""
        if self._encoder.version == 3:
            self._put(120, str(status).encode(), TEXT)  # "x"

    def _put(self, code: int, data: bytes, kind: int) -> None:
        if self._closed or not data or self._report_failure():
            return
        t = time.monotonic() - self.start
        self.last_event = t
        self._queue.append((t, code, data, kind))
        if kind == RAW:
            self._put_bytes += len(data)
        self._signal()

    def _signal(self) -> None:
        try:
            self._wake.release()
        except RuntimeError:
            pass  # already signalled: the writer drains everything queued when it wakes

    def io(self) -> None:
        """A file needs no polling (the collector's sink has a socket)."""
        return None

    def on_io(self, events: int) -> None:
        """Nothing to do: see io."""

    def congested(self) -> bool:
        return self._put_bytes - self._taken_bytes > MAX_QUEUED

    def flush_due_in(self) -> float | None:
        """The writer flushes on its own; the relay only comes back soon while it is held."""
        self._report_failure()
        return CONGESTED_RECHECK if self.congested() else None

    def flush(self) -> None:
        """Have what is queued written now (the writer does it; this does not wait)."""
        if not self._closed:
            self._queue.append((0.0, 0, b"", FLUSH))
            self._signal()

    def close(self) -> str | None:
        """Drain, fsync and close; returns the file's SHA-256 (None when recording failed)."""
        if self._closed:
            return self._digest
        self._closed = True
        self._queue.append((time.monotonic() - self.start, 0, b"", CLOSE))
        self._signal()
        self._done.acquire()
        self._report_failure()
        return self._digest

    def _report_failure(self) -> bool:
        """A write error of the writer's, said once, from the relay's thread (on_error may set
        stop_reason, which the relay acts on)."""
        failed = self._failed
        if failed is None:
            return False
        if self.error is None:
            self.error = failed
            self._on_error(failed)
        return True

    # -- the writer thread ------------------------------------------------------------------

    def _writer(self) -> None:
        last_flush = time.monotonic()
        try:
            while True:
                due = last_flush + FLUSH_INTERVAL - time.monotonic()
                self._wake.acquire(timeout=max(due, 0.001) if self._buf else -1)
                ending, asked = self._encode_queued()
                now = time.monotonic()
                if ending or asked or len(self._buf) >= FLUSH_BYTES or now - last_flush >= FLUSH_INTERVAL:
                    self._write_now()
                    last_flush = now
                if ending:
                    self._finish()
                    return
        except BaseException as exc:  # noqa: BLE001 - the thread must not die silently
            self._failed = self._failed or OSError(0, f"the recording's writer stopped: {exc!r}")
        finally:
            self._done.release()

    def _encode_queued(self) -> tuple[bool, bool]:
        """Every queued event as lines onto the buffer; (the end was queued, a flush was asked)."""
        ending = asked = False
        while self._queue:
            t, code, data, kind = self._queue.popleft()
            if kind == CLOSE:
                ending = True
                self._append(t, 111, b"", self._out, final=True)
                self._append(t, 105, b"", self._in, final=True)
            elif kind == FLUSH:
                asked = True
            elif kind == RAW:
                self._taken_bytes += len(data)
                self._append(t, code, data, self._out if code == 111 else self._in)
            else:
                self._buf += self._encoder.line_literal(t, bytes((code,)), json_string_bytes(data))
            if len(self._buf) >= FLUSH_BYTES:
                self._write_now()
        return ending, asked

    def _append(self, t: float, code: int, data: bytes, stream: Utf8Stream, final: bool = False) -> None:
        if self._fd is not None:
            self._encoder.append(self._buf, t, code, stream, data, final)

    def _write_now(self) -> None:
        if not self._buf or self._fd is None:
            self._buf.clear()
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
        self._failed = exc

    def _finish(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._fail(exc)
            return
        os.close(self._fd)
        self._fd = None
        self._digest = self._hash.hexdigest()
