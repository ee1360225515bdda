"""Seek index and event cursor; also home of the cast-writing helpers the player, export and
verify tests share (``make_cast``, ``spool_session``)."""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterable
from pathlib import Path

import pytest
from sshrec.player import seekindex
from sshrec.player.cursor import EventCursor, read_header
from sshrec.player.play import render_until
from sshrec.player.sanitize import Sanitizer
from sshrec.schema.asciicast import CastHeader, EventEncoder, open_cast
from sshrec.schema.record import SessionRecord, iso_utc, new_session_id, write_record_atomically
from sshrec.schema.spool import cast_path, ensure_dir, record_path, recording_dir

Event = tuple[float, str, str]
BASE_TIME = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def make_cast(path: Path | str, events: Iterable[Event], version: int = 2, cols: int = 80, rows: int = 24,
              sshrec: dict | None = None, extra: dict | None = None) -> Path:
    """A cast file from (absolute time, code, data) events, written with the project's encoder."""
    header = CastHeader(version=version, cols=cols, rows=rows, timestamp=int(BASE_TIME), term="xterm",
                        sshrec=sshrec, extra=extra)
    encoder = EventEncoder(version)
    with open(path, "wb") as handle:
        handle.write(header.to_json().encode() + b"\n")
        for t, code, data in events:
            handle.write(encoder.line(t, code, data))
    return Path(path)


def spool_session(home: Path, events: list[Event], version: int = 2, user: str = "alice",
                  offset: float = 0.0, **fields: object) -> tuple[str, Path]:
    """A finished session in a spool, as the recorder leaves it: cast (with the start-time record
    in its header) and the final <id>.json with the file's SHA-256."""
    started = BASE_TIME + offset
    session_id = new_session_id(started)
    record = SessionRecord(id=session_id, user=user, host="db1", started_at=iso_utc(started),
                           status="recording", **fields)  # type: ignore[arg-type]
    ensure_dir(recording_dir(str(home), session_id))
    cast = Path(cast_path(str(home), session_id))
    record.path = str(cast)
    make_cast(cast, events, version, sshrec=record.to_dict())
    duration = events[-1][0] if events else 0.0
    record.sha256 = hashlib.sha256(cast.read_bytes()).hexdigest()
    record.status, record.duration, record.exit_status = "complete", duration, 0
    record.ended_at = iso_utc(started + duration)
    record.bytes_out = sum(len(d.encode()) for _, c, d in events if c == "o")
    write_record_atomically(record, record_path(str(home), session_id), durable=False)
    return session_id, cast


def random_session(seed: int, count: int = 3000) -> list[Event]:
    """Output with clears, alternate screens and markers at random places."""
    rng = random.Random(seed)
    t = 0.0
    events: list[Event] = []
    for n in range(count):
        t += rng.choice((0.0, 0.001, 0.01, 0.2, 1.5))
        roll = rng.random()
        if roll < 0.02:
            events.append((t, "o", "\x1b[H\x1b[2J"))
        elif roll < 0.03:
            events.append((t, "o", "\x1b[?1049hfull screen " + str(n)))
        elif roll < 0.04:
            events.append((t, "m", f"marker {n}"))
        elif roll < 0.05:
            events.append((t, "r", "100x30"))
        else:
            events.append((t, "o", f"line {n} " + "x" * rng.randint(0, 300) + "\r\n"))
    return events


def all_output_until(path: Path, target: float) -> str:
    handle, reader = open_cast(str(path))
    with handle:
        return "".join(e.data for e in reader.events() if e.code == "o" and e.time <= target + 1e-9)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSHREC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("version", [2, 3])
def test_cursor_reads_what_castreader_reads(tmp_path: Path, version: int) -> None:
    events = random_session(1, 500)
    cast = make_cast(tmp_path / "a.cast", events, version)
    header, offset = read_header(str(cast))
    with EventCursor(str(cast), header.version, offset) as cursor:
        got = []
        while (event := cursor.next()) is not None:
            got.append((round(event.time, 6), event.code, event.data))
    assert got == [(round(t, 6), c, d) for t, c, d in events]


def test_cursor_leaves_a_torn_line_for_later(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.5, "o", "one")])
    with open(cast, "ab") as handle:
        handle.write(b'[1.0, "o", "tw')
    header, offset = read_header(str(cast))
    with EventCursor(str(cast), 2, offset) as cursor:
        assert cursor.next().data == "one"  # type: ignore[union-attr]
        assert cursor.next() is None and cursor.truncated
        with open(cast, "ab") as handle:
            handle.write(b'o"]\n')
        assert cursor.next().data == "two"  # type: ignore[union-attr]


