"""The results table: a ScrollView drawing rows of :class:`SessionPages` with the line API.

Only visible lines are drawn; a line whose page is not cached yet is drawn as a placeholder
and its page is read in a worker thread, then the table refreshes. Scrolling to row 900,000
costs one page read, never the 899,999 rows before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from textual import work
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .cells import command_of, duration, escaped, short_key
from .pages import SessionPages

LIVE = "● live"
SCAN_DELAY = 0.4  # seconds a query must stay before its rows are counted (not while typing)


@dataclass(frozen=True)
class Column:
    title: str
    least: int


COLUMNS = (
    Column("STARTED (UTC)", 14), Column("USER", 8), Column("KEY", 8), Column("COMMAND", 12),
    Column("DESTINATION", 8), Column("TIME", 7), Column("EXIT", 4), Column("STATUS", 11),
)


GROWTH = ((3, 48), (0, 19), (1, 12), (4, 22), (7, 12), (5, 8), (6, 6))  # (column, up to): COMMAND first


def widths(total: int) -> list[int]:
    """Column widths for ``total`` cells: least first, the spare to COMMAND up to 48, then to the
    others up to their most, and what is left to COMMAND again."""
    sizes = [c.least for c in COLUMNS]
    spare = total - sum(sizes) - (len(COLUMNS) - 1)
    for column, most in GROWTH:
        grow = max(min(most - sizes[column], spare), 0)
        sizes[column] += grow
        spare -= grow
    sizes[3] += max(spare, 0)
    return sizes


def cells(record: dict[str, Any], started_width: int = 19) -> list[str]:
    started = str(record.get("started_at") or "-")[:19].replace("T", " ")
    if started_width < 19:
        started = started[5:]  # the year goes first when the screen is narrow
    status = LIVE if record.get("status") == "recording" else escaped(record.get("status"))
    exit_text = escaped(record.get("exit_signal") or record.get("exit_status"))
    return [started, escaped(record.get("user")), short_key(record.get("key_fingerprint")), command_of(record),
            escaped(record.get("destination")), duration(record.get("duration")), exit_text, status]


def fit(text: str, width: int) -> str:
    return text[: width - 1] + "…" if len(text) > width else text.ljust(width)


class ResultsTable(ScrollView, can_focus=True, inherit_bindings=False):
    """Sessions, newest first; Enter opens the one under the cursor."""

    BINDINGS = [
        Binding("enter", "open", "replay", priority=True),
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "move('-page')", "page up", show=False),
        Binding("pagedown", "move('page')", "page down", show=False),
        Binding("home", "jump(0)", "first", show=False),
        Binding("end", "jump(-1)", "last", show=False),
    ]

    cursor = reactive(0)

    class Open(Message):
        def __init__(self, record: dict[str, Any]) -> None:
            super().__init__()
            self.record = record

    class Moved(Message):
        def __init__(self, record: dict[str, Any] | None) -> None:
            super().__init__()
            self.record = record

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages: SessionPages | None = None
        self._asked: set[int] = set()

    # -- the data ------------------------------------------------------------------------------

    def show(self, pages: SessionPages) -> None:
        """Show another query's rows (the previous reads are abandoned)."""
        self.workers.cancel_group(self, "pages")
        self.pages = pages
        self._asked = set()
        self.cursor = 0
        self.scroll_to(0, 0, animate=False)
        self._resize()
        self._ask(0)
        self.set_timer(SCAN_DELAY, lambda: self._scan(pages) if pages is self.pages else None)

    @property
    def selected(self) -> dict[str, Any] | None:
        return self.pages.row(self.cursor) if self.pages else None

    def _resize(self) -> None:
        rows = self.pages.known_rows if self.pages else 0
        self.virtual_size = Size(0, rows + 1)  # no width of its own: never a horizontal scrollbar

    def _ask(self, page: int) -> None:
        pages = self.pages
        if pages is None or page in self._asked or pages.cached_page(page) or not pages.fetchable(page):
            return
        self._asked.add(page)
        self._fetch(pages, page)

    @work(thread=True, group="pages")
    def _fetch(self, pages: SessionPages, page: int) -> None:
        pages.fetch(page)
        self._tell(pages, page)

    @work(thread=True, group="pages")
    def _scan(self, pages: SessionPages) -> None:
        while pages is self.pages and not pages.scan_step():
            self._tell(pages, None)
        self._tell(pages, None)

    def _tell(self, pages: SessionPages, page: int | None) -> None:
        """From a worker thread: the rows arrived (unless the app closed meanwhile)."""
        if pages is self.pages:
            try:
                self.app.call_from_thread(self._arrived, pages, page)
            except RuntimeError:  # the app is no longer running
                pass

    def _arrived(self, pages: SessionPages, page: int | None) -> None:
        if pages is not self.pages:
            return
        if page is not None:
            self._asked.discard(page)
        self._resize()
        self.refresh()
        if page is not None and page == self.cursor // pages.page:
            self.post_message(self.Moved(self.selected))
        self.post_message(self.Counted())

    class Counted(Message):
        """The number of rows known changed."""

    # -- drawing -------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        sizes = widths(width)
        header = self.get_component_rich_style("results--header")
        if y == 0:
            text = " ".join(fit(c.title, w) for c, w in zip(COLUMNS, sizes, strict=True))
            return Strip([Segment(text, header)]).adjust_cell_length(width, header)
        number = int(self.scroll_offset.y) + y - 1
        pages = self.pages
        if pages is None or number >= pages.known_rows:
            return Strip.blank(width, self.rich_style)
        record = pages.row(number)
        if record is None:
            self._ask(number // pages.page)
            return Strip([Segment("…", self.rich_style)]).adjust_cell_length(width, self.rich_style)
        base = self.rich_style
        if number == self.cursor:
            base = self.get_component_rich_style("results--cursor" if self.has_focus else "results--selected")
        segments = []
        for i, (text, size) in enumerate(zip(cells(record, sizes[0]), sizes, strict=True)):
            style = base
            if i == 7 and text == LIVE:
                style = base + self.get_component_rich_style("results--live")
            segments.append(Segment(fit(text, size) + (" " if i < len(sizes) - 1 else ""), style))
        return Strip(segments).crop(0, width).adjust_cell_length(width, base)

    COMPONENT_CLASSES = {"results--header", "results--cursor", "results--selected", "results--live"}

    # -- moving --------------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        if self.pages is not None:
            self._ask(new // self.pages.page)  # now, not when the next frame is drawn
        top = int(self.scroll_offset.y)
        visible_rows = max(self.scrollable_content_region.height - 1, 1)  # under the header
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible_rows:
            self.scroll_to(y=new - visible_rows + 1, animate=False)
        self.refresh()
        self.post_message(self.Moved(self.selected))

    def action_move(self, step: str | int) -> None:
        amount = max(self.scrollable_content_region.height - 2, 1) if step in ("page", "-page") else int(step)
        if step == "-page":
            amount = -amount
        self._go(self.cursor + amount)

    def action_jump(self, where: int) -> None:
        last = (self.pages.known_rows if self.pages else 1) - 1
        self._go(last if where < 0 else where)

    def _go(self, number: int) -> None:
        last = (self.pages.known_rows if self.pages else 1) - 1
        self.cursor = max(0, min(number, last))

    def action_open(self) -> None:
        record = self.selected
        if record is not None:
            self.post_message(self.Open(record))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_resize(self) -> None:
        self._resize()

    def on_click(self, event: Any) -> None:
        if event.y >= 1:
            self._go(int(self.scroll_offset.y) + event.y - 1)
