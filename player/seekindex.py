"""A seek index: where in the file each moment of a recording is, and where the screen restarts.

Why: seeking in a 200 MB cast by reading from the start takes seconds; the index makes any
seek read at most about a megabyte.

What it holds (built once per file, kept in a cache directory, extended when the file grows):

- ``checkpoints``: (time, byte offset, line) of an event line at least every
  :data:`CHECKPOINT_BYTES` of file. For v2 these are found by *probing*: jump to every 64 KB,
  find the next line, read its absolute time; the file is never parsed as a whole. v3 stores
  intervals, so absolute times need one pass over every line (once, then cached).
- ``resets``: output events that contain a full-screen reset (``ESC [ 2 J``, ``ESC c``, or a
  switch to the alternate screen ``ESC [ ? 1049/1047/47 h``), found by one regex pass over the
  raw JSON (``\\u001b[2J`` and so on), at most one per :data:`RESET_SPACING` bytes.
- ``markers``: (time, label) of every ``m`` event, for the ``[``/``]`` keys.
- ``keyframes`` (optional, built by a full pass through the emulator, :func:`add_keyframes`):
  (time, byte offset, line, cols, rows, snapshot) of the screen just before an event, at
  least every :data:`KEYFRAME_BYTES` of file (or :data:`KEYFRAME_SECONDS` when output is
  slow). A seek then restores the nearest keyframe and replays less than one interval, exactly
  (asciinema-player's segmented driver); without keyframes it falls back to the plan below.

How a seek to T is replayed (:meth:`SeekIndex.plan`): the player clears the screen, then
writes, without delays, every output event from a start point up to T. The start point is the
last reset before T when that is at most :data:`MAX_REPLAY` bytes back (the screen is then
exactly as recorded), else the checkpoint about :data:`WINDOW` bytes before T.

Limits: after a window replay (no reset close enough) the screen is an approximation: a
full-screen program that redraws only what changed may show stale or missing parts until its
next full redraw; a shell's scrolling output is right. Terminal modes set before the start
point (scroll regions, character sets, the alternate screen for a reset inside it) are not
replayed, and returning from the alternate screen after a seek shows the main screen as the
player left it. A reset written across two events is not seen (the seek replays more).

A recording in object storage has its seek index shipped beside it (``ID.seek.json``, written
by :func:`write_for_shipping`), so seeking in it is a few ranged reads (:func:`load_for`);
without one it is built once from a download and cached.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import time
from bisect import bisect_right
from collections.abc import Callable
from typing import NamedTuple

from sshrec.schema.asciicast import CastError
from sshrec.schema.storage import Blob, open_source

from .cursor import EventCursor, read_header

INDEX_FORMAT = 1
CHECKPOINT_BYTES = 64 * 1024
RESET_SPACING = 4 * 1024
WINDOW = 256 * 1024
MAX_REPLAY = 1024 * 1024
KEYFRAME_BYTES = 1 << 20
KEYFRAME_SECONDS = 60.0
KEYFRAME_MIN_BYTES = 64 * 1024  # a time-based keyframe only after this much output
SCAN_CHUNK = 8 << 20  # regex passes go chunk by chunk: a playing thread gets the GIL in between

_HEAD = re.compile(rb'[ \t]*\[[ \t]*(-?[0-9][0-9.eE+-]*)[ \t]*,[ \t]*"([^"\\]*)"')
_RESET = re.compile(rb"\\u001[bB](?:\[2J|c|\[\?(?:1049|1047|47)h)")
_MARKER = re.compile(rb'\n[ \t]*\[[ \t]*-?[0-9][0-9.eE+-]*[ \t]*,[ \t]*"m"[ \t]*,')
_OVERLAP = 64


class SeekPlan:
    """Replay from ``offset`` (the event line there has absolute ``time`` and number ``line``)
    up to ``target``;
    ``exact`` says the start is a full-screen reset or the beginning of the recording."""

    __slots__ = ("offset", "time", "line", "target", "exact")

    def __init__(self, offset: int, time: float, line: int, target: float, exact: bool) -> None:
        self.offset = offset
        self.time = time
        self.line = line
        self.target = target
        self.exact = exact


class Keyframe(NamedTuple):
    """The screen just before the event line at ``offset`` (absolute ``time``, number ``line``)."""

    time: float
    offset: int
    line: int
    cols: int
    rows: int
    snapshot: str


class SeekIndex:
    def __init__(self, version: int, header_end: int) -> None:
        self.version = version
        self.header_end = header_end
        self.covered = header_end  # bytes indexed: through the last complete line
        self.lines = 2  # number of the line that starts at ``covered``
        self.end_time = 0.0  # time of the last event (v3: the running sum at ``covered``)
        self.checkpoints: list[tuple[float, int, int]] = []
        self.resets: list[tuple[float, int, int]] = []
        self.markers: list[tuple[float, str]] = []
        self.keyframes: list[Keyframe] = []
        self.keyframe_emulator = ""  # which emulator's snapshots these are
        self.file_size = 0
        self.mtime_ns = 0
        self.head_digest = ""
        self.tail_digest = ""

    # -- queries ---------------------------------------------------------------------------

    def plan(self, target: float) -> SeekPlan:
        target = min(max(target, 0.0), self.end_time)
        start = SeekPlan(self.header_end, 0.0, 2, target, True)
        if not self.checkpoints:
            return start
        times = [c[0] for c in self.checkpoints]
        at = bisect_right(times, target) - 1
        if at < 0:
            return start
        _, near, _ = self.checkpoints[at]
        reset = self._last_reset(target)
        if reset is not None and near - reset[1] <= MAX_REPLAY:
            return SeekPlan(reset[1], reset[0], reset[2], target, True)
        if near - self.header_end <= MAX_REPLAY:
            return start
        offsets = [c[1] for c in self.checkpoints]
        back = max(bisect_right(offsets, near - WINDOW) - 1, 0)
        t, offset, line = self.checkpoints[back]
        return SeekPlan(offset, t, line, target, False)

    def _last_reset(self, target: float) -> tuple[float, int, int] | None:
        at = bisect_right([r[0] for r in self.resets], target) - 1
        return self.resets[at] if at >= 0 else None

    def keyframe_before(self, target: float) -> Keyframe | None:
        """The last keyframe whose state is the screen at or before ``target``."""
        at = bisect_right([k.time for k in self.keyframes], target + 1e-9) - 1
        return self.keyframes[at] if at >= 0 else None

    def next_marker(self, after: float) -> tuple[float, str] | None:
        for marker in self.markers:
            if marker[0] > after + 1e-6:
                return marker
        return None

    def previous_marker(self, before: float) -> tuple[float, str] | None:
        found = None
        for marker in self.markers:
            if marker[0] < before - 1e-6:
                found = marker
        return found

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        return {
            "format": INDEX_FORMAT, "version": self.version, "header_end": self.header_end,
            "covered": self.covered, "lines": self.lines, "end_time": self.end_time,
            "file_size": self.file_size, "mtime_ns": self.mtime_ns,
            "head_digest": self.head_digest, "tail_digest": self.tail_digest,
            "checkpoints": self.checkpoints, "resets": self.resets, "markers": self.markers,
            "keyframe_emulator": self.keyframe_emulator, "keyframes": [list(k) for k in self.keyframes],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SeekIndex:
        if data.get("format") != INDEX_FORMAT:
            raise ValueError("seek index of another format")
        index = cls(int(data["version"]), int(data["header_end"]))  # type: ignore[arg-type]
        for name in ("covered", "lines", "file_size", "mtime_ns"):
            setattr(index, name, int(data[name]))  # type: ignore[arg-type]
        index.end_time = float(data["end_time"])  # type: ignore[arg-type]
        index.head_digest = str(data["head_digest"])
        index.tail_digest = str(data["tail_digest"])
        index.checkpoints = [(float(t), int(o), int(n)) for t, o, n in data["checkpoints"]]  # type: ignore[attr-defined]
        index.resets = [(float(t), int(o), int(n)) for t, o, n in data["resets"]]  # type: ignore[attr-defined]
        index.markers = [(float(t), str(label)) for t, label in data["markers"]]  # type: ignore[attr-defined]
        index.keyframe_emulator = str(data.get("keyframe_emulator", ""))
        index.keyframes = [Keyframe(float(t), int(o), int(n), int(c), int(r), str(snap))
                           for t, o, n, c, r, snap in data.get("keyframes", [])]  # type: ignore[attr-defined]
        return index


def _digest(mm: mmap.mmap | bytes, start: int, end: int) -> str:
    return hashlib.sha256(mm[max(start, 0):end]).hexdigest()[:32]


def _head(line: bytes) -> tuple[float, str] | None:
    match = _HEAD.match(line)
    if match is None:
        return None
    try:
        return float(match.group(1)), match.group(2).decode("ascii", "replace")
    except ValueError:
        return None


def _escaped(mm: mmap.mmap, position: int, floor: int) -> bool:
    """Whether the backslash at ``position`` is itself escaped (an odd run of ``\\`` before it)."""
    count = 0
    while position - count - 1 >= floor and mm[position - count - 1] == 0x5C:
        count += 1
    return count % 2 == 1


# -- building ------------------------------------------------------------------------------


def build(path: str, previous: SeekIndex | None = None) -> SeekIndex:
    """Index ``path``; with ``previous`` (an index of a prefix of this file), only the new part."""
    header, header_end = read_header(path)
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        if stat.st_size <= header_end:
            index = previous or SeekIndex(header.version, header_end)
            index.file_size, index.mtime_ns = stat.st_size, stat.st_mtime_ns
            return index
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            index = previous or SeekIndex(header.version, header_end)
            _extend(path, index, mm)
            index.file_size, index.mtime_ns = stat.st_size, stat.st_mtime_ns
            index.head_digest = _digest(mm, 0, min(header_end, 4096))
            index.tail_digest = _digest(mm, index.covered - 4096, index.covered)
    return index


def _extend(path: str, index: SeekIndex, mm: mmap.mmap) -> None:
    start = index.covered
    end = mm.rfind(b"\n", start - 1) + 1  # through the last complete line
    if end <= start:
        return
    reset_lines = _reset_lines(mm, start, end)
    marker_lines = _marker_lines(mm, start, end)
    if index.version == 3:
        _scan_v3(path, index, mm, start, end, reset_lines, marker_lines)
    else:
        _probe_v2(path, index, mm, start, end, reset_lines, marker_lines)
    index.covered = end


def _reset_lines(mm: mmap.mmap, start: int, end: int) -> list[int]:
    """Line starts of events containing a screen reset, the last one per RESET_SPACING."""
    found: list[int] = []
    group = start
    for chunk in range(start, end, SCAN_CHUNK):
        stop = min(chunk + SCAN_CHUNK + _OVERLAP, end)
        for match in _RESET.finditer(mm, chunk, stop):
            if match.start() >= chunk + SCAN_CHUNK or _escaped(mm, match.start(), start):
                continue
            line = mm.rfind(b"\n", start - 1, match.start()) + 1
            if found and line == found[-1]:
                continue
            if found and line - group < RESET_SPACING:
                found[-1] = line  # keep the latest reset of each RESET_SPACING stretch
            else:
                found.append(line)
                group = line
    return found


def _marker_lines(mm: mmap.mmap, start: int, end: int) -> list[int]:
    found: list[int] = []
    for chunk in range(start - 1, end, SCAN_CHUNK):
        stop = min(chunk + SCAN_CHUNK + _OVERLAP, end)
        for match in _MARKER.finditer(mm, max(chunk, 0), stop):
            if match.start() < chunk + SCAN_CHUNK and match.start() + 1 >= start:
                found.append(match.start() + 1)
    return found


def _line_at(mm: mmap.mmap, offset: int) -> bytes:
    stop = mm.find(b"\n", offset)
    return mm[offset : stop if stop >= 0 else len(mm)]


def _marker_label(path: str, mm: mmap.mmap, offset: int, number: int) -> str:
    try:
        item = json.loads(_line_at(mm, offset).decode("utf-8", "replace"))
        return str(item[2])
    except (ValueError, IndexError, TypeError):
        raise CastError(path, number, "marker event is not [time, \"m\", label]") from None


def _probe_v2(path: str, index: SeekIndex, mm: mmap.mmap, start: int, end: int,
              reset_lines: list[int], marker_lines: list[int]) -> None:
    line_no = index.lines
    counted = start

    def number_of(offset: int) -> int:
        nonlocal line_no, counted
        if offset > counted:
            line_no += mm[counted:offset].count(b"\n")
            counted = offset
        return line_no

    wanted = sorted({*range(start, end, CHECKPOINT_BYTES), *reset_lines, *marker_lines})
    resets, markers = set(reset_lines), set(marker_lines)
    last_checkpoint = index.checkpoints[-1][1] if index.checkpoints else -CHECKPOINT_BYTES
    for probe in wanted:
        offset = probe if probe == start or probe in resets or probe in markers else (
            mm.find(b"\n", probe - 1, end) + 1)
        if offset <= 0 or offset >= end:
            continue
        head = _event_head(mm, offset, end)
        if head is None:
            continue
        t, code, offset = head
        number = number_of(offset)
        if probe in resets and code == "o":
            index.resets.append((t, offset, number))
        elif probe in markers and code == "m":
            index.markers.append((t, _marker_label(path, mm, offset, number)))
        elif offset - last_checkpoint >= CHECKPOINT_BYTES // 2 and (
                not index.checkpoints or offset > index.checkpoints[-1][1]):
            index.checkpoints.append((t, offset, number))
            last_checkpoint = offset
    index.lines = number_of(end)
    last = _last_event_time(mm, start, end)
    if last is not None:
        index.end_time = last


def _event_head(mm: mmap.mmap, offset: int, end: int) -> tuple[float, str, int] | None:
    """(time, code, offset) of the first event line at or after ``offset`` (skips comments)."""
    while offset < end:
        line = _line_at(mm, offset)
        head = _head(line)
        if head is not None:
            return head[0], head[1], offset
        offset += len(line) + 1
    return None


def _last_event_time(mm: mmap.mmap, start: int, end: int) -> float | None:
    stop = end - 1
    while stop > start:
        begin = mm.rfind(b"\n", start - 1, stop) + 1
        head = _head(mm[begin:stop])
        if head is not None:
            return head[0]
        stop = begin - 1
    return None


def _scan_v3(path: str, index: SeekIndex, mm: mmap.mmap, start: int, end: int,
             reset_lines: list[int], marker_lines: list[int]) -> None:
    """v3 times are intervals: sum every line (one pass, then cached)."""
    resets, markers = set(reset_lines), set(marker_lines)
    total = index.end_time
    number = index.lines
    offset = start
    next_checkpoint = index.checkpoints[-1][1] + CHECKPOINT_BYTES if index.checkpoints else start
    mm.seek(start)
    while offset < end:
        raw = mm.readline()
        head = _head(raw)
        if head is not None:
            total += head[0]
            if offset >= next_checkpoint:
                index.checkpoints.append((total, offset, number))
                next_checkpoint = offset + CHECKPOINT_BYTES
            if offset in resets and head[1] == "o":
                index.resets.append((total, offset, number))
            elif offset in markers and head[1] == "m":
                index.markers.append((total, _marker_label(path, mm, offset, number)))
        offset += len(raw)
        number += 1
    index.lines = number
    index.end_time = total


def open_at(path: str | Blob, index: SeekIndex, plan: SeekPlan) -> EventCursor:
    """A cursor positioned on the plan's first event line. A v3 cursor adds each event's
    interval to its running time, so it starts at that event's time minus its interval."""
    before = plan.time
    if index.version == 3 and plan.offset > index.header_end:
        with open_source(path) as handle:
            handle.seek(plan.offset)
            head = _head(handle.readline())
        before -= head[0] if head else 0.0
    return EventCursor(path, index.version, plan.offset, before, plan.line)


