#!/usr/bin/env python3
"""Fleet benchmark (issue 14): shipping to S3, `ls` on a huge PostgreSQL index, play from the store.

  ship   N spool sessions (casts like a shell session's, --session-kb each, plus a few large
         ones that go up in parts), indexed, then `sshrec ship`'s code path (seek index built,
         every object verified, the index marked) into SeaweedFS on loopback: MB/s and
         sessions/s; beside it a plain boto3 `upload_file` of the same cast and record files
         (s3transfer's defaults: 8 MiB parts, 10 threads, no verification) into another bucket.
  ls     an index of --rows sessions (bench/index_bench.py's generator, 20 gateways) loaded into
         PostgreSQL with COPY, indexes built afterwards; then p50/p95 of index_bench's `ls`
         filters and `--host` through player.query.list_sessions (target p95 < 100 ms).
  play   a 200 MB recording (bench/player_bench.py's generator) shipped with keep_local = 0,
         then `sshrec play ID` under a pseudo-terminal: exec to the first recorded byte, read
         from the store by ranged GETs; and `--at` the end (a seek through the shipped index).

Usage:  .venv/bin/python bench/fleet_bench.py [--only ship,ls,play] [--sessions 400] [--rows 10000000]
Results: a table on stdout, JSON in bench/out/fleet-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SSHREC = str(REPO / ".venv" / "bin" / "sshrec")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(ordered), 2),
            "p95_ms": round(1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2),
            "max_ms": round(1000 * ordered[-1], 2), "runs": len(ordered)}


# -- ship ---------------------------------------------------------------------------------------


def make_spool(home: Path, sessions: int, session_kb: int, large: int, large_mb: int) -> int:
    """Finished sessions with realistic casts and records (digests included); total cast bytes."""
    from player_bench import write_cast
    from sshrec.schema.entry import sha256_file
    from sshrec.schema.record import SessionRecord, iso_utc, new_session_id, write_record_atomically
    from sshrec.schema.spool import cast_path, ensure_dir, record_path, recording_dir

    total = 0
    start = 1_714_557_600.0
    for n in range(sessions + large):
        record = SessionRecord(id=new_session_id(start + n), user=f"user{n % 50}", host=f"gw-{n % 4}",
                               started_at=iso_utc(start + n), status="complete", command=["/bin/bash"],
                               exit_status=0)
        ensure_dir(recording_dir(str(home), record.id))
        cast = Path(cast_path(str(home), record.id))
        size = (large_mb * 1_000_000) if n >= sessions else session_kb * 1000
        record.duration = write_cast(cast, size, seed=n)
        record.ended_at = iso_utc(start + n + record.duration)
        record.sha256 = sha256_file(str(cast))
        write_record_atomically(record, record_path(str(home), record.id), durable=False)
        total += cast.stat().st_size
    return total


def bench_ship(server: Any, sessions: int, session_kb: int, large: int, large_mb: int) -> dict[str, Any]:
    from sshrec.schema import index, ship
    from sshrec.schema.db import open_index
    from sshrec.schema.spool import iter_record_files
    from sshrec.schema.storage import open_store

    from sshrec.commands.ship import seek_writer

    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as work:
        home = Path(work) / "spool"
        home.mkdir()
        log(f"ship: writing {sessions} x {session_kb} KB + {large} x {large_mb} MB sessions")
        cast_bytes = make_spool(home, sessions, session_kb, large, large_mb)
        files = [(p, p[: -len(".json")] + ".cast") for p in iter_record_files(str(home))]
        all_bytes = sum(os.path.getsize(c) + os.path.getsize(j) for j, c in files)
        engine = open_index(f"sqlite:///{work}/index.db")
        index.sync(engine, [str(home)])
        os.sync()
        # plain boto3: the same casts and records, s3transfer's defaults, no index, no verification
        plain_bucket = server.bucket()
        client = server.client()
        log("ship: plain boto3 upload_file")
        began = time.perf_counter()
        for json_path, cast in files:
            stem = os.path.basename(cast)[: -len(".cast")]
            client.upload_file(cast, plain_bucket, f"plain/{stem}.cast")
            client.upload_file(json_path, plain_bucket, f"plain/{stem}.json")
        plain = time.perf_counter() - began
        log("ship: sshrec ship")
        store = open_store(f"s3://{server.bucket()}/fleet", server.endpoint)
        began = time.perf_counter()
        report = ship.ship(engine, store, seek_writer=seek_writer)
        shipped = time.perf_counter() - began
        assert report.shipped == len(files) and not report.failed, report.failed
        began = time.perf_counter()
        again = ship.ship(engine, store, seek_writer=seek_writer)
        second = time.perf_counter() - began
        engine.dispose()
    sent = report.bytes
    return {
        "sessions": len(files), "cast_mb": round(cast_bytes / 1e6, 1),
        "plain_boto3": {"seconds": round(plain, 2), "mb_per_s": round(all_bytes / 1e6 / plain, 1),
                        "sessions_per_s": round(len(files) / plain, 1), "mb": round(all_bytes / 1e6, 1)},
        "sshrec_ship": {"seconds": round(shipped, 2), "mb_per_s": round(sent / 1e6 / shipped, 1),
                        "sessions_per_s": round(len(files) / shipped, 1), "mb": round(sent / 1e6, 1),
                        "objects": report.objects, "verified_by": report.verified_by},
        "second_run": {"seconds": round(second, 2), "shipped": again.shipped, "already": again.already},
    }


# -- ls on a big PostgreSQL index ---------------------------------------------------------------


def load_rows(url: str, rows: int, hosts: int) -> dict[str, float]:
    """index_bench's generator through COPY, with the sessions indexes dropped and rebuilt after."""
    from datetime import UTC, datetime

    import index_bench
    from sshrec.schema.db import open_index, writing
    from sshrec.schema.tables import sessions

    engine = open_index(url)
    world = index_bench.make_world()
    with writing(engine) as connection:
        saved = connection.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sessions' "
            "AND indexname NOT LIKE 'pk_%%' AND indexname NOT LIKE 'uq_%%'").all()
        for name, _ in saved:
            connection.exec_driver_sql(f"DROP INDEX {name}")
    columns = [c.name for c in sessions.c if c.name != "pk"]
    span = 365 * 86400
    began = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        quoted = ", ".join(f'"{c}"' for c in columns)
        batch = 200_000
        for first in range(0, rows, batch):
            count = min(batch, rows - first)
            starts = sorted(index_bench.NOW.timestamp() - world.rng.random() * span for _ in range(count))
            with cursor.copy(f"COPY sessions ({quoted}) FROM STDIN") as copy:
                for n, start in enumerate(starts, first):
                    row = index_bench.session_row(world, n, datetime.fromtimestamp(start, UTC))
                    row["host"] = f"gw-{n % hosts:02d}"
                    copy.write_row([json.dumps(row.get(c)) if c in ("command", "notes", "destinations", "files")
                                    else row.get(c) for c in columns])
            raw.commit()
            log(f"  {first + count:>11,} rows, {time.perf_counter() - began:7.1f} s")
        loaded = time.perf_counter() - began
        cursor.execute("SET maintenance_work_mem = '1GB'")
        index_began = time.perf_counter()
        for _, sql in saved:
            cursor.execute(sql)
            raw.commit()
        indexed = time.perf_counter() - index_began
        raw.driver_connection.autocommit = True
        cursor.execute("VACUUM ANALYZE sessions")
    finally:
        raw.close()
    engine.dispose()
    return {"rows": rows, "load_seconds": round(loaded, 1), "index_seconds": round(indexed, 1)}


