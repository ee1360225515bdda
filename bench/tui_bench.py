#!/usr/bin/env python3
"""Benchmark of `sshrec tui`: the targets of issue 10.

On a 1M-session index (index_bench.py's generator: users, keys, commands over a year, 100k
sessions with screen text), for SQLite and PostgreSQL:

  first paint    `sshrec tui` started in tmux until the first rows are on its screen (target
                 < 1 s); beside it `sshrec ls` from start to exit (the CLI listing the same).
  typing         a query typed key by key in the running app (pilot), from the last key until
                 the table shows the new results (target < 300 ms, debounce included).
  scan           the background count of all rows (anchors) for the empty query.
  jump           the cursor sent to random rows of the million: until that row is drawn
                 (target < 100 ms).
  memory         peak RSS of a child process that opens the app, counts every row and jumps 50
                 times, at 10k, 100k and 1M sessions (SQLite): flat means the rows are not kept.

On a 200 MB recording (player_bench.py's generator; cache dirs fresh per phase):

  first frame    the replay screen pushed until its first frame is drawn (target < 150 ms);
                 beside it `sshrec play` and `asciinema play` from exec to the first output.
  seek           random targets, seek and draw, before keyframes (the seek index's plan) and
                 with them (target < 300 ms); beside it `sshrec play --at END`.
  render         the whole file through the emulator (MB/s, target >= 20), the keyframe pass,
                 and pyte on a 4 MB slice when it is installed.

Usage:  .venv/bin/python bench/tui_bench.py [--sessions 1000000] [--backends sqlite,postgresql]
                                             [--cast-mb 200] [--keep] [--only index|replay]
The indexes are kept between runs when --keep is given (SQLite in bench/out/, PostgreSQL as
database sshrec_tui_bench_N); a table on stdout and JSON in bench/out/tui-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
SSHREC = str(REPO / ".venv" / "bin" / "sshrec")
ASCIINEMA = str(REPO / ".venv" / "bin" / "asciinema")
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import index_bench  # noqa: E402
import player_bench  # noqa: E402
import sqlalchemy as sa  # noqa: E402

TYPED = ("user:alice", "cmd:rsync", "dest:db-001*", "status:failed since:90d", "exit:nonzero mode:pty",
         "needle1234", "user:deploy needle77")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": ms(statistics.median(ordered)), "max_ms": ms(ordered[-1]), "runs": len(ordered)}


# -- the index ---------------------------------------------------------------------------------


def index_url(backend: str, sessions: int) -> str:
    """An index of ``sessions`` rows, built (index_bench's generator) unless one is there."""
    if backend == "sqlite":
        path = OUT_DIR / f"tui-index-{sessions}.db"
        url = f"sqlite:///{path}"
        if path.exists() and _rows(url) == sessions:
            return url
        path.unlink(missing_ok=True)
    else:
        name = f"sshrec_tui_bench_{sessions}"
        url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            exists = connection.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).first()
            if exists and _rows(url) == sessions:
                return url
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
    from sshrec.schema.db import open_index

    log(f"{backend}: building an index of {sessions:,} sessions")
    engine = open_index(url)
    try:
        index_bench.build(engine, index_bench.make_world(), sessions, max(sessions // 10, 1))
    finally:
        engine.dispose()
    return url


def _rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.exec_driver_sql("SELECT count(*) FROM sessions").scalar_one())
    except sa.exc.DBAPIError:
        return -1
    finally:
        engine.dispose()


def drop_postgres(sessions: int) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "sshrec_tui_bench_{sessions}" WITH (FORCE)')
    admin.dispose()


def bench_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ, SSHREC_CONFIG="/dev/null", SSHREC_CACHE_DIR=str(cache), LC_ALL="C.UTF-8",
               TERM="xterm-256color", SSHREC_HOME=str(cache / "home"))
    for name in ("COLUMNS", "LINES", "TMUX"):
        env.pop(name, None)
    return env


def first_paint_tmux(url: str, rounds: int, workdir: Path) -> list[float]:
    """`sshrec tui` in a real terminal until rows are on its screen."""
    from tmuxdriver import Tmux

    times = []
    for n in range(rounds):
        tmux = Tmux(f"sshrec-bench-{os.getpid()}-{n}", workdir / f"tmux-{n}.conf", 120, 40)
        env = bench_env(workdir)
        argv = ["env", *(f"{k}={v}" for k, v in env.items() if k.startswith(("SSHREC", "LC_", "TERM"))),
                SSHREC, "tui", "--db", url]
        try:
            start = time.perf_counter()
            tmux.start(shlex.join(argv))
            while True:
                screen = tmux.screen()
                if "STARTED (UTC)" in screen and any(line.rstrip().endswith(("complete", "live", "interrupted",
                                                                               "failed"))
                                                     for line in screen.splitlines()):
                    break
                if time.perf_counter() - start > 30:
                    raise RuntimeError(f"no rows on the screen after 30 s:\n{screen}")
                time.sleep(0.005)
            times.append(time.perf_counter() - start)
        finally:
            tmux.kill()
    return times


