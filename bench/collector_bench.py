"""Recording through the collector against writing the spool directly: aggregate throughput of
1, 10 and 100 concurrent sessions, and echo latency next to a stalled neighbour.

Each session is the installed recorder around `cat` of a file (pipes: the bytes go to
/dev/null), all started at once; aggregate MB/s is total bytes over the wall time of the
batch. "bare" runs the same `cat`s without a recorder. Echo: keystrokes through a PTY session
(bench/record_bench.py's measure) while a raw client holds a half-sent frame open on the
collector's socket and another session floods output.

    .venv/bin/python bench/collector_bench.py                  # 1, 10, 100 sessions, 3 rounds
    .venv/bin/python bench/collector_bench.py --sessions 1,10 --total-mb 100
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_bench  # noqa: E402

QUIET = ["--no-index", "--no-watch"]


def through(socket_path: Path) -> list[str]:
    return ["--sink", "collector", "--collector-socket", str(socket_path), *QUIET]


def start_collector(command: str, folder: Path) -> tuple[subprocess.Popen[str], Path]:
    (folder / "run").mkdir(parents=True, exist_ok=True)
    socket_path = folder / "run" / "collector.sock"
    # --no-index: the direct spool's sessions are not indexed either (QUIET)
    argv = [command, "collector", "--no-index", "--home", str(folder / "spool"), "--socket", str(socket_path)]
    env = {**os.environ, "SSHREC_CONFIG": "/dev/null"}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and "listening" in process.stdout.readline()
    return process, socket_path


def batch(argv_for: list[list[str]], env: dict[str, str]) -> float:
    """Run every argv at once; seconds until the last one is done."""
    started = time.perf_counter()
    processes = [subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                 for argv in argv_for]
    for process in processes:
        if process.wait() != 0:
            raise RuntimeError(f"{process.args} exited {process.returncode}")
    return time.perf_counter() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", default="1,10,100")
    p.add_argument("--total-mb", type=float, default=200.0, help="bytes of all sessions of a batch together")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--echo-keys", type=int, default=500)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sshrec-collector-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH", "SSHREC"))}
    env["SSHREC_CONFIG"] = "/dev/null"
    collector = None
    try:
        installed = record_bench.installed_copy(work)
        command = installed.argv(["true"], work)[0]
        collector, socket_path = start_collector(command, work / "collector")  # the installed copy too
        data = work / "data.txt"
        rng = record_bench.random.Random(1)
        with open(data, "w", encoding="utf-8") as handle:
            while handle.tell() < 2_000_000:
                handle.write(record_bench._line(rng))
        counts = [int(n) for n in args.sessions.split(",")]
        samples: dict[tuple[str, int], list[float]] = {}
        for round_no in range(args.rounds):
            for count in counts:
                repeats = max(1, int(args.total_mb * 1e6 / data.stat().st_size / count))
                cat = ["sh", "-c", f"for i in $(seq {repeats}); do cat {data}; done"]
                total = repeats * count * data.stat().st_size
                ways = {
                    "bare": [cat] * count,
                    "direct": [[command, "--home", str(work / "spool"), *QUIET, "--", *cat]] * count,
                    "collector": [[command, *through(socket_path), "--", *cat]] * count,
                }
                for way, argvs in ways.items():
                    seconds = batch(argvs, env)
                    samples.setdefault((way, count), []).append(total / seconds / 1e6)
                    rate = total / seconds / 1e6
                    line = f"  round {round_no + 1} {count:3d} sessions {way:9} {rate:7.1f} MB/s"
                    print(line, file=sys.stderr, flush=True)
                shutil.rmtree(work / "spool", ignore_errors=True)
        echo = echo_beside_a_stall(command, socket_path, env, args.echo_keys)
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.rounds} rounds, {args.total_mb:g} MB per batch in all; aggregate MB/s (median), "
          "and x direct")
    print("| sessions at once | bare | direct spool | through the collector | collector x direct |")
    print("|---|---|---|---|---|")
    for count in counts:
        bare, direct, coll = (statistics.median(samples[way, count]) for way in ("bare", "direct", "collector"))
        print(f"| {count} | {bare:.0f} | {direct:.0f} | {coll:.0f} | {coll / direct:.2f} |")
    print("\n| echo through the collector | p50 µs | p99 µs |")
    print("|---|---|---|")
    for name, values in echo.items():
        values.sort()
        print(f"| {name} | {statistics.median(values):.0f} | {values[int(len(values) * 0.99)]:.0f} |")
    return 0


def echo_beside_a_stall(command: str, socket_path: Path, env: dict[str, str],
                        keys: int) -> dict[str, list[float]]:
    """Echo latency of a PTY session through the collector: alone, next to a client that
    stalls half-way through a frame, and next to that stall and a session flooding output (the
    flood shares the two cores; the stall alone shares nothing but the collector)."""
    argv = [command, *through(socket_path), "--", "sh", "-c", "stty raw -echo && printf ECHO-READY && exec cat"]
    results = {"alone": record_bench.echo_latencies(argv, env, keys, 0.001)}
    stalled = socket.socket(socket.AF_UNIX)
    stalled.connect(str(socket_path))
    stalled.sendall(struct.pack(">I", 500_000) + b"\x01" + b"{" * 1000)  # and then nothing
    try:
        results["next to a stalled client"] = record_bench.echo_latencies(argv, env, keys, 0.001)
        flooding = ["sh", "-c", "yes flood | head -c 300000000"]
        flood = subprocess.Popen([command, *through(socket_path), "--", *flooding], env=env,
                                 stdout=subprocess.DEVNULL)
        try:
            both = record_bench.echo_latencies(argv, env, keys, 0.001)
            results["next to a stalled client and a flood"] = both
        finally:
            flood.kill()
            flood.wait()
    finally:
        stalled.close()
    return results


if __name__ == "__main__":
    sys.exit(main())
