"""What appeared on screen, as plain text for full-text search, with a time for every part.

Terminal output is mostly text interleaved with escape sequences (colours, cursor moves,
titles). Search needs the text alone; the player needs to know *when* a match appeared so
it can jump there. So output events are stripped of escape sequences by a small streaming
state machine (a sequence split across two events is carried over, as a terminal would) and
the result is cut into chunks of at most :data:`CHUNK_CHARS` characters, each with "marks":
(offset in chunk, milliseconds since start) pairs, one whenever the time moved on by at
least :data:`MARK_STEP_MS`. A position's time is that of the last mark at or before it, so
it is never later than the moment the text was printed and at most ``MARK_STEP_MS`` earlier.

Chunks bound the cost of one search document: PostgreSQL refuses a tsvector over 1 MB and
stops counting word positions at 16383, which phrase search relies on.

Words are defined once here (:func:`words`) and used for the PostgreSQL document, for both
back ends' queries, and for locating the first match, so SQLite FTS5 (unicode61 tokenizer,
diacritics removed) and PostgreSQL agree on what matches.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

CHUNK_CHARS = 64 * 1024
MARK_STEP_MS = 100
CARRY_LIMIT = 64 * 1024  # an unterminated OSC/DCS longer than this is dropped, not carried
# What one session may put in the search index. Binary output (a transfer, `cat` of an
# image) is left out; so is a flood past its first FLOOD_CHARS (output with no pause of
# FLOOD_GAP_MS: `cat` of a big log), and everything past SESSION_CHARS.
BINARY_SAMPLE = 2048  # characters of each event looked at to tell binary from text
BINARY_PER_MILLE = 100  # replacement or odd control characters per 1000 that make it binary
FLOOD_GAP_MS = 1000
FLOOD_CHARS = 256 * 1024
SESSION_CHARS = 16 * 1024 * 1024

# One complete escape sequence (7-bit and the 8-bit C1 CSI/OSC forms).
_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b) (?P<params>[0-?]*) [ -/]* (?P<final>[@-~])   # CSI
    | (?:\x1b\]|\x9d) [^\x07\x1b\x9c]* (?:\x07|\x1b\\|\x9c)          # OSC ... BEL/ST
    | (?:\x1b[PX^_]|[\x90\x98\x9e\x9f]) [^\x1b\x9c]* (?:\x1b\\|\x9c)  # DCS/SOS/PM/APC ... ST
    | \x1b [ -/]* [0-~]                                              # other ESC sequences
    """,
    re.VERBOSE,
)
# Whatever could still become a sequence if more output arrives.
_INCOMPLETE = re.compile(
    r"(?:\x1b|\x1b\[[0-?]*[ -/]*|\x9b[0-?]*[ -/]*|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*\x1b?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*\x1b?|\x1b[ -/]+)\Z"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ODD_CONTROLS = re.compile(r"[\x00-\x06\x0e-\x1a\x1c-\x1f\x7f\ufffd]")  # not in text a terminal shows
_NEWLINE_MOVES = frozenset("HfdEFAB")  # cursor moves that start a new piece of text
_SPACE_MOVES = frozenset("CG`I")  # cursor moves along the line
_WORD = re.compile(r"[^\W_]+")


def _replace_sequence(match: re.Match[str]) -> str:
    final = match.group("final")
    if final is None:
        return ""
    if final in _NEWLINE_MOVES:
        return "\n"
    if final in _SPACE_MOVES:
        return " "
    return ""


class Stripper:
    """Removes escape sequences from a stream of output, across event boundaries."""

    def __init__(self) -> None:
        self._carry = ""

    def feed(self, data: str) -> str:
        if self._carry:
            data = self._carry + data
            self._carry = ""
        if "\x1b" not in data and "\x9b" not in data:  # the common case: plain text and CRLF
            plain = data.replace("\r\n", "\n") if "\r" in data else data
            if not _CONTROLS.search(plain):
                return plain
        tail = _INCOMPLETE.search(data)
        if tail and len(data) - tail.start() <= CARRY_LIMIT:
            self._carry = data[tail.start() :]
            data = data[: tail.start()]
        data = _SEQUENCE.sub(_replace_sequence, data)
        data = data.replace("\r\n", "\n").replace("\r", "\n")
        return _CONTROLS.sub("", data)

    def flush(self) -> str:
        self._carry = ""
        return ""


def strip_escapes(data: str) -> str:
    """``data`` without escape sequences or control characters (one complete piece)."""
    stripper = Stripper()
    return stripper.feed(data) + stripper.flush()


@dataclass
class Chunk:
    """Up to CHUNK_CHARS of screen text; ``marks`` are (offset, ms since start), ascending."""

    number: int
    text: str = ""
    marks: list[tuple[int, int]] = field(default_factory=list)

    @property
    def time(self) -> float:
        """Seconds since the start at which this chunk's text begins."""
        return self.marks[0][1] / 1000 if self.marks else 0.0

    def time_at(self, offset: int) -> float:
        """Seconds since the start when the character at ``offset`` appeared."""
        if not self.marks:
            return 0.0
        index = bisect_right(self.marks, (offset, 1 << 62)) - 1
        return self.marks[max(index, 0)][1] / 1000


class ScreenTextBuilder:
    """Feed output events in order; collect chunks of searchable text with their times."""

    def __init__(self, chunk_chars: int = CHUNK_CHARS) -> None:
        self.chunk_chars = chunk_chars
        self.chunks: list[Chunk] = []
        self._stripper = Stripper()
        self._parts: list[str] = []
        self._length = 0
        self._marks: list[tuple[int, int]] = []
        self._last_ms = -(1 << 62)
        self._pending: list[str] = []
        self._pending_ms = 0
        self.chars = 0
        self.dropped_binary = 0  # characters of output left out as binary
        self.truncated = 0  # characters left out by the flood and session caps
        self._last_event_ms = -(1 << 62)
        self._flood_chars = 0
        self._accepted = 0  # output characters taken in (before escape sequences are removed)

    def add(self, time: float, data: str) -> None:
        """One output event. Events less than MARK_STEP_MS after the first of a burst would
        get no mark of their own, so a burst is stripped in one piece (far fewer calls)."""
        millis = int(time * 1000)
        if millis - self._last_event_ms >= FLOOD_GAP_MS:
            self._flood_chars = 0
        self._last_event_ms = millis
        if looks_binary(data):
            self.dropped_binary += len(data)
            return
        room = min(FLOOD_CHARS - self._flood_chars, SESSION_CHARS - self._accepted)
        if room <= 0:
            self.truncated += len(data)
            return
        if len(data) > room:
            self.truncated += len(data) - room
            data = data[:room]
        self._flood_chars += len(data)
        self._accepted += len(data)
        if self._pending and millis - self._pending_ms < MARK_STEP_MS:
            self._pending.append(data)
            return
        self._flush_pending()
        self._pending, self._pending_ms = [data], millis

    def describe_dropped(self) -> str:
        """The note an indexed record gets when part of its output is not searchable."""
        parts = []
        if self.dropped_binary:
            parts.append(f"{_size(self.dropped_binary)} of binary output")
        if self.truncated:
            parts.append(f"{_size(self.truncated)} of bulk output past the search limits")
        return f"screen text: {' and '.join(parts)} not indexed for search (the recording has it all)"

    def _flush_pending(self) -> None:
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else "".join(self._pending)
            self._pending = []
            self._add_text(self._pending_ms, self._stripper.feed(data))

    def _add_text(self, millis: int, text: str) -> None:
        while text:
            room = self.chunk_chars - self._length
            if len(text) <= room:
                piece = text
            else:  # end the chunk at a line end if there is one, else start a new chunk
                newline = text.rfind("\n", 0, room)
                if newline >= 0:
                    piece = text[: newline + 1]
                elif self._length:
                    self._close_chunk()
                    continue
                else:
                    piece = text[:room]
            text = text[len(piece) :]
            if millis - self._last_ms >= MARK_STEP_MS or not self._marks:
                self._marks.append((self._length, millis))
                self._last_ms = millis
            self._parts.append(piece)
            self._length += len(piece)
            self.chars += len(piece)
            if self._length >= self.chunk_chars or text:
                self._close_chunk()

    def _close_chunk(self) -> None:
        if self._length:
            self.chunks.append(Chunk(len(self.chunks), "".join(self._parts), self._marks))
        self._parts, self._length, self._marks = [], 0, []
        self._last_ms = -(1 << 62)  # every chunk opens with its own mark

    def finish(self) -> list[Chunk]:
        self._flush_pending()
        self._stripper.flush()
        self._close_chunk()
        return self.chunks


def looks_binary(data: str) -> bool:
    """Whether output is mostly not text: many U+FFFD (bytes that were not UTF-8) or control
    characters no terminal program prints. A sample of the start decides, cheaply."""
    sample = data[:BINARY_SAMPLE]
    odd = len(_ODD_CONTROLS.findall(sample))
    return odd * 1000 > len(sample) * BINARY_PER_MILLE


def _size(chars: int) -> str:
    return f"{chars / 1e6:.1f} MB" if chars >= 100_000 else f"{chars / 1e3:.1f} KB"


def screen_text(events: Iterable[tuple[float, str]]) -> list[Chunk]:
    """Chunks of screen text from (time, output data) pairs."""
    builder = ScreenTextBuilder()
    for time, data in events:
        builder.add(time, data)
    return builder.finish()


def fold(word: str) -> str:
    """Case- and accent-insensitive form of a word (what FTS5 unicode61 remove_diacritics does)."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The searchable words of ``text``: runs of letters and digits, folded."""
    if text.isascii():
        return _WORD.findall(text.lower())
    return [fold(w) for w in _WORD.findall(text)]


@dataclass(frozen=True)
class Match:
    offset: int  # first character of the match in the chunk text
    end: int


def first_match(text: str, query_words: list[str], phrase: bool) -> Match | None:
    """Where the search first matches in ``text``: the earliest searched word, or with
    ``phrase`` the earliest place the words appear in order and next to each other.

    A case-insensitive regular expression finds it in one pass of C code; only when that
    fails (the match differs in accents, as "cafe" for "Café") are words folded one by one.
    """
    if not query_words:
        return None
    found = _fast_pattern(query_words, phrase).search(text)
    if found:
        return Match(found.start(), found.end())
    return _first_match_folded(text, query_words, phrase)


def _fast_pattern(query_words: list[str], phrase: bool) -> re.Pattern[str]:
    escaped = [re.escape(w) for w in query_words]
    body = r"[\W_]+".join(escaped) if phrase else "|".join(sorted(escaped, key=len, reverse=True))
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])", re.IGNORECASE)


def _first_match_folded(text: str, query_words: list[str], phrase: bool) -> Match | None:
    wanted = set(query_words)
    if not phrase:
        for found in _WORD.finditer(text):
            if fold(found.group()) in wanted:
                return Match(found.start(), found.end())
        return None
    size = len(query_words)
    window: list[re.Match[str]] = []
    for found in _WORD.finditer(text):
        window.append(found)
        if len(window) > size:
            window.pop(0)
        if len(window) == size and all(
            fold(m.group()) == w for m, w in zip(window, query_words, strict=True)
        ):
            return Match(window[0].start(), window[-1].end())
    return None