def end_key_tmux(url: str, rounds: int, workdir: Path) -> dict[str, list[float]]:
    """In a real terminal, on the results: the Down key until the status line says row 2 (what
    any key costs: Textual, the terminal, tmux), and the End key until the oldest of the million
    rows is drawn (its start time on the screen)."""
    from tmuxdriver import Tmux

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        oldest = connection.exec_driver_sql("SELECT min(started_at) FROM sessions").scalar_one()
    engine.dispose()
    oldest_text = str(oldest)[5:19].replace("T", " ")  # MM-DD HH:MM:SS: with or without the year
    times: dict[str, list[float]] = {"down": [], "end": []}
    env = bench_env(workdir)
    argv = ["env", *(f"{k}={v}" for k, v in env.items() if k.startswith(("SSHREC", "LC_", "TERM"))),
            SSHREC, "tui", "--db", url]
    for n in range(rounds):
        tmux = Tmux(f"sshrec-bench-end-{os.getpid()}-{n}", workdir / f"tmux-end-{n}.conf", 120, 40)
        try:
            tmux.start(shlex.join(argv))
            counted = tmux.wait_for(" session(s)", timeout=60)
            while "counting" in counted:
                time.sleep(0.05)
                counted = tmux.screen()
            tmux.keys("Enter")  # to the results
            tmux.wait_for("⏎ replay")
            start = time.perf_counter()
            tmux.keys("Down")
            tmux.wait_for("  row 2\n", timeout=30, poll=0.002)
            times["down"].append(time.perf_counter() - start)
            start = time.perf_counter()
            tmux.keys("End")
            tmux.wait_for(oldest_text, timeout=30, poll=0.002)
            times["end"].append(time.perf_counter() - start)
        finally:
            tmux.kill()
    return times


