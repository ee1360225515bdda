#!/usr/bin/env python3
"""``sshrec serve`` against OpenSSH ``sshd -D``: time to ready, and connect to shell prompt.

Three servers, started fresh in every round, rounds interleaved (order shuffled each round)
so a busy machine slows them all alike:

  serve       sshrec serve --port P --listen 127.0.0.1 --no-index --log /dev/null (generates
              its ed25519 host key in memory at each start; records the session, input included)
  sshd        /usr/sbin/sshd -D -e -f CONFIG: same address, ed25519 host key (generated once,
              as a real sshd's is), public key only, no PAM, no DNS, no motd: the comparable config
  sshd+rec    the same sshd with ForceCommand "sshrec --record-input --no-index": what serve
              does, in the daemon set-up

Metrics (milliseconds, per round; the table shows median, min and max):

  ready     process start -> the port accepts a TCP connection (connect() polled every 1 ms)
  banner    process start -> the server's SSH-2.0 identification line arrives on that connection
  prompt    ``ssh -tt`` started -> the login shell's prompt on the client's terminal (key
            exchange, authentication, session, pty, the shell's start-up files)

Also: the import of asyncssh alone (what most of serve's ready time is), plain and through
serve's liboqs shortcut (recorder/serve/loader.py), interleaved.

Usage: python bench/serve_bench.py [--rounds 10]
Results: a table on stdout and JSON in bench/out/. Needs root (sshd logs in root as itself).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from sshd_harness import (  # noqa: E402
    SHELL_PROMPT,
    ClientKey,
    SshClient,
    _ensure_privsep,
    find_sshd,
    free_port,
    generate_key,
    make_client_key,
)

VENV_BIN = Path(sys.executable).parent
SSHREC = str(VENV_BIN / "sshrec")
OUT_DIR = REPO / "bench" / "out"
HOST = "127.0.0.1"
READY_TIMEOUT = 15.0
METRICS = ("ready", "banner", "prompt")


@dataclass
class Started:
    """A server process just started, and what the client needs to trust it."""

    proc: subprocess.Popen[bytes]
    port: int
    host_key_line: str
    t0: float


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.key: ClientKey = make_client_key(workdir / "client")
        self.keys_file = workdir / "authorized_keys"
        self.keys_file.write_text(self.key.public_line + "\n")
        self.keys_file.chmod(0o644)
        self.spool = workdir / "spool"
        self.spool.mkdir(mode=0o700)
        self.sshd_key = workdir / "ssh_host_ed25519_key"
        generate_key(self.sshd_key, "bench-host")
        self.sshd_key_line = " ".join(self.sshd_key.with_suffix(".pub").read_text().split()[:2])
        self.user = os.environ.get("USER") or "root"

    # -- the servers -----------------------------------------------------------------------------

    def start_serve(self) -> Started:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH", "SSHREC"))}
        env.update(SSHREC_HOME=str(self.spool), SSHREC_CONFIG="/dev/null", SHELL="/bin/bash",
                   HOME=os.path.expanduser("~"))
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [SSHREC, "serve", "--authorized-keys", str(self.keys_file), "--port", str(port), "--listen", HOST,
             "--no-index", "--quiet", "--log", "/dev/null", "--timeout", "120"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            cwd=os.path.expanduser("~"), start_new_session=True)
        return Started(proc, port, "", t0)

    def sshd_config(self, port: int, record: bool) -> Path:
        lines = {
            "Port": str(port), "ListenAddress": HOST, "AddressFamily": "inet", "HostKey": str(self.sshd_key),
            "PidFile": "none", "UsePAM": "no", "StrictModes": "no", "PubkeyAuthentication": "yes",
            "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no",
            "AuthenticationMethods": "publickey", "AuthorizedKeysFile": str(self.keys_file),
            "PermitRootLogin": "prohibit-password", "UseDNS": "no", "PrintMotd": "no", "PrintLastLog": "no",
            "X11Forwarding": "no", "AllowAgentForwarding": "no", "AllowTcpForwarding": "no",
            "ExposeAuthInfo": "yes", "LogLevel": "ERROR",
        }
        if record:
            lines["SetEnv"] = f"SSHREC_HOME={self.spool} SSHREC_CONFIG=/dev/null"
            lines["ForceCommand"] = f"{SSHREC} --record-input --no-index"
        path = self.workdir / f"sshd_config-{port}"
        path.write_text("".join(f"{k} {v}\n" for k, v in lines.items()))
        return path

    def start_sshd(self, record: bool) -> Started:
        sshd = find_sshd()
        assert sshd is not None
        port = free_port()
        config = self.sshd_config(port, record)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        return Started(proc, port, self.sshd_key_line, t0)

    # -- one round ----------------------------------------------------------------------------------

    def measure(self, start: Callable[[], Started]) -> dict[str, float]:
        started = start()
        try:
            ready, banner = wait_ready(started)
            if not started.host_key_line:  # serve: the first line of its stdout
                assert started.proc.stdout is not None
                started.host_key_line = started.proc.stdout.readline().decode().strip()
            known_hosts = self.workdir / f"known_hosts-{started.port}"
            known_hosts.write_text(f"[{HOST}]:{started.port} {started.host_key_line}\n")
            client = SshClient(port=started.port, user=self.user, key=self.key, known_hosts=known_hosts)
            t1 = time.perf_counter()
            with client.spawn_pty(cols=120, rows=40) as term:
                term.expect(SHELL_PROMPT, timeout=30)
                prompt = time.perf_counter() - t1
                term.sendline("exit")
                term.wait(timeout=30)
            return {"ready": ready * 1000, "banner": banner * 1000, "prompt": prompt * 1000}
        finally:
            stop(started.proc)


def wait_ready(started: Started) -> tuple[float, float]:
    """(seconds to the first accepted TCP connection, seconds to the SSH banner on it)."""
    deadline = started.t0 + READY_TIMEOUT
    while True:
        try:
            sock = socket.create_connection((HOST, started.port), timeout=READY_TIMEOUT)
            break
        except ConnectionRefusedError:
            if time.perf_counter() > deadline or started.proc.poll() is not None:
                raise RuntimeError(f"server on port {started.port} never accepted (exit {started.proc.poll()})"
                                   ) from None
            time.sleep(0.001)
    ready = time.perf_counter() - started.t0
    with sock:
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(256)
            if not chunk:
                raise RuntimeError("connection closed before the SSH banner")
            data += chunk
        banner = time.perf_counter() - started.t0
    if not data.startswith(b"SSH-2.0-"):
        raise RuntimeError(f"unexpected banner {data!r}")
    return ready, banner


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def import_times(rounds: int) -> dict[str, list[float]]:
    """ms to import asyncssh in a fresh interpreter: plainly, and as serve does."""
    code = {
        "import asyncssh": "import asyncssh",
        "loader.load_asyncssh()":
            "from sshrec.recorder.serve.loader import load_asyncssh; load_asyncssh()",
    }
    times: dict[str, list[float]] = {name: [] for name in code}
    for _ in range(rounds):
        for name in random.sample(list(code), len(code)):
            script = f"import time; t = time.perf_counter(); {code[name]}; print(time.perf_counter() - t)"
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
            times[name].append(float(out.stdout) * 1000)
    return times


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} {min(values):6.0f} {max(values):6.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("serve_bench: run as root (sshd must log the bench user in as itself)", file=sys.stderr)
        return 2
    if find_sshd() is None:
        print("serve_bench: OpenSSH sshd not found", file=sys.stderr)
        return 2
    _ensure_privsep()
    workdir = Path(tempfile.mkdtemp(prefix="sshrec-serve-bench-"))
    try:
        bench = Bench(workdir)
        servers: dict[str, Callable[[], Started]] = {
            "serve": bench.start_serve,
            "sshd": lambda: bench.start_sshd(record=False),
            "sshd+rec": lambda: bench.start_sshd(record=True),
        }
        results: dict[str, dict[str, list[float]]] = {name: {m: [] for m in METRICS} for name in servers}
        for round_no in range(args.rounds):
            for name in random.sample(list(servers), len(servers)):
                for metric, value in bench.measure(servers[name]).items():
                    results[name][metric].append(value)
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
        imports = import_times(args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nsshrec serve vs OpenSSH sshd, {args.rounds} interleaved rounds, ms (median min max)")
    print(f"{'':10} {'ready':>21} {'banner':>21} {'prompt':>21}")
    for name, metrics in results.items():
        print(f"{name:10} " + " ".join(f"{summary(metrics[m]):>21}" for m in METRICS))
    print(f"\nimport asyncssh in a fresh interpreter, {args.rounds} rounds, ms (median min max)")
    for name, values in imports.items():
        print(f"  {name:32} {summary(values)}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"serve-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "rounds": args.rounds, "results": results, "imports": imports,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "openssh": subprocess.run(["ssh", "-V"], capture_output=True,
                                                                      text=True).stderr.strip()},
    }, indent=2))
    print(f"\nJSON: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
