"""The collector for real: its own process and uid, recorders as another uid (and through a
real sshd), kill -9 and restart, a full filesystem, hostile clients, 200 sessions at once."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shlex
import shutil
import signal
import socket
import sqlite3
import stat
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd_harness import SshdFactory, TestUser, ensure_test_user, show, wait_until

pytestmark = pytest.mark.sshd

COLLECTOR_USER = "sshrec-coll-test"


@pytest.fixture(scope="session")
def collector_user(ssh_test_user: TestUser) -> TestUser:
    if not ssh_test_user.privileged:
        pytest.skip("the collector and the recorders under two uids need root")
    return ensure_test_user(COLLECTOR_USER)


class Collector:
    """``sshrec collector`` as its own user; ``start`` waits for it to listen."""

    def __init__(self, sshrec: Path, base: Path, user: TestUser) -> None:
        self.sshrec, self.user = sshrec, user
        self.home, self.socket = base / "spool", base / "run" / "collector.sock"
        for folder, mode in ((self.home, 0o700), (self.socket.parent, 0o755)):
            folder.mkdir(exist_ok=True)
            os.chown(folder, user.uid, user.gid)
            folder.chmod(mode)
        self.process: subprocess.Popen[str] | None = None
        self.errors = ""

    def start(self, *options: str) -> None:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "SSHREC_CONFIG": "/dev/null"}
        self.process = subprocess.Popen([str(self.sshrec), "collector", *options, "--home", str(self.home),
                                         "--socket", str(self.socket)], user=self.user.uid, group=self.user.gid,
                                        extra_groups=[], env=env, cwd="/", text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else ""
        assert "listening on" in line, f"collector did not start: {line!r} {self.process.poll()}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            _, err = self.process.communicate(timeout=30)
            self.errors += err
        self.process = None

    def wait_for_error_line(self, text: str, timeout: float = 20) -> None:
        assert self.process is not None and self.process.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stderr], [], [], 0.2)
            if ready:
                line = self.process.stderr.readline()
                self.errors += line
                if text in line:
                    return
        raise AssertionError(f"the collector never said {text!r}; it said {self.errors!r}")

    def records(self) -> list[dict[str, object]]:
        return [json.loads(p.read_text()) for p in sorted(self.home.glob("recordings/*/*/*/*.json"))]

    def record(self, session_id: str) -> dict[str, object]:
        [found] = [r for r in self.records() if r["id"] == session_id]
        return found

    def output(self, record: dict[str, object]) -> bytes:
        lines = Path(str(record["path"])).read_text(encoding="utf-8").splitlines()[1:]
        return "".join(e[2] for e in map(json.loads, lines) if e[1] == "o").encode()


@dataclass
class Site:
    collector: Collector
    config: Path
    base: Path
    recorder_user: TestUser

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "HOME": self.recorder_user.home, "SSHREC_CONFIG": str(self.config),
                "LC_ALL": "C.UTF-8", **extra}

    def record(self, command: str, *options: str, **popen: object) -> subprocess.Popen[bytes]:
        """A recorder, as the recorded user, running ``command`` through the collector."""
        argv = [str(self.collector.sshrec), "--no-watch", *options, "--", "sh", "-c", command]
        streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
        user = self.recorder_user
        return subprocess.Popen(argv, user=user.uid, group=user.gid, extra_groups=[], env=self.env(), cwd="/",
                                stdin=subprocess.DEVNULL, **streams)  # type: ignore[call-overload]

    def run(self, command: str, *options: str) -> subprocess.CompletedProcess[bytes]:
        process = self.record(command, *options)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def session_id(self, result: subprocess.CompletedProcess[bytes] | None = None) -> str:
        ids = [str(r["id"]) for r in self.collector.records()]
        return max(ids)


@pytest.fixture
def site(session_sshrec: Path, collector_user: TestUser, ssh_test_user: TestUser) -> Iterator[Site]:
    base = Path(tempfile.mkdtemp(prefix="sshrec-collector-"))
    base.chmod(0o755)
    collector = Collector(session_sshrec, base, collector_user)
    config = base / "sshrec.toml"
    config.write_text(f'sink = "collector"\ncollector_socket = "{collector.socket}"\ncollector_timeout = 10\n')
    config.chmod(0o644)
    collector.start()
    try:
        yield Site(collector, config, base, ssh_test_user)
    finally:
        collector.stop()
        subprocess.run(["umount", str(collector.home)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_a_session_is_kept_where_its_user_cannot_reach_it(site: Site) -> None:
    result = site.run("echo through-the-collector; echo err >&2; exit 3")
    expected = (3, b"through-the-collector\n", b"err\n")
    assert (result.returncode, result.stdout, result.stderr) == expected, show(result)
    [record] = site.collector.records()
    assert (record["user"], record["uid"], record["status"], record["exit_status"]) == (
        site.recorder_user.name, site.recorder_user.uid, "complete", 3)
    cast = Path(str(record["path"]))
    for path in (cast, cast.with_suffix(".json"), cast.with_suffix(".chain")):
        info = path.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (site.collector.user.uid, 0o600), path
    assert site.collector.output(record) == b"through-the-collector\nerr\n"
    peek = subprocess.run(["cat", str(cast)], user=site.recorder_user.uid, group=site.recorder_user.gid,
                          capture_output=True, timeout=30)
    assert peek.returncode != 0 and b"Permission denied" in peek.stderr
    verified = subprocess.run([str(site.collector.sshrec), "verify", str(cast)], capture_output=True, text=True)
    assert verified.returncode == 0 and "sealed chain" in verified.stdout, verified.stderr


def indexed_ids(home: Path) -> list[str]:
    if not (home / "index.db").exists():
        return []
    with sqlite3.connect(f"file:{home / 'index.db'}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT id FROM sessions")]


def test_finished_sessions_are_indexed_unless_told_not_to(site: Site) -> None:
    """The collector indexes each session it finishes (stopping waits for that); with
    --no-index it leaves the index to `sshrec index`."""
    first = site.run("echo indexed")
    assert first.returncode == 0, show(first)
    indexed = site.session_id()
    site.collector.stop()
    assert indexed_ids(site.collector.home) == [indexed]
    site.collector.start("--no-index")
    second = site.run("echo left-for-later")
    assert second.returncode == 0, show(second)
    later = site.session_id()
    site.collector.stop()
    assert later != indexed and indexed_ids(site.collector.home) == [indexed]
    caught_up = subprocess.run([str(site.collector.sshrec), "index", "--home", str(site.collector.home)],
                               capture_output=True, text=True, timeout=60, env={"SSHREC_CONFIG": "/dev/null"})
    assert caught_up.returncode == 0, caught_up.stderr
    assert sorted(indexed_ids(site.collector.home)) == sorted([indexed, later])


def test_a_claimed_identity_that_is_not_the_callers_is_refused(site: Site) -> None:
    hello = {"version": 1, "record": {"id": "01JD0Q3X9M7ZK6V3W2T1R8S4YB", "user": "root", "uid": 0},
             "header": {"version": 2, "cols": 80, "rows": 24}}
    body = json.dumps(hello).encode()
    script = ("import socket,struct,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
              "s.sendall(sys.stdin.buffer.read()); print(s.recv(4096)[5:].decode())")
    reply = subprocess.run(["/usr/bin/python3", "-c", script, str(site.collector.socket)],
                           input=struct.pack(">I", len(body) + 1) + b"\x01" + body, capture_output=True,
                           user=site.recorder_user.uid, group=site.recorder_user.gid, timeout=30)
    refusal = f"claims uid 0, but its recorder runs as uid {site.recorder_user.uid}"
    assert refusal.encode() in reply.stdout, reply
    assert site.collector.records() == []


@pytest.mark.parametrize("policy", ["deny", "allow"])
def test_a_collector_that_is_down_refuses_or_warns(site: Site, policy: str) -> None:
    site.collector.stop()
    marker = site.base / f"ran-{policy}"
    result = site.run(f"touch {marker}; echo ran", "--on-failure", policy)
    assert b"the recording service (collector)" in result.stderr and b"is not reachable" in result.stderr
    if policy == "deny":
        assert result.returncode == 1 and not marker.exists() and result.stdout == b"", show(result)
    else:
        assert result.returncode == 0 and result.stdout == b"ran\n" and b"NOT recorded" in result.stderr


def test_kill_9_and_restart_loses_nothing(site: Site) -> None:
    process = site.record("for i in $(seq 1 60); do echo line $i of the session; sleep 0.05; done")
    chain = wait_until(lambda: next(iter(site.collector.home.glob("recordings/*/*/*/*.chain")), None), 20,
                       "the first session")
    wait_until(lambda: chain.stat().st_size > 0, 20, "a first commit point")
    site.collector.stop(signal.SIGKILL)
    site.collector.start()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    [record] = site.collector.records()
    expected = b"".join(f"line {i} of the session\n".encode() for i in range(1, 61))
    assert out == expected and site.collector.output(record) == expected
    assert record["status"] == "complete"
    assert "the collector restarted during the session" in record["notes"]  # type: ignore[operator]


def test_a_killed_recorder_leaves_a_sealed_interrupted_prefix(site: Site) -> None:
    process = site.record("echo before; sleep 60")
    assert process.stdout is not None and process.stdout.readline() == b"before\n"
    chain = wait_until(lambda: next(iter(site.collector.home.glob("recordings/*/*/*/*.chain")), None), 20,
                       "the session")
    wait_until(lambda: chain.stat().st_size > 0, 20, "a commit point")
    # what the collector has received and committed (the recorder sends in batches of 20 ms)
    wait_until(lambda: b'"bytes_out": 7' in chain.read_bytes(), 20, "the output to be committed")
    process.kill()
    process.wait(timeout=30)
    subprocess.run(["pkill", "-f", "sleep 60"], capture_output=True)
    record = wait_until(lambda: next((r for r in site.collector.records() if r["status"] != "recording"), None),
                        30, "the collector to close the session")
    assert record["status"] == "interrupted" and site.collector.output(record) == b"before\n"
    verified = subprocess.run([str(site.collector.sshrec), "verify", str(record["path"])], capture_output=True,
                              text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_an_edit_or_a_cut_is_found_by_the_chain(site: Site) -> None:
    assert site.run("seq 1 20000").returncode == 0
    [record] = site.collector.records()
    cast = Path(str(record["path"]))
    original = cast.read_bytes()
    verify = [str(site.collector.sshrec), "verify", str(cast)]
    cast.write_bytes(original.replace(b"12345", b"12346", 1))
    edited = subprocess.run(verify, capture_output=True, text=True)
    assert edited.returncode == 1 and "changed after they were committed" in edited.stderr, edited.stderr
    cast.write_bytes(original[: len(original) // 2])
    cut = subprocess.run(verify, capture_output=True, text=True)
    assert cut.returncode == 1 and "cut short" in cut.stderr, cut.stderr


def test_hostile_clients_do_not_disturb_a_real_session(site: Site) -> None:
    connections = []
    for payload in (b"\x00" * 64, struct.pack(">I", 1 << 30) + b"\x02", struct.pack(">I", 500) + b"\x01{"):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(site.collector.socket))
        sock.sendall(payload)
        connections.append(sock)
    refusals = []
    for sock in connections[:2]:
        sock.settimeout(10)
        refusals.append(sock.recv(4096))
    assert all(b"protocol error" in r or b"frame of" in r for r in refusals), refusals
    result = site.run("echo still-fine")  # while the third one stalls in the middle of its HELLO
    assert result.returncode == 0 and result.stdout == b"still-fine\n", show(result)
    assert site.collector.process is not None and site.collector.process.poll() is None
    for sock in connections:
        sock.close()


def test_a_full_disk_refuses_new_sessions_and_recovers(site: Site) -> None:
    home = site.collector.home
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(home)], check=True)
    os.chown(home, site.collector.user.uid, site.collector.user.gid)
    filler = home / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k", "count=44"], capture_output=True,
                   check=True)
    client_side = site.base / "client-side.out"  # a file: a pipe nobody reads would stall the session
    with open(client_side, "wb") as sink:
        command = "for i in $(seq 1 40); do head -c 20000 /dev/zero | tr '\\0' x; echo; sleep 0.05; done"
        process = site.record(command, stdout=sink)
    site.collector.wait_for_error_line("No space left on device")
    refused = site.run("echo second")
    assert refused.returncode == 1 and b"cannot write its spool" in refused.stderr, show(refused)
    filler.unlink()  # room again: the first session completes, nothing acknowledged was lost
    site.collector.wait_for_error_line("writing the spool")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    out = client_side.read_bytes()
    [record] = [r for r in site.collector.records() if r["status"] != "refused"]
    assert record["status"] == "complete" and site.collector.output(record) == out
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256((("x" * 20000 + "\n") * 40).encode()).hexdigest()


def test_two_hundred_sessions_at_once(site: Site) -> None:
    processes = [site.record(f"seq {n * 1000} {n * 1000 + 3000}") for n in range(200)]
    outputs = {}
    for n, process in enumerate(processes):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs[n] = out
    records = site.collector.records()
    assert len(records) == 200 and all(r["status"] == "complete" for r in records)
    stored = {hashlib.sha256(site.collector.output(r)).hexdigest() for r in records}
    expected = {hashlib.sha256("".join(f"{i}\n" for i in range(n * 1000, n * 1000 + 3001)).encode()).hexdigest()
                for n in range(200)}
    assert stored == expected == {hashlib.sha256(o).hexdigest() for o in outputs.values()}


def test_through_a_real_sshd(site: Site, sshd_factory: SshdFactory) -> None:
    sshd = sshd_factory(force_command=shlex.quote(str(site.collector.sshrec)),
                        set_env={"SSHREC_CONFIG": str(site.config)})
    result = sshd.client().run("echo via-sshd")
    assert result.returncode == 0 and result.stdout == b"via-sshd\n", show(result)
    record = wait_until(lambda: next((r for r in site.collector.records() if r["status"] != "recording"), None),
                        20, "the session to end")
    assert record["user"] == site.recorder_user.name
    assert record["key_fingerprint"] == sshd.client_key.fingerprint
    assert not any("not started by sshd" in str(n) for n in record["notes"]), record  # type: ignore[union-attr]
    assert not list(sshd.spool.rglob("*.cast"))  # nothing in the user's own spool
