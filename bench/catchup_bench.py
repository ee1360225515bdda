"""What `sshrec ls` pays to see sessions that ended a moment ago, on a shared spool.

Builds a spool laid out as `sshrec setup` makes it (USERS personal folders, DAYS day folders
each, SESSIONS records per day), indexes it once, then times, side by side in interleaved
rounds: the catch-up `ls` runs (schema.index.freshen) with nothing new and with one new
session, against a full incremental `sshrec index` (schema.index.sync), the only way the
index saw new files before. Also `ls --json` end to end with the catch-up, against the same
listing without it.

    .venv/bin/python bench/catchup_bench.py                 # 50 users x 60 days x 4 sessions
    .venv/bin/python bench/catchup_bench.py --users 200 --days 365 --sessions 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from index_support import make_session  # noqa: E402
from sshrec.player.query import Filters, list_sessions  # noqa: E402
from sshrec.schema import index  # noqa: E402
from sshrec.schema.db import open_index, reading  # noqa: E402

DAY = 86400.0
BASE = 1_767_225_600.0  # 2026-01-01


def build(home: Path, users: int, days: int, sessions: int) -> list[str]:
    spools = [str(home)]
    for user in range(users):
        spool = home / "users" / f"user{user:04d}"
        spool.mkdir(parents=True)
        spools.append(str(spool))
        for day in range(days):
            for n in range(sessions):
                make_session(str(spool), start=BASE + day * DAY + n * 60, user=f"user{user:04d}")
    old = time.time() - 3600
    for folder in (home / "users").glob("*/recordings/*/*/*"):
        os.utime(folder, (old, old))  # finished long ago: outside the racy window
    return spools


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--sessions", type=int, default=4, help="sessions per user and day")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sshrec-catchup-"))
    try:
        home = work / "spool"
        started = time.monotonic()
        spools = build(home, args.users, args.days, args.sessions)
        url = f"sqlite:///{work / 'index.db'}"
        engine = open_index(url)
        first = index.sync(engine, spools)
        print(f"spool: {args.users} users x {args.days} days x {args.sessions} = {first.new} sessions, "
              f"{args.users * args.days} day folders; built and indexed in {time.monotonic() - started:.0f} s",
              file=sys.stderr)
        index.freshen(engine, spools)  # remember every folder once
        samples: dict[str, list[float]] = {k: [] for k in ("catch-up, nothing new", "catch-up, 1 new session",
                                                           "full sync, 1 new session", "ls (50 rows)",
                                                           "catch-up + ls")}
        last_user = Path(spools[-1])
        for round_no in range(args.rounds):
            samples["catch-up, nothing new"].append(timed(lambda: index.freshen(engine, spools)))
            make_session(str(last_user), start=BASE + (args.days + round_no) * DAY, user=last_user.name)
            samples["catch-up, 1 new session"].append(timed(lambda: index.freshen(engine, spools)))
            make_session(str(last_user), start=BASE + (args.days + round_no) * DAY + 30, user=last_user.name)
            samples["full sync, 1 new session"].append(timed(lambda: index.sync(engine, spools)))

            def listing() -> None:
                with reading(engine) as connection:
                    list_sessions(connection, Filters())

            samples["ls (50 rows)"].append(timed(listing))
            samples["catch-up + ls"].append(timed(lambda: (index.freshen(engine, spools), listing())))
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    full = statistics.median(samples["full sync, 1 new session"])
    print(f"\n{args.rounds} interleaved rounds; SQLite; medians")
    print("| operation | ms (median) | ms (max) | x full sync |")
    print("|---|---|---|---|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1000:.1f} | {max(values) * 1000:.1f} | {median / full:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
