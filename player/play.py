"""Replay a recording in the auditor's terminal, with its timing, keys to steer, and seeking.

Design: one loop waits on the keyboard with a timeout that is the time until the next event
is due, so keys act at once and nothing polls. Due times follow from the recording: the next
event is due ``min(gap, idle limit) / speed`` after the previous one, counted from when the
previous one was *due* (not when it was written), so slow writes do not add up to drift;
events already due are written together. Pausing, speed changes and seeks re-anchor the clock.

The first frame is written before anything reads the rest of the file; the seek index
(:mod:`seekindex`) is built in a background thread afterwards, or loaded from its cache.
Output passes through the :class:`~sshrec.player.sanitize.Sanitizer` unless ``raw``.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time

from sshrec.schema.asciicast import CastError, CastHeader
from sshrec.schema.storage import Blob, StorageError

from . import seekindex
from .cursor import CursorEvent, EventCursor, read_header
from .sanitize import COLOR_RESET, Sanitizer
from .terminal import ModeTracker, Terminal, parse_keys, size, write_all

SEEK_STEP = 5.0
MIN_SPEED, MAX_SPEED = 1 / 64, 4096.0
FOLLOW_POLL = 0.1  # seconds between looks at a growing file
FOLLOW_STATUS_EVERY = 0.5  # seconds between looks at whether its recorder finished
WRITE_BATCH = 256 * 1024
# Before a seek replay: leave the alternate screen if on, soft reset (DECSTR), clear.
CLEAR = "\x1b[!p\x1b[0m\x1b[H\x1b[2J"


class PlayOptions:
    def __init__(self, speed: float = 1.0, idle_time_limit: float | None = None, at: float | None = None,
                 follow: bool = False, raw: bool = False, use_cache: bool = True) -> None:
        self.speed = speed
        self.idle_time_limit = idle_time_limit
        self.at = at
        self.follow = follow
        self.raw = raw
        self.use_cache = use_cache


def render_until(cursor: EventCursor, target: float, sanitizer: Sanitizer | None,
                 tracker: ModeTracker | None = None) -> tuple[str, CursorEvent | None]:
    """All output up to and including ``target`` as one string, and the first event after it."""
    parts = []
    while True:
        event = cursor.next()
        if event is None or event.time > target + 1e-9:
            break
        if event.code == "o":
            parts.append(event.data)
    text = "".join(parts)
    if sanitizer is not None:
        text = sanitizer.feed(text)
    if tracker is not None:
        tracker.feed(text)
    return text, event


class Player:
    """Plays ``path`` on ``out_fd``, reading keys from ``terminal`` (if it has any)."""

    def __init__(self, path: str | Blob, options: PlayOptions, out_fd: int, terminal: Terminal,
                 header: CastHeader, first_offset: int) -> None:
        self.path = path
        self.options = options
        self.out_fd = out_fd
        self.terminal = terminal
        self.header = header
        self.cursor = EventCursor(path, header.version, first_offset)
        self.sanitizer = None if options.raw else Sanitizer()
        self.tracker = ModeTracker()
        self.speed = options.speed
        self.idle = options.idle_time_limit
        if self.idle is None:
            limit = header.extra.get("idle_time_limit")
            self.idle = float(limit) if isinstance(limit, (int, float)) and limit > 0 else None
        self.pending: CursorEvent | None = None
        self.pos = 0.0  # recording time of the last thing shown
        self.pos_wall = time.monotonic()  # when it was (or was due to be) shown
        self.paused = False
        self.done = False  # the recording will not grow any more
        self.live_edge = False  # following, and everything written so far has been shown
        self.notes: list[str] = []
        self.ended_with_newline = True
        self._index: seekindex.SeekIndex | None = None
        self._index_thread: threading.Thread | None = None
        self._index_error: Exception | None = None
        self._status_checked = 0.0
        self.screen = size(out_fd)

    # -- the clock -------------------------------------------------------------------------

    def due(self, event: CursorEvent) -> float:
        gap = max(event.time - self.pos, 0.0)
        if self.idle is not None:
            gap = min(gap, self.idle)
        return self.pos_wall + gap / self.speed

    def position(self, now: float) -> float:
        """Recording time at wall time ``now`` (between the last and the next event)."""
        if self.paused or self.pending is None:
            return self.pos
        return min(self.pos + (now - self.pos_wall) * self.speed, max(self.pending.time, self.pos))

    # -- reading and writing ---------------------------------------------------------------

    def peek(self) -> CursorEvent | None:
        if self.pending is None:
            self.pending = self.cursor.next()
            if self.pending is None:
                self.live_edge = self.options.follow
            elif self.live_edge:  # following and caught up: show what just arrived now
                self.live_edge = False
                self.pos, self.pos_wall = max(self.pos, self.pending.time), time.monotonic()
        return self.pending

    def take(self, event: CursorEvent, parts: list[str]) -> None:
        """Account for ``event`` (the pending one) and collect its output."""
        self.pending = None
        self.pos = max(self.pos, event.time)
        if event.code == "o":
            parts.append(event.data)
        elif event.code == "r":
            self._note_resize(event)
        elif event.code == "x":
            self.done = True

    def write(self, parts: list[str]) -> None:
        if not parts:
            return
        text = "".join(parts)
        if self.sanitizer is not None:
            text = self.sanitizer.feed(text)
        self.tracker.feed(text)
        if text:
            self.ended_with_newline = text.endswith("\n")
            write_all(self.out_fd, text.encode("utf-8", "surrogatepass"))

    def _note_resize(self, event: CursorEvent) -> None:
        cols, _, rows = event.data.partition("x")
        if not (self.screen and cols.isdigit() and rows.isdigit()):
            return
        if int(cols) > self.screen[0] or int(rows) > self.screen[1]:
            note = (f"at {clock(event.time)} the recording grew to {cols}x{rows}, larger than this "
                    f"terminal ({self.screen[0]}x{self.screen[1]}): that part may look wrong")
            if note not in self.notes:
                self.notes.append(note)

    def restore_text(self) -> str:
        text = self.tracker.restore_sequence()
        if self.sanitizer is None or self.sanitizer.colors_changed:
            text += COLOR_RESET
        if not self.ended_with_newline:
            text += "\r\n"
        return text

    # -- the seek index --------------------------------------------------------------------

    def start_index(self) -> None:
        if self._index_thread is None and not self.options.follow:
            self._index_thread = threading.Thread(target=self._build_index, name="seek-index", daemon=True)
            self._index_thread.start()

    def _build_index(self) -> None:
        try:
            self._index = seekindex.load_for(self.path, self.options.use_cache)
        except (OSError, ValueError, StorageError) as exc:
            self._index_error = exc

    def index(self) -> seekindex.SeekIndex | None:
        if self.options.follow:  # the file grows: extend the index to what is there now
            try:
                self._index = seekindex.load_for(self.path, self.options.use_cache)
            except (OSError, ValueError) as exc:
                self._index_error = exc
            return self._index
        self.start_index()
        assert self._index_thread is not None
        self._index_thread.join()
        return self._index

    # -- actions ---------------------------------------------------------------------------

    def seek(self, target: float) -> None:
        index = self.index()
        if index is None:
            return
        plan = index.plan(target)
        self.cursor.close()
        self.cursor = seekindex.open_at(self.path, index, plan)
        if self.sanitizer is not None:
            self.sanitizer.reset()
        text, self.pending = render_until(self.cursor, plan.target, self.sanitizer)
        self.live_edge = self.pending is None and self.options.follow
        prefix = "\x1b[?1049l" if self.tracker.alternate_screen else ""
        self.tracker.on.update({"1049": False, "1047": False, "47": False})
        self.tracker.feed(text)
        self.ended_with_newline = text.endswith("\n") if text else True
        write_all(self.out_fd, (prefix + CLEAR + text).encode("utf-8", "surrogatepass"))
        self.pos = plan.target
        self.pos_wall = time.monotonic()

    def key(self, name: str, now: float) -> bool:
        """Act on a key; False means quit."""
        if name == "quit":
            return False
        if name == "pause":
            if self.paused:
                self.paused = False
                self.pos_wall = now
            else:
                self.pos = self.position(now)
                self.paused = True
        elif name == "step" and self.paused:
            parts: list[str] = []
            while (event := self.peek()) is not None:
                self.take(event, parts)
                if parts:
                    break
            self.write(parts)
        elif name in ("faster", "slower"):
            self.pos = self.position(now)
            self.pos_wall = now
            factor = 2.0 if name == "faster" else 0.5
            self.speed = min(max(self.speed * factor, MIN_SPEED), MAX_SPEED)
        elif name in ("forward", "back"):
            step = SEEK_STEP if name == "forward" else -SEEK_STEP
            self.seek(self.position(now) + step)
        elif name in ("next-marker", "previous-marker"):
            index = self.index()
            if index is not None:
                here = self.position(now)
                marker = index.next_marker(here) if name == "next-marker" else index.previous_marker(here - 0.5)
                if marker is not None:
                    self.seek(marker[0])
        return True

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        if self.options.follow and self.options.at is None:
            self.seek(float("inf"))
        elif self.options.at:
            self.seek(self.options.at)
        started = False
        while True:
            now = time.monotonic()
            if not self.paused:
                self._write_due(now)
            if not started:
                started = True
                self.start_index()
            if self.pending is None and self.peek() is None and self._finished(now):
                return 0
            timeout = self._timeout(time.monotonic())
            if self.terminal.keys:
                ready, _, _ = select.select([self.terminal.in_fd], [], [], timeout)
                if ready:
                    now = time.monotonic()
                    for name in parse_keys(self.terminal.read_keys()):
                        if not self.key(name, now):
                            return 0
            elif timeout is None:
                time.sleep(FOLLOW_POLL)  # paused without a keyboard cannot happen; be safe
            elif timeout > 0:
                time.sleep(timeout)

    def _write_due(self, now: float) -> None:
        parts: list[str] = []
        size_so_far = 0
        try:
            while (event := self.peek()) is not None:
                due = self.due(event)
                if due > now:
                    break
                self.take(event, parts)
                self.pos_wall = due
                size_so_far += len(event.data)
                if size_so_far >= WRITE_BATCH:
                    self.write(parts)
                    parts = []
                    size_so_far = 0
                    now = time.monotonic()
        finally:  # a broken line further on: still show everything before it
            self.write(parts)

    def _timeout(self, now: float) -> float | None:
        if self.paused:
            return None
        event = self.peek()
        if event is None:
            return FOLLOW_POLL if self.options.follow else 0.0
        return max(self.due(event) - now, 0.0)

    def _finished(self, now: float) -> bool:
        """At the end of what is there: done unless following a recording still in progress."""
        if not self.options.follow or self.done:
            return True
        if now - self._status_checked >= FOLLOW_STATUS_EVERY:
            self._status_checked = now
            self.done = recording_finished(self.path)
            if self.done:  # read once more: the last lines may have landed meanwhile
                return self.peek() is None
        return False


def recording_finished(path: str | Blob) -> bool:
    """Whether a spool recording is over: its record says so, or its recorder no longer holds
    the lock. A file with neither beside it (not in a spool) is followed until ``q``."""
    import json

    from sshrec.schema.spool import recorder_alive_at

    if isinstance(path, Blob):
        return True  # a stored recording is finished (only finished ones are shipped)
    stem = path[: -len(".cast")] if path.endswith(".cast") else path
    try:
        with open(stem + ".json", encoding="utf-8") as handle:
            if json.load(handle).get("status", "recording") != "recording":
                return True
    except (OSError, ValueError):
        return False
    return os.path.exists(stem + ".lock") and not recorder_alive_at(stem + ".lock")


def clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def parse_time(text: str) -> float:
    """``90``, ``90.5``, ``1:30``, ``1:02:03``, ``2m``, ``1h2m3s``: seconds into the recording."""
    value = text.strip().lower()
    try:
        if ":" in value:
            total = 0.0
            for part in value.split(":"):
                total = total * 60 + float(part)
            return total
        if value and value[-1] in "smh":
            import re

            pieces = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
            if pieces and any(pieces.groups()):
                h, m, s = (float(g or 0) for g in pieces.groups())
                return h * 3600 + m * 60 + s
            raise ValueError
        return float(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use seconds (90), m:ss (1:30), h:mm:ss or 1h2m3s") from None


def size_warning(header: CastHeader, screen: tuple[int, int] | None) -> str | None:
    if screen is None or not header.cols or not header.rows:
        return None
    cols, rows = screen
    if cols >= header.cols and rows >= header.rows:
        return None
    return (f"the recording is {header.cols}x{header.rows} but this terminal is {cols}x{rows}: "
            "lines will wrap and full-screen programs will look wrong (enlarge the window)")


def is_pipe_recording(header: CastHeader) -> bool:
    record = header.sshrec or {}
    return record.get("mode") in ("pipe", "sftp")


def play(path: str | Blob, options: PlayOptions, in_fd: int = 0, out_fd: int = 1) -> int:
    """Play ``path``; returns the exit status. Raises CastError/OSError for the caller to report."""
    header, first_offset = read_header(path)
    warning = size_warning(header, size(out_fd))
    if warning:
        print(f"sshrec play: {warning}", file=sys.stderr, flush=True)
    terminal = Terminal(in_fd, out_fd, exact_output=not is_pipe_recording(header))
    player = Player(path, options, out_fd, terminal, header, first_offset)
    terminal.restore_text = player.restore_text
    try:
        with terminal:
            status = player.run()
    finally:
        player.cursor.close()
    if player.cursor.truncated and not options.follow:
        player.notes.append("the recording ends with an incomplete line (its recorder was stopped); "
                            "played up to there")
    for note in player.notes:
        print(f"sshrec play: {note}", file=sys.stderr)
    return status


__all__ = ["CastError", "PlayOptions", "Player", "parse_time", "play", "render_until"]