def ls_wall(url: str, rounds: int, workdir: Path) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([SSHREC, "ls", "--db", url, "--limit", "50"], env=bench_env(workdir), check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


async def _wait(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.001)


async def in_app(url: str, home: Path, jumps: int) -> dict[str, Any]:
    """First paint in process, typing, the full count and random jumps, in one running app."""
    from sshrec.player.tui.app import SshrecApp
    from sshrec.player.tui.results import ResultsTable
    from sshrec.schema.db import open_index

    out: dict[str, Any] = {}
    start = time.perf_counter()
    engine = open_index(url)
    app = SshrecApp(engine, str(home))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.query_one(ResultsTable)
            await _wait(lambda: table.pages is not None and table.pages.row(0) is not None)
            await pilot.pause()
            out["first_paint_inprocess_ms"] = ms(time.perf_counter() - start)
            typing: dict[str, list[float]] = {}
            for text in TYPED * 3:
                app.query_one("#search").value = ""  # type: ignore[attr-defined]
                app.query_one("#search").focus()
                await pilot.pause()
                await pilot.press(*text)
                typed = time.perf_counter()

                def shown(text: str = text) -> bool:
                    pages = table.pages
                    return (app.current_text == text and pages is not None
                            and (pages.row(0) is not None or pages.total == 0))

                await _wait(shown)
                await pilot.pause()
                typing.setdefault(text, []).append(time.perf_counter() - typed)
            out["typing"] = {text: summary(samples) for text, samples in typing.items()}
            out["typing_all"] = summary([t for samples in typing.values() for t in samples])
            app.query_one("#search").value = ""  # type: ignore[attr-defined]
            await pilot.press("enter")
            await _wait(lambda: app.current_text == "" and table.pages is not None
                        and table.pages.total is not None, timeout=600)
            out["rows"] = table.pages.total  # type: ignore[union-attr]
            rng = random.Random(1)
            samples = []
            for _ in range(jumps):
                target = rng.randrange(out["rows"])
                began = time.perf_counter()
                table._go(target)
                await _wait(lambda target=target: table.pages.row(target) is not None)  # type: ignore[union-attr]
                samples.append(time.perf_counter() - began)  # the row is read and the table refreshes
                await pilot.pause()
            out["jump"] = summary(samples)
    finally:
        engine.dispose()
    return out


def scan_time(url: str) -> float:
    """Seconds to count every row of the empty query (the table's background scan, alone)."""
    from sshrec.player.query import parse_query
    from sshrec.player.tui.pages import SessionPages
    from sshrec.schema.db import open_index

    engine = open_index(url)
    try:
        pages = SessionPages(engine, parse_query("", limit=0))
        began = time.perf_counter()
        while not pages.scan_step():
            pass
        return time.perf_counter() - began
    finally:
        engine.dispose()


def memory_child(url: str) -> str:
    """Peak RSS (KB) of opening the app, counting every row and jumping around, and the Python
    heap's peak (KB, tracemalloc): RSS includes SQLite's page caches (32 MiB a connection)."""
    import tracemalloc

    tracemalloc.start()
    asyncio.run(in_app(url, Path(tempfile.mkdtemp()), 50))
    _, peak = tracemalloc.get_traced_memory()
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {peak // 1024}"


def bench_index(backends: list[str], sessions: int, rounds: int, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for backend in backends:
        url = index_url(backend, sessions)
        log(f"{backend}: first paint, typing, scan, jumps")
        stats: dict[str, Any] = {
            "first_paint_tmux": summary(first_paint_tmux(url, rounds, workdir)),
            "ls_wall": summary(ls_wall(url, rounds, workdir)),
        }
        keys = end_key_tmux(url, rounds, workdir)
        stats["down_key_tmux"] = summary(keys["down"])
        stats["end_key_tmux"] = summary(keys["end"])
        stats.update(asyncio.run(in_app(url, workdir, 30)))
        stats["scan_s"] = round(scan_time(url), 2)
        results[backend] = stats
    return results


def bench_memory(workdir: Path, sizes: tuple[int, ...]) -> dict[str, list[int]]:
    out = {}
    for size in sizes:
        url = index_url("sqlite", size)
        log(f"memory at {size:,} sessions")
        done = subprocess.run([sys.executable, __file__, "--memory-child", url], capture_output=True, text=True,
                              env=bench_env(workdir), check=True, timeout=1800)
        out[str(size)] = [int(v) for v in done.stdout.strip().splitlines()[-1].split()]
    return out


# -- the replay --------------------------------------------------------------------------------


async def replay_timings(cast: Path, seeks: int, empty_index: Path, rounds: int) -> dict[str, Any]:
    """First frame, then seeks before and after keyframes, in the app's replay screen."""
    from sshrec.player import seekindex
    from sshrec.player.tui import app as app_module
    from sshrec.player.tui.app import SshrecApp
    from sshrec.player.tui.replay_screen import ReplayScreen
    from sshrec.player.tui.screenview import ScreenView

    class ReplayOnly(SshrecApp):  # the app's styles, no index
        CSS_PATH = str(Path(app_module.__file__).with_name("app.tcss"))

        def on_mount(self) -> None:
            pass

    out: dict[str, Any] = {}
    from sshrec.schema.db import open_index

    app = ReplayOnly(open_index(f"sqlite:///{empty_index}"), str(cast.parent))
    async with app.run_test(size=(130, 45)):
        record = {"id": "bench", "status": "complete", "path": str(cast)}
        firsts = []
        for _ in range(rounds):
            shutil.rmtree(os.environ["SSHREC_CACHE_DIR"], ignore_errors=True)  # a never-played file
            began = time.perf_counter()
            screen = ReplayScreen(record, str(cast))
            app.push_screen(screen)
            await _wait(lambda screen=screen: screen.is_mounted and bool(screen.query_one(ScreenView)._strips))
            firsts.append(time.perf_counter() - began)
            if len(firsts) < rounds:  # the last one stays: its keyframe pass is the next phase
                await screen.workers.wait_for_complete()
                app.pop_screen()
                await asyncio.sleep(0.05)
        out["first_frame"] = summary(firsts)
        screen.action_toggle_play()  # paused: only seeks move it
        rng = random.Random(2)

        view = screen.query_one(ScreenView)

        async def seeks_now() -> dict[str, Any]:
            """Seek, then until the screen's rows are drawn again (not pilot.pause(): it waits for
            the whole process to be idle, which it is not while the keyframe pass runs)."""
            samples = []
            for target in [rng.uniform(0, screen.replay.duration) for _ in range(seeks)] + [1e12]:
                began = time.perf_counter()
                screen.seek_to(target)  # drops every drawn row (the screen was replaced)
                await _wait(lambda: bool(view._strips))
                samples.append(time.perf_counter() - began)
                await asyncio.sleep(0.01)
            return {**summary(samples), "samples_ms": [ms(x) for x in samples]}

        await _wait(lambda: screen.replay.index is not None)
        out["seek_during_keyframe_pass"] = await seeks_now()  # the pass runs in a thread meanwhile
        began = time.perf_counter()
        await screen.workers.wait_for_complete()
        index = screen.replay.index
        assert index is not None
        out["keyframe_pass_left_s"] = round(time.perf_counter() - began, 2)
        out["seek_with_keyframes"] = await seeks_now()
        index.keyframes = []
        out["seek_before_keyframes"] = await seeks_now()
        began = time.perf_counter()
        screen.replay.build_keyframes()
        out["keyframe_pass_s"] = round(time.perf_counter() - began, 2)
        out["keyframes"] = len(index.keyframes)
        out["seek_index_kb"] = round(os.path.getsize(seekindex.cache_path(str(cast))) / 1e3)
    return out


def time_to_output(argv: list[str], env: dict[str, str], needle: bytes) -> float:
    """Seconds from exec to ``needle`` on the pty; then the player is killed (asciinema 2 has no
    quit key, and the rest of the recording does not matter here)."""
    from ptydriver import PtyProcess

    start = time.perf_counter()
    with PtyProcess(argv, env=env, cols=player_bench.COLS + 10, rows=player_bench.ROWS + 5) as term:
        term.expect_exact(needle, timeout=60)
        return time.perf_counter() - start


def render_rates(cast: Path) -> dict[str, Any]:
    from sshrec.player.replay import Replay

    size = cast.stat().st_size
    replay = Replay(str(cast), use_cache=False)
    began = time.perf_counter()
    replay.advance_to(float("inf"))
    elapsed = time.perf_counter() - began
    out: dict[str, Any] = {"emulator_mb_s": round(size / elapsed / 1e6, 1), "file_mb": round(size / 1e6, 1)}
    try:
        import pyte
    except ImportError:
        out["pyte_mb_s"] = "not installed"
        return out
    with open(cast, encoding="utf-8") as handle:
        handle.readline()
        lines = [handle.readline() for _ in range(20000)]
    text = "".join(json.loads(line)[2] for line in lines if line.strip())[: 4 << 20]
    screen = pyte.Screen(player_bench.COLS, player_bench.ROWS)
    stream = pyte.Stream(screen)
    began = time.perf_counter()
    stream.feed(text)
    out["pyte_mb_s"] = round(len(text.encode()) / (time.perf_counter() - began) / 1e6, 2)
    return out


def bench_replay(size_mb: int, rounds: int, workdir: Path) -> dict[str, Any]:
    cast = player_bench.generated("tui", size_mb, 2)
    out: dict[str, Any] = {"cast": str(cast)}
    cache = workdir / "replay-cache"
    os.environ["SSHREC_CACHE_DIR"] = str(cache)
    shutil.rmtree(cache, ignore_errors=True)
    log("replay: first frame and seeks in the app")
    out.update(asyncio.run(replay_timings(cast, 20, workdir / "empty.db", rounds)))
    log("replay: sshrec play / asciinema play")
    env = player_bench._env(workdir / "play-cache")
    needle = b"alice@db1"

    def first_output(argv: list[str], needle: bytes = needle) -> list[float]:
        return [time_to_output(argv, env, needle) for _ in range(rounds)]

    out["sshrec_play_first_frame"] = summary(first_output([SSHREC, "play", str(cast)]))
    if os.path.exists(ASCIINEMA):
        out["asciinema_play_first_frame"] = summary(first_output([ASCIINEMA, "play", str(cast)]))
    end_time, last = player_bench.last_output_marker(cast)
    base = first_output([SSHREC, "play", "--raw", str(cast)])
    at_end = first_output([SSHREC, "play", "--raw", "--at", f"{end_time:.3f}", str(cast)], last[-24:])
    out["sshrec_play_seek_end_ms"] = ms(statistics.median(at_end) - statistics.median(base))
    log("replay: rendering rate")
    out.update(render_rates(cast))
    return out


# -- report ------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> str:
    lines = ["| metric | target | " + " | ".join(result.get("index", {})) + " |",
             "|---|---|" + "---|" * len(result.get("index", {}))]
    index = result.get("index", {})

    def row(name: str, target: str, get: Any) -> None:
        values = []
        for stats in index.values():
            try:
                values.append(str(get(stats)))
            except (KeyError, TypeError):
                values.append("-")
        lines.append(f"| {name} | {target} | " + " | ".join(values) + " |")

    if index:
        row("first paint, `sshrec tui` in tmux (p50 / max ms)", "< 1000",
            lambda s: f"{s['first_paint_tmux']['p50_ms']} / {s['first_paint_tmux']['max_ms']}")
        row("beside it: `sshrec ls --limit 50` start to exit (p50 ms)", "", lambda s: s["ls_wall"]["p50_ms"])
        row("first paint in process (ms)", "", lambda s: s["first_paint_inprocess_ms"])
        row("results after typing stops, all queries (p50 / max ms)", "< 300",
            lambda s: f"{s['typing_all']['p50_ms']} / {s['typing_all']['max_ms']}")
        for text in TYPED:
            row(f"  `{text}` (p50 ms)", "", lambda s, text=text: s["typing"][text]["p50_ms"])
        row("count of every row, in the background (s)", "", lambda s: s["scan_s"])
        row("jump to a random row of the million, until it is read (p50 / max ms)", "< 100",
            lambda s: f"{s['jump']['p50_ms']} / {s['jump']['max_ms']}")
        row("End key in tmux until the oldest row is drawn (p50 / max ms)", "< 100",
            lambda s: f"{s['end_key_tmux']['p50_ms']} / {s['end_key_tmux']['max_ms']}")
        row("beside it: Down key in tmux until the status line moves (p50 ms)", "",
            lambda s: s["down_key_tmux"]["p50_ms"])
    memory = result.get("memory")
    if memory:
        lines.append("")
        lines.append("| sessions in the index | " + " | ".join(f"{int(k):,}" for k in memory) + " |")
        lines.append("|---|" + "---|" * len(memory))
        rss = " | ".join(f"{v[0] / 1024:.0f}" for v in memory.values())
        heap = " | ".join(f"{v[1] / 1024:.0f}" for v in memory.values())
        lines.append(f"| peak RSS of the app (MB) | {rss} |")
        lines.append(f"| peak Python heap (MB, tracemalloc) | {heap} |")
    replay = result.get("replay")
    if replay:
        lines += ["", "| 200 MB recording | target | sshrec tui | terminal player / others |",
                  "|---|---|---|---|"]
        before, after = replay["seek_before_keyframes"], replay["seek_with_keyframes"]
        first = replay["first_frame"]
        lines.append(f"| first frame, never played (p50 / max ms) | < 150 | {first['p50_ms']} / "
                     f"{first['max_ms']} | `sshrec play` "
                     f"{replay['sshrec_play_first_frame']['p50_ms']} (exec to output), `asciinema play` "
                     f"{replay.get('asciinema_play_first_frame', {}).get('p50_ms', '-')} |")
        lines.append(f"| seek + draw, before keyframes (p50 / max ms) | < 300 | "
                     f"{before['p50_ms']} / {before['max_ms']} | "
                     f"`sshrec play --at END` {replay['sshrec_play_seek_end_ms']} |")
        lines.append(f"| seek + draw, with keyframes (p50 / max ms) | < 300 | "
                     f"{after['p50_ms']} / {after['max_ms']} | |")
        during = replay["seek_during_keyframe_pass"]
        lines.append(f"| seek + draw while the keyframe pass runs (p50 / max ms) | | "
                     f"{during['p50_ms']} / {during['max_ms']} | |")
        lines.append(f"| rendering through the emulator (MB/s) | >= 20 | {replay['emulator_mb_s']} | "
                     f"pyte {replay['pyte_mb_s']} |")
        lines.append(f"| keyframe pass, once per recording (s) | | {replay['keyframe_pass_s']} "
                     f"({replay['keyframes']} keyframes, seek index {replay['seek_index_kb']} KB) | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=1_000_000)
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--cast-mb", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--memory-sizes", default="10000,100000,1000000")
    p.add_argument("--only", choices=("index", "replay"))
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL database for the next run")
    p.add_argument("--memory-child", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        print(memory_child(args.memory_child))
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="sshrec-tui-bench-"))
    result: dict[str, Any] = {"machine": index_bench.machine(), "args": vars(args)}
    try:
        if args.only != "replay":
            backends = args.backends.split(",")
            result["index"] = bench_index(backends, args.sessions, args.rounds, workdir)
            if args.memory_sizes:
                result["memory"] = bench_memory(workdir, tuple(int(s) for s in args.memory_sizes.split(",")))
            if "postgresql" in backends and not args.keep:
                drop_postgres(args.sessions)
        if args.only != "index":
            result["replay"] = bench_replay(args.cast_mb, args.rounds, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = OUT_DIR / f"tui-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    print(report(result))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