def bench_ls(rows: int, hosts: int, runs: int) -> dict[str, Any]:
    import index_bench
    import sqlalchemy as sa
    from sshrec.player.query import Filters, list_sessions
    from sshrec.schema.db import open_index, reading

    backend = index_bench.postgres_backend(PG_ADMIN_URL)
    try:
        log(f"ls: loading {rows:,} rows into PostgreSQL")
        load = load_rows(backend.url, rows, hosts)
        engine = open_index(backend.url)
        world = index_bench.make_world(seed=3)
        cases = index_bench.ls_cases(world)
        cases["--host gw-NN"] = lambda r: {"host": f"gw-{r.randrange(hosts):02d}"}
        cases["--host gw-NN --user U --since 30d"] = lambda r: {
            "host": f"gw-{r.randrange(hosts):02d}", "user": r.choice(world.users),
            "since": index_bench.NOW - index_bench.timedelta(days=30)}
        rng = random.Random(11)
        results: dict[str, Any] = {}
        with reading(engine) as connection:
            list_sessions(connection, Filters())
        for name, make in cases.items():
            samples = []
            for _ in range(runs):
                filters = Filters(**make(rng))
                with reading(engine) as connection:
                    began = time.perf_counter()
                    list_sessions(connection, filters)
                    samples.append(time.perf_counter() - began)
            results[name] = percentiles(samples)
            log(f"  ls {name:46s} p50 {results[name]['p50_ms']:7.1f}  p95 {results[name]['p95_ms']:7.1f} ms")
        with engine.connect() as connection:
            query = sa.text("SELECT pg_size_pretty(pg_total_relation_size('sessions'))")
            size = connection.execute(query).scalar()
        engine.dispose()
    finally:
        backend.cleanup()
    return {"load": load, "table_size": size, "queries": results,
            "worst_p95_ms": max(v["p95_ms"] for v in results.values())}


# -- play from the store ------------------------------------------------------------------------


