"""What recorder/typed.py costs: the termios check per keystroke, and the command-marker watch
per MB of output, against the same calls straight to the recorder (a recorder that only
counts, so only the added work is timed). Interleaved rounds, medians.

    .venv/bin/python bench/typed_bench.py
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_bench  # noqa: E402
from sshrec.recorder.typed import TypedInput  # noqa: E402

ROUNDS = 7
KEYS = 20_000
CHUNK = 4096


class Counting:
    """A recorder that does nothing but count (the relay's Recorder protocol)."""

    stop_reason = None

    def __init__(self) -> None:
        self.bytes = 0

    def output(self, data: bytes) -> None:
        self.bytes += len(data)

    def input(self, data: bytes) -> None:
        self.bytes += len(data)

    def count_input(self, size: int) -> None:
        self.bytes += size

    def marker(self, label: str) -> None:
        self.bytes += len(label)


def keystrokes(typed: TypedInput | None, sink: Counting) -> float:
    keys = [bytes((97 + i % 26,)) for i in range(KEYS)]
    started = time.perf_counter()
    if typed is None:
        for key in keys:
            sink.input(key)
    else:
        for key in keys:
            typed.input(key)
    return (time.perf_counter() - started) / KEYS


def output(typed: TypedInput | None, sink: Counting, chunks: list[bytes]) -> float:
    started = time.perf_counter()
    if typed is None:
        for chunk in chunks:
            sink.output(chunk)
    else:
        for chunk in chunks:
            typed.output(chunk)
    return time.perf_counter() - started


def main() -> int:
    master, slave = os.openpty()
    rng = random.Random(1)
    text = "".join(record_bench._line(rng) for _ in range(60_000)).encode()
    plain = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    prompt = b"\x1b]133;D;0\x07\x1b]133;A\x07host$ \x1b]133;B\x07ls\r\n\x1b]133;C\x07"
    marked = [c + prompt if n % 16 == 0 else c for n, c in enumerate(plain)]
    megabytes = len(text) / 1e6
    samples: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        sink = Counting()
        typed = TypedInput(sink, record_input=True)
        typed.attach(master, os.getpid())
        samples.setdefault("key: straight to the recorder", []).append(keystrokes(None, sink))
        samples.setdefault("key: with the termios check", []).append(keystrokes(typed, sink))
        samples.setdefault("output: straight", []).append(output(None, sink, plain) / megabytes)
        samples.setdefault("output: watched, no marks", []).append(output(typed, sink, plain) / megabytes)
        typed = TypedInput(sink, record_input=True)
        typed.attach(master, os.getpid())
        samples.setdefault("output: watched, OSC 133 marks every 64 KB", []).append(
            output(typed, sink, marked) / megabytes)
    os.close(master)
    os.close(slave)
    print(f"{ROUNDS} rounds; {KEYS} keystrokes; {megabytes:.1f} MB of mixed terminal output in "
          f"{CHUNK}-byte reads")
    print("| measure | median | added |")
    print("|---|---|---|")
    key_base = statistics.median(samples["key: straight to the recorder"])
    out_base = statistics.median(samples["output: straight"])
    for name, values in samples.items():
        value = statistics.median(values)
        if name.startswith("key"):
            print(f"| {name} | {value * 1e6:.2f} µs per key | {(value - key_base) * 1e6:+.2f} µs |")
        else:
            print(f"| {name} | {value * 1e3:.2f} ms per MB | {(value - out_base) * 1e3:+.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
