"""Screen text for search (escape sequences out, times kept) and escaping for terminals."""

from __future__ import annotations

import json

import pytest
from sshrec.schema.safe_text import safe_json, visible
from sshrec.schema.screentext import (
    MARK_STEP_MS,
    ScreenTextBuilder,
    Stripper,
    first_match,
    screen_text,
    strip_escapes,
    words,
)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("plain\r\n", "plain\n"),
        ("\x1b[1;31mred\x1b[0m", "red"),
        ("\x1b]0;window title\x07prompt$ ", "prompt$ "),
        ("\x1b]52;c;c2VjcmV0\x1b\\after", "after"),  # OSC ended by ST
        ("\x1bP1$r0m\x1b\\dcs gone", "dcs gone"),
        ("\x1b(Bcharset\x1b=keypad", "charsetkeypad"),
        ("\x9b31mc1 csi\x9bm", "c1 csi"),
        ("a\x1b[10Cb", "a b"),  # cursor forward separates words
        ("top\x1b[2;1Hnext", "top\nnext"),  # cursor position starts a new piece
        ("bell\x07 back\x08space\x00", "bell backspace"),
        ("over\rwrite", "over\nwrite"),
        ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),
    ],
)
def test_strip_escapes(raw: str, text: str) -> None:
    assert strip_escapes(raw) == text


def test_sequences_split_across_events() -> None:
    stripper = Stripper()
    parts = ["pass", "\x1b[", "1;3", "1m", "wd", "\x1b]0;ti", "tle\x07", " ok\x1b"]
    assert "".join(stripper.feed(p) for p in parts) == "passwd ok"


def test_unterminated_osc_does_not_swallow_everything() -> None:
    stripper = Stripper()
    out = stripper.feed("\x1b]0;" + "x" * 70_000) + stripper.feed("visible")
    assert "visible" in out


def test_times_of_text() -> None:
    builder = ScreenTextBuilder()
    builder.add(0.0, "start ")
    builder.add(0.05, "same-mark ")  # within MARK_STEP_MS of the last mark
    builder.add(2.5, "later ")
    builder.add(10.0, "\x1b[0m")  # no text, no mark
    builder.add(12.0, "last")
    [chunk] = builder.finish()
    assert chunk.text == "start same-mark later last"
    assert chunk.marks == [(0, 0), (16, 2500), (22, 12000)]
    assert chunk.time_at(chunk.text.index("same")) == 0.0
    assert chunk.time_at(chunk.text.index("later")) == 2.5
    assert chunk.time_at(chunk.text.index("last") + 2) == 12.0
    assert MARK_STEP_MS == 100


def test_times_are_never_late_and_at_most_one_step_early() -> None:
    events = [(i * 0.013, f"w{i} ") for i in range(2000)]
    [chunk] = screen_text(events)
    for i in range(0, 2000, 37):
        appeared = events[i][0]
        got = chunk.time_at(chunk.text.index(f"w{i} "))
        assert got <= appeared + 1e-9
        assert appeared - got < MARK_STEP_MS / 1000 + 0.0011


def test_chunks_are_bounded_and_prefer_line_ends() -> None:
    line = "0123456789" * 9 + "\n"  # 91 characters
    builder = ScreenTextBuilder(chunk_chars=1000)
    for i in range(50):
        builder.add(i, line)
    chunks = builder.finish()
    assert all(len(c.text) <= 1000 for c in chunks)
    assert all(c.text.endswith("\n") for c in chunks)
    assert "".join(c.text for c in chunks) == line * 50
    assert [c.number for c in chunks] == list(range(len(chunks)))
    assert chunks[1].time == pytest.approx(10.0)  # every chunk opens with its own time


def test_words_fold_case_and_accents() -> None:
    assert words("Caf\u00e9 CR\u00c8ME /etc/passwd rm -rf MAX_VALUE v1.2") == [
        "cafe",
        "creme",
        "etc",
        "passwd",
        "rm",
        "rf",
        "max",
        "value",
        "v1",
        "2",
    ]


def test_first_match() -> None:
    text = "permission ok\nPermission denied\nno permission denied"
    match = first_match(text, ["denied"], phrase=False)
    assert match is not None and text[match.offset : match.end] == "denied"
    match = first_match(text, ["permission", "denied"], phrase=True)
    assert match is not None and match.offset == text.index("Permission denied")
    assert first_match(text, ["denied", "permission"], phrase=True) is None
    assert first_match("Caf\u00e9", ["cafe"], phrase=False) is not None


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("ls -la", "ls -la"),
        ("echo \x1b]52;c;cm0=\x07", "echo \\e]52;c;cm0=\\x07"),
        ("\x1b[2J", "\\e[2J"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("C:\\path", "C:\\\\path"),  # a typed backslash cannot fake an escape
        ("\x9b31m", "\\x9b31m"),
        ("\u202eevil", "\\u202eevil"),
        ("caf\u00e9 \u2603 \U0001f600", "caf\u00e9 \u2603 \U0001f600"),
        ("\U000e0041", "\\U000e0041"),  # invisible tag character
        ("", ""),
        (None, ""),
    ],
)
def test_visible(raw: str | None, shown: str) -> None:
    assert visible(raw) == shown


def test_safe_json_round_trips_and_neutralises_terminal_controls() -> None:
    value = {"cmd": "echo \x1b[2J \x9b1m \u202e caf\u00e9 \U000e0041 \U0001f600", "n": [1, None]}
    text = safe_json(value)
    assert json.loads(text) == value
    assert all(c.isprintable() for c in text)
    assert "caf\u00e9" in text and "\U0001f600" in text
    assert json.loads(safe_json(value, indent=1)) == value
