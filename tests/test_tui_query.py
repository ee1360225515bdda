# ruff: noqa: F811  (pytest fixtures imported from index_support)
"""The query language of the TUI's search bar and `sshrec export --query`, and keyset pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from index_support import BASE_TIME, db_url, home, make_session, pg_database  # noqa: F401
from sshrec.player.query import (
    Filters,
    QueryError,
    anchors,
    count_from,
    match_times,
    page_after,
    parse_query,
    query_help,
)
from sshrec.schema.db import open_index, reading
from sshrec.schema.index import sync


def test_filters_and_text() -> None:
    query = parse_query('user:alice cmd:"rm -rf" dest=db-1:5432 from:10.0.* exit:nonzero '
                        "status:failed,complete mode:pty,sftp file:/etc/* conn:01JAB typed:sudo "
                        "permission denied")
    f = query.filters
    assert (f.user, f.command, f.destination, f.client, f.exit, f.status, f.mode) == (
        "alice", "rm -rf", "db-1:5432", "10.0.*", "nonzero", ["failed", "complete"], ["pty", "sftp"])
    assert (f.file, f.connection, f.typed) == ("/etc/*", "01JAB", "sudo")
    assert query.text is not None and query.text.words == ("permission", "denied") and not query.text.phrase
    assert parse_query('"permission denied"').text.phrase  # type: ignore[union-attr]


def test_times_are_relative_to_now() -> None:
    before = datetime.now(UTC)
    f = parse_query("since:2d until:2024-05-01").filters
    assert f.since is not None and abs((before - timedelta(days=2) - f.since).total_seconds()) < 60
    assert f.until == datetime(2024, 5, 2, tzinfo=UTC)  # a date includes that day


def test_export_form_is_an_alias() -> None:
    assert parse_query("user=alice since=2024-05-01 limit=5").filters == parse_query(
        "user:alice since:2024-05-01 limit:5").filters
    assert parse_query("", limit=0).empty and parse_query("").filters.limit == 50


@pytest.mark.parametrize(("text", "message"), [
    ("colour:red", "unknown filter 'colour'"),
    ("user:", "user: needs a value"),
    ('cmd:"rm -rf', "quote is not closed"),
    ("since:soon", "not a time"),
    ("status:done", "unknown status 'done'"),
    ("mode:telnet", "unknown mode 'telnet'"),
    ("exit:x", "wants a number"),
    ("file:", "file: needs a value"),
    ("!!!", "no words to search for"),
])
def test_bad_syntax_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace("*", r"\*")):
        parse_query(text)


def test_every_filter_of_ls_is_in_the_language_and_its_help() -> None:
    """One parser: each option of `sshrec ls` that filters is a name: of the search bar."""
    import dataclasses

    from sshrec.player.query import FILTER_OPTIONS

    assert set(FILTER_OPTIONS) == {f.name for f in dataclasses.fields(Filters)} - {"limit"}
    names = " ".join(syntax for syntax, _ in query_help())
    for name in ("file:", "conn:", "typed:", "mode:", "dest:"):
        assert name in names


@pytest.fixture
def engine(db_url: str, home: str):  # type: ignore[no-untyped-def]
    """Sixty sessions a minute apart, alternately alice and bob; some with a marker word."""
    for n in range(60):
        output = [(0.5, f"line {n}\r\n")]
        if n % 10 == 0:
            output += [(2.0, "needle here\r\n"), (4.0, "and needle again\r\n")]
        make_session(home, output, start=BASE_TIME + 60 * n, user="alice" if n % 2 else "bob")
    engine = open_index(db_url)
    sync(engine, home)
    yield engine
    engine.dispose()


def walk(engine, query, page: int):  # type: ignore[no-untyped-def]
    rows, after = [], None
    with reading(engine) as connection:
        while True:
            got = page_after(connection, query, after, page)
            if not got:
                return rows
            rows.extend(got)
            after = got[-1][0]


def test_pages_walk_every_row_once_newest_first(engine) -> None:  # type: ignore[no-untyped-def]
    query = parse_query("user:alice")
    rows = walk(engine, query, 7)
    starts = [record["started_at"] for _, record in rows]
    assert len(rows) == 30 and starts == sorted(starts, reverse=True) and len(set(starts)) == 30
    assert {record["user"] for _, record in rows} == {"alice"}


def test_anchors_give_random_access(engine) -> None:  # type: ignore[no-untyped-def]
    query = parse_query("")
    every = walk(engine, query, 100)
    with reading(engine) as connection:
        marks = anchors(connection, query, 8)
        assert marks == [every[i][0] for i in range(0, 60, 8)]
        more = anchors(connection, query, 8, start=marks[2], most=2)
        assert more == marks[2:4]
        row_45 = page_after(connection, query, marks[45 // 8], 3, skip=45 % 8, inclusive=True)
        assert [k for k, _ in row_45] == [every[i][0] for i in (45, 46, 47)]
        by_own_index = page_after(connection, query, marks[45 // 8], 3, skip=45 % 8, inclusive=True,
                                  by_time_index=False)  # the plan for sparse filters: same rows
        assert [k for k, _ in by_own_index] == [k for k, _ in row_45]
        assert count_from(connection, query, marks[-1], 100) == 60 - 8 * (len(marks) - 1)
        assert count_from(connection, query, None, 10) == 10


def test_text_pages_have_match_times_and_every_hit(engine) -> None:  # type: ignore[no-untyped-def]
    query = parse_query("needle")
    rows = walk(engine, query, 4)
    assert len(rows) == 6 and all(record["match_time"] == 2.0 for _, record in rows)
    assert len(walk(engine, parse_query("bash"), 25)) == 60  # words are looked for in the command too
    with reading(engine) as connection:
        assert match_times(connection, rows[0][1]["id"], query.text) == [2.0, 4.0]  # type: ignore[arg-type]
