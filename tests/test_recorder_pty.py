"""PTY mode under a real pseudo-terminal driven by the test, as sshd would drive it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from ptydriver import PtyProcess
from recorder_helpers import SSHREC, cast_events, cast_output, only_record, record_env
from test_recorder_pipe import kill_all, pids_with_arg, wait_for

PROMPT = "READY> "


def shell(home: Path, *extra: str, cols: int = 100, rows: int = 30, argv: tuple[str, ...] = ()
          ) -> PtyProcess:
    command = list(argv) or ["sh"]
    return PtyProcess([SSHREC, "--no-index", *extra, "--", *command],
                      env=record_env(home, PS1=PROMPT, SHELL="/bin/sh"), cols=cols, rows=rows)


def test_interactive_echo_and_exit_status(tmp_path: Path) -> None:
    with shell(tmp_path) as term:
        term.expect_exact(PROMPT)
        term.sendline("echo hello-$((6*7))")
        term.expect_exact("hello-42")
        term.sendline("exit 5")
        assert term.wait() == 5
    record = only_record(tmp_path)
    assert (record["mode"], record["status"], record["exit_status"]) == ("pty", "complete", 5)
    assert (record["cols"], record["rows"]) == (100, 30)
    assert "hello-42" in cast_output(record["path"])
    assert record["bytes_in"] == len("echo hello-$((6*7))\r") + len("exit 5\r")


def test_resize_reaches_the_child_and_the_recording(tmp_path: Path) -> None:
    with shell(tmp_path) as term:
        term.expect_exact(PROMPT)
        term.sendline("stty size")
        term.expect_exact("30 100")
        term.resize(120, 40)
        term.sendline("stty size")
        term.expect_exact("40 120")
        term.sendline("exit")
        assert term.wait() == 0
    events = cast_events(only_record(tmp_path)["path"])
    assert [data for _, code, data in events if code == "r"] == ["120x40"]


def test_signal_death_ends_the_recorder_by_that_signal(tmp_path: Path) -> None:
    with shell(tmp_path, argv=("sh", "-c", "echo bye; kill -KILL $$")) as term:
        assert term.wait() == -signal.SIGKILL
    record = only_record(tmp_path)
    assert (record["exit_status"], record["exit_signal"]) == (137, "SIGKILL")
    assert "bye" in cast_output(record["path"])


def test_sighup_to_the_recorder_hangs_up_the_session(tmp_path: Path) -> None:
    with shell(tmp_path) as term:
        term.expect_exact(PROMPT)
        term.sendline("echo before-hangup")
        term.expect_exact("before-hangup\r\n")
        term.kill(signal.SIGHUP)
        assert term.wait() == -signal.SIGHUP
    record = only_record(tmp_path)
    assert record["status"] == "complete"
    assert any("received SIGHUP" in note for note in record["notes"])
    assert "before-hangup" in cast_output(record["path"])


def test_a_child_deaf_to_sighup_is_killed(tmp_path: Path) -> None:
    marker = "987031"
    with shell(tmp_path, argv=("sh", "-c", f"trap '' HUP; echo armed; exec sleep {marker}")) as term:
        term.expect_exact("armed")
        term.kill(signal.SIGTERM)
        assert term.wait(timeout=15) == -signal.SIGKILL
    assert not pids_with_arg(marker)
    assert only_record(tmp_path)["exit_signal"] == "SIGKILL"


def test_background_grandchildren_do_not_hold_the_session(tmp_path: Path) -> None:
    hup_marker, deaf_marker = "987032", "987033"
    fifo = tmp_path / "armed"
    os.mkfifo(fifo)
    # The deaf job reports through the fifo once its trap is set, before the shell exits.
    script = (f"sleep {hup_marker} & (trap '' HUP; echo > {fifo}; exec sleep {deaf_marker}) & "
              f"read _ < {fifo}; echo started; exit 3")
    try:
        with shell(tmp_path / "spool", argv=("sh", "-c", script)) as term:
            term.expect_exact("started")
            assert term.wait(timeout=10) == 3
        wait_for(lambda: not pids_with_arg(hup_marker), what="the background job to be hung up")
        # A job that ignores SIGHUP (nohup) survives, as it would under sshd itself.
        assert pids_with_arg(deaf_marker)
    finally:
        kill_all(hup_marker)
        kill_all(deaf_marker)
    assert only_record(tmp_path / "spool")["status"] == "complete"


def test_huge_output_is_relayed_and_recorded_whole(tmp_path: Path) -> None:
    with shell(tmp_path, argv=("seq", "1", "2000000")) as term:
        seen = term.read_to_eof(timeout=120)
        assert term.wait() == 0
    expected = "".join(f"{i}\r\n" for i in range(1, 2_000_001))
    assert seen.decode() == expected
    record = only_record(tmp_path)
    assert record["bytes_out"] == len(expected)
    assert cast_output(record["path"]) == expected


def test_zero_size_terminal_gets_80x24_and_a_note(tmp_path: Path) -> None:
    with shell(tmp_path, cols=0, rows=0, argv=("stty", "size")) as term:
        term.expect_exact("24 80")
        assert term.wait() == 0
    record = only_record(tmp_path)
    assert (record["cols"], record["rows"]) == (80, 24)
    assert any("0x0" in note for note in record["notes"])


def test_typed_input_recorded_with_record_input(tmp_path: Path) -> None:
    with shell(tmp_path, "--record-input") as term:
        term.expect_exact(PROMPT)
        term.sendline("echo typed")
        term.expect_exact("typed\r\n")
        term.sendline("exit")
        term.wait()
    events = cast_events(only_record(tmp_path)["path"])
    assert "".join(d for _, code, d in events if code == "i") == "echo typed\rexit\r"


def test_outer_terminal_settings_are_restored(tmp_path: Path) -> None:
    env = record_env(tmp_path)
    script = f'stty -g; "{SSHREC}" --no-index -- sh -c "exit 2"; echo rc=$?; stty -g'
    with PtyProcess(["sh", "-c", script], env=env) as term:
        assert term.wait() == 0
        lines = [line for line in term.text.split("\r\n") if line]
    before, status, after = lines[0], lines[1], lines[2]
    assert status == "rc=2"
    assert before == after


def test_utf8_split_across_reads_in_a_terminal(tmp_path: Path) -> None:
    # 3-byte characters written one byte per write: the relay sees split sequences.
    script = "for b in '\\346' '\\227' '\\245' '\\346' '\\234' '\\254'; do printf \"$b\"; done; echo"
    with shell(tmp_path, argv=("sh", "-c", script)) as term:
        term.expect_exact("日本".encode())
        term.wait()
    record = only_record(tmp_path)
    assert cast_output(record["path"]) == "日本\r\n"
    assert record["invalid_bytes"] == 0
    assert os.path.exists(record["path"])