@pytest.mark.parametrize("version", [2, 3])
def test_index_times_offsets_and_markers_match_a_full_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          version: int) -> None:
    monkeypatch.setattr(seekindex, "CHECKPOINT_BYTES", 4096)
    events = random_session(2)
    cast = make_cast(tmp_path / "a.cast", events, version)
    index = seekindex.build(str(cast))
    assert index.end_time == pytest.approx(events[-1][0], abs=1e-5)
    assert [(round(t, 5), label) for t, label in index.markers] == [
        (round(t, 5), d) for t, c, d in events if c == "m"]
    assert len(index.checkpoints) > 50
    raw = cast.read_bytes()
    lines = raw.split(b"\n")
    for _t, offset, line in index.checkpoints + index.resets:
        assert raw[offset - 1:offset] == b"\n"  # a line start
        assert lines[line - 1] == raw[offset:].split(b"\n", 1)[0]  # the right line number
    for _t, _offset, line in index.resets:
        data = json.loads(lines[line - 1])[2]
        assert "\x1b[2J" in data or "\x1b[?1049h" in data


@pytest.mark.parametrize("version", [2, 3])
def test_every_seek_plan_replays_the_screen_from_a_true_reset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             version: int) -> None:
    """Replaying from the plan gives the same text as replaying everything from the start,
    after the last reset (the screen content a terminal would show)."""
    monkeypatch.setattr(seekindex, "CHECKPOINT_BYTES", 2048)
    events = random_session(3)
    cast = make_cast(tmp_path / "a.cast", events, version)
    index = seekindex.build(str(cast))
    for target in [0.0, 1.0] + [events[-1][0] * k / 17 for k in range(18)]:
        plan = index.plan(target)
        with seekindex.open_at(str(cast), index, plan) as cursor:
            text, after = render_until(cursor, plan.target, None)
        full = all_output_until(cast, plan.target)
        if plan.exact and plan.offset <= index.header_end:
            assert text == full  # replayed from the very start
        else:
            assert text and full.endswith(text), (target, plan.offset, len(text))
        if plan.exact and plan.offset > index.header_end:
            assert text.startswith("\x1b[H\x1b[2J") or text.startswith("\x1b[?1049h")
        if after is not None:
            assert after.time > plan.target


def test_window_replay_when_the_last_reset_is_far_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seekindex, "CHECKPOINT_BYTES", 1024)
    monkeypatch.setattr(seekindex, "WINDOW", 8 * 1024)
    monkeypatch.setattr(seekindex, "MAX_REPLAY", 16 * 1024)
    events = [(i * 0.1, "o", f"row {i:05d} " + "y" * 90 + "\r\n") for i in range(3000)]
    cast = make_cast(tmp_path / "a.cast", events)
    index = seekindex.build(str(cast))
    plan = index.plan(250.0)
    assert not plan.exact
    with seekindex.open_at(str(cast), index, plan) as cursor:
        text, _ = render_until(cursor, plan.target, None)
    assert 6 * 1024 <= len(text) <= 12 * 1024  # about WINDOW bytes of file (JSON is longer than its text)
    assert text.endswith("row 02500 " + "y" * 90 + "\r\n")


def test_index_is_cached_then_extended_when_the_file_grows(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(i * 1.0, "o", f"{i}\r\n") for i in range(100)])
    first = seekindex.load_or_build(str(cast))
    cached = seekindex.cache_path(str(cast))
    assert os.path.exists(cached) and oct(os.stat(cached).st_mode & 0o777) == "0o600"
    again = seekindex.load_or_build(str(cast))
    assert again.to_json() == first.to_json()
    with open(cast, "ab") as handle:
        for i in range(100, 150):
            handle.write(EventEncoder(2).line(i * 1.0, "o", f"{i}\r\n"))
        handle.write(EventEncoder(2).line(150.0, "m", "late marker"))
    grown = seekindex.load_or_build(str(cast))
    assert grown.end_time == 150.0 and grown.markers == [(150.0, "late marker")]
    assert seekindex.build(str(cast)).to_json()["end_time"] == 150.0


def test_a_rewritten_file_is_reindexed_not_extended(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(1.0, "m", "old"), (2.0, "o", "x")])
    seekindex.load_or_build(str(cast))
    make_cast(cast, [(1.0, "m", "new"), (2.0, "o", "x"), (3.0, "o", "y")])
    assert seekindex.load_or_build(str(cast)).markers == [(1.0, "new")]


def test_render_until_sanitizes_and_stops_after_target(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(1.0, "o", "a\x1b]0;evil"), (2.0, "o", "\x07b"), (3.0, "o", "c")])
    header, offset = read_header(str(cast))
    with EventCursor(str(cast), 2, offset) as cursor:
        text, after = render_until(cursor, 2.0, Sanitizer())
    assert text == "ab" and after is not None and after.data == "c"
