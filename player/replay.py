"""A recording replayed into an emulated screen: the model behind the TUI's replay pane.

The terminal player (:mod:`play`) writes a recording to a real terminal; this one feeds it to
:class:`~sshrec.player.emulator.Screen` and lets a widget draw the cells. The clock is the
caller's: it says "advance by this much recording time" (play), "go to T" (seek), "one more
output event" (step), "everything there is" (follow). Seeks use the seek index: with
keyframes a seek restores the nearest snapshot and replays less than one interval (exact);
before they exist, the index's plan (the last full-screen reset, or a window) is used.
"""

from __future__ import annotations

import threading
import time

from sshrec.schema.asciicast import CastHeader
from sshrec.schema.storage import Blob

from . import seekindex
from .cursor import CursorEvent, EventCursor, read_header
from .emulator import Screen

FEED_BATCH = 256 * 1024  # characters fed to the emulator in one call while catching up
SEEK_QUIET = 0.3  # seconds the keyframe pass waits after a seek


class Replay:
    """``path`` replayed; ``position`` is the recording time the screen shows."""

    def __init__(self, path: str | Blob, use_cache: bool = True) -> None:
        self.path = path
        self.use_cache = use_cache
        self.header: CastHeader
        self.header, first_offset = read_header(path)
        self.screen = Screen(self.header.cols or 80, self.header.rows or 24)
        self.cursor = EventCursor(path, self.header.version, first_offset)
        self.pending: CursorEvent | None = None
        self.position = 0.0
        self.last_time = 0.0  # time of the last event read (the end so far, while growing)
        self.dirty: set[int] = set(range(self.screen.size[1]))  # rows to draw again
        self.resized = True  # the view takes its size from the first frame
        self.index: seekindex.SeekIndex | None = None
        self._lock = threading.Lock()  # the index is swapped in by a background thread
        self._last_seek = -SEEK_QUIET  # monotonic time of the last seek

    # -- the seek index (built off the UI thread) --------------------------------------------

    def load_index(self) -> seekindex.SeekIndex:
        index = seekindex.load_for(self.path, self.use_cache)
        with self._lock:
            self.index = index
        return index

    def build_keyframes(self, stop: threading.Event | None = None) -> bool:
        """Keyframes for the whole file (resumed from the cache), then saved with the index."""
        index = self.index or self.load_index()
        done = seekindex.add_keyframes(self.path, index, stop.is_set if stop else None, wait=self._busy)
        if self.use_cache:
            seekindex.save_for(index, self.path)
        return done

    def _busy(self) -> bool:
        """Whether a seek ran in the last SEEK_QUIET seconds: the keyframe pass then waits, so the
        seek and the drawing after it have the GIL without waiting on every hand-over."""
        return time.monotonic() - self._last_seek < SEEK_QUIET

    @property
    def duration(self) -> float:
        index = self.index
        return max(index.end_time if index else 0.0, self.last_time)

    @property
    def markers(self) -> list[tuple[float, str]]:
        return list(self.index.markers) if self.index else []

    # -- moving --------------------------------------------------------------------------------

    def _peek(self) -> CursorEvent | None:
        if self.pending is None:
            self.pending = self.cursor.next()
            if self.pending is not None:
                self.last_time = max(self.last_time, self.pending.time)
        return self.pending

    def _apply(self, event: CursorEvent, parts: list[str]) -> None:
        self.pending = None
        if event.code == "o":
            parts.append(event.data)
        elif event.code == "r":
            self._flush(parts)
            cols, _, rows = event.data.partition("x")
            if cols.isdigit() and rows.isdigit():
                self.screen.resize(int(cols), int(rows))
                self.resized = True
                self.dirty.update(range(int(rows)))

    def _flush(self, parts: list[str]) -> None:
        if parts:
            self.dirty.update(self.screen.feed("".join(parts)))
            parts.clear()

    def advance_to(self, target: float) -> None:
        """Apply every event up to ``target`` (inclusive); the screen then shows ``target``."""
        parts: list[str] = []
        size = 0
        while (event := self._peek()) is not None and event.time <= target + 1e-9:
            self._apply(event, parts)
            size += len(event.data)
            if size >= FEED_BATCH:
                self._flush(parts)
                size = 0
        self._flush(parts)
        self.position = max(self.position, min(target, self.last_time if event is None else target))

    def play(self, seconds: float, idle_limit: float | None = None) -> bool:
        """Advance by ``seconds`` of recording time, skipping idle stretches longer than
        ``idle_limit``; False when there is nothing more (for now)."""
        event = self._peek()
        if event is None:
            return False
        if idle_limit is not None and event.time - self.position > idle_limit:
            self.position = event.time - idle_limit
        self.advance_to(self.position + seconds)
        return True

    def step(self) -> float | None:
        """Apply events up to and including the next one that draws; its time, or None."""
        parts: list[str] = []
        while (event := self._peek()) is not None:
            self._apply(event, parts)
            self.position = event.time
            if parts:
                break
        self._flush(parts)
        return None if event is None else event.time

    def follow(self) -> None:
        """Everything written so far (a live session's edge)."""
        self.advance_to(float("inf"))
        self.position = self.last_time

    def next_time(self) -> float | None:
        event = self._peek()
        return None if event is None else event.time

    def seek(self, target: float) -> bool:
        """Show the screen at ``target``; True when it is exact (a keyframe, the start, or a
        full-screen reset), False for the approximation of a window replay."""
        self._last_seek = time.monotonic()
        try:
            return self._seek(target)
        finally:
            self._last_seek = time.monotonic()

    def _seek(self, target: float) -> bool:
        index = self.index
        if index is None:
            index = self.load_index()
        target = max(0.0, min(target, max(index.end_time, self.last_time)))
        keyframe = index.keyframe_before(target)
        plan = index.plan(target)
        # A keyframe is exact (modes and both screens included; a reset is not), so it wins unless
        # the keyframes are still being built and stop far before the target.
        if keyframe is not None and keyframe.offset >= plan.offset - seekindex.KEYFRAME_BYTES:
            self.screen = Screen.restore(keyframe.snapshot, keyframe.cols, keyframe.rows)
            plan = seekindex.SeekPlan(keyframe.offset, keyframe.time, keyframe.line, target, True)
        else:
            self.screen = Screen(self.header.cols or 80, self.header.rows or 24)
        self.cursor.close()
        self.cursor = seekindex.open_at(self.path, index, plan)
        self.pending = None
        self.position = 0.0
        self.resized = True
        self.dirty = set(range(self.screen.size[1]))
        self.advance_to(target)
        self.position = target
        return plan.exact

    def close(self) -> None:
        self.cursor.close()
