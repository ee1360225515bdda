#!/usr/bin/env python3
"""Benchmark of the sshrec index: filters at 1M sessions, search at 100k, indexing rate.

For each back end (SQLite file, PostgreSQL database created for the run and dropped):

  build    1,000,000 session rows (realistic spread of users, keys, clients, commands,
           statuses, exit codes over a year), 100,000 of them with ~10 KB of screen text
           (a Zipf vocabulary, so some words are everywhere and some nearly nowhere). Rows go
           in through the indexer's own SQL (insert + FTS triggers / tsvector), without the
           per-file parsing, then the back end's statistics are gathered (ANALYZE).
  ls       p50/p95 of typical `sshrec ls` filters, each with fresh random values per run,
           through the same query code as the command (player.query.list_sessions).
  search   p50/p95 of `sshrec search` for rare, medium and common words, two words,
           a phrase, and a word with a filter (player.query.search_sessions).
  index    the real path: N spool sessions (cast + record files, ~10 KB of output each with
           colours and cursor moves) written, then `index.sync` into the big index:
           sessions/s and MB/s of cast read; and `sshrec index --add` wall time (what a
           recorder starts at session end).
  startup  `sshrec ls` start to exit on a small index next to `python -c "import sqlalchemy"`
           (the floor of anything that loads SQLAlchemy), interleaved runs, medians.

Usage:  .venv/bin/python bench/index_bench.py [--scale 1.0] [--backends sqlite,postgresql]
Results: a table on stdout and JSON in bench/out/index-<time>.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
OUT_DIR = REPO / "bench" / "out"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FULL_SESSIONS = 1_000_000
FULL_TEXT_SESSIONS = 100_000
TEXT_BYTES = 10_000
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)  # data spans the year before this
TARGETS = {"ls_p95_ms": 50.0, "search_p95_ms": 300.0, "startup_ratio": 1.3}

sys.path.insert(0, str(REPO))


# -- data -------------------------------------------------------------------------------------


@dataclass
class World:
    """Deterministic vocabularies the rows and the queries are drawn from."""

    rng: random.Random
    users: list[str]
    keys: dict[str, list[str]]
    hosts: list[str]
    commands: list[str]
    words: list[str]
    weights: list[float]
    lines: list[str]


def make_world(seed: int = 1) -> World:
    rng = random.Random(seed)
    users = [f"user{i:04d}" for i in range(1000)] + ["alice", "bob", "deploy", "backup"]
    keys = {
        u: [
            "SHA256:" + base64.b64encode(rng.randbytes(32)).decode().rstrip("=")
            for _ in range(rng.randint(1, 2))
        ]
        for u in users
    }
    hosts = [f"db-{i:03d}.internal:5432" for i in range(80)] + [f"app{i:03d}.example.com" for i in range(120)]
    commands = [
        "deploy --env prod --build {n}",
        "psql -h db-{h:03d} -c 'select count(*) from orders'",
        "rsync -a /srv/data/ backup-{h:02d}:/backups/",
        "sudo systemctl restart nginx",
        "tail -n 200 /var/log/app/{h}.log",
        "kubectl -n team{h} get pods",
        "ansible-playbook site.yml --limit web{h}",
        "git pull && make install",
        "pg_dump shop > /tmp/shop-{n}.sql",
        "docker logs --tail 100 api-{h}",
    ]
    words = [_word(rng, i) for i in range(30_000)]
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(words))]
    lines = []
    for _ in range(20_000):
        picked = rng.choices(words, weights, k=rng.randint(4, 14))
        prefix = rng.choice(["", "$ ", "INFO ", "ERROR ", "  ", "root@web:~# "])
        lines.append(prefix + " ".join(picked))
    return World(rng, users, keys, hosts, commands, words, weights, lines)


def _word(rng: random.Random, i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    size = 2 + (i % 9)
    return "".join(rng.choice(letters) for _ in range(size)) + ("" if i % 7 else str(i % 100))


def session_row(world: World, n: int, start: datetime) -> dict[str, Any]:
    rng = world.rng
    from sshrec.schema.entry import command_text
    from sshrec.schema.record import new_session_id

    user = (
        world.users[min(int(rng.paretovariate(1.2)) - 1, len(world.users) - 1)]
        if rng.random() < 0.3
        else rng.choice(world.users)
    )
    interactive = rng.random() < 0.4
    original = None if interactive else rng.choice(world.commands).format(n=n, h=rng.randint(0, 99))
    if not interactive and rng.random() < 0.0005:
        original = f"ssh -J bastion rare-host-{n}.corp"  # a needle for --command
    command = ["/bin/bash", "-l"] if interactive else ["/bin/bash", "-c", original]
    roll = rng.random()
    status = (
        "complete"
        if roll < 0.95
        else "interrupted"
        if roll < 0.98
        else "failed"
        if roll < 0.995
        else "recording"
    )
    exit_roll = rng.random()
    exit_status = (
        None
        if status != "complete"
        else 0
        if exit_roll < 0.85
        else 1
        if exit_roll < 0.95
        else rng.choice([2, 127, 130, 137])
    )
    duration = round(rng.expovariate(1 / 300), 3)
    return {
        "id": new_session_id(start.timestamp()),
        "user": user,
        "uid": 1000 + sum(map(ord, user)),
        "host": "bastion-1",
        "client_addr": f"10.{rng.randint(0, 40)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "client_port": rng.randint(30000, 60000),
        "server_addr": "10.0.0.1",
        "server_port": 22,
        "auth_method": "publickey",
        "key_type": "ssh-ed25519",
        "key_fingerprint": rng.choice(world.keys[user]),
        "original_command": original,
        "command": command,
        "destination": rng.choice(world.hosts) if rng.random() < 0.7 else None,
        "mode": "pty" if interactive else "pipe",
        "term": "xterm-256color",
        "cols": 120,
        "rows": 40,
        "started_at": start,
        "ended_at": start + timedelta(seconds=duration),
        "duration": duration,
        "exit_status": exit_status,
        "exit_signal": "SIGKILL" if status == "failed" else None,
        "bytes_out": rng.randint(100, 1_000_000),
        "bytes_in": rng.randint(0, 5000),
        "status": status,
        "sha256": rng.randbytes(32).hex(),
        "path": f"/var/lib/sshrec/recordings/x/{n}.cast",
        "recorder_version": "0.1.0",
        "invalid_bytes": 0,
        "notes": [],
        "command_text": command_text(original, command),
    }


def screen_chunks(world: World, n: int) -> tuple[str, str]:
    """(~10 KB of screen text, its marks) for text session number ``n``."""
    rng = world.rng
    parts, size = [], 0
    needle_every = {f"needle{n // 10}": 10}  # each needle word is in 10 sessions
    while size < TEXT_BYTES:
        line = rng.choice(world.lines)
        parts.append(line)
        size += len(line) + 1
    parts.insert(rng.randrange(len(parts)), f"token-{n} " + next(iter(needle_every)))
    text = "\n".join(parts) + "\n"
    marks, offset, t = [], 0, 0
    for index, line in enumerate(parts):
        if index % 4 == 0:
            marks.append([offset, t])
            t += rng.randint(100, 5000)
        offset += len(line) + 1
    return text, json.dumps(marks, separators=(",", ":"))


# -- back ends --------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    url: str
    cleanup: Callable[[], None]


def sqlite_backend(workdir: Path) -> Backend:
    path = workdir / "index.db"
    return Backend("sqlite", f"sqlite:///{path}", lambda: None)


def postgres_backend(admin_url: str) -> Backend:
    import sqlalchemy as sa

    name = f"sshrec_bench_{os.getpid()}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return Backend("postgresql", url, drop)


# -- phases -----------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build(engine: Any, world: World, total: int, with_text: int) -> dict[str, float]:
    """Insert ``total`` rows, ``with_text`` of them (evenly spread) with screen text."""
    import sqlalchemy as sa
    from sshrec.schema.db import writing
    from sshrec.schema.index import insert_screen_text
    from sshrec.schema.tables import sessions

    span = 365 * 86400
    starts = sorted(NOW.timestamp() - world.rng.random() * span for _ in range(total))
    every = max(total // with_text, 1)  # every tenth session over the year has screen text
    batch = 5000
    began = time.perf_counter()
    text_seconds, text_bytes, texts = 0.0, 0, 0
    with bulk_load(engine) as timings:
        for first in range(0, total, batch):
            rows = [
                session_row(world, n, datetime.fromtimestamp(starts[n], UTC))
                for n in range(first, min(first + batch, total))
            ]
            chunks = []
            for n, row in zip(range(first, first + len(rows)), rows, strict=True):
                if n % every == 0 and texts < with_text:
                    text, marks = screen_chunks(world, texts)
                    texts += 1
                    text_bytes += len(text)
                    chunks.append(
                        {"session_id": row["id"], "chunk": 0, "time": 0.0, "marks": marks, "text": text}
                    )
            with writing(engine) as connection:
                connection.execute(sa.insert(sessions), rows)
                t0 = time.perf_counter()
                for start in range(0, len(chunks), 500):
                    insert_screen_text(connection, chunks[start : start + 500])
                text_seconds += time.perf_counter() - t0
            if (first // batch) % 20 == 0:
                log(f"  {first + len(rows):>9,} rows, {time.perf_counter() - began:6.1f} s")
    elapsed = time.perf_counter() - began
    analyze_began = time.perf_counter()
    analyze(engine)
    return {
        "rows": total,
        "text_sessions": with_text,
        "text_mb": text_bytes / 1e6,
        "seconds": elapsed,
        "rows_per_s": total / elapsed,
        "text_insert_seconds": text_seconds,
        "fulltext_rebuild_seconds": timings["rebuild"],
        "analyze_seconds": time.perf_counter() - analyze_began,
    }


@contextmanager
def bulk_load(engine: Any) -> Iterator[dict[str, float]]:
    """Load without per-row full-text maintenance, then build those indexes in one go, as a
    restore would: SQLite FTS5 triggers are dropped and the tables rebuilt from their
    content; PostgreSQL GIN indexes are dropped and created again. The definitions are read
    back from the database, so this stays in step with the migrations."""
    from sshrec.schema.db import writing

    timings = {"rebuild": 0.0}
    with writing(engine) as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA cache_size = -262144")
            saved = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            ).all()
            for name, _ in saved:
                connection.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            saved = connection.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexdef ILIKE '%%USING gin%%' "
                "AND schemaname = current_schema()"
            ).all()
            for name, _ in saved:
                connection.exec_driver_sql(f"DROP INDEX {name}")
    yield timings
    began = time.perf_counter()
    with writing(engine) as connection:
        if engine.dialect.name == "sqlite":
            for table in ("screen_fts", "command_fts"):
                connection.exec_driver_sql(f"INSERT INTO {table}({table}) VALUES ('rebuild')")
        else:
            connection.exec_driver_sql("SET maintenance_work_mem = '512MB'")
        for _, sql in saved:
            connection.exec_driver_sql(sql)
    timings["rebuild"] = time.perf_counter() - began


def analyze(engine: Any) -> None:
    from sshrec.schema.db import writing

    if engine.dialect.name == "sqlite":
        with writing(engine) as connection:  # what `sshrec index` does after a sync
            connection.exec_driver_sql("PRAGMA analysis_limit = 1000")
            connection.exec_driver_sql("ANALYZE")
    else:  # what autovacuum would have done by the time anyone searches
        raw = engine.raw_connection()
        try:
            raw.driver_connection.autocommit = True
            raw.cursor().execute("VACUUM ANALYZE")
        finally:
            raw.close()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))],
        "max_ms": 1000 * ordered[-1],
        "runs": len(ordered),
    }


def ls_cases(world: World) -> dict[str, Callable[[random.Random], dict[str, Any]]]:
    def when(days: float) -> datetime:
        return NOW - timedelta(days=days)

    return {
        "newest 50 (no filter)": lambda r: {},
        "--user U": lambda r: {"user": r.choice(world.users)},
        "--user 'user01*'": lambda r: {"user": f"user0{r.randint(0, 9)}{r.randint(0, 9)}*"},
        "--key SHA256:<10 chars>": lambda r: {"key": r.choice(world.keys[r.choice(world.users)])[:17]},
        "--command common (deploy)": lambda r: {"command": r.choice(["deploy", "nginx", "kubectl"])},
        "--command rare (rare-host-N)": lambda r: {"command": f"rare-host-{r.randint(0, 999_999)}"},
        "--command 2 chars": lambda r: {"command": r.choice(["-c", "-l", "> "])},
        "--destination D": lambda r: {"destination": r.choice(world.hosts)},
        "--client 10.N.*": lambda r: {"client": f"10.{r.randint(0, 40)}.*"},
        "--since 2h": lambda r: {"since": when(2 / 24)},
        "--since 30d --until 29d": lambda r: {"since": when(30 + r.random() * 300), "until": when(29)},
        "--status interrupted": lambda r: {"status": ["interrupted"]},
        "--exit nonzero": lambda r: {"exit": "nonzero"},
        "--exit 137": lambda r: {"exit": "137"},
        "--user U --since 30d": lambda r: {"user": r.choice(world.users), "since": when(30)},
        "--user U --exit nonzero --status complete": lambda r: {
            "user": r.choice(world.users),
            "exit": "nonzero",
            "status": ["complete"],
        },
    }


def search_cases(
    world: World, text_sessions: int
) -> dict[str, Callable[[random.Random], tuple[str, bool, dict[str, Any]]]]:
    common = world.words[:20]
    medium = world.words[300:2000]
    return {
        "rare word (10 sessions)": lambda r: (f"needle{r.randrange(max(text_sessions // 10, 1))}", False, {}),
        "unique token": lambda r: (f"token {r.randrange(text_sessions)}", True, {}),
        "medium word": lambda r: (r.choice(medium), False, {}),
        "common word (in most)": lambda r: (r.choice(common), False, {}),
        "two words": lambda r: (f"{r.choice(medium)} {r.choice(common)}", False, {}),
        "phrase of two common words": lambda r: (f"{r.choice(common)} {r.choice(common)}", True, {}),
        "medium word --user U": lambda r: (r.choice(medium), False, {"user": r.choice(world.users)}),
        "common word --since 7d": lambda r: (r.choice(common), False, {"since": NOW - timedelta(days=7)}),
    }


def _p(stats: dict[str, float]) -> str:
    return f"p50 {stats['p50_ms']:7.1f} ms  p95 {stats['p95_ms']:7.1f} ms"


def run_queries(engine: Any, world: World, runs: int, text_sessions: int) -> dict[str, Any]:
    from sshrec.player.query import Filters, SearchText, list_sessions, search_sessions
    from sshrec.schema.db import reading

    rng = random.Random(7)
    results: dict[str, Any] = {"ls": {}, "search": {}}
    with reading(engine) as connection:
        list_sessions(connection, Filters())  # warm the connection and caches a little
    for name, make in ls_cases(world).items():
        samples, counts = [], []
        for _ in range(runs):
            filters = Filters(**make(rng))
            with reading(engine) as connection:
                began = time.perf_counter()
                page = list_sessions(connection, filters)
                samples.append(time.perf_counter() - began)
            counts.append(len(page.items))
        results["ls"][name] = {**percentiles(samples), "mean_rows": statistics.mean(counts)}
        log(f"  ls {name:44s} {_p(results['ls'][name])}")
    for name, make in search_cases(world, text_sessions).items():
        samples, counts = [], []
        for _ in range(max(runs // 2, 5)):
            text, phrase, extra = make(rng)
            query = SearchText.parse(text, phrase)
            with reading(engine) as connection:
                began = time.perf_counter()
                page = search_sessions(connection, query, Filters(**extra))
                samples.append(time.perf_counter() - began)
            counts.append(len(page.items))
        results["search"][name] = {**percentiles(samples), "mean_rows": statistics.mean(counts)}
        log(f"  search {name:40s} {_p(results['search'][name])}")
    return results


def write_spool(home: Path, world: World, count: int) -> int:
    """``count`` finished sessions as a recorder leaves them; returns cast bytes written."""
    from sshrec.schema.record import SessionRecord, iso_utc, new_session_id, write_record_atomically
    from sshrec.schema.spool import cast_path, ensure_dir, record_path, recording_dir

    rng = world.rng
    total = 0
    for n in range(count):
        start = NOW.timestamp() + n
        record = SessionRecord(id=new_session_id(start))
        row = session_row(world, n, datetime.fromtimestamp(start, UTC))
        for name in ("user", "client_addr", "key_fingerprint", "original_command", "command", "destination"):
            setattr(record, name, row[name])
        record.started_at = iso_utc(start)
        record.status = "complete"
        lines, t, size = (
            [json.dumps({"version": 2, "width": 120, "height": 40, "timestamp": int(start)})],
            0.0,
            0,
        )
        while size < TEXT_BYTES:
            text = rng.choice(world.lines)
            colour = rng.choice(["", "\x1b[1;32m", "\x1b[31m", "\x1b[2K\r"])
            data = f"{colour}{text}\x1b[0m\r\n" if colour else text + "\r\n"
            t += rng.expovariate(20)
            lines.append(json.dumps([round(t, 6), "o", data]))
            size += len(data)
        record.duration = round(t, 6)
        body = "\n".join(lines) + "\n"
        ensure_dir(recording_dir(str(home), record.id))
        with open(cast_path(str(home), record.id), "w") as handle:
            handle.write(body)
        total += len(body.encode())
        write_record_atomically(record, record_path(str(home), record.id))
    return total


def index_rate(engine: Any, url: str, world: World, count: int, workdir: Path) -> dict[str, float]:
    from sshrec.schema import index
    from sshrec.schema.spool import iter_record_files

    home = workdir / f"spool-{engine.dialect.name}"
    cast_bytes = write_spool(home, world, count)
    began = time.perf_counter()
    report = index.sync(engine, str(home))
    elapsed = time.perf_counter() - began
    assert report.new == count, report.summary()
    # what a recorder starts at session end: one more session, one process
    extra = home / "extra"
    write_spool(extra, world, 5)
    add_times = []
    for path in iter_record_files(str(extra)):
        began_add = time.perf_counter()
        subprocess.run(
            [str(VENV_BIN / "python"), "-m", "sshrec.cli", "index", "--add", path, "--quiet", "--db", url],
            check=True,
        )
        add_times.append(time.perf_counter() - began_add)
    return {
        "sessions": count,
        "cast_mb": cast_bytes / 1e6,
        "seconds": elapsed,
        "sessions_per_s": count / elapsed,
        "mb_per_s": cast_bytes / 1e6 / elapsed,
        "add_process_median_ms": 1000 * statistics.median(add_times),
    }


def startup(workdir: Path, world: World, rounds: int) -> dict[str, float]:
    """`sshrec ls` on a small SQLite index vs the bare cost of importing SQLAlchemy."""
    home = workdir / "small"
    write_spool(home, world, 100)
    env = {**os.environ, "SSHREC_HOME": str(home), "SSHREC_DB": f"sqlite:///{home}/index.db"}
    python = str(VENV_BIN / "python")
    subprocess.run([python, "-m", "sshrec.cli", "index", "--quiet"], env=env, check=True)
    commands = {
        "import_sqlalchemy": [python, "-c", "import sqlalchemy"],
        "sshrec_ls": [str(VENV_BIN / "sshrec"), "ls"],
        "sshrec_ls_json": [str(VENV_BIN / "sshrec"), "ls", "--json", "--user", "alice"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            began = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - began)
    out = {f"{k}_median_ms": 1000 * statistics.median(v) for k, v in times.items()}
    out["ratio"] = out["sshrec_ls_median_ms"] / out["import_sqlalchemy_median_ms"]
    return out


# -- main -------------------------------------------------------------------------------------


@dataclass
class Result:
    machine: dict[str, Any]
    args: dict[str, Any]
    backends: dict[str, Any] = field(default_factory=dict)
    startup: dict[str, float] = field(default_factory=dict)


def machine() -> dict[str, Any]:
    import sqlite3

    import sqlalchemy

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--scale", type=float, default=1.0, help="fraction of 1M rows / 100k text sessions (default 1)"
    )
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--pg-url", default=PG_ADMIN_URL, help="admin URL; a database is created for the run")
    p.add_argument("--runs", type=int, default=40, help="runs per ls filter (search: half)")
    p.add_argument("--spool-sessions", type=int, default=2000, help="files for the indexing-rate run")
    p.add_argument("--workdir", help="where the SQLite file and spools go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory and database")
    args = p.parse_args(argv)

    total = max(int(FULL_SESSIONS * args.scale), 1000)
    with_text = max(int(FULL_TEXT_SESSIONS * args.scale), 100)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="sshrec-index-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = Result(machine(), {**vars(args), "rows": total, "text_sessions": with_text})
    from sshrec.schema.db import open_index

    began = time.perf_counter()
    try:
        for name in args.backends.split(","):
            backend = sqlite_backend(workdir) if name == "sqlite" else postgres_backend(args.pg_url)
            world = make_world()
            engine = open_index(backend.url)
            try:
                log(f"{name}: building {total:,} sessions, {with_text:,} with screen text")
                stats = {"build": build(engine, world, total, with_text)}
                log(f"{name}: built in {stats['build']['seconds']:.0f} s; queries")
                stats.update(run_queries(engine, world, args.runs, with_text))
                log(f"{name}: indexing {args.spool_sessions} spool sessions")
                stats["index"] = index_rate(engine, backend.url, world, args.spool_sessions, workdir)
                if name == "sqlite":
                    stats["size_mb"] = os.path.getsize(workdir / "index.db") / 1e6
                result.backends[name] = stats
            finally:
                engine.dispose()
                if not args.keep:
                    backend.cleanup()
        log("startup: sshrec ls vs import sqlalchemy")
        result.startup = startup(workdir, make_world(), 25)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result.args["total_seconds"] = time.perf_counter() - began
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"index-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(asdict(result), indent=1, default=str))
    print(report(result))
    print(f"\nJSON: {out}")
    return 0


def report(result: Result) -> str:
    names = list(result.backends)
    a = result.args
    lines = [f"rows {a['rows']:,}, text sessions {a['text_sessions']:,}, total {a['total_seconds']:.0f} s", ""]
    lines.append("| query | " + " | ".join(f"{n} p50 / p95 ms" for n in names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for kind in ("ls", "search"):
        for case in next(iter(result.backends.values()))[kind]:
            cells = []
            for n in names:
                stats = result.backends[n][kind][case]
                cells.append(f"{stats['p50_ms']:.1f} / {stats['p95_ms']:.1f}")
            lines.append(f"| {kind} {case} | " + " | ".join(cells) + " |")
    lines.append("")
    for n in names:
        b = result.backends[n]
        build, index = b["build"], b["index"]
        worst_ls = max(v["p95_ms"] for v in b["ls"].values())
        worst_search = max(v["p95_ms"] for v in b["search"].values())
        lines.append(
            f"{n}: build {build['rows_per_s']:,.0f} rows/s ({build['seconds']:.0f} s, "
            f"text {build['text_mb']:.0f} MB); index {index['sessions_per_s']:,.0f} sessions/s, "
            f"{index['mb_per_s']:.1f} MB/s; --add process {index['add_process_median_ms']:.0f} ms; "
            f"worst ls p95 {worst_ls:.1f} ms (target {TARGETS['ls_p95_ms']:.0f}); "
            f"worst search p95 {worst_search:.1f} ms (target {TARGETS['search_p95_ms']:.0f})"
        )
    s = result.startup
    if s:
        lines.append(
            f"startup: sshrec ls {s['sshrec_ls_median_ms']:.0f} ms, "
            f"import sqlalchemy {s['import_sqlalchemy_median_ms']:.0f} ms, "
            f"ratio {s['ratio']:.2f} (target {TARGETS['startup_ratio']})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
