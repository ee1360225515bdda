"""The emulator interface, keyframes in the seek index, and the replay model of the TUI."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from index_support import cast_text
from sshrec.player import seekindex
from sshrec.player.emulator import REPLACEMENT, Pen, Screen
from sshrec.player.replay import Replay
from tui_support import private_cache  # noqa: F401

pytestmark = pytest.mark.usefixtures("private_cache")


def test_screen_colours_attributes_wide_characters_and_escaping() -> None:
    screen = Screen(20, 3)
    screen.feed("a日b\x1b[1;31mR\x1b[0m\x1b[38;2;1;2;3;44mG\x1b[0m\u202eZ")
    runs = screen.runs(0)
    assert "".join(t for t, _ in runs).rstrip() == f"a日bRG{REPLACEMENT}Z"
    assert ("R", Pen(fg=1, bold=True)) in runs and ("G", Pen(fg=(1, 2, 3), bg=4)) in runs


def test_snapshot_restores_both_screens_and_the_cursor() -> None:
    screen = Screen(30, 5)
    screen.feed("main text\r\n\x1b[?1049h\x1b[2J\x1b[3;4Hin vim\x1b[?25l")
    copy = Screen.restore(screen.snapshot(), 30, 5)
    assert copy.text() == screen.text() and copy.cursor == screen.cursor and not copy.cursor.visible
    copy.feed("\x1b[?1049l")
    assert copy.text()[0] == "main text"  # the main screen came back from the snapshot


def random_session(rng: random.Random, events: int) -> list[tuple[float, str, str]]:
    out, t = [], 0.0
    for n in range(events):
        t += rng.choice((0.01, 0.2, 3.0))
        kind = rng.random()
        if kind < 0.05:
            data = "\x1b[?1049h\x1b[2J\x1b[H" + "".join(f"\x1b[{r};1Hrow {r} {n}" for r in range(1, 10))
        elif kind < 0.1:
            data = "\x1b[?1049l"
        elif kind < 0.12:
            out.append((t, "m", f"marker {n}"))
            continue
        elif kind < 0.14:
            out.append((t, "r", rng.choice(("40x12", "50x10"))))
            continue
        else:
            data = f"\x1b[3{n % 8}mline {n} " + "x" * rng.randint(0, 300) + "\x1b[0m\r\n"
        out.append((t, "o", data))
    return out


@pytest.mark.parametrize("version", [2, 3])
def test_keyframe_seeks_match_playing_from_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     version: int) -> None:
    monkeypatch.setattr(seekindex, "KEYFRAME_BYTES", 8 * 1024)
    rng = random.Random(7)
    events = random_session(rng, 1500)
    path = tmp_path / "s.cast"
    path.write_text(cast_text(events, cols=40, rows=12, version=version))
    replay = Replay(str(path))
    replay.load_index()
    assert replay.build_keyframes()
    assert len(replay.index.keyframes) > 10  # type: ignore[union-attr]
    reference = Replay(str(path), use_cache=False)
    for target in sorted(rng.uniform(0, events[-1][0]) for _ in range(25)):
        reference.advance_to(target)
        assert replay.seek(target)
        assert replay.screen.text() == reference.screen.text(), target
        assert replay.screen.size == reference.screen.size
    assert [m[1] for m in replay.markers] == [d for _, c, d in events if c == "m"]


def test_keyframes_resume_when_the_recording_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seekindex, "KEYFRAME_BYTES", 4 * 1024)
    events = random_session(random.Random(3), 600)
    path = tmp_path / "live.cast"
    whole = cast_text(events, cols=40, rows=12)
    lines = whole.splitlines(keepends=True)
    path.write_text("".join(lines[:300]))
    first = Replay(str(path))
    first.load_index()
    first.build_keyframes()
    before = list(first.index.keyframes)  # type: ignore[union-attr]
    path.write_text(whole)
    again = Replay(str(path))
    index = again.load_index()
    assert index.keyframes[: len(before)] == before  # kept from the cache, then extended
    again.build_keyframes()
    assert len(again.index.keyframes) > len(before)  # type: ignore[union-attr]
    reference = Replay(str(path), use_cache=False)
    reference.advance_to(events[-1][0])
    again.seek(events[-1][0])
    assert again.screen.text() == reference.screen.text()


def test_step_play_and_follow(tmp_path: Path) -> None:
    path = tmp_path / "s.cast"
    path.write_text(cast_text([(1.0, "o", "one\r\n"), (2.0, "m", "here"), (30.0, "o", "two\r\n")]))
    replay = Replay(str(path))
    assert replay.step() == 1.0 and replay.screen.text()[0] == "one"
    assert replay.play(1.0, idle_limit=2.0) and replay.position == 2.0  # the marker
    assert replay.play(0.5, idle_limit=2.0)  # the 28 s gap is cut to 2 s
    assert replay.position == pytest.approx(28.5)
    replay.play(2.0)
    assert replay.screen.text()[1] == "two" and not replay.play(1.0)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('[31.0, "o", "three\\r\\n"]\n')
    replay.follow()
    assert replay.screen.text()[2] == "three" and replay.position == 31.0
