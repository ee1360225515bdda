"""``sshrec tui``: find a session in the index, replay it, export or verify what was found.

The search bar takes the query language of :func:`sshrec.player.query.parse_query` (the same
as ``sshrec export --query``); results are a keyset-paged virtual table over SQL; Enter opens
the replay screen.
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Input, Label

from ..locate import NotFound, cast_of
from ..query import Query, QueryError, SearchText, match_times, parse_query
from .cells import escaped
from .help import HelpScreen
from .jobs import JobScreen
from .pages import SessionPages
from .record_panel import RecordPanel
from .replay_screen import ReplayScreen
from .results import ResultsTable

W = TypeVar("W", bound=Widget)
DEBOUNCE = 0.15  # seconds after the last key before the results follow the search bar
RESULTS_ACTIONS = frozenset({"search", "export", "verify", "connection", "record"})
PLACEHOLDER = "search: words on screen, user:alice since:2d cmd:sudo exit:nonzero ... (? for help)"


class SshrecApp(App[None]):
    """The auditor's app over one index (``engine``) and the spools of ``settings``; ``owner``
    (a user of a shared spool who is not root) sees only their own sessions."""

    CSS_PATH = "app.tcss"
    TITLE = "sshrec"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key, listed in the footer
    BINDINGS = [
        Binding("slash", "search", "search"),
        Binding("x", "export(False)", "export", group=Binding.Group("export")),
        Binding("X", "export(True)", "all", group=Binding.Group("export")),
        Binding("v", "verify(False)", "verify", group=Binding.Group("verify")),
        Binding("V", "verify(True)", "all", group=Binding.Group("verify")),
        Binding("c", "connection", "conn"),
        Binding("i", "record", "info"),
        Binding("question_mark,f1", "help", "help", key_display="?"),
        Binding("ctrl+q", "quit", "quit"),
    ]

    query_text = reactive("", init=False)

    def __init__(self, engine: sa.Engine, settings: Any, initial_query: str = "",
                 owner: str | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.initial_query = initial_query
        self.current: Query = parse_query("", limit=0)
        self.current_text = ""  # the search bar text the results are of
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="search-area"):
            yield Input(self.initial_query, placeholder=PLACEHOLDER, id="search")
            yield Label("", id="message")
        with Horizontal(id="main"):
            yield ResultsTable(id="results")
            panel = RecordPanel(id="record")
            panel.display = False
            yield panel
        yield Label("", id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.part("#search", Input).focus()
        self.run_query(self.initial_query)

    def part(self, selector: str, kind: type[W]) -> W:
        """A widget of the results screen, whichever screen is on top (a replay, a panel)."""
        return self.screen_stack[0].query_one(selector, kind)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The results' keys only over the results (not in the replay or a panel)."""
        if action in RESULTS_ACTIONS:
            return self.screen is self.screen_stack[0]
        return True

    # -- searching -----------------------------------------------------------------------------

    def run_query(self, text: str) -> None:
        """Parse the search bar and show its results; bad syntax is a message, never a crash."""
        message = self.part("#message", Label)
        try:
            query = parse_query(text, limit=0)  # the table pages through everything
            self._scope(query)
        except QueryError as exc:
            message.update(Text(escaped(str(exc)), style="bold red"))
            message.add_class("error")
            return
        message.remove_class("error")
        message.update("")
        if query == self.current and self.part("#results", ResultsTable).pages is not None:
            self.current_text = text  # the same results
            return
        self.current = query
        self.current_text = text
        self.part("#results", ResultsTable).show(SessionPages(self.engine, query))
        self._status()

    def _scope(self, query: Query) -> None:
        if self.owner is None:
            return
        if query.filters.user and query.filters.user != self.owner:
            raise QueryError(f"not permitted: as {self.owner} you can see only your own sessions; "
                             "other users' recordings are readable by root only")
        query.filters.user = self.owner

    @on(Input.Changed, "#search")
    def _typed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        value = event.value
        self._debounce = self.set_timer(DEBOUNCE, lambda: self.run_query(value))

    @on(Input.Submitted, "#search")
    def _submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self.run_query(event.value)
        if not self.part("#message", Label).has_class("error"):
            self.part("#results", ResultsTable).focus()

    def action_search(self) -> None:
        self.part("#search", Input).focus()

    # -- the results ---------------------------------------------------------------------------

    @on(ResultsTable.Moved)
    def _moved(self, event: ResultsTable.Moved) -> None:
        if self.screen_stack:  # not while the app is closing
            self.part("#record", RecordPanel).show(event.record)
            self._status()

    @on(ResultsTable.Counted)
    def _counted(self) -> None:
        if self.screen_stack:
            self._status()

    def _status(self) -> None:
        table = self.part("#results", ResultsTable)
        pages = table.pages
        if pages is None:
            return
        count = f"{pages.total:,}" if pages.total is not None else f"{pages.known_rows:,}+ (counting)"
        text = Text(f" {count} session(s)")
        if pages.total == 0 and self.current.empty:
            text.append("  the index has no sessions yet (recordings are added by: sshrec index)")
        if pages.known_rows:
            text.append(f"  row {table.cursor + 1:,}")
        record = table.selected
        if record is not None and record.get("match_text"):
            text.append(f"  first hit at {record['match_time']:.1f}s: ", style="bold")
            text.append(escaped(record.get("match_text")))
        elif record is not None and "match_time" in record:
            text.append("  the words are in its command", style="bold")
        self.part("#status", Label).update(text)

    @on(ResultsTable.Open)
    def _open(self, event: ResultsTable.Open) -> None:
        try:
            path = cast_of(event.record, self.settings)
        except NotFound as exc:
            self.notify(escaped(str(exc)), severity="error")
            return
        self.push_screen(ReplayScreen(event.record, path, self.current.text, self._hits))

    def _hits(self, session_id: str, text: SearchText) -> list[float]:
        from sshrec.schema.db import reading

        with reading(self.engine) as connection:
            return match_times(connection, session_id, text)

    def action_record(self) -> None:
        panel = self.part("#record", RecordPanel)
        panel.display = not panel.display

    def action_connection(self) -> None:
        record = self.part("#results", ResultsTable).selected
        connection_id = record.get("connection_id") if record else None
        if not connection_id:
            self.notify("this session has no connection id (recorded outside sshd, or by an older sshrec)",
                        severity="warning")
            return
        search = self.part("#search", Input)
        search.value = f"conn:{connection_id}"
        self.run_query(search.value)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # -- export and verify ---------------------------------------------------------------------

    def _selection(self, everything: bool) -> tuple[str, Any, dict[str, object]] | None:
        table = self.part("#results", ResultsTable)
        pages = table.pages
        record = table.selected
        if pages is None or (record is None and not everything):
            self.notify("no session selected", severity="warning")
            return None
        if everything:
            count = f"{pages.total:,}" if pages.total is not None else "all"
            text = self.part("#search", Input).value
            return (f"{count} session(s) matching: {escaped(text) or '(everything)'}", pages.all_rows,
                    {"query": text})
        return f"session {escaped(record['id'])}", lambda: [record], {"ids": [record["id"]]}  # type: ignore[index]

    def action_export(self, everything: bool) -> None:
        chosen = self._selection(everything)
        if chosen is not None:
            title, rows, selection = chosen
            self.push_screen(JobScreen("export", f"Export {title}", rows, self.settings, selection))

    def action_verify(self, everything: bool) -> None:
        chosen = self._selection(everything)
        if chosen is not None:
            title, rows, selection = chosen
            self.push_screen(JobScreen("verify", f"Verify {title}", rows, self.settings, selection))
