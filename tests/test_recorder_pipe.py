"""Pipe mode (no client terminal): byte-exact relay, exit status, failure policy, crash safety."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from recorder_helpers import SSHREC, cast_events, cast_output, only_record, record_env, recordings
from sshrec.schema.asciicast import open_cast


def run(home: Path, *args: str, stdin: bytes = b"", timeout: float = 60, cwd: Path | None = None,
        **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([SSHREC, "--no-index", *args], input=stdin, capture_output=True,
                          env=record_env(home, **env), timeout=timeout, check=False, cwd=cwd)


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll a condition with a deadline (for state in other processes that sends no event)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def pids_with_arg(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
                state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmdline and state != "Z":
                found.append(int(name))
    return found


def kill_all(marker: str) -> None:
    for pid in pids_with_arg(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_twenty_megabytes_of_random_bytes_both_ways(tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    result = run(tmp_path, "--", "cat", stdin=data)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    record = only_record(tmp_path)
    assert (record["mode"], record["status"]) == ("pipe", "complete")
    assert record["bytes_out"] == record["bytes_in"] == len(data)
    assert record["invalid_bytes"] > 0
    with open(record["path"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == record["sha256"]


def test_child_sees_stdin_exactly(tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    result = run(tmp_path, "--", "sha256sum", stdin=data)
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_stdout_stderr_and_exit_status_stay_apart(tmp_path: Path) -> None:
    result = run(tmp_path, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    record = only_record(tmp_path)
    assert (record["exit_status"], record["exit_signal"]) == (3, None)
    assert cast_output(record["path"]) in ("out\nerr\n", "err\nout\n")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGSEGV, signal.SIGUSR1])
def test_death_by_signal_ends_the_recorder_by_that_signal(tmp_path: Path, signum: int) -> None:
    """sshd reports exit-signal for a command killed by a signal: the recorder dies of the same
    one (without a core file) so the client sees what it would without it; the record keeps
    both the shell's 128+N and the name."""
    result = run(tmp_path, "--", "sh", "-c", f"kill -{signum} $$", cwd=tmp_path)
    assert result.returncode == -signum
    assert not list(tmp_path.glob("core*"))
    record = only_record(tmp_path)
    assert (record["exit_status"], record["exit_signal"]) == (128 + signum, signal.Signals(signum).name)


def test_original_command_runs_through_the_users_shell(tmp_path: Path) -> None:
    result = run(tmp_path, stdin=b"", SHELL="/bin/sh",
                 SSH_ORIGINAL_COMMAND="echo $((2+3)) $0; exit 6")
    assert (result.returncode, result.stdout) == (6, b"5 /bin/sh\n")
    record = only_record(tmp_path)
    assert record["original_command"] == "echo $((2+3)) $0; exit 6"
    assert record["command"] == ["/bin/sh", "-c", "echo $((2+3)) $0; exit 6"]


def test_no_command_gives_a_login_shell(tmp_path: Path) -> None:
    result = run(tmp_path, stdin=b"echo $0\n", SHELL="/bin/sh")
    assert result.stdout == b"-sh\n"
    assert "login shell" in only_record(tmp_path)["notes"]


def test_command_is_not_passed_through_a_shell(tmp_path: Path) -> None:
    result = run(tmp_path, "--", "echo", "$HOME;", "`id`")
    assert result.stdout == b"$HOME; `id`\n"


def test_missing_command_is_127_with_a_message(tmp_path: Path) -> None:
    result = run(tmp_path, "--", "/nonexistent/tool")
    assert result.returncode == 127
    assert b"cannot run '/nonexistent/tool'" in result.stderr
    assert only_record(tmp_path)["exit_status"] == 127


def test_invalid_utf8_is_replaced_and_counted(tmp_path: Path) -> None:
    result = run(tmp_path, "--", "printf", "a\\377\\376b\\303\\251")
    assert result.stdout == b"a\xff\xfeb\xc3\xa9"
    record = only_record(tmp_path)
    assert cast_output(record["path"]) == "a\ufffd\ufffdb\u00e9"
    assert record["invalid_bytes"] == 2


