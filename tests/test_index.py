"""The index: schema and migrations, incremental sync, rebuild, --add, interrupted sessions."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from index_support import BASE_TIME, cast_text, dump_index, make_session, rewrite_record
from sshrec.schema import index, migrate
from sshrec.schema.db import IndexUnusable, current_revision, open_engine, open_index, upgrade
from sshrec.schema.entry import INTERRUPTED_NOTE
from sshrec.schema.record import FIELD_NAMES, read_record
from sshrec.schema.spool import lock_path, record_path, recorder_alive
from sshrec.schema.tables import RECORD_COLUMNS, SCHEMA_REVISION

from sshrec.commands import index as index_command


def rows(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def sync(url: str, home: str) -> index.Report:
    engine = open_engine(url)
    try:
        return index.sync(engine, home)
    finally:
        engine.dispose()


def test_schema_revision_constant_is_alembic_head() -> None:
    assert migrate.head_revision() == SCHEMA_REVISION


def test_sql_columns_are_the_record_fields() -> None:
    assert RECORD_COLUMNS == FIELD_NAMES


def test_fresh_index_is_created_at_head(db_url: str) -> None:
    engine = open_index(db_url)
    try:
        assert current_revision(engine) == SCHEMA_REVISION
        open_index(db_url).dispose()  # second open: fast path, no change
    finally:
        engine.dispose()


def test_upgrade_from_first_migration_keeps_rows_and_refreshes(db_url: str, home: str) -> None:
    record = make_session(home, [(0.2, "uptime output\r\n")], original_command="sudo reboot")
    engine = open_engine(db_url)
    try:
        upgrade(engine, "0001")  # an index made by the first release, with one row in it
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    'INSERT INTO sessions (id, "user", host, command, mode, cols, rows, status, '
                    "original_command) VALUES (:id, 'alice', 'bastion', :command, 'pty', 80, 24, "
                    "'complete', 'sudo reboot')"
                ),
                {"id": record.id, "command": json.dumps(["/bin/bash"])},
            )
            connection.execute(
                sa.text("INSERT INTO index_state VALUES (:id, :path, 'x', 1, 'y')"),
                {"id": record.id, "path": os.path.abspath(record_path(home, record.id))},
            )
        assert current_revision(engine) == "0001"
    finally:
        engine.dispose()

    engine = open_index(db_url)  # first use by the new code upgrades
    try:
        assert current_revision(engine) == SCHEMA_REVISION
        from sshrec.player.query import Filters, list_sessions
        from sshrec.schema.db import reading

        with reading(engine) as connection:
            found = list_sessions(connection, Filters(command="REBOOT")).items
        assert [r["id"] for r in found] == [record.id]
        report = index.sync(engine, home)
        assert (report.new, report.changed) == (0, 1)  # 0002 marked old rows stale
        with reading(engine) as connection:
            assert list_sessions(connection, Filters()).items[0]["started_at"] == record.started_at
    finally:
        engine.dispose()


def test_downgrade_then_upgrade_again(db_url: str, home: str) -> None:
    make_session(home)
    engine = open_index(db_url)
    try:
        index.sync(engine, home)
        with engine.begin() as connection:
            migrate.downgrade(connection, "0001")
        assert current_revision(engine) == "0001"
        upgrade(engine)
        assert current_revision(engine) == SCHEMA_REVISION
    finally:
        engine.dispose()


def test_index_from_a_newer_sshrec_is_refused(db_url: str) -> None:
    engine = open_index(db_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(IndexUnusable, match="revision 9999.*upgrade sshrec"):
            open_index(db_url)
    finally:
        engine.dispose()


def test_sync_new_changed_removed_unchanged(db_url: str, home: str) -> None:
    a = make_session(home, user="alice")
    b = make_session(home, start=BASE_TIME + 60, user="bob")
    c = make_session(home, start=BASE_TIME + 120, user="carol")
    report = sync(db_url, home)
    assert (report.new, report.changed, report.removed, report.unchanged) == (3, 0, 0, 0)

    rewrite_record(home, b, exit_status=3)
    os.unlink(record_path(home, c.id))
    os.unlink(record_path(home, c.id)[:-5] + ".cast")
    report = sync(db_url, home)
    assert (report.new, report.changed, report.removed, report.unchanged) == (0, 1, 1, 1)
    got = dict(rows(db_url, "SELECT id, exit_status FROM sessions"))
    assert got == {a.id: 0, b.id: 3}
    assert rows(db_url, "SELECT count(*) FROM screen_text") == [(2,)]

    report = sync(db_url, home)
    assert (report.new, report.changed, report.removed, report.unchanged) == (0, 0, 0, 2)


def test_cast_that_grew_is_reindexed(db_url: str, home: str) -> None:
    record = make_session(home, [(0.1, "first\n")])
    sync(db_url, home)
    with open(record_path(home, record.id)[:-5] + ".cast", "a") as handle:
        handle.write(json.dumps([0.9, "o", "second"]) + "\n")
    assert sync(db_url, home).changed == 1
    assert rows(db_url, "SELECT text FROM screen_text") == [("first\nsecond",)]


def test_unreadable_record_is_reported_and_others_indexed(db_url: str, home: str) -> None:
    good = make_session(home)
    bad = make_session(home, start=BASE_TIME + 5)
    with open(record_path(home, bad.id), "w") as handle:
        handle.write("{not json")
    report = sync(db_url, home)
    assert report.new == 1
    assert len(report.failed) == 1 and bad.id in report.failed[0]
    assert rows(db_url, "SELECT id FROM sessions") == [(good.id,)]


def interrupted_cast() -> str:
    return (
        cast_text([(0.25, "o", "working\r\n"), (1.5, "o", "still working\r\n"), (2.75, "i", "q")])
        + '[3.9, "o", "torn la'
    )


def test_recording_without_recorder_becomes_interrupted(db_url: str, home: str) -> None:
    record = make_session(
        home, cast=interrupted_cast(), status="recording", duration=None, ended_at=None, exit_status=None
    )
    assert not recorder_alive(home, record.id)
    report = sync(db_url, home)
    assert report.interrupted == 1
    cast = record_path(home, record.id)[:-5] + ".cast"
    got = rows(
        db_url,
        "SELECT status, duration, ended_at, sha256, bytes_out, bytes_in, notes FROM sessions",
    )[0]
    status, duration, ended_at, sha, bytes_out, bytes_in, notes = got
    assert status == "interrupted"
    assert duration == pytest.approx(2.75)
    assert str(ended_at).startswith("2024-05-01") and "10:00:02.75" in str(ended_at)
    with open(cast, "rb") as handle:
        assert sha == hashlib.sha256(handle.read()).hexdigest()
    assert (bytes_out, bytes_in) == (len("working\r\nstill working\r\n"), 1)
    notes = json.loads(notes) if isinstance(notes, str) else notes
    assert INTERRUPTED_NOTE in notes
    assert read_record(record_path(home, record.id)).status == "recording"  # files untouched
    assert sync(db_url, home).unchanged == 1  # and it stays put


def test_recording_with_live_recorder_stays_recording(db_url: str, home: str) -> None:
    record = make_session(home, cast=interrupted_cast(), status="recording", exit_status=None)
    fd = os.open(lock_path(home, record.id), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert recorder_alive(home, record.id)
        report = sync(db_url, home)
        assert (report.new, report.interrupted) == (1, 0)
        assert rows(db_url, "SELECT status FROM sessions") == [("recording",)]
        # the recorder finishes: final record first, then the lock goes
        rewrite_record(home, record, status="complete", exit_status=0, duration=3.9)
    finally:
        os.unlink(lock_path(home, record.id))
        os.close(fd)
    assert sync(db_url, home).changed == 1
    assert rows(db_url, "SELECT status, exit_status FROM sessions") == [("complete", 0)]


def test_killed_recorder_is_noticed_on_next_sync(db_url: str, home: str) -> None:
    record = make_session(home, cast=interrupted_cast(), status="recording", exit_status=None)
    fd = os.open(lock_path(home, record.id), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    sync(db_url, home)
    os.close(fd)  # killed: the lock file stays, but nobody holds it
    report = sync(db_url, home)
    assert (report.changed, report.interrupted) == (1, 1)
    assert rows(db_url, "SELECT status FROM sessions") == [("interrupted",)]


def build_history(db_url: str, home: str) -> None:
    """A spool that went through new, changed, removed and interrupted states."""
    sessions = [
        make_session(
            home,
            [
                (0.1 * i, f"line {i} caf\u00e9 \x1b[1mbold\x1b[0m\r\n"),
                (1 + i, "x" * (70_000 if i == 2 else 10)),
            ],
            start=BASE_TIME + 60 * i,
            user=f"user{i % 3}",
            original_command=f"deploy --stage {i}",
        )
        for i in range(6)
    ]
    sync(db_url, home)
    rewrite_record(home, sessions[1], exit_status=1, notes=["edited"])
    os.unlink(record_path(home, sessions[4].id))
    make_session(home, cast=interrupted_cast(), status="recording", start=BASE_TIME + 999)
    sync(db_url, home)
    make_session(home, start=BASE_TIME + 2000, user="late", destination="db1:5432")
    sync(db_url, home)


def test_rebuild_equals_incremental(db_url: str, home: str) -> None:
    build_history(db_url, home)
    incremental = dump_index(db_url)
    assert len(incremental["sessions"]) == 7
    assert any(row[1] == 1 for row in incremental["screen_text"])  # a 70 KB session: 2 chunks
    engine = open_engine(db_url)
    try:
        report = index.rebuild(engine, home)
    finally:
        engine.dispose()
    assert report.new == 7
    assert dump_index(db_url) == incremental


def test_rebuild_via_cli_equals_incremental(db_url: str, home: str, capsys: pytest.CaptureFixture[str]) -> None:
    build_history(db_url, home)
    incremental = dump_index(db_url)
    assert index_command.main(["--rebuild", "--home", home, "--db", db_url]) == 0
    assert "7 new" in capsys.readouterr().out
    assert dump_index(db_url) == incremental


def test_add_indexes_one_record(db_url: str, home: str, capsys: pytest.CaptureFixture[str]) -> None:
    record = make_session(home, [(0.4, "deploy finished\r\n")])
    make_session(home, start=BASE_TIME + 1)  # not added
    path = record_path(home, record.id)
    assert index_command.main(["--add", path, "--quiet", "--home", home, "--db", db_url]) == 0
    assert capsys.readouterr() == ("", "")
    assert rows(db_url, "SELECT id FROM sessions") == [(record.id,)]
    assert rows(db_url, "SELECT text FROM screen_text") == [("deploy finished\n",)]
    report = sync(db_url, home)  # the regular sync agrees and only adds the other one
    assert (report.new, report.unchanged) == (1, 1)


def test_older_view_never_replaces_newer(db_url: str, home: str) -> None:
    """sync read the record before the recorder replaced it, and writes after --add."""
    from sshrec.schema.db import writing
    from sshrec.schema.entry import load_entry

    record = make_session(home, status="recording", exit_status=None)
    fd = os.open(lock_path(home, record.id), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    stale = load_entry(record_path(home, record.id))
    rewrite_record(home, record, status="complete", exit_status=0)
    os.close(fd)
    engine = open_index(db_url)
    try:
        index.add_records(engine, [record_path(home, record.id)])
        with writing(engine) as connection:
            assert index.write_entries(connection, [stale]) == ([], 0, 1)
    finally:
        engine.dispose()
    assert rows(db_url, "SELECT status FROM sessions") == [("complete",)]


def test_fifty_concurrent_adds_lose_no_row(db_url: str, home: str) -> None:
    """50 sessions end at once; each recorder starts `sshrec index --add` (fresh index)."""
    records = [make_session(home, [(0.1, f"session {i}\r\n")], start=BASE_TIME + i) for i in range(50)]
    env = {**os.environ, "SSHREC_DB": db_url, "SSHREC_HOME": home}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sshrec.cli", "index", "--add", record_path(home, r.id), "--quiet"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for r in records
    ]
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        if proc.returncode != 0:
            failures.append(err.decode())
    assert failures == []
    assert sorted(r[0] for r in rows(db_url, "SELECT id FROM sessions")) == sorted(r.id for r in records)
    assert rows(db_url, "SELECT count(*) FROM screen_text") == [(50,)]
    assert rows(db_url, "SELECT count(*) FROM index_state") == [(50,)]


def test_cli_reports_unreadable_and_exits_nonzero(home: str, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = make_session(home)
    with open(record_path(home, bad.id), "w") as handle:
        handle.write("[]")
    status = index_command.main(["--home", home, "--db", f"sqlite:///{tmp_path}/i.db"])
    err = capsys.readouterr().err
    assert status == 1
    assert bad.id in err and "could not be indexed" in err


def test_cli_bad_database_url_is_one_line(home: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert index_command.main(["--home", home, "--db", "nonsense"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a database URL" in err


def test_cli_unreachable_postgres_is_one_line(home: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    assert index_command.main(["--home", home, "--db", url]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("sshrec index: cannot open index postgresql")
