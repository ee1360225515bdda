"""The recorder's end of the collector protocol: events go out as raw frames (the collector
does the encoding, on another core), and stay in a bounded buffer until acknowledged.

Nothing here blocks the session: the socket is non-blocking and polled by the relay. When the
collector is slow the buffer fills and the relay stops reading the session's output until
there is room (the session slows down; nothing is lost). When the connection breaks, the sink
reconnects and resumes after the last acknowledged event; if the collector stays away (or the
buffer stays full) for ``timeout`` seconds, ``on_failure`` decides: "deny" ends the session,
"allow" drops what it cannot keep, goes on, and tells the collector how much was lost.
"""

from __future__ import annotations

import collections
import os
import select
import socket
import time

from . import protocol as p

RECONNECT_INTERVAL = 0.2
HANDSHAKE_TIMEOUT = 5.0
BATCH_BYTES = 64 * 1024  # frames go out together: one send per batch, not per read
BATCH_DELAY = 0.02  # seconds a frame may wait for others (the collector's view lags by this)


class CollectorUnavailable(Exception):
    """The collector cannot take the session; the message says why, for the client."""


def _warn(message: str) -> None:
    try:
        os.write(2, f"sshrec: {message}\n".encode(errors="replace"))
    except OSError:
        pass


class CollectorSink:
    """Implements what the relay reports to (see relay.Recorder), plus ``marker`` and ``start``."""

    def __init__(self, path: str, hello: dict[str, object], buffer_limit: int, timeout: float,
                 on_failure: str, version: int = 2) -> None:
        self.path = path
        self.version = version
        self.hello = hello
        self.session_id = str(hello["record"]["id"])  # type: ignore[index]
        self.buffer_limit = buffer_limit
        self.timeout = timeout
        self.on_failure = on_failure
        self.sock: socket.socket | None = None
        self.start = time.monotonic()
        self.seq = 0
        self.acked = 0
        self.unacked: collections.deque[tuple[int, bytes]] = collections.deque()
        self.unacked_bytes = 0
        self.outbox = bytearray()
        self.splitter = p.Splitter()
        self.trouble_since: float | None = None  # disconnected, or the buffer full, since
        self.next_attempt = 0.0
        self.dropping = False  # allow mode, after the timeout: events are not kept
        self.lost = 0
        self.stop_reason: str | None = None
        self.bytes_out = 0
        self.bytes_in = 0
        self.done = False
        self.batch_since: float | None = None  # when the oldest frame in the outbox was queued

    # -- connecting ------------------------------------------------------------------------

    def open(self) -> None:
        """The first connection (blocking, bounded): raises CollectorUnavailable."""
        self._connect(resume=False)

    def _connect(self, resume: bool) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            sock.connect(self.path)
            hello = dict(self.hello)
            if resume:
                hello["resume"] = {"id": self.session_id, "acked": self.acked}
            sock.sendall(p.json_frame(p.HELLO, hello))
            self.splitter = p.Splitter()
            reply, *early = self._read_frames(sock)
        except (OSError, p.ProtocolError) as exc:
            sock.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CollectorUnavailable(f"the recording service (collector) at {self.path} is not reachable: "
                                       f"{reason}") from None
        if reply[0] == p.ERROR:
            sock.close()
            raise CollectorUnavailable(f"the recording service refused the session: "
                                       f"{p.parse_json(reply).get('message')}")
        if reply[0] != p.WELCOME:
            sock.close()
            raise CollectorUnavailable("the recording service answered with something else than WELCOME")
        committed = int(p.parse_json(reply).get("committed", 0))  # type: ignore[call-overload]
        self._acknowledged(committed)
        sock.setblocking(False)
        self.sock = sock
        self.outbox = bytearray(b"".join(frame for _, frame in self.unacked))
        self.trouble_since = None
        self._handle(early)

    def _read_frames(self, sock: socket.socket) -> list[bytes]:
        """The frames of the first reply (WELCOME or ERROR, maybe with what followed it)."""
        while True:
            data = sock.recv(65536)
            if not data:
                raise p.ProtocolError("the collector closed the connection")
            frames = self.splitter.feed(data)
            if frames:
                return frames

    def _lost_connection(self, why: str) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.outbox.clear()
        if self.trouble_since is None:
            self.trouble_since = time.monotonic()
        self.next_attempt = 0.0

    def _retry(self, now: float) -> None:
        if self.sock is not None or now < self.next_attempt or self.done:
            return
        self.next_attempt = now + RECONNECT_INTERVAL
        try:
            self._connect(resume=True)
        except CollectorUnavailable:
            return
        if self.dropping:
            self.outbox += p.json_frame(p.GAP, {"bytes": self.lost, "next": self.seq + 1})
            self.dropping = False

    # -- events (the relay's Recorder protocol) ----------------------------------------------

    def output(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self._event("o", data)

    def input(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._event("i", data)

    def count_input(self, size: int) -> None:
        self.bytes_in += size

    def count_output(self, size: int) -> None:
        self.bytes_out += size

    def resize(self, cols: int, rows: int) -> None:
        self._event("r", f"{cols}x{rows}".encode())

    def marker(self, label: str) -> None:
        self._event("m", label.encode("utf-8", "replace"))

    def exit(self, status: int) -> None:
        """v3 has an exit event; v2 readers would reject an unknown code, so it is v3 only."""
        if self.version == 3:
            self._event("x", str(status).encode())

    def _event(self, code: str, data: bytes) -> None:
        if not data:
            return
        if self.dropping:
            self.lost += len(data)
            return
        self.seq += 1
        frame = p.event(self.seq, time.monotonic() - self.start, code, data)
        self.unacked.append((self.seq, frame))
        self.unacked_bytes += len(frame)
        if self.sock is not None:
            if not self.outbox:
                self.batch_since = time.monotonic()
            self.outbox += frame
            if len(self.outbox) >= BATCH_BYTES:
                self._send()

    def congested(self) -> bool:
        return self.unacked_bytes >= self.buffer_limit and not self.dropping

    def flush_due_in(self) -> float | None:
        if self.sock is None or self.trouble_since is not None:
            return RECONNECT_INTERVAL
        if not self.outbox or self.batch_since is None:
            return None
        return max(0.0, self.batch_since + BATCH_DELAY - time.monotonic())

    def flush(self) -> None:
        now = time.monotonic()
        self._retry(now)
        if self.sock is not None and self.outbox:
            self._send()
        self._check_trouble(now)

    def io(self) -> tuple[int, int] | None:
        if self.sock is None:
            return None
        due = len(self.outbox) >= BATCH_BYTES or (self.outbox and self.flush_due_in() == 0.0)
        return self.sock.fileno(), select.POLLIN | (select.POLLOUT if due else 0)

    def on_io(self, events: int) -> None:
        if self.sock is None:
            return
        if events & select.POLLIN:
            self._receive()
        if self.sock is not None and events & select.POLLOUT:
            self._send()
        if self.sock is not None and events & (select.POLLERR | select.POLLHUP) and not events & select.POLLIN:
            self._lost_connection("hung up")

    def _send(self) -> None:
        assert self.sock is not None
        try:
            while self.outbox:
                sent = self.sock.send(self.outbox)
                del self.outbox[:sent]
            self.batch_since = None
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost_connection(exc.strerror or str(exc))

    def _receive(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost_connection(exc.strerror or str(exc))
            return
        if not data:
            self._lost_connection("closed")
            return
        try:
            frames = self.splitter.feed(data)
        except p.ProtocolError as exc:
            self._lost_connection(str(exc))
            return
        self._handle(frames)

    def _handle(self, frames: list[bytes]) -> None:
        for frame in frames:
            if frame[0] in (p.ACK, p.DONE):
                self._acknowledged(p.parse_seq(frame))
                self.done = self.done or frame[0] == p.DONE
            elif frame[0] == p.ERROR:
                self._refused(str(p.parse_json(frame).get("message")))

    def _acknowledged(self, seq: int) -> None:
        self.acked = max(self.acked, seq)
        while self.unacked and self.unacked[0][0] <= self.acked:
            self.unacked_bytes -= len(self.unacked.popleft()[1])
        if self.trouble_since is not None and self.sock is not None and not self.congested():
            self.trouble_since = None

    def _refused(self, message: str) -> None:
        self._lost_connection(message)
        self.stop_reason = f"the recording service stopped the session: {message}"

    def _check_trouble(self, now: float) -> None:
        if self.congested() and self.trouble_since is None:
            self.trouble_since = now
        if self.trouble_since is None or now - self.trouble_since < self.timeout:
            return
        if self.on_failure == "deny":
            if self.stop_reason is None:
                _warn(f"the recording service has not taken this session's output for {self.timeout:g} s; "
                      "ending the session (on-failure=deny)")
                self.stop_reason = "the recording service was unreachable"
            return
        if not self.dropping:
            _warn(f"the recording service has not taken this session's output for {self.timeout:g} s; "
                  "the session goes on, NOT fully recorded (on-failure=allow)")
        self.dropping = True
        self.lost += sum(len(frame) for _, frame in self.unacked)
        self.unacked.clear()
        self.unacked_bytes = 0
        self.trouble_since = None

    # -- the end -----------------------------------------------------------------------------

    def close(self, final: dict[str, object], timeout: float) -> bool:
        """Send END and wait (bounded) for DONE: True when the collector has it all."""
        end = p.json_frame(p.END, {**final, "bytes_in_count": self.bytes_in, "bytes_out_count": self.bytes_out})
        deadline = time.monotonic() + timeout
        sent_end = False
        while time.monotonic() < deadline and not self.done:
            now = time.monotonic()
            self._retry(now)
            if self.sock is None:
                time.sleep(RECONNECT_INTERVAL)
                sent_end = False
                continue
            if not sent_end:
                self.outbox += end
                sent_end = True
            self._send()
            ready = select.select([self.sock], [self.sock] if self.outbox else [], [], 0.1)
            if ready[0]:
                self._receive()
        if self.sock is not None:
            self.sock.close()
        return self.done
