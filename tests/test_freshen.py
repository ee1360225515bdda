"""The catch-up `ls` and `search` do first (schema.index.freshen), the private index file, and
binary output kept out of the screen text. SQLite and PostgreSQL (tests/index_support.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from index_support import make_session, rewrite_record
from recorder_helpers import SSHREC, record_env
from sshrec.schema import index
from sshrec.schema.db import open_index
from sshrec.schema.screentext import FLOOD_CHARS, ScreenTextBuilder, looks_binary
from sshrec.schema.spool import recording_dir
from sshrec.schema.tables import sessions


def age_folder(home: str, session_id: str, seconds: float = 30.0) -> None:
    """Make a day folder look changed long ago (past the racy window)."""
    folder = recording_dir(home, session_id)
    when = time.time() - seconds
    os.utime(folder, (when, when))


def ids(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.select(sessions.c.id)).scalars())
    finally:
        engine.dispose()


def test_freshen_indexes_new_records_and_then_skips_unchanged_folders(db_url: str, home: str) -> None:
    first = make_session(home)
    engine = open_index(db_url)
    try:
        age_folder(home, first.id)
        assert index.freshen(engine, [home]).new == 1
        again = index.freshen(engine, [home])
        assert (again.new, again.changed, again.unchanged) == (0, 0, 0)  # not even looked at
        second = make_session(home, start=first_start(first) + 1)  # same day: its folder changed
        report = index.freshen(engine, [home])
        assert (report.new, report.unchanged) == (1, 1)
        assert ids(db_url) == {first.id, second.id}
    finally:
        engine.dispose()


def first_start(record: object) -> float:
    from sshrec.schema.record import session_id_time

    return session_id_time(record.id)  # type: ignore[attr-defined]


def test_a_folder_changed_within_the_racy_window_is_looked_at_again(db_url: str, home: str) -> None:
    record = make_session(home)
    engine = open_index(db_url)
    try:
        assert index.freshen(engine, [home]).new == 1  # folder mtime is now: not remembered
        assert index.freshen(engine, [home]).unchanged == 1
    finally:
        engine.dispose()
    assert ids(db_url) == {record.id}


def test_freshen_sees_replaced_and_removed_records(db_url: str, home: str) -> None:
    kept = make_session(home)
    gone = make_session(home, start=first_start(kept) + 5)
    engine = open_index(db_url)
    try:
        index.freshen(engine, [home])
        rewrite_record(home, kept, exit_status=9)
        os.unlink(Path(recording_dir(home, gone.id)) / f"{gone.id}.json")
        report = index.freshen(engine, [home])
        assert (report.changed, report.removed) == (1, 1)
        with engine.connect() as connection:
            rows = connection.execute(sa.select(sessions.c.id, sessions.c.exit_status)).all()
        assert [tuple(r) for r in rows] == [(kept.id, 9)]
    finally:
        engine.dispose()


def test_a_live_recording_is_checked_each_time(db_url: str, home: str) -> None:
    record = make_session(home, status="recording")  # no lock held: its recorder is gone
    engine = open_index(db_url)
    try:
        age_folder(home, record.id)
        index.freshen(engine, [home])
        with engine.connect() as connection:
            assert connection.execute(sa.select(sessions.c.status)).scalar() == "interrupted"
    finally:
        engine.dispose()


def test_dry_run_counts_and_writes_nothing(db_url: str, home: str) -> None:
    make_session(home)
    make_session(home, start=first_start(make_session(home)) + 2)
    engine = open_index(db_url)
    try:
        report = index.freshen(engine, [home], dry_run=True)
    finally:
        engine.dispose()
    assert report.new == 3 and ids(db_url) == set()


def test_ls_says_what_a_read_only_index_misses(tmp_path: Path, home: str) -> None:
    db = tmp_path / "index.db"
    engine = open_index(f"sqlite:///{db}")
    engine.dispose()
    make_session(home)
    result = subprocess.run([SSHREC, "ls", "--db", f"sqlite:///file:{db}?mode=ro&uri=true"],
                            env=record_env(home), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "1 recording(s) in the spool are not in this index yet" in result.stderr


def test_ls_catches_up_before_listing(tmp_path: Path, home: str) -> None:
    record = make_session(home)
    env = record_env(home, SSHREC_DB=f"sqlite:///{tmp_path}/index.db")
    result = subprocess.run([SSHREC, "ls", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert [r["id"] for r in json.loads(result.stdout)] == [record.id], result.stderr


def test_the_index_file_is_private(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "index.db"
    open_index(f"sqlite:///{db}").dispose()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    db.chmod(0o644)  # made by an older sshrec
    open_index(f"sqlite:///{db}").dispose()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


@pytest.mark.parametrize("data", [
    bytes(range(256)).decode("utf-8", "replace"),  # every byte once, as the recorder writes it
    os.urandom(4096).decode("utf-8", "replace"),  # what the recorder writes for a binary
    "\x00\x01\x02ELF" * 100,
])
def test_binary_output_is_recognised(data: str) -> None:
    assert looks_binary(data)


@pytest.mark.parametrize("data", [
    "total 48\r\ndrwxr-xr-x  2 root root 4096 Dec  1 10:00 bin\r\n",
    "\x1b[1;32mok\x1b[0m \x1b[2J\x1b[H\tcolumns\ttabbed\x08\x07",
    "naïve café — 日本語のテキスト\n" * 20,
])
def test_text_output_is_not_binary(data: str) -> None:
    assert not looks_binary(data)


def test_binary_and_floods_stay_out_of_screen_text() -> None:
    builder = ScreenTextBuilder()
    builder.add(0.0, "before the transfer\n")
    builder.add(0.5, os.urandom(8192).decode("utf-8", "replace"))
    for n in range(400):  # 400 KB in one go: a cat of a big log
        builder.add(1.0 + n * 0.001, f"line {n:05d} " + "x" * 1000 + "\n")
    builder.add(5.0, "after a pause\n")
    text = "".join(c.text for c in builder.finish())
    assert text.startswith("before the transfer\n") and text.endswith("after a pause\n")
    assert "\ufffd" not in text
    assert len(text) < FLOOD_CHARS + 100
    assert "line 00000" in text and "line 00399" not in text
    note = builder.describe_dropped()
    assert "of binary output" in note and "past the search limits" in note


def test_an_scp_session_contributes_no_screen_text(db_url: str, home: str) -> None:
    make_session(home, [(0.1, "C0644 5 file\n"), (0.2, "hello")], mode="scp")
    engine = open_index(db_url)
    try:
        report = index.sync(engine, home)
    finally:
        engine.dispose()
    assert report.new == 1 and report.text_bytes == 0
