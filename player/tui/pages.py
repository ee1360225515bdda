"""The rows of one query as a virtual list: pages fetched on demand into an LRU cache.

Toolong's shape for a huge file, with SQL in place of a log: a background scan finds the key
of every :data:`EVERY`-th row (the database numbers them, see :func:`query.anchors`), so any
row ``i`` is "anchor ``i // EVERY``, then ``i % EVERY`` rows on" - one short indexed read
whatever ``i``. Only the anchors (a few thousand keys for a million rows) and
:data:`CACHED_PAGES` pages of rows are ever in memory. The first page needs no anchors, so
the first paint never waits for the scan.

Every method that touches the database blocks: the widget calls them from worker threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sshrec.schema.db import reading

from ..query import Key, Query, all_matching, anchors, count_from, page_after, sessions_estimate

PAGE = 100  # rows fetched at once
EVERY = 500  # rows between anchors
SCAN_ANCHORS = 200  # anchors found per scan step (100k rows)
CACHED_PAGES = 40
SPARSE = 0.02  # a query matching fewer than this share of all sessions reads by its own index


class SessionPages:
    def __init__(self, engine: sa.Engine, query: Query, page: int = PAGE, every: int = EVERY,
                 cached: int = CACHED_PAGES) -> None:
        self.engine = engine
        self.query = query
        self.page = page
        self.every = every
        self.cached = cached
        self.anchors: list[Key] = []
        self.total: int | None = None  # known once the scan is complete
        self.by_time_index = True  # see query.page_after; decided when the total is known
        self._pages: OrderedDict[int, list[tuple[Key, dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()

    # -- what the widget asks (never blocks) ---------------------------------------------------

    @property
    def known_rows(self) -> int:
        """Rows known to exist: the total, or a lower bound while the scan runs."""
        if self.total is not None:
            return self.total
        with self._lock:
            loaded = max((n * self.page + len(rows) for n, rows in self._pages.items()), default=0)
        return max(loaded, (len(self.anchors) - 1) * self.every + 1 if self.anchors else 0)

    def row(self, number: int) -> dict[str, Any] | None:
        """Row ``number`` (0: the newest) if its page is in the cache."""
        with self._lock:
            rows = self._pages.get(number // self.page)
            if rows is None:
                return None
            self._pages.move_to_end(number // self.page)
        at = number % self.page
        return rows[at][1] if at < len(rows) else None

    def fetchable(self, page: int) -> bool:
        """Whether ``page`` can be read now (its anchor is known, or it needs none)."""
        first = page * self.page
        return first < self.every or first // self.every < len(self.anchors)

    def cached_page(self, page: int) -> bool:
        with self._lock:
            return page in self._pages

    # -- reading (blocks) ------------------------------------------------------------------

    def fetch(self, page: int) -> None:
        first = page * self.page
        anchor_number, skip = divmod(first, self.every)
        with reading(self.engine) as connection:
            if anchor_number == 0:
                rows = page_after(connection, self.query, None, self.page, skip)
            else:
                rows = page_after(connection, self.query, self.anchors[anchor_number], self.page, skip,
                                  inclusive=True, by_time_index=self.by_time_index)
        with self._lock:
            self._pages[page] = rows
            self._pages.move_to_end(page)
            while len(self._pages) > self.cached:
                self._pages.popitem(last=False)
        if page == 0 and len(rows) < self.page:
            self.total = len(rows)  # everything fits in the first page: no scan needed

    def scan_step(self) -> bool:
        """Find the next anchors; True when the scan is complete (``total`` is then set)."""
        if self.total is not None:
            return True
        start = self.anchors[-1] if self.anchors else None
        with reading(self.engine) as connection:
            found = anchors(connection, self.query, self.every, start, SCAN_ANCHORS + 1)
            if start is not None:
                found = found[1:]  # the start itself
            with self._lock:
                self.anchors.extend(found)
            if len(found) >= SCAN_ANCHORS:
                return False
            if not self.anchors:
                self.total = 0
            else:
                tail = count_from(connection, self.query, self.anchors[-1], self.every)
                self.total = (len(self.anchors) - 1) * self.every + tail
                self.by_time_index = self.total >= SPARSE * sessions_estimate(connection)
        return True

    def all_rows(self) -> Iterator[dict[str, Any]]:
        """Every matching row, newest first, a page at a time (for "export all")."""
        with reading(self.engine) as connection:
            yield from all_matching(connection, self.query)
