#!/usr/bin/env python3
"""Side-by-side benchmark of terminal session recorders: sshrec against the bare command,
util-linux ``script``, ``asciinema rec`` (2.4), ``tlog-rec`` and ``ttyrec``.

Every run gets a fresh pseudo-terminal made by this harness (``os.openpty`` + a child in a
new session with that terminal as its controlling tty). The harness reads the master as fast
as it can and throws the bytes away, like a fast terminal emulator, and measures wall time.
Tools are run in interleaved rounds (the order shuffled each round) so that the noise of a
shared machine hits them all alike; ratios are taken per round and then the median.

Metrics:
  bulk     ``cat`` of a generated file of mixed text (ASCII, ANSI colours, UTF-8): MB/s,
           ratio to bare and to script; the sum of RSS over the tool's whole process tree,
           sampled every ~20 ms, at two session lengths (full size and a quarter of it);
           recording bytes (every file the tool wrote) per byte the terminal received.
  startup  ``true`` run many times: median and p90 wall time, ms added over bare.
  echo     ``cat`` with its terminal in raw mode; one byte at a time is written to the
           master and the time until it reads back is taken: p50/p99, µs added over bare.

Usage: python bench/record_bench.py [--size-mb 200] [--quick] [--tools bare,script,sshrec]
Results: a table on stdout and JSON in bench/out/ (see bench/README.md).
"""

from __future__ import annotations

import argparse
import base64
import errno
import fcntl
import json
import os
import platform
import random
import select
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
OUT_DIR = REPO / "bench" / "out"
PAGE = os.sysconf("SC_PAGE_SIZE")
COLS, ROWS = 120, 40
READ_BUF = 1 << 20
ECHO_ROUNDS = 8  # echo runs per tool; short blocks interleaved, so a burst of noise hits one block
SAMPLE_INTERVAL = 0.02  # RSS sampling period
RESCAN_INTERVAL = 0.2  # how often /proc is scanned for new processes in the tree
UTMP = "/run/utmp"
MIN_FLAT_SECONDS = 1.0  # shortest bulk run whose peak RSS says anything about flatness
DATA_VERSION = 1  # bump when the generator changes, so a cached file is not reused

TARGETS = {
    "throughput_vs_script": 0.85,  # >=
    "startup_added_ms": 40.0,  # <=
    "echo_p99_added_us": 500.0,  # <=
    "tree_rss_mib": 25.0,  # <=, and flat with session length
    "rss_flat_mib": 2.0,  # <= growth from the short to the long session
    "bytes_per_output_byte": 1.15,  # <=
}


# -- the tools -----------------------------------------------------------------------------------


@dataclass
class Tool:
    """How to run COMMAND under one recorder; ``argv`` gets the command and a private output dir."""

    name: str
    argv: Callable[[list[str], Path], list[str]]
    needs: str | None  # executable that must exist, None for bare
    version: Callable[[], str]


def proc_stats() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, the /proc/PID/stat fields after the command name) for every process: state, ppid,
    pgrp, session, ... (the name is skipped: it may hold spaces and parentheses)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        yield int(name), stat[stat.rfind(b")") + 2 :].split()


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _dpkg_version(package: str) -> str:
    return _first_line(["dpkg-query", "-W", "-f", "${Version}", package])


def executable(name: str) -> str:
    """``name`` from the project's virtualenv first, then PATH."""
    local = VENV_BIN / name
    if local.exists():
        return str(local)
    return shutil.which(name) or name


def make_tools() -> dict[str, Tool]:
    sshrec = executable("sshrec")
    asciinema = executable("asciinema")
    tools = [
        Tool("bare", lambda cmd, out: list(cmd), None, lambda: "-"),
        # script(1) as a deployment would use it: quiet, typescript plus a timing file for scriptreplay.
        Tool("script",
             lambda cmd, out: ["script", "-q", "-T", str(out / "timing"), "-c", shlex.join(cmd),
                               str(out / "typescript")],
             "script", lambda: _first_line(["script", "--version"])),
        Tool("ttyrec", lambda cmd, out: ["ttyrec", "-e", shlex.join(cmd), str(out / "session.tty")],
             "ttyrec", lambda: _dpkg_version("ttyrec")),
        Tool("asciinema",
             lambda cmd, out: [asciinema, "rec", "--quiet", "--overwrite", "-c", shlex.join(cmd),
                               str(out / "session.cast")],
             asciinema, lambda: _first_line([asciinema, "--version"])),
        Tool("tlog", lambda cmd, out: ["tlog-rec", "--writer=file", f"--file-path={out / 'tlog.json'}",
                                       *cmd],
             "tlog-rec", lambda: _dpkg_version("tlog")),
        Tool("sshrec", lambda cmd, out: [sshrec, "--home", str(out / "spool"), "--no-index", "--", *cmd],
             sshrec, lambda: _first_line([sshrec, "--version"])),
    ]
    return {tool.name: tool for tool in tools}