def test_input_recorded_only_when_asked(tmp_path: Path) -> None:
    run(tmp_path / "a", "--", "cat", stdin=b"hunter2\n")
    quiet = only_record(tmp_path / "a")
    assert quiet["bytes_in"] == 8
    assert [e for e in cast_events(quiet["path"]) if e[1] == "i"] == []
    run(tmp_path / "b", "--record-input", "--", "cat", stdin=b"hunter2\n")
    loud = only_record(tmp_path / "b")
    assert [e[2] for e in cast_events(loud["path"]) if e[1] == "i"] == ["hunter2\n"]


def test_v3_on_request(tmp_path: Path) -> None:
    run(tmp_path, "--format", "v3", "--", "sh", "-c", "echo a; exit 2")
    record = only_record(tmp_path)
    with open(record["path"], encoding="utf-8") as handle:
        header = json.loads(handle.readline())
    assert header["version"] == 3 and header["term"]["cols"] == 80
    assert header["sshrec"]["id"] == record["id"]
    events = cast_events(record["path"])
    assert events[0][1:] == ("o", "a\n") and events[-1][1:] == ("x", "2")


def test_spool_modes_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        run(tmp_path, "--", "true")
    finally:
        os.umask(old)
    record = only_record(tmp_path)
    for path in (record["path"], recordings(tmp_path)[0]):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    day = Path(record["path"]).parent
    for directory in (day, day.parent, day.parent.parent, tmp_path / "recordings"):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert not list(day.glob("*.lock")), "the liveness lock must go when the recorder ends"


