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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sshrec.schema.record import MODES, STATUSES
from sshrec.schema.screentext import Chunk, first_match, words
from sshrec.schema.tables import (
    RECORD_COLUMNS,
    parse_timestamp,
    screen_text,
    session_commands,
    session_targets,
    sessions,
)

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
    typed: str | None = None
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
    if filters.mode:
        where.append(c.mode.in_(filters.mode))
    if filters.connection:
        where.append(_text_filter(c.connection_id, filters.connection))
    if filters.typed:
        where.append(sessions.c.id.in_(sa.select(session_commands.c.session_id).where(_typed(filters.typed))))
    return where


def _typed(text: str) -> sa.ColumnElement[bool]:
    return session_commands.c.command.ilike(f"%{_like_escape(text)}%", escape="\\")


def typed_matches(connection: sa.Connection, ids: list[str], text: str, per_session: int = 5
                  ) -> dict[str, list[dict[str, Any]]]:
    """For each session, its commands that ``--typed`` matched, with their times."""
    if not ids:
        return {}
    rows = connection.execute(sa.select(session_commands.c.session_id, session_commands.c.time,
                                        session_commands.c.command)
                              .where(session_commands.c.session_id.in_(ids), _typed(text))
                              .order_by(session_commands.c.session_id, session_commands.c.time))
    found: dict[str, list[dict[str, Any]]] = {}
    for session_id, at, command in rows:
        items = found.setdefault(session_id, [])
        if len(items) < per_session:
            items.append({"time": round(at, 3), "command": command})
    return found


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


def parse_exit(value: str) -> str:
    """``nonzero`` (exit status other than 0, or killed by a signal) or a number."""
    word = value.strip().lower()
    if word in ("nonzero", "!0"):
        return "nonzero"
    try:
        return str(int(word))
    except ValueError:
        raise QueryError(f"--exit wants a number or 'nonzero', not {value!r}") from None


