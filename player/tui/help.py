"""The help panel (``?`` or F1): the query syntax and every key."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..query import query_help

KEYS = (
    ("search bar", "type to narrow (as you type, and on Enter); Enter: to the results"),
    ("results", "↑ ↓ PgUp PgDn Home End move; Enter replay; x export this, X all matching;"
                " v verify this, V all; i the session record; / search; c same connection; ctrl+q quit"),
    ("replay", "space play/pause; ← → 5 s; Home End start/end; . step; [ ] markers; n N search hits;"
               " + - speed; f follow a live session; i the session record; shift+arrows scroll a"
               " recording larger than the pane; Esc back"),
)


def help_text() -> Text:
    text = Text()
    text.append("Search syntax (filters combine with AND; times are UTC)\n\n", style="bold")
    syntax = query_help()
    width = max(len(s) for s, _ in syntax) + 2
    for name, meaning in syntax:
        text.append(name.ljust(width), style="bold cyan")
        text.append(meaning + "\n")
    text.append("\nexample: ", style="bold")
    text.append("user:alice since:2d cmd:'rm -rf' exit:nonzero \"permission denied\"\n\n")
    text.append("Keys\n\n", style="bold")
    for where, keys in KEYS:
        text.append(where.ljust(12), style="bold cyan")
        text.append(keys + "\n")
    return text


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_text())

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