def test_unwritable_spool_denied(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run(blocker / "spool", "--on-failure", "deny", "--", "echo", "ran")
    assert result.returncode == 1
    assert result.stdout == b""
    assert b"session refused: cannot record to" in result.stderr
    assert b"on-failure=deny" in result.stderr


def test_unwritable_spool_allowed_runs_unrecorded_and_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run(blocker / "spool", "--", "sh", "-c", "echo ran; exit 4")
    assert (result.returncode, result.stdout) == (4, b"ran\n")
    assert b"this session is NOT recorded" in result.stderr


def limited_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("policy", ["allow", "deny"])
def test_disk_full_mid_session(tmp_path: Path, policy: str) -> None:
    """RLIMIT_FSIZE makes the cast write fail with EFBIG, as a full disk would with ENOSPC."""
    script = "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done"
    proc = subprocess.run(
        [SSHREC, "--no-index", "--on-failure", policy, "--", "sh", "-c", script],
        capture_output=True, env=record_env(tmp_path), timeout=60, check=False,
        preexec_fn=limited_file_size(200_000),
    )
    assert b"recording failed" in proc.stderr
    record_file = recordings(tmp_path)[0]
    with open(record_file, encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["status"] == "failed"
    if policy == "allow":
        assert proc.returncode == 0
        assert proc.stdout.endswith(b"done\n") and len(proc.stdout) == 3_000_006
    else:
        assert proc.returncode != 0
        assert b"ending the session" in proc.stderr
        assert not proc.stdout.endswith(b"done\n")


def test_flushed_while_output_flows(tmp_path: Path) -> None:
    marker = "987011"
    proc = subprocess.Popen([SSHREC, "--no-index", "--", "sh", "-c",
                             f"echo first-line; exec sleep {marker}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=record_env(tmp_path))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first-line\n"
        wait_for(lambda: recordings(tmp_path), what="the session record")
        cast = recordings(tmp_path)[0][:-5] + ".cast"
        wait_for(lambda: "first-line" in cast_output(cast), timeout=2.0,
                 what="the output line to reach the file while the session runs")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        kill_all(marker)


def test_sigkilled_recorder_leaves_a_playable_prefix(tmp_path: Path) -> None:
    marker = "987012"
    proc = subprocess.Popen(
        [SSHREC, "--no-index", "--", "sh", "-c",
         f"i=0; while [ $i -lt 100000000 ]; do echo line $i {marker}; i=$((i+1)); done"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=record_env(tmp_path))
    try:
        wait_for(lambda: recordings(tmp_path), what="the session record")
        cast = recordings(tmp_path)[0][:-5] + ".cast"
        wait_for(lambda: os.path.getsize(cast) > 300_000, what="300 kB of recording")
        proc.kill()
        proc.wait()
    finally:
        kill_all(marker)
    handle, reader = open_cast(cast)
    with handle:
        events = list(reader.events())
    text = "".join(e.data for e in events)
    lines = text.splitlines()
    assert len(lines) > 1000
    for number, line in enumerate(lines[:-1]):
        assert line == f"line {number} {marker}"
    record = json.loads(Path(recordings(tmp_path)[0]).read_text())
    assert record["status"] == "recording"


def test_client_gone_epipe_ends_the_child(tmp_path: Path) -> None:
    marker = "987013"
    proc = subprocess.Popen(
        [SSHREC, "--no-index", "--", "sh", "-c",
         f"trap '' PIPE; while :; do echo tick {marker} || true; sleep 0.05; done"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=record_env(tmp_path))
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().startswith(b"tick")
        proc.stdout.close()  # the client vanishes: the recorder's next write gets EPIPE
        assert proc.wait(timeout=15) == -signal.SIGHUP
        wait_for(lambda: not pids_with_arg(marker), what="the child to be gone")
    finally:
        proc.kill()
        kill_all(marker)
    record = only_record(tmp_path)
    assert record["status"] == "complete"
    assert any("writing to the client failed (EPIPE)" in n for n in record["notes"])


def test_a_client_that_closed_its_input_and_left_is_an_orderly_end(tmp_path: Path) -> None:
    """As an nc hop: the client closes its input, then goes; the command, still waiting on
    something else, is hung up after a grace. No exit status was ever due: none is recorded."""
    marker = "987015"
    proc = subprocess.Popen(
        [SSHREC, "--no-index", "--", "sh", "-c",
         f"cat >/dev/null; trap '' PIPE; while :; do echo tick {marker} || true; sleep 0.05; done"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=record_env(tmp_path))
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.close()  # EOF: cat ends, the loop starts
        assert proc.stdout.readline().startswith(b"tick")
        proc.stdout.close()
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        kill_all(marker)
    record = only_record(tmp_path)
    assert (record["status"], record["exit_status"], record["exit_signal"]) == ("complete", None, None)
    assert any("the client closed its input and left" in n and "SIGHUP" in n for n in record["notes"])


def test_parent_gone_ends_a_child_that_ignores_sighup(tmp_path: Path) -> None:
    """Without a PTY sshd sends no signal; the recorder sees its parent vanish and must not leave
    the command running unrecorded, even one that ignores SIGHUP (SIGKILL follows)."""
    marker = "987014"
    parent = subprocess.Popen(
        ["sh", "-c", f'"$0" --no-index -- sh -c "trap \'\' HUP; exec sleep {marker}" </dev/zero &'
                     " echo $!; wait", SSHREC],
        stdout=subprocess.PIPE, env=record_env(tmp_path), start_new_session=True)
    assert parent.stdout is not None
    recorder_pid = int(parent.stdout.readline())
    try:
        wait_for(lambda: pids_with_arg(marker), what="the child to start")
        parent.kill()
        parent.wait()
        wait_for(lambda: not pids_with_arg(marker), timeout=15, what="the child to be killed")
        wait_for(lambda: not Path(f"/proc/{recorder_pid}").exists()
                 or "Z" in Path(f"/proc/{recorder_pid}/stat").read_text().split(")")[-1][:3],
                 timeout=15, what="the recorder to exit")
    finally:
        kill_all(marker)
    record = only_record(tmp_path)
    assert record["status"] == "complete"
    assert record["exit_signal"] == "SIGKILL"
    assert any("parent process" in n for n in record["notes"])


def test_asciinema_cat_prints_what_sshrec_cat_prints(tmp_path: Path) -> None:
    script = ("printf 'plain\\n\\033[1;31mred\\033[0m caf\\303\\251 \\346\\227\\245\\n'; "
              "printf '\\377 bad \\342\\202 cut\\r\\n'; seq 1 2000")
    run(tmp_path, "--", "sh", "-c", script)
    record = only_record(tmp_path)
    env = dict(os.environ, PYTHONIOENCODING="utf-8", LC_ALL="C.UTF-8")
    ours = subprocess.run([SSHREC, "cat", "--home", str(tmp_path), record["id"]],
                          capture_output=True, check=True, env=env).stdout
    asciinema = str(Path(SSHREC).parent / "asciinema")
    theirs = subprocess.run([asciinema, "cat", record["path"]], capture_output=True, check=True,
                            env=env, stdin=subprocess.DEVNULL).stdout
    assert ours == theirs
    assert b"caf\xc3\xa9" in ours and b"1999\n2000\n" in ours


def test_transcript_fd_gets_the_same_lines(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as transcript:
        proc = subprocess.Popen([SSHREC, "--no-index", "--record-input", "--transcript-fd", str(write_end),
                                 "--note", "login name: alice",
                                 "--", "sh", "-c", f"read x; echo got-$x; ls /proc/$$/fd/{write_end} 2>&1"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=record_env(tmp_path),
                                pass_fds=(write_end,))
        os.close(write_end)
        out, _ = proc.communicate(b"abc\n", timeout=30)
        copy = transcript.read()
    assert out.startswith(b"got-abc\n")
    assert b"No such file" in out, "the transcript fd leaked into the session"
    record = only_record(tmp_path)
    assert "login name: alice" in record["notes"]
    assert copy == Path(record["path"]).read_bytes()
    assert '"i", "abc\\n"' in copy.decode()


def test_file_transfers_are_named_in_the_record(tmp_path: Path) -> None:
    run(tmp_path / "sftp", SSH_ORIGINAL_COMMAND="/usr/lib/openssh/sftp-server", stdin=b"")
    assert only_record(tmp_path / "sftp")["mode"] == "sftp"
    run(tmp_path / "scp", SSH_ORIGINAL_COMMAND="scp -t /tmp/nowhere-987", stdin=b"\0")
    assert only_record(tmp_path / "scp")["mode"] == "scp"
    run(tmp_path / "plain", "--", "true")
    assert only_record(tmp_path / "plain")["mode"] == "pipe"


def hangup_pending() -> None:
    """Exec with SIGHUP blocked and pending: as if the client dropped during start-up."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    os.kill(os.getpid(), signal.SIGHUP)


def test_hangup_during_start_up_still_closes_the_record(tmp_path: Path) -> None:
    marker = "987042"
    try:
        proc = subprocess.run([SSHREC, "--no-index", "--", "sleep", marker], stdin=subprocess.PIPE,
                              capture_output=True, env=record_env(tmp_path), timeout=30,
                              preexec_fn=hangup_pending, check=False)
    finally:
        kill_all(marker)
    assert proc.returncode == -signal.SIGHUP
    record = only_record(tmp_path)
    assert record["status"] == "complete"
    assert any("received SIGHUP" in note for note in record["notes"])


def test_quick_option_parser_agrees_with_argparse() -> None:
    from sshrec.commands.record import parse_quickly, parser

    cases = [[], ["--no-index"], ["--home", "/h", "--format=v3", "--record-input"],
             ["--note", "a", "--note=b", "--on-failure", "deny", "--transcript-fd", "7"],
             ["--db", "sqlite:///x", "--destination", "node1"]]
    for options in cases:
        assert vars(parse_quickly(options)) == vars(parser().parse_args(options)), options
    for unusual in (["--help"], ["--format", "v9"], ["--home"], ["--typo"], ["--transcript-fd", "x"],
                    ["--no-index=1"], ["--version"]):
        assert parse_quickly(unusual) is None, unusual


def test_bad_option_is_explained(tmp_path: Path) -> None:
    result = run(tmp_path, "--format", "v9", "--", "true")
    assert result.returncode == 2
    assert b"invalid choice: 'v9'" in result.stderr