def bench_play(server: Any, size_mb: int, rounds: int) -> dict[str, Any]:
    from player_bench import generated, last_output_marker, time_to_output
    from sshrec.schema import index, ship
    from sshrec.schema.db import open_index
    from sshrec.schema.entry import sha256_file
    from sshrec.schema.record import SessionRecord, iso_utc, new_session_id, write_record_atomically
    from sshrec.schema.spool import cast_path, ensure_dir, record_path, recording_dir
    from sshrec.schema.storage import open_store

    from sshrec.commands.ship import seek_writer

    source = generated("play", size_mb, 2)
    with tempfile.TemporaryDirectory(prefix="fleet-play-") as work:
        home = Path(work) / "spool"
        record = SessionRecord(id=new_session_id(1_714_557_600.0), user="alice", host="gw-1",
                               started_at=iso_utc(1_714_557_600.0), status="complete", command=["/bin/bash"])
        ensure_dir(recording_dir(str(home), record.id))
        shutil.copyfile(source, cast_path(str(home), record.id))
        record.sha256 = sha256_file(cast_path(str(home), record.id))
        write_record_atomically(record, record_path(str(home), record.id))
        bucket = server.bucket()
        config = Path(work) / "sshrec.toml"
        db = f"sqlite:///{work}/index.db"
        config.write_text(f'home = "{home}"\ndb = "{db}"\nstorage = "s3://{bucket}/fleet"\n'
                          f's3_endpoint_url = "{server.endpoint}"\n')
        engine = open_index(db)
        index.sync(engine, [str(home)])
        log(f"play: shipping a {size_mb} MB recording (keep_local = 0)")
        report = ship.ship(engine, open_store(f"s3://{bucket}/fleet", server.endpoint), keep_local=0,
                           seek_writer=seek_writer)
        assert report.removed_local == 1, report
        engine.dispose()
        env = dict(os.environ, SSHREC_CONFIG=str(config), LC_ALL="C.UTF-8", TERM="xterm-256color")
        env.pop("SSHREC_HOME", None)
        env.pop("SSHREC_DB", None)
        results: dict[str, Any] = {}
        needle = b"alice@db1"
        cold, warm, ends = [], [], []
        end_time, end_needle = last_output_marker(source)
        for _ in range(rounds):
            cache = Path(tempfile.mkdtemp(prefix="fleet-cache-", dir=work))
            env["SSHREC_CACHE_DIR"] = str(cache)
            cold.append(time_to_output([SSHREC, "play", record.id], env, needle))
            warm.append(time_to_output([SSHREC, "play", record.id], env, needle))
            ends.append(time_to_output([SSHREC, "play", "--raw", "--at", f"{end_time:.3f}", record.id], env,
                                       end_needle[-24:]))  # the last output: replay + write included
        base = [time_to_output([SSHREC, "play", str(source)], dict(env, SSHREC_CONFIG="/dev/null"), needle)
                for _ in range(rounds)]
        results = {"size_mb": round(os.path.getsize(source) / 1e6, 1),
                   "first_frame_store_ms": [round(x * 1000, 1) for x in cold],
                   "first_frame_store_cached_index_ms": [round(x * 1000, 1) for x in warm],
                   "seek_to_end_store_ms": [round(x * 1000, 1) for x in ends],
                   "first_frame_local_file_ms": [round(x * 1000, 1) for x in base]}
        for key in list(results):
            if key.endswith("_ms"):
                results[key.replace("_ms", "_median_ms")] = round(statistics.median(results[key]), 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="ship,ls,play")
    parser.add_argument("--sessions", type=int, default=400)
    parser.add_argument("--session-kb", type=int, default=256)
    parser.add_argument("--large", type=int, default=4, help="sessions of --large-mb each (multipart)")
    parser.add_argument("--large-mb", type=int, default=50)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--play-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    phases = set(args.only.split(","))
    import s3_support

    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "load_before": os.getloadavg()}
    server = None
    work = Path(tempfile.mkdtemp(prefix="fleet-weed-"))
    try:
        if phases & {"ship", "play"}:
            server = s3_support.start_server(work)
            os.environ.update(AWS_ACCESS_KEY_ID=s3_support.ACCESS_KEY,
                              AWS_SECRET_ACCESS_KEY=s3_support.SECRET_KEY,
                              AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                              AWS_EC2_METADATA_DISABLED="true")
        if "ship" in phases:
            result["ship"] = bench_ship(server, args.sessions, args.session_kb, args.large, args.large_mb)
            log(json.dumps(result["ship"]))
        if "play" in phases:
            result["play"] = bench_play(server, args.play_mb, args.rounds)
            log(json.dumps(result["play"]))
        if "ls" in phases:
            result["ls"] = bench_ls(args.rows, args.hosts, args.runs)
    finally:
        if server is not None:
            s3_support.stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = os.getloadavg()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"fleet-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print(f"(saved in {out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