def sshrec_variant(spec: str) -> Tool:
    """``NAME=COMMAND``: another sshrec build, e.g. ``proto=env PYTHONPATH=/tmp/proto python3 -m sshrec``."""
    name, _, command = spec.partition("=")
    prefix = shlex.split(command)
    if not name or not prefix:
        raise ValueError(f"--variant wants NAME=COMMAND, not {spec!r}")
    return Tool(name, lambda cmd, out: [*prefix, "--home", str(out / "spool"), "--no-index", "--", *cmd],
                prefix[0], lambda: _first_line([*prefix, "--version"]))


PACKAGE_DIRS = {"sshrec": "sshrec", "sshrec/recorder": "recorder", "sshrec/player": "player",
                "sshrec/schema": "schema"}  # pyproject's [tool.setuptools.package-dir]


def installed_copy(workdir: Path) -> Tool:
    """sshrec as a regular (non-editable) install of the working tree, bytecode compiled, in a
    fresh venv: what a deployment runs. The project's own venv is an editable install, whose
    import hook alone costs ~10 ms at every start."""
    venv = workdir / "installed-venv"
    shutil.rmtree(venv, ignore_errors=True)
    base_python = os.path.join(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for target, source in PACKAGE_DIRS.items():
        shutil.copytree(REPO / source, site / target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(site / "sshrec")], check=True)
    script = venv / "bin" / "sshrec"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom sshrec.cli import main\n"
                      "if __name__ == '__main__':\n    sys.exit(main())\n")
    script.chmod(0o755)
    command = str(script)
    return Tool("sshrec-inst",
                lambda cmd, out: [command, "--home", str(out / "spool"), "--no-index", "--", *cmd],
                command, lambda: _first_line([command, "--version"]))


def key_login(installed: Tool, workdir: Path, keys: int = 40) -> Tool:
    """The installed sshrec started as sshd starts it for a key login with ExposeAuthInfo on a
    host set up with `sshrec setup` (so a config file is read): the record gets the key, and the
    recorder looks for the key's line among ``keys`` lines of an authorized_keys file (the last
    one, with options) to honour a command= restriction."""
    folder = workdir / "login"
    folder.mkdir(parents=True, exist_ok=True)
    blobs = [base64.b64encode(b"\0\0\0\x0bssh-ed25519\0\0\0 " + os.urandom(32)).decode() for _ in range(keys)]
    lines = [f"ssh-ed25519 {blob} user{n}@host" for n, blob in enumerate(blobs[:-1])]
    lines.append(f'no-agent-forwarding,from="127.0.0.1" ssh-ed25519 {blobs[-1]} me@laptop')
    (folder / "authorized_keys").write_text("\n".join(lines) + "\n")
    (folder / "auth").write_text(f"publickey ssh-ed25519 {blobs[-1]}\n")
    (folder / "sshrec.toml").write_text('# as sshrec setup writes it\non_failure = "allow"\n'
                                        f'authorized_keys_file = "{folder / "authorized_keys"}"\n')
    variables = [f"SSH_USER_AUTH={folder / 'auth'}", "SSH_CONNECTION=127.0.0.1 50000 127.0.0.1 22",
                 "SSH_CLIENT=127.0.0.1 50000 22", f"SSHREC_CONFIG={folder / 'sshrec.toml'}"]
    command = installed.argv(["true"], folder)[0]
    return Tool("sshrec-login",
                lambda cmd, out: ["env", *variables, command, "--home", str(out / "spool"), "--no-index",
                                  "--", *cmd],
                command, installed.version)


def through_collector(installed: Tool, workdir: Path) -> tuple[Tool, subprocess.Popen[str]]:
    """The installed sshrec with sink = collector, and that collector (its own process: the
    encoding, hashing and writing happen there, on the other core)."""
    folder = workdir / "collector"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "run").mkdir(parents=True)
    command = installed.argv(["true"], folder)[0]
    socket_path = folder / "run" / "collector.sock"
    env = {**os.environ, "SSHREC_CONFIG": "/dev/null"}
    # --no-index: the direct-mode runs do not index either (and this venv has no SQLAlchemy)
    collector = subprocess.Popen([command, "collector", "--no-index", "--home", str(folder / "spool"),
                                  "--socket", str(socket_path)], env=env, stdout=subprocess.PIPE, text=True)
    assert collector.stdout is not None
    if "listening" not in collector.stdout.readline():
        raise RuntimeError("the collector did not start")
    tool = Tool("sshrec-coll",
                lambda cmd, out: [command, "--sink", "collector", "--collector-socket", str(socket_path),
                                  "--no-index", "--", *cmd],
                command, installed.version)
    return tool, collector


def available(tool: Tool) -> bool:
    if tool.needs is None:
        return True
    return os.path.exists(tool.needs) or shutil.which(tool.needs) is not None