def parse_modes(text: str) -> list[str]:
    modes = [m.strip().lower() for m in text.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise QueryError(f"unknown mode {mode!r}; one of: {', '.join(MODES)}")
    return modes


def parse_limit(value: str) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        raise QueryError(f"limit wants a number (0: all), not {value!r}") from None


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
    if filters.typed:
        matches = typed_matches(connection, [r["id"] for r in items], filters.typed)
        for item in items:
            item["typed_match"] = matches.get(item["id"], [])
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


def _matching_chunks(connection: sa.Connection, query: SearchText, ids: list[str]
                     ) -> list[tuple[str, int, int]]:
    """(session id, chunk number, pk) of every chunk of these sessions that matches."""
    if not ids:
        return []
    select = sa.select(screen_text.c.session_id, screen_text.c.chunk, screen_text.c.pk).where(
        screen_text.c.session_id.in_(ids)
    )
    if connection.dialect.name == "postgresql":
        select = select.where(sa.literal_column("screen_text.tsv").op("@@")(query.tsquery()))
        return [tuple(row) for row in connection.execute(select)]  # type: ignore[misc]
    candidates = connection.execute(select).all()
    probe = sa.text(
        "SELECT rowid FROM screen_fts WHERE screen_fts MATCH :fts_query AND rowid IN :pks"
    ).bindparams(sa.bindparam("pks", expanding=True))
    pks = [row.pk for row in candidates]
    matching = set(connection.execute(probe, {"fts_query": query.fts5(), "pks": pks}).scalars())
    return [tuple(row) for row in candidates if row.pk in matching]  # type: ignore[misc]


def _first_chunks(connection: sa.Connection, query: SearchText, ids: list[str]) -> dict[str, int]:
    """For each session, the key (pk) of its first chunk that matches."""
    first: dict[str, tuple[int, int]] = {}
    for session_id, chunk, pk in _matching_chunks(connection, query, ids):
        if session_id not in first or chunk < first[session_id][0]:
            first[session_id] = (chunk, pk)
    return {session_id: pk for session_id, (_, pk) in first.items()}


def text_matching(connection: sa.Connection, query: SearchText) -> sa.ColumnElement[bool]:
    """The condition "this session's screen text matches ``query``"."""
    if connection.dialect.name == "postgresql":
        # Screen text lives out of line (TOAST), so a sequential scan of screen_text looks
        # cheap to the planner while it really unpacks every tsvector: 0.15 s instead of
        # 8 ms at 10k sessions, growing with the table. Index paths only, for this query.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return _postgres_matching(query)
    return _sqlite_matching(connection, query)


def search_sessions(connection: sa.Connection, query: SearchText, filters: Filters, context: int = 40) -> Page:
    """Sessions whose screen text matches, newest first, each with ``match_time`` (seconds
    from the start of the session to the first match) and ``match_text`` (around it)."""
    where = [text_matching(connection, query), *conditions(filters, connection)]
    select = _newest_first(sa.select(*_record_columns()).where(*where), filters.limit)
    page = _page([row_to_record(row) for row in connection.execute(select)], filters.limit)
    annotate_matches(connection, query, page.items, context)
    return page


def annotate_matches(connection: sa.Connection, query: SearchText, items: list[dict[str, Any]],
                     context: int = 40) -> None:
    """Add ``match_time`` and ``match_text`` (the first match) to each record in ``items``."""
    chunks = _first_chunks(connection, query, [r["id"] for r in items])
    texts = _chunk_texts(connection, list(chunks.values()))
    for record in items:
        text, marks = texts.get(chunks.get(record["id"], -1), ("", []))
        record.update(locate(text, marks, query, context))


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


# -- the query language: one parser for the TUI's search bar and `sshrec export --query` ------


@dataclass(frozen=True)
class QueryField:
    """One ``name:value`` filter. ``attr`` is the :class:`Filters` field it sets."""

    names: tuple[str, ...]
    attr: str
    parse: Callable[[str], Any]
    help: str


QUERY_FIELDS: tuple[QueryField, ...] = (
    QueryField(("user",), "user", str, "user name; alice* for a prefix"),
    QueryField(("key",), "key", str, "key fingerprint or a prefix of it (SHA256:...)"),
    QueryField(("cmd", "command"), "command", str, "text anywhere in the command, any case"),
    QueryField(("dest", "destination"), "destination", str, "destination host[:port]; db-* for a prefix"),
    QueryField(("from", "client"), "client", str, "client address; 10.1.* for a prefix"),
    QueryField(("since",), "since", parse_when, "started at or after: 2h, 3d, 1w, 2024-05-01"),
    QueryField(("until",), "until", lambda v: parse_when(v, end_of_day=True),
               "started before (a date: its end)"),
    QueryField(("exit",), "exit", parse_exit, "exit status N, or nonzero"),
    QueryField(("status",), "status", parse_statuses, f"{', '.join(STATUSES)} (comma-separated)"),
    QueryField(("mode",), "mode", parse_modes, f"{', '.join(MODES)} (comma-separated)"),
    QueryField(("file",), "file", str, "a path a transfer read or wrote; * and ? as in the shell"),
    QueryField(("conn", "connection"), "connection", str, "the SSH connection id (sessions of one connection)"),
    QueryField(("typed",), "typed", str, "a command run in the session contains this text (any case)"),
    QueryField(("host",), "host", str, "the host that recorded it (a fleet index); web-* for a prefix"),
    QueryField(("limit",), "limit", parse_limit, "at most N sessions (0: all)"),
)
_FIELD_BY_NAME = {name: f for f in QUERY_FIELDS for name in f.names}
# The options of `sshrec ls`/`search` that are filters: named like the Filters attributes.
FILTER_OPTIONS = ("user", "key", "command", "destination", "client", "since", "until", "status", "exit", "mode",
                  "connection", "file", "typed", "host")
_TOKEN = re.compile(
    r"""\s*(?:(?P<name>[A-Za-z_]+)(?P<sep>[:=])(?P<value>"[^"]*"?|'[^']*'?|\S*)"""
    r"""|(?P<quoted>"[^"]*"?|'[^']*'?)|(?P<word>\S+))"""
)


@dataclass
class Query:
    """What a search bar or ``--query`` asks for: filters, and screen text when there is any."""

    filters: Filters
    text: SearchText | None = None

    @property
    def empty(self) -> bool:
        return self.text is None and self.filters == Filters(limit=self.filters.limit)


def _unquote(value: str, whole: str) -> str:
    if value and value[0] in "\"'":
        if len(value) < 2 or value[-1] != value[0]:
            raise QueryError(f"{whole!r}: the quote is not closed")
        return value[1:-1]
    return value


def build_filters(values: dict[str, str | None], limit: int = DEFAULT_LIMIT) -> Filters:
    """Filters from raw values keyed by field name (what the command-line options hold)."""
    filters = Filters(limit=limit)
    for name, raw in values.items():
        spec = _FIELD_BY_NAME.get(name)
        if spec is None:
            known = " ".join(f"{f.names[0]}:" for f in QUERY_FIELDS)
            raise QueryError(f"unknown filter {name!r}; known: {known} (quote text that contains a colon)")
        if raw is None:
            continue
        if not raw.strip():
            raise QueryError(f"{spec.names[0]}: needs a value, e.g. {spec.names[0]}:{_EXAMPLES[spec.attr]}")
        setattr(filters, spec.attr, spec.parse(raw))
    return filters


_EXAMPLES = {"user": "alice", "key": "SHA256:nThb", "command": "'rm -rf'", "destination": "db-1:5432",
             "client": "10.0.*", "since": "2d", "until": "2024-05-01", "exit": "nonzero",
             "status": "interrupted", "mode": "pty", "file": "/etc/passwd", "connection": "01J...",
             "typed": "sudo", "host": "bastion-1",
             "limit": "100"}


def parse_query(text: str, limit: int = DEFAULT_LIMIT) -> Query:
    """``user:alice since:2d cmd:"rm -rf" permission denied`` -> filters and screen text.

    ``name=value`` means the same as ``name:value`` (the form ``sshrec export --query`` has
    always taken); quote values with spaces. Words that are not filters are searched for in
    the screen text (all of them); quoted text is a phrase.
    """
    values: dict[str, str | None] = {}
    words: list[str] = []
    phrase = False
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        if match.group("name") is not None:
            name = match.group("name").lower()
            if name not in _FIELD_BY_NAME:
                build_filters({name: ""})  # raises with the list of known names
            values[_FIELD_BY_NAME[name].names[0]] = _unquote(match.group("value"), match.group().strip())
        elif match.group("quoted") is not None:
            words.append(_unquote(match.group("quoted"), match.group("quoted")))
            phrase = True
        else:
            words.append(match.group("word"))
    limit_value = values.pop("limit", None)
    filters = build_filters(values, parse_limit(limit_value) if limit_value is not None else limit)
    search = SearchText.parse(" ".join(words), phrase and len(words) == 1) if words else None
    return Query(filters, search)


def query_help() -> list[tuple[str, str]]:
    """(syntax, meaning) lines for a help panel."""
    lines = [(" ".join(f"{n}:" for n in f.names), f.help)
             for f in QUERY_FIELDS]
    lines.append(("words", "screen text containing every word (any case, accents ignored)"))
    lines.append(('"two words"', "the words next to each other, in order"))
    lines.append(("name=value", "the same as name:value; quote values with spaces: cmd:'rm -rf'"))
    return lines


# -- keyset pages: a virtual list over millions of rows, a page at a time ----------------------

Key = tuple[str, int]  # (started_at as the record writes it, pk): the position of a row


def where_for(connection: sa.Connection, query: Query) -> list[sa.ColumnElement[bool]]:
    """The conditions of a whole query: its filters, and for its words "on the screen or in the
    command" (every word in the command, or the phrase as it is)."""
    where = conditions(query.filters, connection)
    if query.text is not None:
        where.insert(0, _screen_or_command(connection, query.text))
    return where


def _screen_or_command(connection: sa.Connection, text: SearchText) -> sa.ColumnElement[bool]:
    words = [" ".join(text.words)] if text.phrase else list(text.words)
    screen = text_matching(connection, text)
    command = sa.and_(*(command_filter(connection, word) for word in words))
    if connection.dialect.name == "postgresql":
        # An OR walks the sessions newest first checking both: right when matches are many,
        # a full walk when they are few. Few: the ids each index (tsvector GIN, trigram GIN)
        # finds, as one short list to sort (SQLite decides the same inside each condition).
        by_screen = sa.select(screen_text.c.session_id).where(
            sa.literal_column("screen_text.tsv").op("@@")(text.tsquery())).distinct()
        few = [_few(connection, by_screen), _few(connection, sa.select(sessions.c.id).where(command))]
        if few[0] is not None and few[1] is not None:
            return sessions.c.id.in_(sorted(set(few[0]) | set(few[1])))
    return sa.or_(screen, command)


def _few(connection: sa.Connection, select: sa.Select[Any]) -> list[str] | None:
    """What ``select`` finds, or None when that is more than FEW_MATCHES."""
    found = list(connection.execute(select.limit(FEW_MATCHES + 1)).scalars())
    return None if len(found) > FEW_MATCHES else found


def _time_order(by_time_index: bool) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """(started_at, pk) to compare and sort by. ``by_time_index=False`` spells them ``+column``,
    which tells SQLite not to walk the (started_at, pk) index: for a sparse range filter
    (``dest:db-001*``, 0.3% of rows) its own index and a small sort beat walking 100k rows of
    time index to collect one page."""
    if by_time_index:
        return sessions.c.started_at, sessions.c.pk
    return (sa.literal_column("+sessions.started_at", sessions.c.started_at.type),
            sa.literal_column("+sessions.pk", sessions.c.pk.type))


def _from_key(key: Key | None, inclusive: bool, by_time_index: bool = True) -> list[sa.ColumnElement[bool]]:
    """Rows older than ``key`` (newest-first order), or from it on when ``inclusive``."""
    if key is None:
        return []
    mine = sa.tuple_(*_time_order(by_time_index))
    theirs = sa.tuple_(sa.literal(key[0], sessions.c.started_at.type), sa.literal(key[1], sessions.c.pk.type))
    return [mine <= theirs if inclusive else mine < theirs]


def page_after(connection: sa.Connection, query: Query, after: Key | None, n: int, skip: int = 0,
               inclusive: bool = False, context: int = 40, by_time_index: bool = True
               ) -> list[tuple[Key, dict[str, Any]]]:
    """Up to ``n`` rows newest first, starting ``skip`` rows past ``after`` (or at it when
    ``inclusive``; None: the newest). Keys are found on the filter's index first, then only
    those rows are read (the deferred join of :func:`list_sessions`). ``by_time_index``: see
    :func:`_time_order` (SQLite only; other back ends plan this themselves)."""
    by_time_index = by_time_index or connection.dialect.name != "sqlite"
    started, pk = _time_order(by_time_index)
    where = where_for(connection, query) + _from_key(after, inclusive, by_time_index)
    keys = sa.select(sessions.c.pk).where(*where).order_by(started.desc(), pk.desc()).offset(skip).limit(n)
    select = (sa.select(sessions.c.pk, *_record_columns()).where(sessions.c.pk.in_(keys.scalar_subquery()))
              .order_by(sessions.c.started_at.desc(), sessions.c.pk.desc()))
    rows = [((row.started_at, row.pk), row_to_record(row)) for row in connection.execute(select)]
    if query.text is not None and rows:
        annotate_matches(connection, query.text, [record for _, record in rows], context)
    return rows


def all_matching(connection: sa.Connection, query: Query, batch: int = 500) -> Iterator[dict[str, Any]]:
    """Every row of ``query`` newest first, a page at a time (exports of everything found)."""
    after: Key | None = None
    while True:
        rows = page_after(connection, query, after, batch)
        yield from (record for _, record in rows)
        if len(rows) < batch:
            return
        after = rows[-1][0]


def sessions_estimate(connection: sa.Connection) -> int:
    """About how many sessions the index holds (the largest key: no scan)."""
    return int(connection.execute(sa.select(sa.func.max(sessions.c.pk))).scalar() or 0)


def anchors(connection: sa.Connection, query: Query, every: int, start: Key | None = None,
            most: int = 200) -> list[Key]:
    """Keys of rows 0, ``every``, 2 x ``every``, ... counted from ``start`` (inclusive; None:
    the newest), at most ``most``. The database reads the next ``every x most`` keys from the
    filter's index and numbers them (a window function), so only the anchors cross into
    Python: a background scan of a million rows holds the GIL for microseconds, not seconds."""
    where = where_for(connection, query) + _from_key(start, True)
    keys = (sa.select(sessions.c.started_at, sessions.c.pk).where(*where)
            .order_by(sessions.c.started_at.desc(), sessions.c.pk.desc())
            .limit(every * (most - 1) + 1)).subquery()
    number = sa.func.row_number().over(order_by=(keys.c.started_at.desc(), keys.c.pk.desc()))
    numbered = sa.select(keys.c.started_at, keys.c.pk, number.label("rn")).subquery()
    select = (sa.select(numbered.c.started_at, numbered.c.pk).where((numbered.c.rn - 1) % every == 0)
              .order_by(numbered.c.rn))
    return [(row.started_at, row.pk) for row in connection.execute(select)]


def count_from(connection: sa.Connection, query: Query, start: Key | None, cap: int) -> int:
    """How many rows there are from ``start`` on (inclusive), counting at most ``cap``."""
    where = where_for(connection, query) + _from_key(start, True)
    keys = sa.select(sessions.c.pk).where(*where).limit(cap).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one())


def match_times(connection: sa.Connection, session_id: str, query: SearchText, most: int = 500) -> list[float]:
    """Seconds into the session of every place its screen text matches (the "next hit" key):
    only the chunks the full-text index says match are read."""
    chunks = sorted((chunk, pk) for _, chunk, pk in _matching_chunks(connection, query, [session_id]))
    texts = _chunk_texts(connection, [pk for _, pk in chunks])
    times: list[float] = []
    for _, pk in chunks:
        text, marks = texts[pk]
        chunk = Chunk(0, text, [(int(o), int(ms)) for o, ms in marks])
        offset = 0
        while len(times) < most:
            match = first_match(text[offset:], list(query.words), query.phrase)
            if match is None:
                break
            times.append(round(chunk.time_at(offset + match.offset), 3))
            offset += max(match.end, 1)
    return times