# -- the cache -----------------------------------------------------------------------------


def cache_dir() -> str:
    explicit = os.environ.get("SSHREC_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sshrec", "seek")


def cache_path(path: str) -> str:
    stat = os.stat(path)
    key = f"{os.path.realpath(path)}\0{stat.st_dev}\0{stat.st_ino}"
    return os.path.join(cache_dir(), hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def _load(path: str) -> SeekIndex | None:
    try:
        with open(cache_path(path), encoding="utf-8") as handle:
            return SeekIndex.from_json(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _still_valid(index: SeekIndex, path: str) -> str:
    """"same", "grown" (an append-only prefix we can extend) or "stale"."""
    stat = os.stat(path)
    if stat.st_size == index.file_size and stat.st_mtime_ns == index.mtime_ns:
        return "same"
    if stat.st_size < index.covered:
        return "stale"
    with open(path, "rb") as handle:
        head = handle.read(min(index.header_end, 4096))
        handle.seek(max(index.covered - 4096, 0))
        tail = handle.read(index.covered - max(index.covered - 4096, 0))
    if hashlib.sha256(head).hexdigest()[:32] != index.head_digest:
        return "stale"
    if hashlib.sha256(tail).hexdigest()[:32] != index.tail_digest:
        return "stale"
    return "grown"


def save(index: SeekIndex, path: str) -> None:
    """Keep the index for next time; a cache we cannot write is not an error."""
    try:
        target = cache_path(path)
    except OSError:
        return
    _save_json(index, target)


def load_or_build(path: str, use_cache: bool = True) -> SeekIndex:
    """The index of ``path``: from the cache when it still matches the file, extended when the
    file only grew (a recording in progress), else built anew."""
    cached = _load(path) if use_cache else None
    if cached is not None:
        state = _still_valid(cached, path)
        if state == "same":
            return cached
        if state == "grown":
            index = build(path, cached)
            save(index, path)
            return index
    index = build(path)
    if use_cache:
        save(index, path)
    return index


# -- keyframes -------------------------------------------------------------------------------


def add_keyframes(path: str | Blob, index: SeekIndex, stop: Callable[[], bool] | None = None,
                  progress: Callable[[int], None] | None = None, wait: Callable[[], bool] | None = None
                  ) -> bool:
    """Play the file through the emulator up to what ``index`` covers, keeping a snapshot at
    every interval; resumes from the last keyframe (a grown recording costs one interval).
    Returns False when ``stop()`` said so before the end (the keyframes so far are kept).
    While ``wait()`` is true the pass stands still: a seek in the UI thread then has the GIL to
    itself instead of waiting a switch interval each time it reads the file."""
    from .emulator import EMULATOR, Screen

    if index.keyframe_emulator != EMULATOR:
        index.keyframes, index.keyframe_emulator = [], EMULATOR
    header, _ = read_header(path)
    last = index.keyframes[-1] if index.keyframes else None
    if last is None:
        screen = Screen(header.cols or 80, header.rows or 24)
        index.keyframes.append(Keyframe(0.0, index.header_end, 2, *screen.size, screen.snapshot()))
        last = index.keyframes[-1]
    else:
        screen = Screen.restore(last.snapshot, last.cols, last.rows)
    plan = SeekPlan(last.offset, last.time, last.line, index.end_time, True)
    at_offset, at_time = last.offset, last.time
    with open_at(path, index, plan) as cursor:
        count = 0
        while (event := cursor.next()) is not None and event.offset < index.covered:
            count += 1
            if wait is not None and count % 64 == 0:
                while wait():
                    time.sleep(0.002)
            grown = event.offset - at_offset
            slow = grown >= KEYFRAME_MIN_BYTES and event.time - at_time >= KEYFRAME_SECONDS
            if grown >= KEYFRAME_BYTES or slow:
                index.keyframes.append(Keyframe(event.time, event.offset, event.line, *screen.size,
                                                screen.snapshot()))
                at_offset, at_time = event.offset, event.time
                if progress:
                    progress(event.offset)
                if stop and stop():
                    return False
            if event.code == "o":
                screen.feed(event.data)
            elif event.code == "r":
                cols, _, rows = event.data.partition("x")
                if cols.isdigit() and rows.isdigit():
                    screen.resize(int(cols), int(rows))
    return True


def load_for(source: str | Blob, use_cache: bool = True) -> SeekIndex:
    """The index of a local recording (:func:`load_or_build`) or of a stored one (:func:`load_stored`)."""
    if isinstance(source, Blob):
        return load_stored(source, use_cache)
    return load_or_build(source, use_cache)


def save_for(index: SeekIndex, source: str | Blob) -> None:
    """Keep the index (with its keyframes) of a local or a stored recording for next time."""
    if not isinstance(source, Blob):
        save(index, source)
        return
    info = source.stat()
    if info is not None:
        _save_json(index, _stored_cache_path(source.name, info.etag or info.sha256 or "", info.size))


def _stored_cache_path(name: str, etag: str, size: int) -> str:
    key = f"{name}\0{etag}\0{size}"
    return os.path.join(cache_dir(), hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def load_stored(blob: Blob, use_cache: bool = True) -> SeekIndex:
    """A stored recording's index: from the local cache, else the one shipped beside it (one
    small GET), else built from a download of the object (once; cached)."""
    info = blob.stat()
    if info is None:
        raise FileNotFoundError(2, "no such object", blob.name)
    cached = _stored_cache_path(blob.name, info.etag or info.sha256 or "", info.size)
    if use_cache:
        try:
            with open(cached, encoding="utf-8") as handle:
                return SeekIndex.from_json(json.load(handle))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    index = _shipped_index(blob, info.size)
    if index is None:
        import shutil
        import tempfile

        with tempfile.NamedTemporaryFile(prefix="sshrec-seek-", suffix=".cast") as local:
            with blob.open() as remote:
                shutil.copyfileobj(remote, local, 1 << 20)
            local.flush()
            index = build(local.name)
    if use_cache:
        _save_json(index, cached)
    return index


def _shipped_index(blob: Blob, size: int) -> SeekIndex | None:
    from sshrec.schema.storage import StorageError
    from sshrec.schema.storage.keys import SEEK

    try:
        index = SeekIndex.from_json(json.loads(blob.sibling(SEEK).read()))
    except (OSError, ValueError, KeyError, TypeError, StorageError):
        return None
    return index if index.file_size == size else None


def _save_json(index: SeekIndex, target: str) -> None:
    """Write atomically, 0600 (marker labels are private); a cache we cannot write is no error."""
    try:
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        tmp = f"{target}.tmp.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as handle:
            json.dump(index.to_json(), handle, separators=(",", ":"))
        os.replace(tmp, target)
    except OSError:
        pass


def write_for_shipping(cast_path: str, out_path: str) -> None:
    """The seek index of a finished local recording, written to ``out_path`` to ship with it
    (from the cache when it matches, else built; the cache is left as it was)."""
    cached = _load(cast_path)
    index = cached if cached is not None and _still_valid(cached, cast_path) == "same" else build(cast_path)
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(index.to_json(), handle, separators=(",", ":"))