# -- the workload --------------------------------------------------------------------------------

WORDS = ("request", "worker", "cache", "session", "commit", "branch", "deploy", "server", "client",
         "buffer", "socket", "thread", "timeout", "config", "handler", "index", "record", "stream")
UNICODE = ("naïve", "café", "Grüße", "straße", "déjà vu", "Ελληνικά", "Привет", "日本語", "テキスト",
           "中文字符", "한국어", "✓", "★", "→", "—", "…", "😀", "🚀", "€", "±")
COLORS = ("\x1b[0;32m", "\x1b[01;34m", "\x1b[1;31m", "\x1b[33m", "\x1b[36m", "\x1b[35m",
          "\x1b[38;5;208m", "\x1b[1m", "\x1b[4m")
RESET = ("\x1b[0m", "\x1b[m")
LEVELS = ("INFO ", "DEBUG", "WARN ", "ERROR")


def _line(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.40:  # plain log line
        return (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z "
                f"{rng.choice(LEVELS)} [{rng.choice(WORDS)}-{rng.randint(1, 16):02d}] "
                f"GET /api/v1/{rng.choice(WORDS)}/{rng.randint(1, 999999)} "
                f"{rng.choice((200, 200, 304, 404, 500))} "
                f"{rng.random() * 100:.3f}ms bytes={rng.randint(10, 99999)}")
    if kind < 0.60:  # coloured: ls --color / compiler / grep style
        parts = []
        for _ in range(rng.randint(2, 6)):
            name = f"{rng.choice(WORDS)}_{rng.randint(0, 999)}{rng.choice(('', '.py', '.c', '/', '.log'))}"
            parts.append(f"{rng.choice(COLORS)}{name}{rng.choice(RESET)}")
        return "  ".join(parts)
    if kind < 0.75:  # source code: quotes, backslashes, tabs
        indent = rng.choice(("", "    ", "        ", "\t", "\t\t"))
        return (f'{indent}printf("{rng.choice(WORDS)}=%d \\"%s\\"\\n", '
                f'{rng.choice(WORDS)}[{rng.randint(0, 9)}], '
                f'path + {rng.randint(0, 99)});  // {rng.choice(WORDS)} {rng.choice(WORDS)}')
    if kind < 0.90:  # multibyte UTF-8 prose
        return " ".join(rng.choice(UNICODE) if rng.random() < 0.4 else rng.choice(WORDS)
                        for _ in range(rng.randint(4, 14)))
    return rng.choice(("", "$ ls -la", "$ make -j2", "ok", "---", f"[{rng.randint(0, 100)}%] done"))


def make_data(path: Path, size: int, seed: int = 1) -> None:
    """Deterministic mixed terminal text of exactly ``size`` bytes, valid UTF-8, ending in a newline."""
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    written = 0
    with open(tmp, "wb") as handle:
        while written < size:
            chunk = ("\n".join(_line(rng) for _ in range(2000)) + "\n").encode()
            if len(chunk) >= size - written:  # the last piece: cut, end with a newline
                chunk = chunk[: size - written - 1] + b"\n"
                try:
                    chunk.decode()
                except UnicodeDecodeError as exc:  # the cut split a multibyte character
                    chunk = chunk[: exc.start] + b"." * (len(chunk) - exc.start - 1) + b"\n"
            handle.write(chunk)
            written += len(chunk)
    os.replace(tmp, path)


def data_file(workdir: Path, size_mb: float) -> Path:
    size = int(size_mb * 1_000_000)
    path = workdir / f"mixed-v{DATA_VERSION}-{size}.txt"
    if not path.exists() or path.stat().st_size != size:
        started = time.monotonic()
        print(f"generating {path} ({size_mb:g} MB) ...", file=sys.stderr, flush=True)
        make_data(path, size)
        print(f"  done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return path


# -- running one thing under a fresh pseudo-terminal ---------------------------------------------


class TreeSampler(threading.Thread):
    """Samples the summed RSS of ``root`` and all its descendants every SAMPLE_INTERVAL."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.samples = 0
        self.max_procs = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def _scan(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        for pid, fields in proc_stats():
            parents.setdefault(int(fields[1]), []).append(pid)
        tree = [self.root]
        for pid in tree:
            tree.extend(parents.get(pid, ()))
        return tree

    def run(self) -> None:
        pids: list[int] = []
        next_scan = 0.0
        while not self._stop_event.is_set():
            now = time.monotonic()
            if now >= next_scan:
                pids = self._scan()
                next_scan = now + RESCAN_INTERVAL
            total = 0
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/statm", "rb") as handle:
                        total += int(handle.read().split()[1]) * PAGE
                except (OSError, IndexError, ValueError):
                    continue
            self.samples += 1
            self.peak = max(self.peak, total)
            self.max_procs = max(self.max_procs, len(pids))
            self._stop_event.wait(SAMPLE_INTERVAL)


@dataclass
class RunResult:
    seconds: float
    bytes_read: int
    returncode: int
    peak_rss: int = 0
    rss_samples: int = 0
    procs: int = 0
    leftovers: int = 0  # processes still in the tool's session after it exited (killed)


def _set_ctty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyChild:
    """A child in a new session whose controlling terminal is a fresh pty; we hold the master."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.started = time.perf_counter()
        try:
            self.proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=env,
                                         start_new_session=True, preexec_fn=_set_ctty, close_fds=True)
        finally:
            os.close(slave)

    def drain(self, buf: bytearray) -> int:
        """Read the master until the other side is gone (EIO); returns the byte count."""
        total = 0
        view = [buf]
        while True:
            try:
                n = os.readv(self.master, view)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                if exc.errno != errno.EIO:
                    raise
                break
            if n == 0:
                break
            total += n
        return total

    def finish(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.wait()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def leftovers(self) -> int:
        """SIGKILL whatever still runs in the session we made (ttyrec's writer outlives a hang-up)."""
        killed = 0
        for pid, fields in proc_stats():
            if int(fields[3]) == self.proc.pid and fields[0] != b"Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
        return killed


def run_to_end(argv: Sequence[str], env: dict[str, str], buf: bytearray, sample: bool = False
               ) -> RunResult:
    child = PtyChild(argv, env)
    sampler = TreeSampler(child.proc.pid) if sample else None
    if sampler:
        sampler.start()
    try:
        got = child.drain(buf)
        code = child.finish()
        seconds = time.perf_counter() - child.started
    finally:
        if sampler:
            sampler.stop()
        child.close()
    leftovers = child.leftovers()
    result = RunResult(seconds, got, code, leftovers=leftovers)
    if sampler:
        result.peak_rss, result.rss_samples, result.procs = sampler.peak, sampler.samples, sampler.max_procs
    return result


def wait_for(master: int, marker: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([master], [], [], left)[0]:
            raise TimeoutError(f"no {marker!r} within {timeout} s (got {seen[-200:]!r})")
        seen += os.read(master, 65536)
    return seen


def echo_latencies(argv: Sequence[str], env: dict[str, str], keys: int, gap: float) -> list[float]:
    """Round-trip times (µs) of single bytes through ``cat`` in raw mode under the tool."""
    child = PtyChild(argv, env)
    times: list[float] = []
    poller = select.poll()
    poller.register(child.master, select.POLLIN)
    try:
        wait_for(child.master, b"ECHO-READY", 15.0)
        time.sleep(0.05)
        while poller.poll(0):  # anything the tool prints after the marker
            os.read(child.master, 65536)
        for i in range(keys):
            key = bytes((97 + i % 26,))
            t0 = time.perf_counter_ns()
            os.write(child.master, key)
            while True:
                if not poller.poll(2000):
                    raise TimeoutError(f"key {key!r} not echoed within 2 s")
                if key in os.read(child.master, 4096):
                    break
            times.append((time.perf_counter_ns() - t0) / 1000)
            if gap:
                time.sleep(gap)
    finally:
        child.close()  # hangs up the tool, as sshd does when the client goes away
        try:
            child.proc.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.proc.wait()
        time.sleep(0.1)
        child.leftovers()
    return times


def dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


# -- the benchmark -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Config:
    size_mb: float
    rounds: int
    short_rounds: int
    startup_reps: int
    echo_keys: int
    echo_gap_ms: float
    tools: list[str]
    workdir: str
    seed: int
    phases: list[str]
    max_busy: float
    max_wait: float
    wait_budget: float


@dataclass
class Samples:
    bulk: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tool -> runs
    startup: list[dict[str, float]] = field(default_factory=list)  # per round: tool -> seconds
    echo: list[dict[str, list[float]]] = field(default_factory=list)  # per round: tool -> µs
    errors: dict[str, list[str]] = field(default_factory=dict)
    quiet_waits: list[dict[str, Any]] = field(default_factory=list)


def cpu_busy(window: float) -> float:
    """Fraction of all CPUs busy over ``window`` seconds (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(window)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


class QuietGate:
    """Waits, before each measurement, until other processes leave the CPUs mostly idle.

    This machine is shared: another job can take both cores for minutes. A measurement
    starts once the CPUs were at most ``max_busy`` busy over a short window, or once
    ``max_wait`` seconds have passed (then the sample is kept, and the wait recorded).
    """

    def __init__(self, max_busy: float, max_wait: float, budget: float, log: list[dict[str, Any]]) -> None:
        self.max_busy = max_busy
        self.max_wait = max_wait
        self.budget = budget  # total seconds this run may spend waiting
        self.log = log

    def wait(self, label: str) -> float:
        if self.max_busy >= 1:
            return 0.0
        started = time.monotonic()
        busy = cpu_busy(0.2)
        while busy > self.max_busy:
            waited = time.monotonic() - started
            if waited >= min(self.max_wait, self.budget):
                break
            time.sleep(1.0)
            busy = cpu_busy(0.2)
        waited = time.monotonic() - started
        self.budget = max(0.0, self.budget - waited)
        if waited > 1:
            self.log.append({"at": label, "waited_s": round(waited, 1), "busy": round(busy, 2)})
            print(f"  (waited {waited:.0f} s for a quiet machine before {label}; busy {busy:.0%})",
                  file=sys.stderr, flush=True)
        return busy


def child_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TERM="xterm-256color", SHELL="/bin/sh", LANG="C.UTF-8",
               ASCIINEMA_CONFIG_HOME=str(workdir / "asciinema-config"))
    env.pop("SSHREC_HOME", None)
    # An installed package has its bytecode compiled; without this every sshrec start would
    # compile the project's modules again when the caller's environment forbids writing .pyc.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class Bench:
    def __init__(self, config: Config, tools: dict[str, Tool]) -> None:
        self.config = config
        self.tools = tools
        self.workdir = Path(config.workdir)
        self.env = child_env(self.workdir)
        self.rng = random.Random(config.seed)
        self.samples = Samples()
        self.buf = bytearray(READ_BUF)
        self.runs = 0
        self.warnings: dict[str, list[str]] = {}
        self.gate = QuietGate(config.max_busy, config.max_wait, config.wait_budget, self.samples.quiet_waits)

    def order(self) -> list[str]:
        names = list(self.config.tools)
        self.rng.shuffle(names)
        return names

    def fresh_outdir(self, name: str) -> Path:
        self.runs += 1
        out = self.workdir / "runs" / f"{self.runs:05d}-{name}"
        out.mkdir(parents=True)
        return out

    def error(self, name: str, message: str) -> None:
        self.samples.errors.setdefault(name, []).append(message)
        print(f"  ! {name}: {message}", file=sys.stderr, flush=True)

    def bulk_phase(self, data: Path, rounds: int, label: str) -> None:
        size = data.stat().st_size
        with open(data, "rb") as handle:
            expected = size + handle.read().count(b"\n")  # ONLCR turns \n into \r\n
        for round_no in range(rounds):
            for name in self.order():
                busy = self.gate.wait(f"{label} round {round_no + 1} {name}")
                out = self.fresh_outdir(name)
                argv = self.tools[name].argv(["cat", str(data)], out)
                load = os.getloadavg()[0]
                result = run_to_end(argv, self.env, self.buf, sample=True)
                recorded = dir_size(out)
                shutil.rmtree(out)
                os.sync()  # no write-back of this run's recording during the next one
                run = {"label": label, "round": round_no, "input_bytes": size, **asdict(result),
                       "recorded_bytes": recorded, "mb_per_s": size / 1e6 / result.seconds, "loadavg_1m": load,
                       "busy_before": busy}
                if result.returncode != 0 or result.bytes_read < 0.99 * expected:
                    self.error(name, f"bulk run: exit {result.returncode}, {result.bytes_read} of "
                                     f"{expected} bytes reached the terminal")
                    run["bad"] = True
                elif result.bytes_read < expected:  # ttyrec exits without draining its pty
                    run["lost_bytes"] = expected - result.bytes_read
                    self.warnings.setdefault(name, []).append(
                        f"bulk run: the last {expected - result.bytes_read} bytes never reached the terminal")
                self.samples.bulk.setdefault(name, []).append(run)
                print(f"  {label} round {round_no + 1}/{rounds} {name:<10} {run['mb_per_s']:7.1f} MB/s "
                      f"rss {result.peak_rss / 2**20:6.1f} MiB  rec {recorded / max(1, result.bytes_read):.3f}",
                      file=sys.stderr, flush=True)

    def startup_phase(self) -> None:
        reps = self.config.startup_reps
        for rep in range(reps + 1):  # the first round warms caches and is not kept
            if rep % 5 == 0:
                self.gate.wait(f"start-up round {rep}")
            times: dict[str, float] = {}
            for name in self.order():
                out = self.fresh_outdir(name)
                result = run_to_end(self.tools[name].argv(["true"], out), self.env, self.buf)
                shutil.rmtree(out)
                if result.returncode != 0:
                    self.error(name, f"startup run: exit {result.returncode}")
                    continue
                times[name] = result.seconds
            if rep:
                self.samples.startup.append(times)
        print(f"  startup: {reps} runs per tool", file=sys.stderr, flush=True)

    def echo_phase(self) -> None:
        cmd = ["sh", "-c", "stty raw -echo && printf ECHO-READY && exec cat"]
        rounds = ECHO_ROUNDS
        per_round = max(1, self.config.echo_keys // rounds)
        for round_no in range(rounds):
            by_tool: dict[str, list[float]] = {}
            self.samples.echo.append(by_tool)
            for name in self.order():
                self.gate.wait(f"echo round {round_no + 1} {name}")
                out = self.fresh_outdir(name)
                try:
                    times = echo_latencies(self.tools[name].argv(cmd, out), self.env, per_round,
                                           self.config.echo_gap_ms / 1000)
                except (TimeoutError, OSError) as exc:
                    self.error(name, f"echo: {exc}")
                    times = []
                shutil.rmtree(out, ignore_errors=True)
                if times:
                    by_tool[name] = times
                    print(f"  echo round {round_no + 1}/{rounds} {name:<10} "
                          f"p50 {percentile(times, 0.5):7.1f} µs "
                          f"p99 {percentile(times, 0.99):8.1f} µs", file=sys.stderr, flush=True)

    def run(self) -> None:
        phases = self.config.phases
        if "bulk" in phases:
            full = data_file(self.workdir, self.config.size_mb)
            short = data_file(self.workdir, self.config.size_mb / 4)
            for path in (full, short):  # into the page cache
                with open(path, "rb") as handle:
                    while handle.read(1 << 24):
                        pass
            print("bulk output (full size)", file=sys.stderr, flush=True)
            self.bulk_phase(full, self.config.rounds, "full")
            if self.config.short_rounds:
                print("bulk output (quarter size, for RSS against session length)", file=sys.stderr, flush=True)
                self.bulk_phase(short, self.config.short_rounds, "short")
        if "startup" in phases:
            print("start-up latency", file=sys.stderr, flush=True)
            self.startup_phase()
        if "echo" in phases:
            print("echo latency", file=sys.stderr, flush=True)
            self.echo_phase()


# -- summary -------------------------------------------------------------------------------------


def summarize(samples: Samples, tools: list[str]) -> dict[str, dict[str, Any]]:
    """Per tool: medians, and ratios taken per round (against bare and script) then the median."""
    by_round: dict[tuple[str, int], dict[str, float]] = {}
    for name, runs in samples.bulk.items():
        for run in runs:
            if run["label"] == "full" and not run.get("bad"):
                by_round.setdefault(("full", run["round"]), {})[name] = run["mb_per_s"]
    summary: dict[str, dict[str, Any]] = {}
    for name in tools:
        row: dict[str, Any] = {}
        runs = [r for r in samples.bulk.get(name, []) if not r.get("bad")]
        full = [r for r in runs if r["label"] == "full"]
        short = [r for r in runs if r["label"] == "short"]
        if full:
            row["mb_per_s"] = statistics.median(r["mb_per_s"] for r in full)
            for ref in ("bare", "script"):
                ratios = [v[name] / v[ref] for v in by_round.values() if name in v and ref in v]
                if ratios:
                    row[f"x_{ref}"] = statistics.median(ratios)
                    row[f"x_{ref}_range"] = [min(ratios), max(ratios)]
            row["rss_full_mib"] = max(r["peak_rss"] for r in full) / 2**20
            row["bytes_per_output_byte"] = statistics.median(
                r["recorded_bytes"] / r["bytes_read"] for r in full)
        if short:
            row["rss_short_mib"] = max(r["peak_rss"] for r in short) / 2**20
            row["mb_per_s_short"] = statistics.median(r["mb_per_s"] for r in short)
            row["seconds_short"] = statistics.median(r["seconds"] for r in short)
        start = [r[name] for r in samples.startup if name in r]
        if start:
            row["startup_ms_p50"] = statistics.median(start) * 1000
            row["startup_ms_p90"] = percentile(start, 0.9) * 1000
            paired = [(r[name] - r["bare"]) * 1000 for r in samples.startup if name in r and "bare" in r]
            if paired:  # the difference within each round, then the median
                row["startup_added_ms"] = statistics.median(paired)
        echo = [t for r in samples.echo for t in r.get(name, [])]
        if echo:
            row["echo_us_p50"] = percentile(echo, 0.5)
            row["echo_us_p99"] = percentile(echo, 0.99)
            rounds = [r for r in samples.echo if name in r and "bare" in r]
            if rounds:
                row["echo_p50_added_us"] = statistics.median(
                    percentile(r[name], 0.5) - percentile(r["bare"], 0.5) for r in rounds)
                row["echo_p99_added_us"] = statistics.median(
                    percentile(r[name], 0.99) - percentile(r["bare"], 0.99) for r in rounds)
        summary[name] = row
    return summary


def check_targets(row: dict[str, Any]) -> dict[str, bool | None]:
    def ok(key: str, test: Callable[[float], bool]) -> bool | None:
        return test(row[key]) if key in row else None

    flat = None
    # A run of a fraction of a second can end before the 20 ms sampler sees its peak.
    if "rss_full_mib" in row and "rss_short_mib" in row and row["seconds_short"] >= MIN_FLAT_SECONDS:
        flat = row["rss_full_mib"] - row["rss_short_mib"] <= TARGETS["rss_flat_mib"]
    return {
        "throughput >= 0.85x script": ok("x_script", lambda v: v >= TARGETS["throughput_vs_script"]),
        "start-up <= +40 ms": ok("startup_added_ms", lambda v: v <= TARGETS["startup_added_ms"]),
        "echo p99 <= +500 µs": ok("echo_p99_added_us", lambda v: v <= TARGETS["echo_p99_added_us"]),
        "tree RSS <= 25 MiB": ok("rss_full_mib", lambda v: v <= TARGETS["tree_rss_mib"]),
        "tree RSS flat": flat,
        "<= 1.15 rec bytes/out byte": ok("bytes_per_output_byte",
                                         lambda v: v <= TARGETS["bytes_per_output_byte"]),
    }


def fmt(value: Any, spec: str, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{suffix}"


def table(summary: dict[str, dict[str, Any]], size_mb: float) -> str:
    short_mb = size_mb / 4
    head = ["tool", "MB/s", "x bare (range)", "x script (range)", "start p50 ms", "start p90 ms",
            "+ms vs bare (paired)", "echo p50 µs", "echo p99 µs", "+p99 µs vs bare (per round)",
            f"RSS MiB @{short_mb:g}MB", f"RSS MiB @{size_mb:g}MB", "rec B/out B"]
    rows = []
    def ratio(r: dict[str, Any], key: str) -> str:
        if key not in r:
            return "-"
        low, high = r.get(f"{key}_range", (r[key], r[key]))
        return f"{r[key]:.2f} ({low:.2f}-{high:.2f})" if high - low > 0.005 else f"{r[key]:.2f}"

    for name, r in summary.items():
        rows.append([
            name, fmt(r.get("mb_per_s"), ".0f"), ratio(r, "x_bare"), ratio(r, "x_script"),
            fmt(r.get("startup_ms_p50"), ".1f"), fmt(r.get("startup_ms_p90"), ".1f"),
            fmt(r.get("startup_added_ms"), "+.1f"), fmt(r.get("echo_us_p50"), ".0f"),
            fmt(r.get("echo_us_p99"), ".0f"), fmt(r.get("echo_p99_added_us"), "+.0f"),
            fmt(r.get("rss_short_mib"), ".1f"), fmt(r.get("rss_full_mib"), ".1f"),
            fmt(r.get("bytes_per_output_byte") if name != "bare" else None, ".3f"),
        ])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "mem_total_mib": _mem_total()}


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def args_variants(args: argparse.Namespace) -> list[str]:
    return [spec.partition("=")[0] for spec in args.variant]


def git_state() -> dict[str, str]:
    """The commit measured, and whether the recorder's files differed from it."""
    def git(*args: str) -> str:
        return _first_line(["git", "-C", str(REPO), *args]) if shutil.which("git") else "?"

    status = ["git", "-C", str(REPO), "status", "--porcelain", "--", "recorder", "schema", "sshrec"]
    dirty = subprocess.run(status, capture_output=True, text=True, check=False).stdout.strip()
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s"),
            "recorder_dirty": dirty}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--size-mb", type=float, default=200.0, help="bulk file size in MB (default 200)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved bulk rounds at full size")
    p.add_argument("--short-rounds", type=int, default=3, help="bulk rounds at a quarter of the size")
    p.add_argument("--startup-reps", type=int, default=40, help="runs of `true` per tool")
    p.add_argument("--echo-keys", type=int, default=2000, help="keystrokes per tool")
    p.add_argument("--echo-gap-ms", type=float, default=1.0, help="pause between keystrokes")
    p.add_argument("--tools", default="bare,script,ttyrec,asciinema,tlog,sshrec",
                   help="comma-separated subset (bare and script are the references)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=COMMAND",
                   help="also run another sshrec build (COMMAND is the sshrec command line prefix)")
    p.add_argument("--installed", action="store_true",
                   help="also run sshrec-inst: the working tree as a regular install in a fresh venv")
    p.add_argument("--login", action="store_true",
                   help="with --installed, also sshrec-login: started as for a key login (ExposeAuthInfo, "
                   "authorized_keys looked up; run through env(1), about 1 ms)")
    p.add_argument("--collector", action="store_true",
                   help="with --installed, also sshrec-coll: the installed copy through a collector it starts")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 20 MB, 2 rounds, 10 start-ups, 200 keys")
    p.add_argument("--workdir", help="where the data file is cached and recordings are written "
                   "(default: $TMPDIR/sshrec-bench)")
    p.add_argument("--json", help="results file (default bench/out/record-<time>.json)")
    p.add_argument("--seed", type=int, default=1, help="seed of the run order shuffle")
    p.add_argument("--phases", default="bulk,startup,echo", help="which measurements to run")
    p.add_argument("--max-busy", type=float, default=0.25,
                   help="before each measurement wait until at most this fraction of all CPUs is busy "
                   "(1 = never wait)")
    p.add_argument("--max-wait", type=float, default=60.0, help="longest wait for a quiet machine, seconds")
    p.add_argument("--wait-budget", type=float, default=180.0,
                   help="total seconds the run may spend waiting for a quiet machine")
    args = p.parse_args(argv)
    if args.quick:
        args.size_mb, args.rounds, args.short_rounds = 20.0, 2, 1
        args.startup_reps, args.echo_keys = 10, 200
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    all_tools = make_tools()
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    for spec in args.variant:
        variant = sshrec_variant(spec)
        all_tools[variant.name] = variant
        wanted.append(variant.name)
    unknown = [t for t in wanted if t not in all_tools]
    if unknown:
        print(f"unknown tools: {', '.join(unknown)} (known: {', '.join(all_tools)})", file=sys.stderr)
        return 2
    for name in list(wanted):
        if not available(all_tools[name]):
            print(f"skipping {name}: {all_tools[name].needs} not found", file=sys.stderr)
            wanted.remove(name)
    if "tlog" in wanted and not os.path.exists(UTMP):
        # tlog-rec adds a utmp record and gives up without one ("Failed setting up the I/O tap");
        # a host booted without systemd or a login has none yet.
        print(f"skipping tlog: tlog-rec needs {UTMP}, which is missing (create it: sudo touch {UTMP})",
              file=sys.stderr)
        wanted.remove("tlog")
    workdir = Path(args.workdir or os.path.join(tempfile.gettempdir(), "sshrec-bench"))
    workdir.mkdir(parents=True, exist_ok=True)
    collector_process = None
    if args.installed:
        all_tools["sshrec-inst"] = installed_copy(workdir)
        wanted.append("sshrec-inst")
        if args.login:
            all_tools["sshrec-login"] = key_login(all_tools["sshrec-inst"], workdir)
            wanted.append("sshrec-login")
        if args.collector:
            all_tools["sshrec-coll"], collector_process = through_collector(all_tools["sshrec-inst"], workdir)
            wanted.append("sshrec-coll")
    shutil.rmtree(workdir / "runs", ignore_errors=True)
    config = Config(args.size_mb, args.rounds, args.short_rounds, args.startup_reps, args.echo_keys,
                    args.echo_gap_ms, wanted, str(workdir), args.seed,
                    [x.strip() for x in args.phases.split(",") if x.strip()], args.max_busy, args.max_wait,
                    args.wait_budget)
    bench = Bench(config, all_tools)
    git_before = git_state()
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        bench.run()
    finally:
        if collector_process is not None:
            collector_process.terminate()
            collector_process.wait(timeout=60)
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    summary = summarize(bench.samples, wanted)
    verdicts = {name: check_targets(row) for name, row in summary.items() if name != "bare"}
    info = machine()
    print()
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}, Python {info['python']}")
    print(f"bulk: cat of {args.size_mb:g} MB mixed text, {args.rounds} interleaved rounds "
          f"(+{args.short_rounds} at {args.size_mb / 4:g} MB); start-up: {args.startup_reps} x true; "
          f"echo: {args.echo_keys} keys, {args.echo_gap_ms:g} ms apart; took {elapsed:.0f} s")
    dirty = " + uncommitted changes under recorder/ schema/ sshrec/" if git_before["recorder_dirty"] else ""
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"commit {git_before['commit'][:10]}{dirty}")
    waits = bench.samples.quiet_waits
    if waits:
        total = sum(w["waited_s"] for w in waits)
        print(f"waited {total:.0f} s in all for a quiet machine ({len(waits)} times)")
    print()
    print(table(summary, args.size_mb))
    builds = [name for name in wanted if name.startswith("sshrec") or name in args_variants(args)]
    if builds:
        print()
    for name in builds:
        print(f"{name} targets: " + ", ".join(
            f"{goal}: {'met' if met else 'MISSED' if met is not None else 'n/a'}"
            for goal, met in verdicts[name].items()))
    if bench.samples.errors or bench.warnings:
        print()
        for name, errors in bench.samples.errors.items():
            print(f"errors for {name}: {len(errors)} (first: {errors[0]})")
        for name, warnings in bench.warnings.items():
            print(f"warnings for {name}: {len(warnings)} (first: {warnings[0]})")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = Path(args.json) if args.json else OUT_DIR / time.strftime("record-%Y%m%d-%H%M%S.json")
    versions = {name: all_tools[name].version() for name in wanted}
    out.write_text(json.dumps({
        "config": asdict(config), "machine": info, "versions": versions, "git": git_before,
        "git_after": git_state(),
        "elapsed_s": elapsed, "loadavg_before": load_before, "loadavg_after": load_after,
        "warnings": bench.warnings,
        "targets": TARGETS, "summary": summary, "verdicts": verdicts, "samples": asdict(bench.samples),
    }, indent=1, ensure_ascii=False))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
