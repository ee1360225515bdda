"""Time from the recorded command's exit to the recorder's exit (what the user waits for at
logout), with the background indexer (the default) and without it (--no-index).

    .venv/bin/python bench/session_end_bench.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SSHREC = str(Path(sys.executable).parent / "sshrec")


def one(home: str, stamp: str, index: bool) -> float:
    """Milliseconds between the child's last act (writing a timestamp) and the recorder's exit."""
    argv = [SSHREC, *([] if index else ["--no-index"]), "--", sys.executable, "-c",
            f"import time; open({stamp!r}, 'w').write(repr(time.time()))"]
    env = dict(os.environ, SSHREC_HOME=home, SSHREC_CONFIG="/dev/null")
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    ended = time.time()
    return (ended - float(Path(stamp).read_text())) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        stamp = os.path.join(home, "stamp")
        results: dict[str, list[float]] = {"with indexer": [], "--no-index": []}
        for _ in range(args.rounds):  # interleaved, so both see the same machine
            results["with indexer"].append(one(home, stamp, True))
            results["--no-index"].append(one(home, stamp, False))
    print(f"{'child exit -> recorder exit':30} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8}")
    for name, values in results.items():
        values.sort()
        p90 = values[int(len(values) * 0.9) - 1]
        print(f"{name:30} {statistics.median(values):8.1f} {p90:8.1f} {max(values):8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
