"""Asciicast v2/v3 codec: bytes in, one JSON line per event out, and back.

The encoder works on raw terminal bytes: a UTF-8 sequence split across two reads is carried
over to the next read, invalid bytes become U+FFFD and are counted. Escaping is byte-wise
str/bytes passes, or the optional C accelerator (see docs/benchmarks.md).

The writing half is on the login path: it imports neither json nor re (7 ms at every login);
the reading half imports json when it first reads.
"""

from __future__ import annotations

import codecs
import functools

from . import jsontext

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Iterator
    from typing import IO, Any

try:  # the optional C accelerator (setup.py); same output as the Python path
    from sshrec.schema import _fastcast
except ImportError:
    _fastcast = None

REPLACEMENT = "\ufffd"


@functools.cache
def _escaped_bytes() -> re.Pattern[str]:
    """Bytes surrogateescape kept (the pure-Python path only, so re is imported only there)."""
    import re

    return re.compile("[\udc80-\udcff]")


class CastError(ValueError):
    """A cast file that cannot be read; the message names the file and line."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class Utf8Stream:
    """Incremental UTF-8 validator that never lets a bad byte corrupt its neighbours.

    ``feed`` returns valid UTF-8 *bytes*: the encoder escapes bytes directly, which is
    faster than decoding to str and encoding back (see docs/benchmarks.md).
    """

    def __init__(self) -> None:
        self._pending = b""
        self.invalid = 0

    def feed(self, data: bytes, final: bool = False) -> bytes:
        if self._pending:
            data = self._pending + data
            self._pending = b""
        if data.isascii():
            return data
        try:
            _, used = codecs.utf_8_decode(data, "strict", final)
        except UnicodeDecodeError:
            return self._replace_invalid(data, final).encode()
        if used != len(data):
            self._pending = data[used:]
            return data[:used]
        return data

    def decode(self, data: bytes, final: bool = False) -> str:
        return self.feed(data, final).decode()

    def append_event(self, buf: bytearray, t: float, code: int, data: bytes, final: bool = False) -> bool:
        """``[t, "code", the valid part of data]`` onto ``buf`` (the C accelerator's one call per
        read when it is built); False when there was no character to write yet."""
        if _fastcast is None:
            literal = self.feed_literal(data, final)
            if literal == b'""':
                return False
            buf += b'[%.6f, "%c", %s]\n' % (t, code, literal)
            return True
        if self._pending:
            data = self._pending + data
        size = len(buf)
        used, invalid = _fastcast.append_event(buf, t, code, data, final)
        self._pending = data[used:]
        self.invalid += invalid
        return len(buf) != size

    def feed_literal(self, data: bytes, final: bool = False) -> bytes:
        """``feed`` then ``json_string_bytes``: the valid part of ``data`` as a JSON string literal."""
        if _fastcast is None:
            return json_string_bytes(self.feed(data, final))
        if self._pending:
            data = self._pending + data
        literal, used, invalid = _fastcast.escape(data, final)
        self._pending = data[used:]
        self.invalid += invalid
        return literal

    def _replace_invalid(self, data: bytes, final: bool) -> str:
        """One U+FFFD per invalid byte: surrogateescape marks them, one regex pass replaces them."""
        text, used = codecs.utf_8_decode(data, "surrogateescape", final)
        self._pending = data[used:]
        text, count = _escaped_bytes().subn(REPLACEMENT, text)
        self.invalid += count
        return text

    def flush(self) -> str:
        return self.decode(b"", final=True)


# Control bytes other than ESC, TAB, CR and LF: rare in terminal output, escaped the slow way.
_RARE_CONTROLS = bytes(b for b in range(32) if b not in (9, 10, 13, 27))


def json_string_bytes(data: bytes) -> bytes:
    """Valid UTF-8 ``data`` as a JSON string literal, escaped byte-wise: each step is one C pass."""
    if len(data.translate(None, _RARE_CONTROLS)) != len(data):
        return jsontext.string(data.decode()).encode()
    if b"\\" in data:
        data = data.replace(b"\\", b"\\\\")
    if b'"' in data:
        data = data.replace(b'"', b'\\"')
    if b"\x1b" in data:
        data = data.replace(b"\x1b", b"\\u001b")
    if b"\n" in data:
        data = data.replace(b"\n", b"\\n")
    if b"\r" in data:
        data = data.replace(b"\r", b"\\r")
    if b"\t" in data:
        data = data.replace(b"\t", b"\\t")
    return b'"' + data + b'"'


class CastHeader:
    """The first line of a cast, version-neutral. (No dataclasses/typing: login path.)"""

    __slots__ = ("version", "cols", "rows", "timestamp", "term", "title", "env", "sshrec", "extra")

    def __init__(self, version: int, cols: int, rows: int, timestamp: float | None = None,
                 term: str | None = None, title: str | None = None, env: dict[str, str] | None = None,
                 sshrec: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
        self.version = version
        self.cols = cols
        self.rows = rows
        self.timestamp = timestamp
        self.term = term
        self.title = title
        self.env = env or {}
        self.sshrec = sshrec
        self.extra = extra or {}

    def to_json(self) -> str:
        if self.version == 2:
            data: dict[str, Any] = {"version": 2, "width": self.cols, "height": self.rows}
            if self.timestamp is not None:
                data["timestamp"] = int(self.timestamp)
            env = dict(self.env)
            if self.term:
                env.setdefault("TERM", self.term)
            if env:
                data["env"] = env
        else:
            term: dict[str, Any] = {"cols": self.cols, "rows": self.rows}
            if self.term:
                term["type"] = self.term
            data = {"version": 3, "term": term}
            if self.timestamp is not None:
                data["timestamp"] = int(self.timestamp)
            if self.env:
                data["env"] = self.env
        if self.title:
            data["title"] = self.title
        data.update(self.extra)
        if self.sshrec is not None:
            data["sshrec"] = self.sshrec
        return jsontext.dumps(data)


class EventEncoder:
    """Turns (absolute time, code, text) into cast lines; v3 stores the interval since the last event."""

    def __init__(self, version: int) -> None:
        if version not in (2, 3):
            raise ValueError(f"asciicast version must be 2 or 3, not {version}")
        self.version = version
        self._last = 0.0

    def line(self, t: float, code: str, text: str) -> bytes:
        return self.line_literal(t, code.encode(), json_string_bytes(text.encode()))

    def line_literal(self, t: float, code: bytes, literal: bytes) -> bytes:
        """``literal`` is already a JSON string (Utf8Stream.feed_literal output)."""
        if self.version == 3:
            t, self._last = t - self._last, t
        return b'[%.6f, "%s", %s]\n' % (t, code, literal)

    def append(self, buf: bytearray, t: float, code: int, stream: Utf8Stream, data: bytes,
               final: bool = False) -> bool:
        """Raw output or input ``data`` as one line onto ``buf`` through ``stream`` (which keeps
        an incomplete UTF-8 sequence for the next call); False when nothing was written."""
        stamp = t - self._last if self.version == 3 else t
        if not stream.append_event(buf, stamp, code, data, final):
            return False
        if self.version == 3:
            self._last = t
        return True


class Event:
    __slots__ = ("time", "code", "data")

    def __init__(self, time: float, code: str, data: str) -> None:
        self.time = time  # seconds since the start, always absolute (v3 intervals are summed)
        self.code = code
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and (self.time, self.code, self.data) == (
            other.time, other.code, other.data)

    def __repr__(self) -> str:
        return f"Event({self.time!r}, {self.code!r}, {self.data!r})"


def parse_header(path: str, line: str) -> CastHeader:
    import json

    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CastError(path, 1, f"header is not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise CastError(path, 1, "header is not a JSON object (is this an asciicast v1 file?)")
    version = data.get("version")
    if version == 2:
        cols, rows = data.get("width"), data.get("height")
        env = data.get("env") or {}
        term = env.get("TERM") if isinstance(env, dict) else None
        known = {"version", "width", "height", "timestamp", "env", "title", "sshrec"}
    elif version == 3:
        term_obj = data.get("term")
        if not isinstance(term_obj, dict):
            raise CastError(path, 1, "v3 header has no 'term' object")
        cols, rows, term = term_obj.get("cols"), term_obj.get("rows"), term_obj.get("type")
        env = data.get("env") or {}
        known = {"version", "term", "timestamp", "env", "title", "sshrec"}
    else:
        raise CastError(path, 1, f"unsupported asciicast version {version!r} (sshrec reads 2 and 3)")
    if not isinstance(cols, int) or not isinstance(rows, int) or cols < 0 or rows < 0:
        raise CastError(path, 1, "header has no valid terminal width/height")
    timestamp = data.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, (int, float)):
        raise CastError(path, 1, "header timestamp is not a number")
    sshrec = data.get("sshrec")
    return CastHeader(
        version=version,
        cols=cols,
        rows=rows,
        timestamp=timestamp,
        term=term,
        title=data.get("title"),
        env=env if isinstance(env, dict) else {},
        sshrec=sshrec if isinstance(sshrec, dict) else None,
        extra={k: v for k, v in data.items() if k not in known},
    )


def parse_event(path: str, number: int, line: str) -> tuple[float, str, str]:
    import json

    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CastError(path, number, f"event is not JSON: {exc.msg}") from None
    if (
        not isinstance(item, list)
        or len(item) < 3
        or not isinstance(item[0], (int, float))
        or not isinstance(item[1], str)
    ):
        raise CastError(path, number, "event is not [time, code, data]")
    data = item[2]
    if not isinstance(data, str):
        data = json.dumps(data) if item[1] != "x" else str(data)
    return float(item[0]), item[1], data


class CastReader:
    """Reads a cast file. ``tolerate_partial_tail`` accepts a torn last line (a killed recorder)."""

    def __init__(self, handle: IO[str], path: str = "<cast>", tolerate_partial_tail: bool = True):
        self._handle = handle
        self.path = path
        self.tolerate_partial_tail = tolerate_partial_tail
        self.truncated = False
        first = handle.readline()
        if not first.strip():
            raise CastError(path, 1, "file is empty (no asciicast header)")
        self.header = parse_header(path, first)

    def events(self) -> Iterator[Event]:
        absolute = 0.0
        relative = self.header.version == 3
        number = 1
        for raw in self._handle:
            number += 1
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                t, code, data = parse_event(self.path, number, line)
            except CastError:
                if self.tolerate_partial_tail and not raw.endswith("\n"):
                    self.truncated = True
                    return
                raise
            if relative:
                absolute += t
            else:
                if t < absolute - 1e-6:
                    raise CastError(self.path, number, f"event time {t} goes back (previous {absolute})")
                absolute = t
            yield Event(absolute, code, data)


def open_cast(path: Any, tolerate_partial_tail: bool = True) -> tuple[IO[str], CastReader]:
    """Open ``path`` (a file, or a stored object: anything with ``open_text()``, see
    :class:`sshrec.schema.storage.Blob`) for reading; the caller closes the returned handle."""
    if isinstance(path, str):
        handle = open(path, encoding="utf-8", errors="replace", newline="\n")  # noqa: SIM115
    else:
        handle = path.open_text()
    try:
        return handle, CastReader(handle, str(path), tolerate_partial_tail)
    except BaseException:
        handle.close()
        raise
