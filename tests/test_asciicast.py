"""The asciicast codec: nothing corrupted, whatever the read boundaries or the bytes."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable

import pytest
from sshrec.schema.asciicast import CastError, CastHeader, CastReader, EventEncoder, Utf8Stream

SAMPLE = "héllo wörld — 日本語 🎉 \x1b[1;31mred\x1b[0m \"quoted\" back\\slash\ttab\r\n".encode()


@pytest.mark.parametrize("cut", range(1, len(SAMPLE)))
def test_utf8_split_anywhere_is_not_corrupted(cut: int) -> None:
    stream = Utf8Stream()
    text = stream.decode(SAMPLE[:cut]) + stream.decode(SAMPLE[cut:]) + stream.flush()
    assert text == SAMPLE.decode()
    assert stream.invalid == 0


def test_utf8_one_byte_at_a_time() -> None:
    stream = Utf8Stream()
    assert "".join(stream.decode(bytes([b])) for b in SAMPLE) + stream.flush() == SAMPLE.decode()


def test_invalid_bytes_become_replacement_and_are_counted() -> None:
    stream = Utf8Stream()
    text = stream.decode(b"ok\xff\xfeok\xc3") + stream.decode(b"(") + stream.flush()
    assert text == "ok\ufffd\ufffdok\ufffd("
    assert stream.invalid == 3


def test_truncated_sequence_at_end_of_session() -> None:
    stream = Utf8Stream()
    assert stream.decode(b"abc\xe6\x97") == "abc"
    assert stream.flush() == "\ufffd\ufffd"
    assert stream.invalid == 2


def test_random_bytes_never_raise_and_roundtrip_valid_parts() -> None:
    data = os.urandom(100_000)
    stream = Utf8Stream()
    pieces = [stream.decode(data[i : i + 777]) for i in range(0, len(data), 777)]
    text = "".join(pieces) + stream.flush()
    escaped = data.decode("utf-8", "surrogateescape")
    expected = "".join("\ufffd" if "\udc80" <= c <= "\udcff" else c for c in escaped)
    assert text == expected
    # (random bytes may hold a real U+FFFD: count the invalid bytes, not the replacement marks)
    assert stream.invalid == sum(1 for c in escaped if "\udc80" <= c <= "\udcff")


def test_event_lines_are_json_and_v3_is_relative() -> None:
    v2, v3 = EventEncoder(2), EventEncoder(3)
    assert json.loads(v2.line(1.5, "o", 'a"\x1b\n')) == [1.5, "o", 'a"\x1b\n']
    v3.line(1.0, "o", "x")
    t, code, data = json.loads(v3.line(1.25, "o", "y"))
    assert (round(t, 6), code, data) == (0.25, "o", "y")


def test_reader_v3_sums_intervals_and_names_bad_lines() -> None:
    header = CastHeader(version=3, cols=100, rows=30, term="xterm").to_json()
    text = header + "\n[0.5, \"o\", \"a\"]\n# comment\n[0.25, \"o\", \"b\"]\n"
    reader = CastReader(io.StringIO(text), "x.cast")
    assert (reader.header.cols, reader.header.rows, reader.header.term) == (100, 30, "xterm")
    assert [(e.time, e.data) for e in reader.events()] == [(0.5, "a"), (0.75, "b")]
    broken = header + "\n[0.5, \"o\", \"a\"]\n[oops\n[1, \"o\", \"c\"]\n"
    with pytest.raises(CastError, match=r"x.cast:3: event is not JSON"):
        list(CastReader(io.StringIO(broken), "x.cast").events())


def test_reader_accepts_a_torn_last_line_only() -> None:
    header = CastHeader(version=2, cols=80, rows=24).to_json()
    reader = CastReader(io.StringIO(header + '\n[0.1, "o", "a"]\n[0.2, "o", "b'), "t.cast")
    assert [e.data for e in reader.events()] == ["a"]
    assert reader.truncated


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("", "file is empty"),
        ("[1, 2]", "not a JSON object"),
        ('{"version": 1}', "unsupported asciicast version 1"),
        ('{"version": 2, "width": "wide", "height": 3}', "width/height"),
    ],
)
def test_bad_headers_say_what_is_wrong(header: str, problem: str) -> None:
    with pytest.raises(CastError, match=problem):
        CastReader(io.StringIO(header + "\n"), "h.cast")


def test_byte_escaping_equals_json_for_every_byte_value() -> None:
    from sshrec.schema.asciicast import json_string_bytes

    every = "".join(chr(c) for c in range(0x80)) + "é日🎉\u2028\x7f"
    for text in (every, every[::-1], "plain", "", "\x1b[0m\r\n\t\"\\"):
        assert json.loads(json_string_bytes(text.encode())) == text
    stream = Utf8Stream()
    assert stream.feed(b"ok\xc3") == b"ok" and stream.feed(b"\xa9\xff") == "é\ufffd".encode()


def python_literal(stream: Utf8Stream, data: bytes, final: bool = False) -> bytes:
    from sshrec.schema.asciicast import json_string_bytes

    return json_string_bytes(stream.feed(data, final))


def assert_c_equals_python(data: bytes, step: Callable[[], int]) -> None:
    """The C and the Python path give the same text and invalid count for data cut into
    pieces of step() bytes, and for data in one piece."""
    fast, slow = Utf8Stream(), Utf8Stream()
    fast_text, slow_text, pos = [], [], 0
    while pos < len(data):
        size = step()
        piece = data[pos : pos + size]
        pos += size
        fast_text.append(json.loads(fast.feed_literal(piece)))
        slow_text.append(json.loads(python_literal(slow, piece)))
    fast_text.append(json.loads(fast.feed_literal(b"", final=True)))
    slow_text.append(json.loads(python_literal(slow, b"", final=True)))
    assert "".join(fast_text) == "".join(slow_text)
    assert fast.invalid == slow.invalid > 0
    assert Utf8Stream().feed_literal(data, final=True) == python_literal(Utf8Stream(), data, final=True)


@pytest.mark.parametrize("seed", range(20))
def test_c_accelerator_equals_the_python_path(seed: int) -> None:
    """The same text and invalid count, whatever the bytes and the cuts. (Pieces may differ at a
    cut: CPython holds back an incomplete ED A0 surrogate prefix that the C code rejects at once.)"""
    import random

    from sshrec.schema import asciicast

    if asciicast._fastcast is None:
        pytest.skip("the C accelerator is not built here (no compiler): the Python path is in use")
    rng = random.Random(seed)
    alphabet = [b"a", b"\x1b[0m", b"\r\n", b"\t", b'"', b"\\", b"\x00", b"\x7f", b"\x08\x0c",
                "é".encode(), "日".encode(), "🎉".encode(), b"\xff", b"\xe6\x97", b"\xed\xa0\x80",
                b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf"]
    data = b"".join(rng.choice(alphabet) for _ in range(3000)) + rng.choice([b"", b"\xf0\x9f", b"\xe6"])
    assert_c_equals_python(data, lambda: rng.randint(1, 50))


def test_python_path_when_the_accelerator_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from sshrec.schema import asciicast

    monkeypatch.setattr(asciicast, "_fastcast", None)
    stream = Utf8Stream()
    assert stream.feed_literal(b'a\xff"\xe6') == b'"a\xef\xbf\xbd\\""'
    assert stream.feed_literal(b"\x97\xa5") == '"日"'.encode()
    assert stream.invalid == 1


@pytest.mark.parametrize(("version", "seed"), [(2, 0), (2, 1), (3, 2), (3, 3)])
def test_c_event_lines_equal_the_python_lines(monkeypatch: pytest.MonkeyPatch, version: int,
                                              seed: int) -> None:
    """The recorder's hot path writes whole lines in C: byte for byte what the Python path writes,
    with UTF-8 split across reads, times that only advance when a line is written (v3) and an
    invalid count (no lone surrogate prefix here: see the test above for why it may cut apart)."""
    import random

    from sshrec.schema import asciicast
    from sshrec.schema.asciicast import EventEncoder

    if asciicast._fastcast is None:
        pytest.skip("the C accelerator is not built here (no compiler): the Python path is in use")
    rng = random.Random(seed)
    alphabet = [b"a", b"\x1b[0m", b"\r\n", b"\t", b'"', b"\\", b"\x00", b"\x7f", "é".encode(),
                "日".encode(), "🎉".encode(), b"\xff", b"\xc0\xaf", b"\xf4\x90\x80\x80"]
    data = b"".join(rng.choice(alphabet) for _ in range(4000)) + b"\xe6\x97"
    cuts, pos, t = [], 0, 0.0
    while pos < len(data):
        step = rng.randint(1, 40)
        t += rng.choice([0.0, 0.000_000_4, 0.001, 1.5, 1234.567_891_2])
        cuts.append((t, rng.choice([105, 111]), data[pos : pos + step]))
        pos += step

    def lines() -> tuple[bytes, int]:
        encoder, streams, buf = EventEncoder(version), {105: Utf8Stream(), 111: Utf8Stream()}, bytearray()
        for stamp, code, piece in cuts:
            encoder.append(buf, stamp, code, streams[code], piece)
        for code, stream in streams.items():
            encoder.append(buf, t + 1, code, stream, b"", final=True)
        return bytes(buf), streams[105].invalid + streams[111].invalid

    fast = lines()
    monkeypatch.setattr(asciicast, "_fastcast", None)
    assert fast == lines()
    assert fast[1] > 0 and fast[0].count(b"\n") > 10


def test_the_c_osc133_finder_equals_bytes_find() -> None:
    import random

    from sshrec.recorder import typed

    if typed._find_osc133 is None:
        pytest.skip("the C accelerator is not built here (no compiler): bytes.find is in use")
    rng = random.Random(7)
    pieces = [b"a", b"]", b"\x1b", b"\x1b]", b"\x1b]133;", b"133;", b"\x1b]13", b"]133;", b"\x1b[0m"]
    for _ in range(300):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        for start in range(len(data) + 2):
            assert typed.find_osc133(data, start) == data.find(typed.OSC133, start), (data, start)


@pytest.mark.parametrize("seed", range(6))
def test_c_accelerator_equals_the_python_path_on_long_runs_and_reads(seed: int) -> None:
    """The C loop takes sixteen bytes at a time and decides two- and three-byte characters
    inline: long plain runs, reads up to 4 KiB, and sequences cut or broken at every offset."""
    import random

    from sshrec.schema import asciicast

    if asciicast._fastcast is None:
        pytest.skip("the C accelerator is not built here (no compiler): the Python path is in use")
    rng = random.Random(seed)
    alphabet = [b"x" * 15, b"y" * 16, b"z" * 17, b"0123456789abcdef" * 5, b"\x1b[01;34m", b"\r\n",
                "é".encode(), "日本".encode(), "🎉".encode(), b"\xc3(", b"\xe6\x97(", b"\xe1\x80",
                b"\xed\xa0\x80", b"\xef\xbf\xbd", b'"', b"\\", b"\x7f", b"\x1f", b"\xdf\xbf", b"\xc2"]
    data = b"".join(rng.choice(alphabet) for _ in range(3000))
    assert_c_equals_python(data, lambda: rng.choice([1, 2, 3, 15, 16, 17, 31, 33, 100, 4095]))
