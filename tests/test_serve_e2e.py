"""``sshrec serve`` end to end: the real OpenSSH client against a real ``sshrec serve`` process.

Every serve runs on 127.0.0.1 port 0 (the port is read from its "listening on" stderr
line), with its own spool, HOME and a tag in its environment: the tag is inherited by the
recorder, the shell and anything they start, so :meth:`ServeProcess.stop` finds and ends
every process a test caused. Waiting is on lines and events, never on sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from sshd_harness import (
    ClientKey,
    SshClient,
    cast_events,
    cast_output,
    kill_processes,
    make_client_key,
    openssh_missing,
    processes_with_env,
    read_json,
    show,
    spool_record_files,
    wait_until,
)

SSHREC = str(Path(sys.executable).parent / "sshrec")
TAG_VAR = "SSHREC_SERVE_TEST_TAG"
PROMPT = "serve-ready> "
LISTENING = re.compile(rb"sshrec serve: listening on (\S+) port (\d+)\n")

pytestmark = pytest.mark.skipif(openssh_missing() is not None, reason=str(openssh_missing()))


class ServeProcess:
    """One ``sshrec serve`` child: its stdout/stderr collected by two threads, waitable by pattern."""

    def __init__(self, workdir: Path, args: Sequence[str], *, keys: str | None,
                 stdin_keys: bytes | None = None, env: dict[str, str] | None = None,
                 user: int | None = None, listen: bool = True, index: bool = False,
                 executable: str = SSHREC) -> None:
        self.workdir = workdir
        self.spool = workdir / "spool"
        self.home = workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / ".profile").write_text(f"PS1='{PROMPT}'\n")
        self.tag = uuid.uuid4().hex
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SSH", "SSHREC"))}
        base.update(SSHREC_HOME=str(self.spool), SSHREC_CONFIG="/dev/null", HOME=str(self.home),
                    SHELL="/bin/sh", LC_ALL="C.UTF-8", **{TAG_VAR: self.tag})
        base.update(env or {})
        argv = [executable, "serve"]  # run as another user: a copy that user can reach (staging.py)
        if keys is not None:
            argv += ["--authorized-keys", keys]
        if listen:
            argv += ["--port", "0", "--listen", "127.0.0.1"]
        if not index:
            argv.append("--no-index")
        argv += list(args)
        self.argv = argv
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin_keys is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base, cwd=workdir,
            start_new_session=True, user=user,
        )
        self._threads = [threading.Thread(target=self._collect, args=(stream, buf), daemon=True)
                         for stream, buf in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))]
        for thread in self._threads:
            thread.start()
        if stdin_keys is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin_keys)
            self.proc.stdin.close()
        self._known_hosts: Path | None = None

    def _collect(self, stream: object, buf: bytearray) -> None:
        while True:
            chunk = stream.read1(65536)  # type: ignore[attr-defined]
            with self._cond:
                if not chunk:
                    self._cond.notify_all()
                    return
                buf += chunk
                self._cond.notify_all()

    def describe(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return (f"serve {state}: {self.argv}\n--- stdout ---\n{self.stdout.decode(errors='replace')[-3000:]}"
                f"\n--- stderr ---\n{self.stderr.decode(errors='replace')[-3000:]}")

    def wait_for(self, which: str, pattern: re.Pattern[bytes], timeout: float = 15.0) -> re.Match[bytes]:
        buf = self.stdout if which == "stdout" else self.stderr
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = pattern.search(buf)
                if match:
                    return match
                remaining = deadline - time.monotonic()
                finished = self.proc.poll() is not None and not any(t.is_alive() for t in self._threads)
                if remaining <= 0 or finished:
                    raise AssertionError(
                        f"{pattern.pattern!r} not on {which} within {timeout:g}s\n{self.describe()}")
                self._cond.wait(remaining)

    @property
    def host_key_line(self) -> str:
        return self.wait_for("stdout", re.compile(rb"\A(ssh-ed25519 [A-Za-z0-9+/=]+)\n")).group(1).decode()

    @property
    def port(self) -> int:
        return int(self.wait_for("stderr", LISTENING).group(2))

    def known_hosts(self) -> Path:
        if self._known_hosts is None:
            self._known_hosts = self.workdir / f"known_hosts-{self.tag[:8]}"
            self._known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_key_line}\n")
        return self._known_hosts

    def client(self, key: ClientKey, user: str = "auditor") -> SshClient:
        return SshClient(port=self.port, user=user, key=key, known_hosts=self.known_hosts())

    def wait(self, timeout: float = 20.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve did not exit within {timeout:g}s\n{self.describe()}") from None
        for thread in self._threads:
            thread.join(5)
        return rc

    @property
    def stderr_text(self) -> str:
        with self._cond:
            return self.stderr.decode(errors="replace")

    @property
    def stdout_text(self) -> str:
        with self._cond:
            return self.stdout.decode(errors="replace")

    def transcript_lines(self) -> list[str]:
        """stdout after the host key line: the asciicast transcript."""
        return self.stdout_text.splitlines()[1:]

    def records(self) -> list[dict[str, object]]:
        return [read_json(p) for p in spool_record_files(self.spool)]

    def only_record(self) -> dict[str, object]:
        records = self.records()
        assert len(records) == 1, f"expected one record in {self.spool}: {records}"
        return records[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for thread in self._threads:
            thread.join(5)
        kill_processes(lambda: processes_with_env(TAG_VAR, self.tag))


class ServeFactory:
    def __init__(self, tmp_path: Path, key: ClientKey) -> None:
        self.tmp_path = tmp_path
        self.key = key
        self.started: list[ServeProcess] = []
        self._public_dirs: list[Path] = []

    def public_dir(self) -> Path:
        """A directory another user (nobody) can use: pytest's tmp_path is private to root."""
        path = Path(tempfile.mkdtemp(prefix="sshrec-serve-test-"))
        path.chmod(0o777)
        self._public_dirs.append(path)
        return path

    def keys_file(self, *lines: str, name: str = "authorized_keys") -> Path:
        path = self.tmp_path / name
        path.write_text("\n".join(lines or (self.key.public_line,)) + "\n")
        return path

    def __call__(self, *args: str, keys: str | Path | None = None, **kwargs: object) -> ServeProcess:
        if keys is None and "stdin_keys" not in kwargs:
            keys = self.keys_file()
        base = kwargs.pop("base", None) or self.tmp_path
        workdir = Path(str(base)) / f"serve{len(self.started)}"
        workdir.mkdir()
        workdir.chmod(0o777)
        serve = ServeProcess(workdir, list(args), keys=None if keys is None else str(keys), **kwargs)  # type: ignore[arg-type]
        self.started.append(serve)
        return serve

    def stop_all(self) -> None:
        for serve in self.started:
            serve.stop()
        for path in self._public_dirs:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    return make_client_key(tmp_path_factory.mktemp("serve-client"), comment="serve-e2e-client")


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    return make_client_key(tmp_path_factory.mktemp("serve-other"), comment="not-authorized")


