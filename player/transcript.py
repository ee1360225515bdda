"""The screen text of a session as a person read it, one timestamped line at a time (``--format txt``).

A shell session is mostly lines: output scrolls, and the line being typed is redrawn in
place (readline moves the cursor back, overwrites, erases to the end). So this keeps one
line of cells and a cursor column, applies what moves within a line (CR, BS, TAB, cursor
left/right/column, erase, insert and delete characters), and writes the line out when the
cursor leaves it (LF, a move to another row). Each line carries the time it was finished:
for a command line, the moment Enter was pressed.

Limits, by design: rows above the cursor are not kept, so a full-screen program (vim, top,
less) comes out as the text it drew, row by row, in drawing order, between
``[full-screen program]`` lines, not as pictures of its screen. Wide characters count as
one cell. Everything else a terminal would interpret (colours, titles, queries) is dropped,
so the text is safe to print.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_TOKEN = re.compile(
    r"(?P<text>[^\x00-\x1f\x7f-\x9f]+)"
    r"|(?:\x1b\[|\x9b)(?P<params>[0-?]*)[ -/]*(?P<final>[@-~])"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|(?P<control>[\x00-\x1f\x7f-\x9f])",
    re.DOTALL,
)
_ROW_CHANGES = frozenset("ABEFHfd")
_ALT_SCREEN = re.compile(r"\?(?:1049|1047|47)$")


class LineRenderer:
    """Feed (time, output) in order; take finished (time, line) pairs from :meth:`lines`."""

    def __init__(self) -> None:
        self._cells: list[str] = []
        self._col = 0
        self._time = 0.0
        self._touched = False
        self._done: list[tuple[float, str]] = []
        self._carry = ""

    def feed(self, time: float, text: str) -> None:
        self._time = time
        if self._carry:
            text, self._carry = self._carry + text, ""
        tail = text.rfind("\x1b")
        if tail >= 0 and tail > len(text) - 64 and not _complete(text, tail):
            text, self._carry = text[:tail], text[tail:]
        for match in _TOKEN.finditer(text):
            if match.group("text") is not None:
                self._write(match.group("text"))
            elif match.group("final") is not None:
                self._csi(match.group("params"), match.group("final"))
            elif match.group("control") is not None:
                self._control(match.group("control"))

    def note(self, time: float, text: str) -> None:
        """A line of the transcript's own (a marker), after the current line."""
        self._newline(time)
        self._done.append((time, text))

    def finish(self, time: float) -> None:
        self._time = time
        if self._touched and "".join(self._cells).strip():
            self._emit()

    def lines(self) -> list[tuple[float, str]]:
        done, self._done = self._done, []
        return done

    # -- the line --------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        cells, col = self._cells, self._col
        if col > len(cells):
            cells.extend(" " * (col - len(cells)))
        cells[col:col + len(text)] = text
        self._col = col + len(text)
        self._touched = True

    def _emit(self) -> None:
        self._done.append((self._time, "".join(self._cells).rstrip()))
        self._cells = []
        self._touched = False

    def _newline(self, time: float | None = None) -> None:
        if time is not None:
            self._time = time
        if self._touched:
            self._emit()
        self._col = 0

    def _control(self, char: str) -> None:
        if char == "\n" or char in "\x0b\x0c\x85":
            self._touched = True  # an empty line is a line a person saw
            self._emit()
            self._col = 0
        elif char == "\r":
            self._col = 0
        elif char == "\b":
            self._col = max(self._col - 1, 0)
        elif char == "\t":
            self._write(" " * (8 - self._col % 8))

    def _csi(self, params: str, final: str) -> None:
        numbers = [int(p) if p.isdigit() else 0 for p in params.lstrip("?>=<").split(";")] or [0]
        n = max(numbers[0], 1)
        if final in "hl" and _ALT_SCREEN.match(params):
            self._newline()
            self._done.append((self._time, "[full-screen program]" if final == "h" else
                               "[end of full-screen program]"))
        elif final in _ROW_CHANGES:
            self._newline()
            if final in "Hf" and len(numbers) > 1 and numbers[1] > 1:
                self._col = numbers[1] - 1
        elif final == "C":
            self._col += n
        elif final == "D":
            self._col = max(self._col - n, 0)
        elif final in "G`":
            self._col = n - 1
        elif final == "K":
            if numbers[0] == 0:
                del self._cells[self._col:]
            elif numbers[0] == 1:
                self._cells[: self._col + 1] = " " * min(self._col + 1, len(self._cells))
            else:
                self._cells = []
        elif final == "P":
            del self._cells[self._col:self._col + n]
        elif final == "@":
            self._cells[self._col:self._col] = " " * n
        elif final == "X":
            end = min(self._col + n, len(self._cells))
            self._cells[self._col:end] = " " * max(end - self._col, 0)
        elif final == "J" and numbers[0] in (2, 3):
            self._newline()


_COMPLETE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x9c)|(?![\[\]PX^_])[ -/]*[0-~])", re.DOTALL
)


def _complete(text: str, start: int) -> bool:
    """Whether the escape sequence at ``start`` is whole (else it is carried to the next event)."""
    return _COMPLETE.match(text, start) is not None


def transcript(events: Iterator[tuple[float, str, str]]) -> Iterator[tuple[float, str]]:
    """(time, line) of everything shown, from (time, code, data) events."""
    renderer = LineRenderer()
    last = 0.0
    for time, code, data in events:
        last = time
        if code == "o":
            renderer.feed(time, data)
        elif code == "m":
            renderer.note(time, f"[marker: {data}]")
        else:
            continue
        yield from renderer.lines()
    renderer.finish(last)
    yield from renderer.lines()
