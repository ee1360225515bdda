"""The recorded terminal drawn cell by cell, at its recorded size.

A ScrollView with the line API: when the pane is smaller than the recording, it scrolls
(and follows the cursor, so what is being typed stays in view); rows are drawn from the
emulator only when they changed since the last frame.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..replay import Replay
from .cells import pen_style

CURSOR = Style(reverse=True)


class ScreenView(ScrollView, can_focus=True, inherit_bindings=False):
    """Arrows belong to the replay (seeking); shift+arrows scroll a recording larger than the pane."""

    BINDINGS = [
        Binding("shift+left", "scroll_left", "scroll", key_display="⇧↔↕"),
        Binding("shift+right", "scroll_right", "scroll", show=False),
        Binding("shift+up", "scroll_up", "scroll", show=False),
        Binding("shift+down", "scroll_down", "scroll", show=False),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.startswith("scroll_"):
            return self.max_scroll_x > 0 or self.max_scroll_y > 0
        return True

    def __init__(self, replay: Replay, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replay = replay
        self._strips: dict[int, Strip] = {}
        self._cursor_row = -1

    def on_mount(self) -> None:
        self.changed()

    def on_resize(self) -> None:
        self.call_after_refresh(self.screen.refresh_bindings)  # scroll keys: only when it can scroll

    def changed(self) -> None:
        """Take in what the replay changed since the last call."""
        replay = self.replay
        if replay.resized:
            replay.resized = False
            self._strips.clear()
            cols, rows = replay.screen.size
            self.virtual_size = Size(cols, rows)
        for row in replay.dirty:
            self._strips.pop(row, None)
        replay.dirty.clear()
        cursor = replay.screen.cursor
        if cursor.row != self._cursor_row:
            self._strips.pop(self._cursor_row, None)
            self._strips.pop(cursor.row, None)
            self._cursor_row = cursor.row
        else:
            self._strips.pop(cursor.row, None)
        self._keep_cursor_in_view(cursor.col, cursor.row)
        self.refresh()

    def _keep_cursor_in_view(self, col: int, row: int) -> None:
        width, height = self.scrollable_content_region.size
        if width <= 0 or height <= 0:
            return
        cols, rows = self.replay.screen.size
        if cols <= width and rows <= height:
            return
        self.scroll_to_region(Region(col, row, 1, 1), animate=False, immediate=True)

    def _strip(self, row: int) -> Strip:
        strip = self._strips.get(row)
        if strip is not None:
            return strip
        screen = self.replay.screen
        segments = [Segment(text, pen_style(pen)) for text, pen in screen.runs(row)]
        cursor = screen.cursor
        if cursor.visible and cursor.row == row:
            segments = _with_cursor(segments, cursor.col)
        strip = Strip(segments)
        self._strips[row] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if row >= self.replay.screen.size[1]:
            return Strip.blank(width, self.rich_style)
        strip = self._strip(row).crop(scroll_x, scroll_x + width)
        return strip.adjust_cell_length(width, self.rich_style).apply_style(self.rich_style)


def _with_cursor(segments: list[Segment], col: int) -> list[Segment]:
    """The segments with the cell at ``col`` drawn reversed."""
    out: list[Segment] = []
    at = 0
    done = False
    for text, style, _ in segments:
        if done or at + len(text) <= col:
            out.append(Segment(text, style))
            at += len(text)
            continue
        cut = col - at
        before, char, after = text[:cut], text[cut:cut + 1], text[cut + 1:]
        if before:
            out.append(Segment(before, style))
        out.append(Segment(char, (style or Style()) + CURSOR))
        if after:
            out.append(Segment(after, style))
        at += len(text)
        done = True
    if not done:
        out.append(Segment(" " * max(col - at, 0)))
        out.append(Segment(" ", CURSOR))
    return out
