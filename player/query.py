"""Finding sessions in the index: the filters of ``sshrec ls`` and full-text ``search``.

Every filter maps onto an index that ends in (started_at, pk), so "newest first, first N"
walks an index instead of sorting the table. Text that is matched as a prefix (``--key``,
and ``--user``/``--destination``/``--client`` ending in ``*``) becomes a byte range, which
both back ends answer from a btree (those columns compare bytewise in PostgreSQL too).

``--command`` is a substring match; three or more characters go through a trigram index
(SQLite FTS5 ``trigram``, PostgreSQL ``pg_trgm``), shorter ones scan. Search matches words
(see :mod:`sshrec.schema.screentext`): all of them within one stretch of screen text, or
with ``phrase`` next to each other in order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sshrec.schema.record import MODES, STATUSES
from sshrec.schema.screentext import Chunk, first_match, words
from sshrec.schema.tables import RECORD_COLUMNS, parse_timestamp, screen_text, session_targets, sessions

DEFAULT_LIMIT = 50
FEW_MATCHES = 2000  # SQLite: up to this many text matches, start from the matches
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class QueryError(ValueError):
    """A filter value that cannot be understood; the message says what is expected."""


@dataclass
class Filters:
    user: str | None = None
    key: str | None = None
    command: str | None = None
    destination: str | None = None
    client: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: list[str] = field(default_factory=list)
    exit: str | None = None
    mode: list[str] = field(default_factory=list)
    connection: str | None = None
    file: str | None = None
    host: str | None = None
    limit: int = DEFAULT_LIMIT


def parse_when(text: str, now: datetime | None = None, end_of_day: bool = False) -> datetime:
    """``2h``/``3d``/``1w2d`` ago, or an ISO date/time (UTC unless it names a zone).

    A bare date means the start of that day, or its end when ``end_of_day`` (for --until).
    """
    value = text.strip()
    now = now or datetime.now(UTC)
    pieces = _RELATIVE.findall(value)
    if pieces and "".join(_RELATIVE.sub("", value).split()) == "":
        seconds = sum(float(amount) * _UNITS[unit.lower()] for amount, unit in pieces)
        return now - timedelta(seconds=seconds)
    try:
        if len(value) == 10:  # YYYY-MM-DD
            day = datetime.fromisoformat(value).date()
            moment = datetime.combine(day, time.min, UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        return parse_timestamp(value)
    except ValueError:
        raise QueryError(
            f"{text!r} is not a time: use an age like 30m, 2h, 3d, 1w "
            "or an ISO date/time like 2024-05-01 or 2024-05-01T13:45Z"
        ) from None


def parse_statuses(text: str) -> list[str]:
    statuses = [s.strip() for s in text.split(",") if s.strip()]
    for status in statuses:
        if status not in STATUSES:
            raise QueryError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
    return statuses


def _after(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _text_filter(column: sa.ColumnElement[Any], value: str) -> sa.ColumnElement[bool]:
    """Exact match, or a prefix match when ``value`` ends in ``*``."""
    if value.endswith("*") and len(value) > 1:
        prefix = value[:-1]
        return sa.and_(column >= prefix, column < _after(prefix))
    return column == value


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_rowids(connection: sa.Connection, table: str, match: str, cap: int) -> list[int] | None:
    """Rowids an SQLite FTS5 query matches, or None when there are more than ``cap``.

    SQLite has no statistics for full-text tables, so it cannot choose between "fetch the
    matches, then sort them by time" (right for few matches) and "walk sessions newest
    first, keep those that match" (right for many). Asking for at most ``cap`` matches
    costs little either way and tells which one it is.
    """
    found = (
        connection.execute(
            sa.text(f"SELECT rowid FROM {table} WHERE {table} MATCH :match LIMIT :cap"),
            {"match": match, "cap": cap + 1},
        )
        .scalars()
        .all()
    )
    return None if len(found) > cap else list(found)


def command_filter(connection: sa.Connection, text: str) -> sa.ColumnElement[bool]:
    """``text`` anywhere in original_command or command, ignoring case."""
    like = sessions.c.command_text.ilike(f"%{_like_escape(text)}%", escape="\\")
    if connection.dialect.name != "sqlite" or len(text) < 3:
        return like  # PostgreSQL: pg_trgm serves ILIKE, and the planner has statistics
    phrase = '"' + text.replace('"', '""') + '"'  # trigram phrase: the substring itself
    rowids = _fts_rowids(connection, "command_fts", phrase, FEW_MATCHES)
    return like if rowids is None else sessions.c.pk.in_(rowids)


def conditions(filters: Filters, connection: sa.Connection) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    c = sessions.c
    if filters.user:
        where.append(_text_filter(c.user, filters.user))
    if filters.key:
        key = filters.key.rstrip("*")
        if ":" not in key:
            key = "SHA256:" + key  # what ssh-keygen -l prints, without the algorithm tag
        where.append(sa.and_(c.key_fingerprint >= key, c.key_fingerprint < _after(key)))
    if filters.command:
        where.append(command_filter(connection, filters.command))
    if filters.destination:
        where.append(_reached("dest", _text_filter(session_targets.c.value, filters.destination)))
    if filters.file:
        where.append(_reached("file", _glob_filter(session_targets.c.value, filters.file)))
    if filters.mode:
        where.append(c.mode.in_(filters.mode))
    if filters.connection:
        where.append(_text_filter(c.connection_id, filters.connection))
    if filters.host:
        where.append(_text_filter(c.host, filters.host))
    if filters.client:
        where.append(_text_filter(c.client_addr, filters.client))
    if filters.since:
        where.append(c.started_at >= filters.since)
    if filters.until:
        where.append(c.started_at < filters.until)
    if filters.status:
        where.append(c.status.in_(filters.status))
    if filters.exit is not None:
        where.append(_exit_filter(filters.exit))
    return where


def _reached(kind: str, condition: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """Sessions with a destination (or transferred path) that matches: any of them, not only
    the first (a jump-host shell that visited three hosts matches each)."""
    matching = sa.select(session_targets.c.session_id).where(session_targets.c.kind == kind, condition)
    return sessions.c.id.in_(matching)


def _glob_filter(column: sa.ColumnElement[Any], pattern: str) -> sa.ColumnElement[bool]:
    """Shell-style ``*`` and ``?``; a pattern without them is exact, one ending in ``*`` a prefix."""
    body = pattern.rstrip("*")
    if "*" not in body and "?" not in body:
        return _text_filter(column, pattern)
    like = "".join("%" if ch == "*" else "_" if ch == "?" else _like_escape(ch) for ch in pattern)
    return column.like(like, escape="\\")


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise QueryError(f"unknown mode {mode!r}; one of: {', '.join(MODES)}")
    return modes


def parse_exit(value: str) -> str:
    """``nonzero`` (exit status other than 0, or killed by a signal) or a number."""
    word = value.strip().lower()
    if word in ("nonzero", "!0"):
        return "nonzero"
    try:
        return str(int(word))
    except ValueError:
        raise QueryError(f"--exit wants a number or 'nonzero', not {value!r}") from None


def _exit_filter(value: str) -> sa.ColumnElement[bool]:
    if parse_exit(value) == "nonzero":
        return sa.or_(
            sa.and_(sessions.c.exit_status.is_not(None), sessions.c.exit_status != 0),
            sessions.c.exit_signal.is_not(None),
        )
    return sessions.c.exit_status == int(value)


def _record_columns() -> list[sa.ColumnElement[Any]]:
    return [sessions.c[name] for name in RECORD_COLUMNS]


def row_to_record(row: sa.Row[Any]) -> dict[str, Any]:
    """A result row as the session record (field names and JSON-ready values)."""
    record = {name: row._mapping[name] for name in RECORD_COLUMNS}
    record["command"] = record["command"] or []
    record["notes"] = record["notes"] or []
    return record


def _newest_first(query: sa.Select[Any], limit: int) -> sa.Select[Any]:
    query = query.order_by(sessions.c.started_at.desc(), sessions.c.pk.desc())
    return query.limit(limit + 1) if limit > 0 else query


@dataclass
class Page:
    """Up to ``limit`` results; ``more`` says whether the limit cut the list short."""

    items: list[dict[str, Any]]
    more: bool


def list_sessions(connection: sa.Connection, filters: Filters) -> Page:
    """Sessions matching ``filters``, newest first.

    With a limit, the newest keys are found first and only those rows are read ("deferred
    join"): when a filter's index holds (started_at, pk) the search for them never touches
    the table, e.g. ``--user 'ops*'`` over ten thousand sessions reads fifty rows, not all.
    """
    where = conditions(filters, connection)
    if filters.limit > 0:
        newest = _newest_first(sa.select(sessions.c.pk).where(*where), filters.limit)
        where = [sessions.c.pk.in_(newest.scalar_subquery())]
    query = _newest_first(sa.select(*_record_columns()).where(*where), 0)
    items = [row_to_record(row) for row in connection.execute(query)]
    return _page(items, filters.limit)


def _page(items: list[dict[str, Any]], limit: int) -> Page:
    if limit > 0 and len(items) > limit:
        return Page(items[:limit], True)
    return Page(items, False)


def get_session(connection: sa.Connection, session_id: str) -> dict[str, Any] | None:
    row = connection.execute(sa.select(*_record_columns()).where(sessions.c.id == session_id)).first()
    return row_to_record(row) if row is not None else None


@dataclass(frozen=True)
class SearchText:
    """What to look for: folded words, all required; ``phrase`` wants them adjacent in order."""

    words: tuple[str, ...]
    phrase: bool = False

    @classmethod
    def parse(cls, text: str, phrase: bool = False) -> SearchText:
        found = tuple(words(text))
        if not found:
            raise QueryError(f"{text!r} has no words to search for (letters or digits)")
        return cls(found, phrase)

    def fts5(self) -> str:
        """SQLite FTS5 query; words are letters and digits only, so quoting is safe."""
        if self.phrase:
            return '"' + " ".join(self.words) + '"'
        return " ".join(f'"{w}"' for w in self.words)

    def tsquery(self) -> sa.ColumnElement[Any]:
        function = sa.func.phraseto_tsquery if self.phrase else sa.func.plainto_tsquery
        return function(sa.literal_column("'simple'::regconfig"), " ".join(self.words))


def _sqlite_matching(connection: sa.Connection, query: SearchText) -> sa.ColumnElement[bool]:
    """Sessions with a matching chunk: an id list when matches are few, else a probe."""
    rowids = _fts_rowids(connection, "screen_fts", query.fts5(), FEW_MATCHES)
    if rowids is not None:
        ids = connection.execute(
            sa.select(screen_text.c.session_id).where(screen_text.c.pk.in_(rowids)).distinct()
        ).scalars()
        return sessions.c.id.in_(list(ids))
    matching = sa.text("SELECT rowid FROM screen_fts WHERE screen_fts MATCH :fts_query")
    return sa.exists().where(
        screen_text.c.session_id == sessions.c.id,
        screen_text.c.pk.in_(matching.bindparams(fts_query=query.fts5())),
    )


def _postgres_matching(query: SearchText) -> sa.ColumnElement[bool]:
    return sa.exists().where(
        screen_text.c.session_id == sessions.c.id,
        sa.literal_column("screen_text.tsv").op("@@")(query.tsquery()),
    )


def _first_chunks(connection: sa.Connection, query: SearchText, ids: list[str]) -> dict[str, int]:
    """For each session, the key (pk) of its first chunk that matches."""
    if not ids:
        return {}
    select = sa.select(screen_text.c.session_id, screen_text.c.chunk, screen_text.c.pk).where(
        screen_text.c.session_id.in_(ids)
    )
    if connection.dialect.name == "postgresql":
        select = select.where(sa.literal_column("screen_text.tsv").op("@@")(query.tsquery()))
        candidates = connection.execute(select).all()
    else:
        candidates = connection.execute(select).all()
        probe = sa.text(
            "SELECT rowid FROM screen_fts WHERE screen_fts MATCH :fts_query AND rowid IN :pks"
        ).bindparams(sa.bindparam("pks", expanding=True))
        pks = [row.pk for row in candidates]
        matching = set(connection.execute(probe, {"fts_query": query.fts5(), "pks": pks}).scalars())
        candidates = [row for row in candidates if row.pk in matching]
    first: dict[str, tuple[int, int]] = {}
    for session_id, chunk, pk in candidates:
        if session_id not in first or chunk < first[session_id][0]:
            first[session_id] = (chunk, pk)
    return {session_id: pk for session_id, (_, pk) in first.items()}


def search_sessions(connection: sa.Connection, query: SearchText, filters: Filters, context: int = 40) -> Page:
    """Sessions whose screen text matches, newest first, each with ``match_time`` (seconds
    from the start of the session to the first match) and ``match_text`` (around it)."""
    if connection.dialect.name == "postgresql":
        # Screen text lives out of line (TOAST), so a sequential scan of screen_text looks
        # cheap to the planner while it really unpacks every tsvector: 0.15 s instead of
        # 8 ms at 10k sessions, growing with the table. Index paths only, for this query.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        matching = _postgres_matching(query)
    else:
        matching = _sqlite_matching(connection, query)
    where = [matching, *conditions(filters, connection)]
    select = _newest_first(sa.select(*_record_columns()).where(*where), filters.limit)
    page = _page([row_to_record(row) for row in connection.execute(select)], filters.limit)
    chunks = _first_chunks(connection, query, [r["id"] for r in page.items])
    texts = _chunk_texts(connection, list(chunks.values()))
    for record in page.items:
        text, marks = texts.get(chunks.get(record["id"], -1), ("", []))
        record.update(locate(text, marks, query, context))
    return page


def _chunk_texts(connection: sa.Connection, pks: list[int]) -> dict[int, tuple[str, list[list[int]]]]:
    if not pks:
        return {}
    rows = connection.execute(
        sa.select(screen_text.c.pk, screen_text.c.text, screen_text.c.marks).where(screen_text.c.pk.in_(pks))
    )
    return {pk: (text, json.loads(marks)) for pk, text, marks in rows}


def locate(text: str, marks: list[list[int]], query: SearchText, context: int) -> dict[str, Any]:
    """The time and surrounding text of the first match in one chunk."""
    chunk = Chunk(0, text, [(int(o), int(ms)) for o, ms in marks])
    match = first_match(text, list(query.words), query.phrase)
    if match is None:  # the back end folds a little differently; the chunk start is close
        return {"match_time": chunk.time, "match_text": " ".join(text[: 2 * context].split())}
    before = text[max(0, match.offset - context) : match.offset]
    after = text[match.end : match.end + context]
    snippet = " ".join(before.split()[-8:] + [text[match.offset : match.end]] + after.split()[:8])
    return {"match_time": round(chunk.time_at(match.offset), 3), "match_text": snippet}
