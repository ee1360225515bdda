"""Text for the screen: escaped record values and emulator pens as Rich styles.

Everything a user could have typed (commands, destinations, notes, file names) goes through
:func:`~sshrec.schema.safe_text.visible` and then into a ``Segment`` or ``Text`` directly,
never through Textual markup: a user's ``[bold]`` or ``ESC ] 52`` stays literal text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rich.color import Color
from rich.style import Style
from sshrec.schema.safe_text import visible

from ..emulator import Pen
from ..play import clock

STYLE_CACHE = 1024


def escaped(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list):
        return " ".join(visible(str(v)) for v in value)
    return visible(str(value))


def _color(value: int | tuple[int, int, int] | None) -> Color | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        return Color.from_rgb(*value)
    return Color.from_ansi(value)


@lru_cache(maxsize=STYLE_CACHE)
def pen_style(pen: Pen) -> Style:
    """The Rich style that draws cells with ``pen``."""
    return Style(color=_color(pen.fg), bgcolor=_color(pen.bg), bold=pen.bold or None, dim=pen.faint or None,
                 italic=pen.italic or None, underline=pen.underline or None, strike=pen.strike or None,
                 blink=pen.blink or None, reverse=pen.inverse or None)


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else clock(seconds)


def short_key(fingerprint: Any) -> str:
    """``SHA256:nThbg6kX…``: enough to tell keys apart in a column."""
    if not fingerprint:
        return "-"
    text = visible(str(fingerprint))
    _, _, body = text.partition(":")
    return (body or text)[:8]


def command_of(record: dict[str, Any]) -> str:
    if record.get("original_command"):
        return visible(str(record["original_command"]))
    command = record.get("command") or []
    return " ".join(visible(str(a)) for a in command) if command else "(login shell)"