@pytest.fixture
def serve(tmp_path: Path, client_key: ClientKey) -> Iterator[ServeFactory]:
    factory = ServeFactory(tmp_path, client_key)
    yield factory
    factory.stop_all()



def events_of(lines: list[str]) -> list[list[object]]:
    return [json.loads(line) for line in lines[1:] if line.strip()]


# -- the happy paths ---------------------------------------------------------------------------------


def test_exec_exit_status_is_the_clients_and_serves(serve: ServeFactory, client_key: ClientKey,
                                                     tmp_path: Path) -> None:
    announced = tmp_path / "announced"
    script = tmp_path / "announce.sh"
    script.write_text(f'#!/bin/sh\necho "announcing $SSHREC_SERVE_PORT"\nprintf "%s" "$1" > {announced}\n')
    script.chmod(0o755)
    srv = serve("--announce", str(script))
    srv.wait_for("stderr", re.compile(rb"announcing \d+\n"))
    result = srv.client(client_key).run("echo out-$((40+2)); echo err-line >&2; exit 5")
    assert result.returncode == 5, show(result)
    assert result.stdout == b"out-42\n"
    assert result.stderr == b"err-line\n"
    assert srv.wait() == 5, srv.describe()
    # StrictHostKeyChecking=yes with only the printed key in known_hosts: the client saw that key.
    assert announced.read_text() == srv.host_key_line
    assert srv.stderr_text.count(f"port {srv.port}\n") == 1
    assert f"announcing {srv.port}" in srv.stderr_text
    record = srv.only_record()
    assert (record["mode"], record["status"], record["exit_status"]) == ("pipe", "complete", 5)
    assert record["original_command"] == "echo out-$((40+2)); echo err-line >&2; exit 5"
    assert record["key_fingerprint"] == client_key.fingerprint
    assert record["auth_method"] == "publickey" and record["key_type"] == "ssh-ed25519"
    assert record["client_addr"] == "127.0.0.1" and record["server_port"] == srv.port
    assert cast_output(Path(str(record["path"]))) == "out-42\nerr-line\n"


