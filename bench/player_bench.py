#!/usr/bin/env python3
"""Player, seek and export benchmark: the targets of issue 4.

  first frame   ``sshrec play FILE`` on a 200 MB recording under a real pseudo-terminal:
                wall time from exec to the first recorded byte on the terminal (target
                < 150 ms; no SQLAlchemy on this path). Cold (no seek index yet) and warm.
  seek          the same player, ``--at END`` (the last second): time to the last frame,
                with the seek index cached (target < 300 ms), and how long building the
                index once takes (v2 by probing, v3 by summing every line).
  export        ``sshrec export ID... --out DIR`` for 1,000 spool sessions: MB/s of cast
                data exported (target >= 100 MB/s), v2 verbatim and converted to v3.

Usage: python bench/player_bench.py [--size-mb 200] [--sessions 1000] [--session-kb 256] [--rounds 5]
Results: a table on stdout and JSON in bench/out/player-*.json. The generated recordings are
kept in bench/out/ (rebuilt when DATA_VERSION changes).
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SSHREC = str(REPO / ".venv" / "bin" / "sshrec")
OUT_DIR = REPO / "bench" / "out"
DATA_VERSION = 1
COLS, ROWS = 120, 40

sys.path.insert(0, str(REPO / "tests"))

from sshrec.schema.asciicast import CastHeader, EventEncoder  # noqa: E402
from sshrec.schema.record import SessionRecord, iso_utc, new_session_id, write_record_atomically  # noqa: E402
from sshrec.schema.spool import cast_path, ensure_dir, record_path, recording_dir  # noqa: E402

WORDS = ("alpha", "beta", "gamma", "delta", "deploy", "nginx", "postgres", "kubectl", "error", "ok",
         "café", "日本語", "warning", "GET", "/api/v1/items", "200", "503", "user=alice")


def _log_block(rng: random.Random, lines: int) -> str:
    out = []
    for _ in range(lines):
        level = rng.choice(("\x1b[32mINFO\x1b[0m", "\x1b[33mWARN\x1b[0m", "\x1b[31mERROR\x1b[0m"))
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        out.append(f"2024-05-01T10:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z {level} {words}\r\n")
    return "".join(out)


def _vim_screen(rng: random.Random) -> str:
    rows = [f"\x1b[{r};1H\x1b[K{r:4d} {' '.join(rng.choice(WORDS) for _ in range(8))}" for r in range(1, ROWS)]
    return "\x1b[?1049h\x1b[1;39r\x1b[H\x1b[2J" + "".join(rows) + f"\x1b[{ROWS};1H-- INSERT --"


def session_events(rng: random.Random, target_bytes: int, markers: bool = True):
    """(time, code, data) of a plausible shell session of about ``target_bytes`` of output."""
    t = 0.0
    size = 0
    step = 0
    while size < target_bytes:
        step += 1
        prompt = "\x1b[1;32malice@db1\x1b[0m:\x1b[1;34m~\x1b[0m$ "
        yield t, "o", prompt
        command = rng.choice(("tail -n 200 /var/log/app.log", "ls -la --color", "vim notes.txt",
                              "clear", "journalctl -n 50", "make test"))
        for char in command:
            t += rng.uniform(0.03, 0.2)
            yield t, "o", char
        t += 0.3
        yield t, "o", "\r\n"
        if markers and step % 40 == 0:
            yield t, "m", f"step {step}"
        if command == "clear":
            data = "\x1b[H\x1b[2J\x1b[3J"
            yield t, "o", data
            size += len(data)
        elif command.startswith("vim"):
            for _ in range(rng.randint(3, 12)):
                t += rng.uniform(0.05, 1.5)
                data = _vim_screen(rng)
                yield t, "o", data
                size += len(data)
            t += 0.5
            yield t, "o", "\x1b[?1049l"
        else:
            for _ in range(rng.randint(1, 40)):
                t += rng.uniform(0.001, 0.05)
                data = _log_block(rng, rng.randint(5, 60))
                yield t, "o", data
                size += len(data.encode())
        t += rng.uniform(0.2, 5.0)
    yield t, "o", "logout\r\n"


def write_cast(path: Path, target_bytes: int, version: int = 2, seed: int = 1,
               record: dict | None = None) -> float:
    """Write a generated recording; returns its duration."""
    rng = random.Random(seed)
    header = CastHeader(version=version, cols=COLS, rows=ROWS, timestamp=1714557600, term="xterm-256color",
                        sshrec=record)
    encoder = EventEncoder(version)
    last = 0.0
    with open(path, "wb") as handle:
        handle.write(header.to_json().encode() + b"\n")
        batch = []
        for t, code, data in session_events(rng, target_bytes):
            batch.append(encoder.line(t, code, data))
            last = t
            if len(batch) >= 4096:
                handle.write(b"".join(batch))
                batch.clear()
        handle.write(b"".join(batch))
    return last


def generated(name: str, size_mb: int, version: int) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}-{size_mb}mb-v{version}-d{DATA_VERSION}.cast"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write_cast(tmp, size_mb * 1_000_000, version)
        tmp.rename(path)
    return path


# -- measurements ------------------------------------------------------------------------------


def _env(cache: Path) -> dict[str, str]:
    return dict(os.environ, SSHREC_CACHE_DIR=str(cache), SSHREC_CONFIG="/dev/null", LC_ALL="C.UTF-8",
                TERM="xterm-256color")


def time_to_output(argv: list[str], env: dict[str, str], needle: bytes, timeout: float = 60.0) -> float:
    """Seconds from starting ``argv`` under a new pty to ``needle`` appearing in its output."""
    from ptydriver import PtyProcess

    start = time.perf_counter()
    with PtyProcess(argv, env=env, cols=COLS + 10, rows=ROWS + 5) as term:
        term.expect_exact(needle, timeout=timeout)
        elapsed = time.perf_counter() - start
        term.send("q")
        term.wait(timeout=30)
    return elapsed


def last_output_marker(path: Path) -> tuple[float, bytes]:
    """A distinctive piece of the last output event and its time."""
    with open(path, "rb") as handle:
        handle.seek(-4096, os.SEEK_END)
        tail = handle.read().splitlines()[-1]
    item = json.loads(tail)
    return float(item[0]), item[2].encode()


def bench_play(size_mb: int, rounds: int) -> dict[str, object]:
    from sshrec.player import seekindex

    results: dict[str, object] = {}
    for version in (2, 3):
        cast = generated("play", size_mb, version)
        results[f"v{version}_file_mb"] = round(cast.stat().st_size / 1e6, 1)
        with tempfile.TemporaryDirectory() as cache_dir:
            cache = Path(cache_dir)
            env = _env(cache)
            first_needle = b"alice@db1"
            if version == 2:
                cold = [time_to_output([SSHREC, "play", str(cast)], env, first_needle) for _ in range(rounds)]
                results["first_frame_ms"] = [round(x * 1000, 1) for x in cold]
            os.environ["SSHREC_CACHE_DIR"] = str(cache)
            start = time.perf_counter()
            index = seekindex.load_or_build(str(cast))
            results[f"v{version}_index_build_s"] = round(time.perf_counter() - start, 3)
            results[f"v{version}_index_kb"] = round(os.path.getsize(seekindex.cache_path(str(cast))) / 1e3, 1)
            start = time.perf_counter()
            seekindex.load_or_build(str(cast))
            results[f"v{version}_index_load_ms"] = round((time.perf_counter() - start) * 1000, 1)
            end_time = index.end_time
            # seek: --at the end; the needle is the last output, so this includes replay + write
            _, needle = last_output_marker(cast)
            needle = needle[-24:]
            at = f"{end_time:.3f}"
            base = [time_to_output([SSHREC, "play", "--raw", str(cast)], env, first_needle)
                    for _ in range(rounds)]
            seek = [time_to_output([SSHREC, "play", "--raw", "--at", at, str(cast)], env, needle)
                    for _ in range(rounds)]
            results[f"v{version}_start_ms"] = [round(x * 1000, 1) for x in base]
            results[f"v{version}_seek_end_total_ms"] = [round(x * 1000, 1) for x in seek]
            results[f"v{version}_seek_end_ms"] = round(
                (statistics.median(seek) - statistics.median(base)) * 1000, 1)
            # in-process: the seek alone (plan + replay read + sanitize), no process start
            results[f"v{version}_seek_inprocess_ms"] = round(seek_in_process(cast, index) * 1000, 1)
    return results


def seek_in_process(cast: Path, index) -> float:
    from sshrec.player.play import render_until
    from sshrec.player.sanitize import Sanitizer
    from sshrec.player.seekindex import open_at

    timings = []
    for fraction in (0.25, 0.5, 0.75, 1.0):
        start = time.perf_counter()
        plan = index.plan(index.end_time * fraction)
        with open_at(str(cast), index, plan) as cursor:
            render_until(cursor, plan.target, Sanitizer())
        timings.append(time.perf_counter() - start)
    return max(timings)


def make_spool(home: Path, sessions: int, session_kb: int) -> list[str]:
    ids = []
    rng = random.Random(7)
    base = 1714557600.0
    for n in range(sessions):
        session_id = new_session_id(base + n * 60)
        record = SessionRecord(id=session_id, user="alice", host="db1", cols=COLS, rows=ROWS,
                               started_at=iso_utc(base + n * 60), status="recording", mode="pty")
        ensure_dir(recording_dir(str(home), session_id))
        path = Path(cast_path(str(home), session_id))
        record.path = str(path)
        kb = max(4, int(rng.uniform(0.25, 1.75) * session_kb))
        duration = write_cast(path, kb * 1000, 2, seed=n, record=record.to_dict())
        import hashlib

        record.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        record.status, record.duration = "complete", round(duration, 3)
        record.ended_at = iso_utc(base + n * 60 + duration)
        write_record_atomically(record, record_path(str(home), session_id), durable=False)
        ids.append(session_id)
    return ids


def bench_export(sessions: int, session_kb: int, rounds: int) -> dict[str, object]:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    home = OUT_DIR / f"spool-{sessions}x{session_kb}kb-d{DATA_VERSION}"
    ids_file = home / "ids.txt"
    if not ids_file.exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        ids_file.write_text("\n".join(make_spool(home, sessions, session_kb)))
    ids = ids_file.read_text().split()
    total = sum(os.path.getsize(cast_path(str(home), i)) for i in ids)
    results: dict[str, object] = {"sessions": len(ids), "input_mb": round(total / 1e6, 1)}
    env = dict(os.environ, SSHREC_HOME=str(home), SSHREC_CONFIG="/dev/null")
    for fmt in ("v2", "v3", "txt"):
        rates = []
        for _ in range(rounds if fmt == "v2" else max(1, rounds // 2)):
            with tempfile.TemporaryDirectory(dir=OUT_DIR) as tmp:
                out = Path(tmp) / "export"
                start = time.perf_counter()
                subprocess.run([SSHREC, "export", "--format", fmt, "--out", str(out), "--ids-from",
                                str(ids_file)], env=env, check=True, stdout=subprocess.DEVNULL)
                rates.append(total / 1e6 / (time.perf_counter() - start))
        results[f"{fmt}_mb_s"] = [round(r, 1) for r in rates]
        results[f"{fmt}_mb_s_median"] = round(statistics.median(rates), 1)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--session-kb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("play", "export"))
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
                   f"{platform.python_version()}",
        "size_mb": args.size_mb,
    }
    if args.only != "export":
        results["play"] = bench_play(args.size_mb, args.rounds)
    if args.only != "play":
        results["export"] = bench_export(args.sessions, args.session_kb, args.rounds)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = OUT_DIR / f"player-{stamp}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    print(f"(saved {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
