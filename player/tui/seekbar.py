"""One line under the replay: state, time, speed, and a bar with markers and search hits."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from ..play import clock

MARKER = "◆"
HIT = "▲"


class SeekBar(Widget):
    position = reactive(0.0)
    duration = reactive(0.0)
    playing = reactive(False)
    speed = reactive(1.0)
    live = reactive(False)
    following = reactive(False)
    exact = reactive(True)

    class Seek(Message):
        def __init__(self, target: float) -> None:
            super().__init__()
            self.target = target

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.markers: list[float] = []
        self.hits: list[float] = []

    def set_marks(self, markers: list[float], hits: list[float]) -> None:
        self.markers, self.hits = markers, hits
        self.refresh()

    def _head(self) -> Text:
        state = "▶" if self.playing else "⏸"
        text = Text(f" {state} {clock(self.position)} / {clock(self.duration)}  x{self.speed:g} ")
        if self.live:
            text.append("● follow " if self.following else "● live ", style="bold red")
        if not self.exact:
            text.append("~ ", style="yellow")  # the screen after a window replay: approximate
        return text

    def _bar_width(self, head: Text) -> int:
        return max(self.size.width - head.cell_len - 1, 0)

    def render(self) -> Text:
        head = self._head()
        width = self._bar_width(head)
        if width < 4:
            return head
        cells = ["─"] * width

        def cell(t: float) -> int:  # position / duration first: exactly 1.0 at the end
            fraction = min(t / self.duration, 1.0) if self.duration > 0 else 0.0
            return int(fraction * (width - 1) + 1e-9)

        done = cell(self.position)
        for i in range(done):
            cells[i] = "━"
        for t in self.hits:
            cells[cell(t)] = HIT
        for t in self.markers:
            cells[cell(t)] = MARKER
        cells[min(done, width - 1)] = "●"
        bar = Text("".join(cells))
        bar.highlight_regex(MARKER, "bold magenta")
        bar.highlight_regex(HIT, "bold yellow")
        bar.stylize("bold", 0, done + 1)
        return head + bar

    def on_click(self, event: Any) -> None:
        head = self._head()
        width = self._bar_width(head)
        x = event.x - head.cell_len
        if width >= 4 and 0 <= x < width and self.duration > 0:
            self.post_message(self.Seek(self.duration * x / (width - 1)))
