"""The terminal emulator behind one small interface: feed output, read styled lines, snapshot.

Why an interface: the replay pane, the keyframes of the seek index and the benchmark all need
"the screen as it looked", and the emulator doing it is a choice that may change. Today it is
asciinema's own emulator, ``avt`` (Rust, the ``pyavt`` wheel): about 30-50 MB/s here against
under 1 MB/s for pyte, and ``dump()`` gives a snapshot (escape sequences that rebuild both
screens, the cursor, the pen and the modes) that a fresh emulator restores in microseconds.
Nothing outside this module imports ``avt``.

Safety: what a recording writes only ever reaches this emulator; the auditor's terminal sees
cells drawn by Textual. A cell holding a character that is not printable (a bidi override
such as U+202E, a stray control) is drawn as U+FFFD, so recorded text cannot reorder or drive
what the auditor sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import avt

EMULATOR = f"avt-{avt.__version__}"
REPLACEMENT = "\ufffd"

Color = int | tuple[int, int, int] | None  # palette index, RGB, or the terminal's default


@dataclass(frozen=True)
class Pen:
    """How a run of cells is drawn (SGR attributes)."""

    fg: Color = None
    bg: Color = None
    bold: bool = False
    faint: bool = False
    italic: bool = False
    underline: bool = False
    strike: bool = False
    blink: bool = False
    inverse: bool = False


DEFAULT_PEN = Pen()


def _color(value: object) -> Color:
    if value is None:
        return None
    if isinstance(value, avt.Color.RGB):
        return (value[0], value[1], value[2])
    return int(value[0])  # type: ignore[index]


def _pen(raw: avt.Pen) -> Pen:
    if raw.is_default():
        return DEFAULT_PEN
    return Pen(_color(raw.foreground), _color(raw.background), raw.bold, raw.faint, raw.italic,
               raw.underline, raw.strikethrough, raw.blink, raw.inverse)


@dataclass(frozen=True)
class Cursor:
    col: int
    row: int
    visible: bool


class Screen:
    """An emulated terminal of ``cols`` x ``rows`` (no scrollback: a replay shows the screen)."""

    def __init__(self, cols: int, rows: int) -> None:
        self._vt = avt.Vt(max(cols, 1), max(rows, 1), 0)

    @property
    def size(self) -> tuple[int, int]:
        cols, rows = self._vt.size
        return int(cols), int(rows)

    def feed(self, text: str) -> list[int]:
        """Apply output; returns the rows that changed."""
        changed, _ = self._vt.feed_str(text)
        return list(changed)

    def resize(self, cols: int, rows: int) -> None:
        self._vt.resize(max(cols, 1), max(rows, 1))

    @property
    def cursor(self) -> Cursor:
        raw = self._vt.cursor
        return Cursor(int(raw.col), int(raw.row), bool(raw.visible))

    def runs(self, row: int) -> list[tuple[str, Pen]]:
        """The cells of ``row`` as (text, pen) runs, left to right; a wide character is one
        character that covers two columns (its second cell is left out)."""
        out: list[tuple[str, Pen]] = []
        chars: list[str] = []
        last_raw: avt.Pen | None = None
        pen = DEFAULT_PEN
        for cell in self._vt.view()[row].cells:
            if cell.width == 0:
                continue
            raw = cell.pen
            if last_raw is None or raw != last_raw:
                if chars:
                    out.append(("".join(chars), pen))
                    chars = []
                last_raw, pen = raw, _pen(raw)
            char = cell.char
            chars.append(char if char.isprintable() else REPLACEMENT)
        if chars:
            out.append(("".join(chars), pen))
        return out

    def text(self) -> list[str]:
        """Plain text of every row (tests, search)."""
        return ["".join(t for t, _ in self.runs(row)).rstrip() for row in range(self.size[1])]

    def snapshot(self) -> str:
        """The whole state as text that :meth:`restore` turns back into this screen."""
        return str(self._vt.dump())

    @classmethod
    def restore(cls, snapshot: str, cols: int, rows: int) -> Screen:
        screen = cls(cols, rows)
        screen.feed(snapshot)
        return screen
