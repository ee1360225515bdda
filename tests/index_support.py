"""Fixtures and helpers for the index tests: a spool written by hand, a database per test.

``db_url`` runs each test against SQLite and against the real PostgreSQL on
127.0.0.1:5432 (database ``test``, trust auth). Each test run creates its own PostgreSQL
database and drops it at the end; each test gets its own schema in it. Without a
reachable server the PostgreSQL half is skipped, saying so, except under CI (CI=true),
where that is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sshrec.schema.record import SessionRecord, iso_utc, new_session_id, write_record_atomically
from sshrec.schema.spool import cast_path, ensure_dir, record_path, recording_dir

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = os.environ.get("SSHREC_TEST_PG_URL", f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test")
BASE_TIME = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def skip_or_fail(reason: str) -> None:
    """Skip, saying why; under CI (CI=true) a missing PostgreSQL is a failure, never a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it (start it: pg_ctlcluster <version> main start)")
    pytest.skip(reason)


def postgres_unavailable() -> str | None:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError as exc:
        return f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT} ({exc.strerror or exc})"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'sshrec[test]')"
    return None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database for this test run, dropped at the end; yields its URL."""
    reason = postgres_unavailable()
    if reason:
        skip_or_fail(reason)
    name = f"sshrec_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        skip_or_fail(f"cannot create a PostgreSQL test database: {exc.orig}")
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def pg_schema_url(database_url: str) -> Iterator[str]:
    """A fresh schema in the run's database: the URL puts it first on the search path."""
    schema = f"t_{secrets.token_hex(4)}"
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.engine.make_url(database_url).update_query_dict({"options": f"-csearch_path={schema},public"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Index URL for one test: an SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/index.db"
        return
    yield from pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def home(tmp_path: Path) -> str:
    path = tmp_path / "spool"
    path.mkdir()
    return str(path)


def cast_text(events: list[tuple[float, str, str]], cols: int = 80, rows: int = 24, version: int = 2) -> str:
    """A cast file's text; ``events`` are (absolute time, code, data)."""
    if version == 2:
        header: dict[str, Any] = {"version": 2, "width": cols, "height": rows, "timestamp": int(BASE_TIME)}
    else:
        header = {"version": 3, "term": {"cols": cols, "rows": rows}, "timestamp": int(BASE_TIME)}
    lines = [json.dumps(header)]
    last = 0.0
    for t, code, data in events:
        stamp = t if version == 2 else t - last
        last = t
        lines.append(json.dumps([round(stamp, 6), code, data]))
    return "\n".join(lines) + "\n"


def make_session(
    home: str,
    output: list[tuple[float, str]] | None = None,
    *,
    start: float | None = None,
    cast: str | None = None,
    **fields: Any,
) -> SessionRecord:
    """Write <id>.cast and <id>.json into the spool as a recorder would at the end."""
    start = BASE_TIME if start is None else start
    record = SessionRecord(id=new_session_id(start))
    record.user = "alice"
    record.host = "bastion"
    record.started_at = iso_utc(start)
    record.status = "complete"
    record.command = ["/bin/bash"]
    record.exit_status = 0
    events = output if output is not None else [(0.5, "hello\r\n")]
    record.duration = max((t for t, _ in events), default=0.0)
    record.ended_at = iso_utc(start + (record.duration or 0))
    for name, value in fields.items():
        setattr(record, name, value)
    ensure_dir(recording_dir(home, record.id))
    text = cast if cast is not None else cast_text([(t, "o", d) for t, d in events])
    with open(cast_path(home, record.id), "w", encoding="utf-8") as handle:
        handle.write(text)
    write_record_atomically(record, record_path(home, record.id))
    return record


def rewrite_record(home: str, record: SessionRecord, **fields: Any) -> None:
    """Replace a record file as the recorder does, with a strictly newer mtime."""
    path = record_path(home, record.id)
    before = os.stat(path).st_mtime_ns
    for name, value in fields.items():
        setattr(record, name, value)
    write_record_atomically(record, path)
    if os.stat(path).st_mtime_ns <= before:  # coarse clocks: make the change visible
        os.utime(path, ns=(before + 1000, before + 1000))


def dump_index(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that matters, without surrogate keys, sorted: for comparing two indexes."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            out: dict[str, list[tuple[Any, ...]]] = {}
            from sshrec.schema.tables import RECORD_COLUMNS, index_state, screen_text, sessions

            columns = [sessions.c[n] for n in RECORD_COLUMNS] + [sessions.c.command_text]
            out["sessions"] = sorted(
                tuple(json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v for v in row)
                for row in connection.execute(sa.select(*columns))
            )
            out["screen_text"] = sorted(
                tuple(row)
                for row in connection.execute(
                    sa.select(
                        screen_text.c.session_id,
                        screen_text.c.chunk,
                        screen_text.c.time,
                        screen_text.c.marks,
                        screen_text.c.text,
                    )
                )
            )
            out["index_state"] = sorted(tuple(row) for row in connection.execute(sa.select(index_state)))
            return out
    finally:
        engine.dispose()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    """Poll a condition that another process makes true (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
