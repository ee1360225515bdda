"""What the destination watch costs: the recorder's CPU per session-minute with and without it.

Runs the recorder (pipes, as for `ssh host cmd`) around an idle session tree of N processes
for SECONDS, with the watch on and with --no-watch, interleaved, and reads the recorder's CPU
time from wait4(2). The start-up cost is in bench/record_bench.py (--variant with --no-watch).

    .venv/bin/python bench/watch_bench.py                  # trees of 3 and 40 processes, 10 s each
    .venv/bin/python bench/watch_bench.py --seconds 30 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


def run_once(sshrec: str, processes: int, seconds: float, watch: bool, home: Path) -> float:
    """CPU seconds of the recorder for one session of ``seconds`` with ``processes`` idle ones."""
    script = f"for i in $(seq {processes - 1}); do sleep {seconds} & done; sleep {seconds}; wait"
    switch = [] if watch else ["--no-watch"]
    argv = [sshrec, "--home", str(home), "--no-index", *switch, "--", "sh", "-c", script]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH", "SSHREC"))}
    env["SSHREC_CONFIG"] = "/dev/null"
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"recorder exited {process.returncode}")
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="length of each session")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--trees", default="3,40", help="process counts of the session trees")
    p.add_argument("--sshrec", default=str(VENV_BIN / "sshrec"))
    args = p.parse_args()
    trees = [int(n) for n in args.trees.split(",")]
    work = Path(tempfile.mkdtemp(prefix="sshrec-watch-"))
    samples: dict[tuple[int, bool], list[float]] = {}
    try:
        for round_no in range(args.rounds):
            for processes in trees:
                for watch in (True, False) if round_no % 2 == 0 else (False, True):
                    cpu = run_once(args.sshrec, processes, args.seconds, watch, work / "spool")
                    samples.setdefault((processes, watch), []).append(cpu)
                    print(f"  round {round_no + 1} tree {processes:3d} watch={watch!s:5} "
                          f"cpu {cpu * 1000:7.1f} ms", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.rounds} interleaved rounds of {args.seconds:g} s sessions; recorder CPU (user+system), "
          "medians")
    print("| session tree | watch on: ms per session-minute | --no-watch | added ms per minute | "
          "added % of a core |")
    print("|---|---|---|---|---|")
    for processes in trees:
        on = statistics.median(samples[processes, True]) * 60 / args.seconds * 1000
        off = statistics.median(samples[processes, False]) * 60 / args.seconds * 1000
        print(f"| {processes} processes | {on:.0f} | {off:.0f} | {on - off:+.0f} | {(on - off) / 600:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