def test_interactive_tty_session(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve()
    with srv.client(client_key).spawn_pty(cols=100, rows=30) as term:
        term.expect_exact(PROMPT)
        term.sendline("echo hi-$((6*7)); stty size; tty")
        term.expect(rb"hi-42\r\n30 100\r\n/dev/pts/\d+\r\n")
        term.expect_exact(PROMPT)
        term.sendline("exit 3")
        assert term.wait() == 3
    assert srv.wait() == 3, srv.describe()
    record = srv.only_record()
    assert (record["mode"], record["term"]) == ("pty", "xterm-256color")
    assert (record["cols"], record["rows"]) == (100, 30)
    assert record["key_fingerprint"] == client_key.fingerprint
    assert record["command"] == ["/bin/sh"] and record["original_command"] is None
    _, events = cast_events(Path(str(record["path"])))
    typed = "".join(str(e[2]) for e in events if e[1] == "i")
    assert "stty size" in typed and "exit 3\r" in typed
    assert "hi-42" in cast_output(Path(str(record["path"])))


def test_transcript_and_record_hold_output_and_fingerprint(serve: ServeFactory, client_key: ClientKey,
                                                           tmp_path: Path) -> None:
    log = tmp_path / "session.cast"
    srv = serve("--log", str(log))
    with srv.client(client_key).spawn_pty() as term:
        term.expect_exact(PROMPT)
        term.sendline("echo transcript-$((2*21))")
        term.expect_exact("transcript-42")
        term.sendline("exit")
        assert term.wait() == 0
    assert srv.wait() == 0, srv.describe()
    assert srv.stdout_text == srv.host_key_line + "\n"  # --log takes the transcript off stdout
    assert log.stat().st_mode & 0o777 == 0o600
    lines = log.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["sshrec"]["key_fingerprint"] == client_key.fingerprint
    events = events_of(lines)
    assert "transcript-42" in "".join(str(e[2]) for e in events if e[1] == "o")
    assert "echo transcript" in "".join(str(e[2]) for e in events if e[1] == "i")
    record = srv.only_record()
    assert record["id"] == header["sshrec"]["id"] and record["status"] == "complete"
    # The transcript is the spool's cast, line for line.
    assert Path(str(record["path"])).read_text().splitlines() == lines


def test_transcript_on_stdout_by_default(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve()
    result = srv.client(client_key).run("echo on-stdout", input=b"")
    assert result.returncode == 0, show(result)
    assert srv.wait() == 0
    lines = srv.transcript_lines()
    assert json.loads(lines[0])["sshrec"]["original_command"] == "echo on-stdout"
    assert [e[1:] for e in events_of(lines)] == [["o", "on-stdout\n"]]


def test_input_and_eof_reach_an_exec_command(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve()
    payload = bytes(range(256)) * 64
    result = srv.client(client_key).run("cat; echo done >&2", input=payload)
    assert result.returncode == 0, show(result)
    assert result.stdout == payload and result.stderr == b"done\n"
    assert srv.wait() == 0
    assert srv.only_record()["bytes_in"] == len(payload)


def test_wrong_key_is_refused_and_the_right_key_still_gets_in(serve: ServeFactory, client_key: ClientKey,
                                                              other_key: ClientKey) -> None:
    srv = serve()
    refused = srv.client(other_key).run("echo should-not-run")
    assert refused.returncode == 255, show(refused)
    assert b"Permission denied (publickey)" in refused.stderr
    srv.wait_for("stderr", re.compile(rf"refused ssh-ed25519 key {re.escape(other_key.fingerprint)}".encode()))
    assert srv.proc.poll() is None
    accepted = srv.client(client_key).run("echo in")
    assert (accepted.returncode, accepted.stdout) == (0, b"in\n"), show(accepted)
    assert srv.wait() == 0
    assert len(srv.records()) == 1


def test_port_is_closed_after_the_session(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve()
    port = srv.port
    with srv.client(client_key).spawn_pty() as term:
        term.expect_exact(PROMPT)
        srv.wait_for("stderr", re.compile(rb"port closed\n"))
        # No second connection, not even while the first session is still running.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        term.sendline("exit 0")
        assert term.wait() == 0
    assert srv.wait() == 0


def test_keys_from_stdin(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve(keys="-", stdin_keys=f"# comment line\n\n{client_key.public_line}\n".encode())
    result = srv.client(client_key).run("exit 7")
    assert result.returncode == 7, show(result)
    assert srv.wait() == 7


def test_timeout_exits_zero_with_its_error(serve: ServeFactory) -> None:
    srv = serve("--timeout", "0.5")
    port = srv.port
    assert srv.wait() == 0
    assert srv.stderr_text.splitlines()[-1] == \
        "sshrec serve: no authenticated session began within 0.5 seconds; exiting"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_killed_client_is_an_unexpected_termination(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve()
    with srv.client(client_key).spawn_pty() as term:
        term.expect_exact(PROMPT)
        term.sendline("echo before-the-cut")
        term.expect_exact("before-the-cut")
        term.expect_exact(PROMPT)
        term.kill(signal.SIGKILL)
        term.wait()
    assert srv.wait() == 255, srv.describe()
    last = srv.stderr_text.splitlines()[-1]
    assert last.startswith("sshrec serve: the remote side terminated the connection unexpectedly"), last
    record = srv.only_record()
    assert record["status"] == "complete" and record["ended_at"], record
    assert "before-the-cut" in cast_output(Path(str(record["path"])))
    assert str(record["id"]) in last


def test_shell_killed_by_a_signal_is_an_exit_signal(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve()
    result = srv.client(client_key).run("echo dying; kill -TERM $$")
    # OpenSSH's client reports a remote exit-signal as status 255 (and says so with -v).
    assert result.returncode == 255 and result.stdout == b"dying\n", show(result)
    assert srv.wait() == 128 + signal.SIGTERM
    assert "killed by SIGTERM" in srv.stderr_text
    assert srv.only_record()["exit_signal"] == "SIGTERM"


# -- errors: one line on stderr, non-zero, before listening where possible -------------------------------


def error_of(srv: ServeProcess) -> str:
    rc = srv.wait()
    assert rc != 0, srv.describe()
    lines = srv.stderr_text.splitlines()
    assert len(lines) == 1, srv.describe()
    return lines[0]


def test_error_keys_file_missing(serve: ServeFactory, tmp_path: Path) -> None:
    srv = serve(keys=tmp_path / "nope")
    assert error_of(srv) == f"sshrec serve: invalid authorized keys: {tmp_path / 'nope'} does not exist"
    assert srv.stdout_text == ""


def test_error_keys_file_unreadable(serve: ServeFactory, client_key: ClientKey, session_sshrec: Path) -> None:
    # root reads anything: then serve runs as nobody, in a directory nobody may use.
    user = 65534 if os.geteuid() == 0 else None
    base = serve.public_dir()
    keys = base / "authorized_keys"
    keys.write_text(client_key.public_line + "\n")
    keys.chmod(0o000)
    srv = serve(keys=keys, user=user, base=base, executable=str(session_sshrec))
    assert error_of(srv) == f"sshrec serve: invalid authorized keys: {keys} is not readable (Permission denied)"


def test_error_keys_unparseable_names_the_line(serve: ServeFactory, client_key: ClientKey) -> None:
    keys = serve.keys_file("# who may log in", client_key.public_line, "", "ssh-ed25519 not-base64!")
    line = error_of(serve(keys=keys))
    expected = f"sshrec serve: invalid authorized keys: {keys} line 4 contains unparseable data"
    assert line.startswith(expected), line


def test_error_keys_unknown_option_names_the_line(serve: ServeFactory, client_key: ClientKey) -> None:
    keys = serve.keys_file(f'frobnicate="yes" {client_key.public_line}')
    assert error_of(serve(keys=keys)) == (
        f"sshrec serve: invalid authorized keys: {keys} line 1 contains unparseable data "
        "(unknown option 'frobnicate')")


def test_error_keys_none(serve: ServeFactory) -> None:
    keys = serve.keys_file("# nobody yet", "")
    assert error_of(serve(keys=keys)) == f"sshrec serve: invalid authorized keys: {keys} contained no keys"


def test_error_keys_stdin_empty(serve: ServeFactory) -> None:
    srv = serve(keys="-", stdin_keys=b"")
    assert error_of(srv) == "sshrec serve: invalid authorized keys: standard input contained no keys"


def test_error_announce_not_found(serve: ServeFactory, tmp_path: Path) -> None:
    srv = serve("--announce", "no-such-announcer-xyz")
    assert error_of(srv) == ("sshrec serve: announce command not found or not executable: "
                             "no-such-announcer-xyz (not on PATH)")
    assert srv.stdout_text == ""  # checked before the key is even generated


def test_error_announce_not_executable(serve: ServeFactory, tmp_path: Path) -> None:
    script = tmp_path / "announce.txt"
    script.write_text("echo hi\n")
    srv = serve("--announce", str(script))
    assert error_of(srv) == f"sshrec serve: announce command not executable: {script}"


def test_error_announce_exits_non_zero(serve: ServeFactory, tmp_path: Path) -> None:
    script = tmp_path / "announce.sh"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    srv = serve("--announce", str(script))
    rc = srv.wait()
    assert rc == 1
    assert srv.stderr_text.splitlines()[-1] == f"sshrec serve: announce command {script} exited with status 3"
    assert srv.stdout_text.startswith("ssh-ed25519 ")  # the key comes first, then the port, then announce


def test_error_port_in_use(serve: ServeFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        srv = serve("--port", str(port), "--listen", "127.0.0.1", listen=False)
        rc = srv.wait()
    assert rc == 1
    assert srv.stderr_text == f"sshrec serve: cannot bind 127.0.0.1 port {port}: Address already in use\n"
    assert srv.stdout_text.startswith("ssh-ed25519 ") and srv.stdout_text.count("\n") == 1


def test_error_port_not_permitted(serve: ServeFactory, client_key: ClientKey, session_sshrec: Path) -> None:
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if start <= 1:
        pytest.skip("every port is unprivileged on this host")
    user = 65534 if os.geteuid() == 0 else None
    base = serve.public_dir()
    keys = base / "authorized_keys"
    keys.write_text(client_key.public_line + "\n")
    keys.chmod(0o644)
    srv = serve("--port", "1", "--listen", "127.0.0.1", keys=keys, listen=False, user=user, base=base,
                executable=str(session_sshrec))
    assert srv.wait() == 1
    assert srv.stderr_text == ("sshrec serve: cannot bind 127.0.0.1 port 1: Permission denied "
                               "(ports below 1024 need root or CAP_NET_BIND_SERVICE)\n")


def test_error_log_not_writable(serve: ServeFactory, tmp_path: Path) -> None:
    srv = serve("--log", str(tmp_path / "missing-dir" / "t.cast"))
    assert error_of(srv) == (f"sshrec serve: --log {tmp_path / 'missing-dir' / 't.cast'} is not a writable "
                             "destination: No such file or directory")
    srv = serve("--log", str(tmp_path))
    assert error_of(srv) == f"sshrec serve: --log {tmp_path} is not a writable destination: Is a directory"


# -- volume, signals, the index --------------------------------------------------------------------


def test_megabytes_both_ways_byte_exact(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve()
    blob = os.urandom(3 * 1024 * 1024)
    (srv.workdir / "blob").write_bytes(blob)  # serve's working directory is the session's
    result = srv.client(client_key).run("cat > upload && cat blob && cmp -s upload blob && echo same >&2",
                                        input=blob, timeout=120)
    assert result.returncode == 0, show(result)[-500:]
    assert result.stdout == blob and result.stderr == b"same\n"
    assert srv.wait() == 0
    record = srv.only_record()
    assert record["bytes_in"] == len(blob) and record["bytes_out"] == len(blob) + len(b"same\n")


def test_sigterm_before_a_session(serve: ServeFactory) -> None:
    srv = serve()
    srv.port  # noqa: B018 - listening
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.wait() == 128 + signal.SIGTERM
    assert srv.stderr_text.splitlines()[-1] == "sshrec serve: stopped by SIGTERM before a session began"


def test_sigterm_during_a_session_closes_the_recording(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve()
    with srv.client(client_key).spawn_pty() as term:
        term.expect_exact(PROMPT)
        term.sendline("echo still-here")
        term.expect_exact("still-here")
        srv.proc.send_signal(signal.SIGTERM)
        term.read_to_eof()
        term.wait()
    assert srv.wait() == 128 + signal.SIGTERM
    last = srv.stderr_text.splitlines()[-1]
    record = srv.only_record()
    assert last.startswith("sshrec serve: stopped by SIGTERM; session ") and str(record["id"]) in last
    assert record["status"] == "complete" and "still-here" in cast_output(Path(str(record["path"])))


def test_authenticated_without_a_session_still_times_out(serve: ServeFactory, client_key: ClientKey) -> None:
    srv = serve("--timeout", "1")
    # ssh -N: authenticates, asks for nothing; serve's timeout still ends it.
    client = srv.client(client_key)
    proc = subprocess.Popen(client.ssh_argv(extra=["-N"]), env=client.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        srv.wait_for("stderr", re.compile(rb"port closed\n"))
        assert srv.wait() == 0
        last = srv.stderr_text.splitlines()[-1]
        assert last.startswith("sshrec serve: no authenticated session began within 1 ")
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_session_is_indexed(serve: ServeFactory, client_key: ClientKey) -> None:
    """The recorder starts ``sshrec index --add`` when the session ends; the record shows up in ``ls``."""
    srv = serve(index=True)
    result = srv.client(client_key).run("echo indexed")
    assert result.returncode == 0, show(result)
    assert srv.wait() == 0
    record_id = str(srv.only_record()["id"])
    index_db = srv.spool / "index.db"

    def indexed() -> list[object] | None:
        # The index itself, not `sshrec ls`: ls would index the spool on its own first.
        if not index_db.exists():
            return None
        engine = sa.create_engine(f"sqlite:///{index_db}")
        try:
            with engine.connect() as connection:
                rows = connection.execute(sa.text("SELECT key_fingerprint FROM sessions WHERE id = :id"),
                                          {"id": record_id}).all()
        except sa.exc.OperationalError:  # not created yet, or being migrated
            return None
        finally:
            engine.dispose()
        return [row[0] for row in rows] or None

    fingerprints = wait_until(indexed, 30, f"session {record_id} in {index_db}", interval=0.2)
    assert fingerprints == [client_key.fingerprint]
    # The indexer is detached from serve: wait for it to finish rather than kill it mid-write.
    wait_until(lambda: not processes_with_env(TAG_VAR, srv.tag), 30, "the indexer to exit")


def test_start_up_imports_stay_light(serve: ServeFactory) -> None:
    """Time to ready is mostly ``import asyncssh``; nothing heavier (SQLAlchemy, Textual) may join it."""
    srv = serve("--timeout", "0", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert srv.wait() == 0
    imported = {line.split("|")[-1].strip().split(".")[0] for line in srv.stderr_text.splitlines()
                if line.startswith("import time:")}
    assert "asyncssh" in imported
    assert not imported & {"sqlalchemy", "alembic", "textual", "rich"}, sorted(imported)
