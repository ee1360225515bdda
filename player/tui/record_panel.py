"""The session record, every field, escaped: the side panel of both screens."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from .cells import escaped


def record_text(record: dict[str, Any] | None) -> Text:
    text = Text()
    if record is None:
        text.append("no session selected", style="dim")
        return text
    for name, value in record.items():
        if name.startswith("match_"):
            continue
        text.append(f"{name}: ", style="bold")
        text.append(escaped(value) + "\n")
    return text


class RecordPanel(VerticalScroll, can_focus=False):
    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(record_text(None), id="record-text")

    def show(self, record: dict[str, Any] | None) -> None:
        self.query_one("#record-text", Static).update(record_text(record))
