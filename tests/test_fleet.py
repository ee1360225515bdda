"""Fleet: shipping to a real S3 server (SeaweedFS on loopback), reading from it, holds,
retention, a rebuild from the bucket, and many hosts in one PostgreSQL index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import index_support
import pytest
import sqlalchemy as sa
from index_support import cast_text, pg_schema_url
from s3_support import S3Server
from sshrec.player import seekindex
from sshrec.player.verify import verify_stored
from sshrec.schema import holds, index, retention, ship
from sshrec.schema.db import IndexUnusable, open_index, writing
from sshrec.schema.spool import cast_path, record_path
from sshrec.schema.storage import keys, open_store
from sshrec.schema.tables import deletions, shipments

from sshrec import cli
from sshrec.commands.ship import seek_writer

pytestmark = pytest.mark.s3
HOST = os.uname().nodename  # what the recorder writes in `host`, and what indexing here calls this host


def config(tmp_path: Path, home: str, db: str, bucket: str, server: S3Server, **extra: Any) -> Path:
    path = tmp_path / "sshrec.toml"
    lines = [f'home = "{home}"', f'db = "{db}"', f'storage = "s3://{bucket}/fleet"',
             f's3_endpoint_url = "{server.endpoint}"'] + [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_session(home: str, output: Any = None, **fields: Any) -> Any:
    """A finished session whose record carries its cast's SHA-256, as a recorder leaves it."""
    import hashlib

    record = index_support.make_session(home, output, **{"host": HOST, **fields})
    digest = hashlib.sha256(Path(cast_path(home, record.id)).read_bytes()).hexdigest()
    index_support.rewrite_record(home, record, sha256=digest)
    return record


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def fleet(tmp_path: Path, home: str, s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    bucket = s3_env.bucket()
    db = f"sqlite:///{tmp_path}/index.db"
    monkeypatch.setenv("SSHREC_CONFIG", str(config(tmp_path, home, db, bucket, s3_env)))
    monkeypatch.setenv("SSHREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SSHREC_HOME", raising=False)
    monkeypatch.delenv("SSHREC_DB", raising=False)
    store = open_store(f"s3://{bucket}/fleet", s3_env.endpoint)
    return {"bucket": bucket, "db": db, "store": store, "home": home, "server": s3_env}


def versions(server: S3Server, bucket: str) -> int:
    listed = server.client().list_object_versions(Bucket=bucket)
    return len(listed.get("Versions", [])) + len(listed.get("DeleteMarkers", []))


def test_ship_verifies_marks_and_is_idempotent_then_the_store_serves_cat_verify_export(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a = make_session(fleet["home"], [(0.5, "hello from the store\r\n")])
    b = make_session(fleet["home"], [(0.2, "second\r\n")], start=1_714_557_700.0)
    status, out, err = run_cli(capsys, "ship", "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["shipped"] == 2 and summary["verified_by"] == {"sha256-checksum": 2}
    store = fleet["store"]
    stem = keys.session_stem("fleet", HOST, a.id)
    assert stem == f"fleet/{keys.host_part(HOST)}/2024/05/01/{a.id}"
    for suffix in (".cast", ".seek.json", ".json"):
        assert store.stat(stem + suffix) is not None
    before = versions(fleet["server"], fleet["bucket"])
    status, out, _ = run_cli(capsys, "ship", "--json")
    assert status == 0 and json.loads(out)["shipped"] == 0
    assert versions(fleet["server"], fleet["bucket"]) == before  # nothing sent twice
    engine = open_index(fleet["db"])
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(shipments)).scalar() == 2
    # keep_local = 0: the local copy goes, the index points at the store
    report = ship.ship(engine, store, keep_local=0)
    assert report.removed_local == 2 and not os.path.exists(cast_path(fleet["home"], a.id))
    assert not os.path.exists(record_path(fleet["home"], b.id))
    index.sync(engine, [fleet["home"]])  # a sync keeps shipped rows whose files are gone
    status, out, _ = run_cli(capsys, "ls", "--json")
    rows = json.loads(out)
    assert {r["id"] for r in rows} == {a.id, b.id}
    assert all(r["path"].startswith(f"s3://{fleet['bucket']}/fleet/{keys.host_part(HOST)}/") for r in rows)
    status, out, _ = run_cli(capsys, "search", "store", "--json")
    assert [r["id"] for r in json.loads(out)] == [a.id]
    status, out, err = run_cli(capsys, "cat", a.id)
    assert status == 0 and "hello from the store" in out, err
    status, out, err = run_cli(capsys, "verify", a.id)
    assert status == 0 and "ok" in out, err
    status, out, err = run_cli(capsys, "export", a.id, b.id, "--out", str(tmp_path / "case"))
    assert status == 0, err
    status, out, err = run_cli(capsys, "verify", str(tmp_path / "case"))
    assert status == 0, err
    engine.dispose()


def test_a_crash_after_upload_before_marking_sends_nothing_twice(fleet: dict[str, Any]) -> None:
    sessions = [make_session(fleet["home"], start=1_714_557_600.0 + n) for n in range(3)]
    engine = open_index(fleet["db"])
    index.sync(engine, [fleet["home"]])
    assert ship.ship(engine, fleet["store"]).shipped == 3
    before = versions(fleet["server"], fleet["bucket"])
    with writing(engine) as connection:  # as if the shipper died before marking them
        connection.execute(sa.delete(shipments))
    again = ship.ship(engine, fleet["store"])
    assert again.already == 3 and again.shipped == 0 and again.verified_by == {"present": 3}
    assert versions(fleet["server"], fleet["bucket"]) == before
    assert len(ship.candidates(engine, HOST)) == 0 and sessions
    engine.dispose()


def test_seek_in_a_stored_recording_reads_ranges_not_the_whole_object(fleet: dict[str, Any]) -> None:
    lines = [(i * 0.01, f"line {i:06d} " + "x" * 180 + "\r\n") for i in range(20_000)]  # ~4 MB
    record = make_session(fleet["home"], lines)
    engine = open_index(fleet["db"])
    index.sync(engine, [fleet["home"]])
    assert ship.ship(engine, fleet["store"], seek_writer=seek_writer).shipped == 1
    blob = fleet["store"].blob(keys.session_key("fleet", HOST, record.id))
    size = blob.stat().size
    seek = seekindex.load_stored(blob, use_cache=False)  # the shipped one: a single small GET
    assert seek.file_size == size and seek.checkpoints
    plan = seek.plan(150.0)
    with seekindex.open_at(blob, seek, plan) as cursor:
        event = cursor.next()
        while event is not None and event.time < 150.0:
            event = cursor.next()
        assert event is not None and "line 015000" in event.data
        raw = cursor._handle.raw  # the RangeReader under the buffer
        assert raw.fetched < size / 4, (raw.fetched, size)
    engine.dispose()


def test_multipart_upload_of_a_large_cast_and_a_stale_upload_is_aborted(fleet: dict[str, Any]) -> None:
    chunk = "y" * 4000
    record = make_session(fleet["home"], cast=cast_text([(i * 0.001, "o", chunk) for i in range(4600)]))
    key = keys.session_key("fleet", HOST, record.id)
    client = fleet["server"].client()
    client.create_multipart_upload(Bucket=fleet["bucket"], Key=key)  # what a crash mid-upload leaves
    engine = open_index(fleet["db"])
    index.sync(engine, [fleet["home"]])
    report = ship.ship(engine, fleet["store"])
    assert report.shipped == 1 and not report.failed, report.failed
    info = fleet["store"].stat(key)
    assert info.size == os.path.getsize(cast_path(fleet["home"], record.id)) > 16 << 20
    assert info.checksum.endswith("-2")  # two parts, each SHA-256 checked by the server
    assert not client.list_multipart_uploads(Bucket=fleet["bucket"]).get("Uploads")
    engine.dispose()


def test_store_unreachable_leaves_everything_local_and_the_next_run_ships(
        fleet: dict[str, Any], tmp_path: Path) -> None:
    from s3_support import free_port

    record = make_session(fleet["home"])
    engine = open_index(fleet["db"])
    index.sync(engine, [fleet["home"]])
    down = open_store(f"s3://{fleet['bucket']}/fleet", f"http://127.0.0.1:{free_port()}")
    report = ship.ship(engine, down, keep_local=0)
    assert report.pending == 1 and "cannot reach the store" in report.failed[0]
    assert os.path.exists(cast_path(fleet["home"], record.id))
    with engine.connect() as connection:
        assert connection.execute(sa.select(shipments)).first() is None
    report = ship.ship(engine, fleet["store"], keep_local=0)
    assert report.shipped == 1 and report.removed_local == 1
    engine.dispose()


def test_wrong_credentials_are_a_clear_error(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_session(fleet["home"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    status, _, err = run_cli(capsys, "ship")
    assert status == 1
    assert "refused" in err and "check the credentials" in err and "AWS_ACCESS_KEY_ID" in err


def test_a_changed_object_fails_verify(fleet: dict[str, Any]) -> None:
    record = make_session(fleet["home"], [(0.5, "original text\r\n")])
    engine = open_index(fleet["db"])
    index.sync(engine, [fleet["home"]])
    ship.ship(engine, fleet["store"], keep_local=0)
    key = keys.session_key("fleet", HOST, record.id)
    blob = fleet["store"].blob(key)
    assert verify_stored(blob)[0].ok
    tampered = blob.read().replace(b"original", b"0riginal")
    fleet["server"].client().put_object(Bucket=fleet["bucket"], Key=key, Body=tampered)
    finding = verify_stored(blob)[0]
    assert not finding.ok and finding.path == blob.name and finding.message
    engine.dispose()


def test_holds_keep_sessions_from_retention_and_the_store_enforces_them(
        tmp_path: Path, home: str, s3_env: S3Server) -> None:
    bucket = s3_env.bucket(object_lock=True)
    store = open_store(f"s3://{bucket}/fleet", s3_env.endpoint)
    assert store.object_lock() is None
    old = [make_session(home, start=1_600_000_000.0 + n) for n in range(3)]
    engine = open_index(f"sqlite:///{tmp_path}/index.db")
    index.sync(engine, [home])
    ship.ship(engine, store, keep_local=0)
    placed, notes = holds.place(engine, [old[0].id], "case 4711", "auditor", store)
    assert placed[0].store_lock and not notes
    held_key = keys.session_key("fleet", HOST, old[0].id)
    version = s3_env.client().head_object(Bucket=bucket, Key=held_key)["VersionId"]
    with pytest.raises(Exception, match="AccessDenied|Access Denied"):
        s3_env.client().delete_object(Bucket=bucket, Key=held_key, VersionId=version)
    dry = retention.apply(engine, retention.parse_age("365d"), "policy", "test", store, dry_run=True)
    assert sorted(dry.deleted) == sorted(o.id for o in old[1:]) and dry.held == [old[0].id]
    assert store.stat(keys.session_key("fleet", HOST, old[1].id)) is not None
    report = retention.apply(engine, retention.parse_age("365d"), "policy", "test", store)
    assert sorted(report.deleted) == sorted(o.id for o in old[1:]) and not report.failed
    for gone in old[1:]:
        assert store.stat(keys.session_key("fleet", HOST, gone.id)) is None
    with engine.connect() as connection:
        logged = connection.execute(sa.select(deletions.c.session_id, deletions.c.log_key)).all()
    assert sorted(r[0] for r in logged) == sorted(o.id for o in old[1:])
    assert all(store.stat(r[1]) is not None for r in logged)  # the log object too
    holds.release(engine, [old[0].id], "auditor", "case closed", store)
    assert retention.apply(engine, retention.parse_age("365d"), "policy", "test", store).deleted == [old[0].id]
    engine.dispose()


def test_a_store_without_object_lock_is_detected_and_said(tmp_path: Path, home: str, s3_env: S3Server) -> None:
    store = open_store(f"s3://{s3_env.bucket()}/p", s3_env.endpoint)
    record = make_session(home)
    engine = open_index(f"sqlite:///{tmp_path}/index.db")
    index.sync(engine, [home])
    placed, notes = holds.place(engine, [record.id], "keep", "auditor", store)
    assert not placed[0].store_lock and "no object lock" in notes[0]
    engine.dispose()


def test_rebuild_from_the_bucket_alone(fleet: dict[str, Any], tmp_path: Path) -> None:
    sessions = [make_session(fleet["home"], [(0.5, f"needle{n} on screen\r\n")], start=1_714_557_600.0 + n)
                for n in range(5)]
    engine = open_index(fleet["db"])
    index.sync(engine, [fleet["home"]])
    ship.ship(engine, fleet["store"], keep_local=0)
    holds.place(engine, [sessions[0].id], "kept", "auditor", fleet["store"])
    engine.dispose()
    fresh = open_index(f"sqlite:///{tmp_path}/auditor.db")  # an auditor's machine: no spool at all
    report = index.rebuild(fresh, [], store=fleet["store"])
    assert report.new == 5 and not report.failed, report.failed
    from sshrec.player.query import Filters, SearchText, list_sessions, search_sessions

    with fresh.connect() as connection:
        rows = list_sessions(connection, Filters(host=HOST)).items
        found = search_sessions(connection, SearchText.parse("needle3", False), Filters()).items
    assert {r["id"] for r in rows} == {s.id for s in sessions}
    assert [r["id"] for r in found] == [sessions[3].id]
    assert [h.session_id for h in holds.list_holds(fresh)] == [sessions[0].id]
    fresh.dispose()


def test_the_record_path_never_imports_boto_sqlalchemy_or_the_storage_api(tmp_path: Path,
                                                                            s3_env: S3Server) -> None:
    home = tmp_path / "spool"
    conf = config(tmp_path, str(home), f"sqlite:///{tmp_path}/i.db", "bucket", s3_env, keep_local=3)
    env = dict(os.environ, SSHREC_CONFIG=str(conf))
    env.pop("SSHREC_HOME", None)
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "sshrec.cli", "--", "true"], env=env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time")]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in lines}
    assert "sshrec.recorder.session" in loaded  # it did record
    assert not {m for m in loaded if m.split(".")[0] in ("boto3", "botocore", "sqlalchemy")}
    assert not {m for m in loaded if m.startswith("sshrec.schema.storage")}


def test_the_collector_ships_each_session_it_indexes(fleet: dict[str, Any]) -> None:
    from sshrec.recorder.collector.server import Collector
    from sshrec.schema.settings import load_settings

    from sshrec.commands.collector import shipper

    record = make_session(fleet["home"])
    settings = load_settings()
    collector = Collector(fleet["home"], "/nonexistent.sock", fleet["db"], ship=shipper(settings))
    collector.index(record_path(fleet["home"], record.id))
    assert fleet["store"].stat(keys.session_key("fleet", HOST, record.id, keys.RECORD)) is not None
    collector.engine.dispose()  # type: ignore[union-attr]


def test_hold_retention_and_rebuild_commands(fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    old = [make_session(fleet["home"], start=1_600_000_000.0 + n) for n in range(2)]
    assert run_cli(capsys, "ship", "--quiet")[0] == 0
    status, out, err = run_cli(capsys, "hold", old[0].id, "--reason", "case 9", "--json")
    assert status == 0 and json.loads(out)[0]["session_id"] == old[0].id
    assert "no object lock" in err  # a SeaweedFS bucket made without it: said, not hidden
    status, out, _ = run_cli(capsys, "hold", "--list", "--json")
    assert [h["reason"] for h in json.loads(out)] == ["case 9"]
    status, out, _ = run_cli(capsys, "retention", "--older-than", "365d", "--dry-run", "--json")
    dry = json.loads(out)
    assert dry["deleted"] == [old[1].id] and dry["held"] == [old[0].id] and dry["dry_run"]
    status, out, err = run_cli(capsys, "retention", "--older-than", "1y")
    assert status == 0 and out.strip() == f"deleted {old[1].id}", err
    status, out, err = run_cli(capsys, "index", "--rebuild", "--json")
    assert status == 0, err
    assert json.loads(out)["new"] == 1  # the held one (bucket, then spool); the deleted one stays gone
    status, out, _ = run_cli(capsys, "hold", "--release", old[0].id, "--reason", "closed", "--json")
    assert json.loads(out)[0]["released_by"]
    assert run_cli(capsys, "retention", "--older-than", "bogus")[0] == 2


def test_a_local_folder_store_works_the_same(tmp_path: Path, home: str) -> None:
    store = open_store(f"file://{tmp_path}/archive")
    record = make_session(home, [(0.5, "archived on a mount\r\n")])
    engine = open_index(f"sqlite:///{tmp_path}/index.db")
    index.sync(engine, [home])
    report = ship.ship(engine, store, keep_local=0, seek_writer=seek_writer)
    assert report.shipped == 1 and report.verified_by == {"download": 1} and report.removed_local == 1
    blob = store.blob(keys.session_key("", HOST, record.id))
    assert verify_stored(blob)[0].ok
    assert seekindex.load_stored(blob, use_cache=False).file_size == blob.stat().size
    fresh = open_index(f"sqlite:///{tmp_path}/rebuilt.db")
    assert index.rebuild(fresh, [], store=store).new == 1
    engine.dispose()
    fresh.dispose()


# -- many hosts, one PostgreSQL index ----------------------------------------------------------


@pytest.fixture
def pg_url(pg_database: str) -> Any:
    yield from pg_schema_url(pg_database)


def as_host(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(index, "this_host", lambda: name)
    monkeypatch.setattr(ship, "this_host", lambda: name)
    monkeypatch.setattr(retention, "this_host", lambda: name)


@pytest.mark.postgres
def test_two_hosts_share_one_postgresql_index(pg_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    spool_a, spool_b = tmp_path / "a", tmp_path / "b"
    spool_a.mkdir()
    spool_b.mkdir()
    on_a = [make_session(str(spool_a), host="gw-a") for _ in range(3)]
    on_b = [make_session(str(spool_b), host="gw-b") for _ in range(2)]
    engine = open_index(pg_url)
    as_host(monkeypatch, "gw-a")
    assert index.sync(engine, [str(spool_a)]).new == 3
    as_host(monkeypatch, "gw-b")
    assert index.sync(engine, [str(spool_b)]).new == 2
    as_host(monkeypatch, "gw-a")
    again = index.sync(engine, [str(spool_a)])  # A's sync leaves B's rows alone
    assert again.removed == 0 and again.new == 0
    assert index.freshen(engine, [str(spool_a)]).removed == 0
    from sshrec.player.query import Filters, list_sessions

    with engine.connect() as connection:
        assert {r["id"] for r in list_sessions(connection, Filters(host="gw-b")).items} == {s.id for s in on_b}
        assert len(list_sessions(connection, Filters(limit=0)).items) == 5
    # a copy of one of A's recordings in B's spool is not taken over
    copy_dir = Path(cast_path(str(spool_b), on_a[0].id)).parent
    copy_dir.mkdir(parents=True, exist_ok=True)
    for path in (cast_path(str(spool_a), on_a[0].id), record_path(str(spool_a), on_a[0].id)):
        (copy_dir / os.path.basename(path)).write_bytes(Path(path).read_bytes())
    as_host(monkeypatch, "gw-b")
    report = index.sync(engine, [str(spool_b)])
    assert report.new == 0 and any("already indexed from host 'gw-a'" in f for f in report.failed)
    with engine.connect() as connection:
        owner = connection.execute(sa.text("SELECT host FROM index_state WHERE session_id = :i"),
                                   {"i": on_a[0].id}).scalar()
    assert owner == "gw-a"
    # a rebuild from one host's files alone would drop the other's rows: refused, nothing lost
    as_host(monkeypatch, "gw-a")
    with pytest.raises(IndexUnusable, match=r"other hosts: gw-b \(2\)"):
        index.rebuild(engine, [str(spool_a)])
    with engine.connect() as connection:
        assert len(list_sessions(connection, Filters(limit=0)).items) == 5
    engine.dispose()


@pytest.mark.postgres
def test_concurrent_first_use_by_several_processes_migrates_once(pg_url: str) -> None:
    code = ("import sys; from sshrec.schema.db import open_index; "
            "e = open_index(sys.argv[1]); e.dispose(); print('ok')")
    processes = [subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in results]
    engine = sa.create_engine(pg_url)
    with engine.connect() as connection:
        revisions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert revisions == ["0007"]
        assert connection.execute(sa.text("SELECT count(*) FROM shipments")).scalar() == 0
    engine.dispose()


def test_the_tui_replays_a_session_whose_only_copy_is_in_the_store(fleet: dict[str, Any]) -> None:
    """The auditor's app with only the config: the row points at the bucket, Enter replays it
    (read through ranged GETs and the shipped seek index), End shows its last screen."""
    import asyncio

    from sshrec.player.tui.app import SshrecApp
    from sshrec.player.tui.replay_screen import ReplayScreen
    from sshrec.player.tui.results import ResultsTable
    from sshrec.schema.settings import load_settings

    record = make_session(fleet["home"], [(0.5, "first screen\r\n"), (30.0, "stored last words\r\n")])
    engine = open_index(fleet["db"])
    index.sync(engine, [fleet["home"]])
    assert ship.ship(engine, fleet["store"], keep_local=0, seek_writer=seek_writer).removed_local == 1
    assert not os.path.exists(cast_path(fleet["home"], record.id))

    async def replay() -> list[str]:
        app = SshrecApp(engine, load_settings())
        async with app.run_test(size=(100, 30)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            app.query_one(ResultsTable).focus()
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, ReplayScreen)
            await screen.workers.wait_for_complete()
            await pilot.press("end")
            await screen.workers.wait_for_complete()
            await pilot.pause()
            return screen.replay.screen.text()

    try:
        text = "\n".join(asyncio.run(replay()))
    finally:
        engine.dispose()
    assert "first screen" in text and "stored last words" in text
