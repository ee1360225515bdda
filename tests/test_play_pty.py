"""``sshrec play`` under a real pseudo-terminal: what reaches the terminal, keys, restoring.

No sleeps for synchronisation: every key is sent after output shows that the player is in
the state the key acts on, and every wait is a deadline on output. Recordings are built so
that the behaviour under test is the only way the expected output can appear in time (a gap
of 1000 s that only a key can cross).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import signal
import subprocess
import termios
from pathlib import Path

import pytest
from ptydriver import PtyProcess
from recorder_helpers import SSHREC, record_env
from test_play_sanitize import DANGEROUS
from test_play_seekindex import make_cast

ESC = "\x1b"
CLEAR = re.escape(b"\x1b[!p\x1b[0m\x1b[H\x1b[2J")
RESTORE_TAIL = b"\x1b[0m\x1b(B\x1b>"


def env_for(tmp_path: Path) -> dict[str, str]:
    env = record_env(tmp_path / "home", SSHREC_CACHE_DIR=str(tmp_path / "cache"), TERM="xterm")
    return env


def player(tmp_path: Path, *args: str, cols: int = 100, rows: int = 30) -> PtyProcess:
    return PtyProcess([SSHREC, "play", *args], env=env_for(tmp_path), cols=cols, rows=rows)


def tty_flags(term: PtyProcess) -> tuple[bool, bool]:
    """(canonical input, echo) of the pty, read through the master."""
    lflag = termios.tcgetattr(term.master)[3]
    return bool(lflag & termios.ICANON), bool(lflag & termios.ECHO)


def record_for_real(tmp_path: Path, script: str, *options: str) -> tuple[str, str]:
    """Record ``sh -c script`` with the real recorder; returns (session id, cast path)."""
    home = tmp_path / "home"
    with PtyProcess([SSHREC, "--no-index", "--home", str(home), *options, "--", "sh", "-c", script],
                    env=record_env(home), cols=100, rows=30) as term:
        assert term.wait() == 0
    (record,) = glob.glob(str(home / "recordings/*/*/*/*.json"))
    data = json.loads(Path(record).read_text())
    return data["id"], data["path"]


def cat_output(tmp_path: Path, target: str) -> bytes:
    return subprocess.run([SSHREC, "cat", target], env=env_for(tmp_path), check=True,
                          capture_output=True).stdout


@pytest.mark.parametrize("fmt", ["v2", "v3"])
def test_what_reaches_the_terminal_is_the_recorded_output(tmp_path: Path, fmt: str) -> None:
    session_id, cast = record_for_real(
        tmp_path, r"printf 'plain\n\033[1;31mred\033[0m café 日本\n'; printf '\033[2;5Hmoved\n'; seq 1 300",
        "--format", fmt)
    expected = cat_output(tmp_path, cast)
    assert b"moved" in expected and b"300" in expected
    for target in (session_id, cast):  # by id (spool lookup, no SQL) and by path
        with player(tmp_path, "--speed", "1000", target) as term:
            assert term.wait() == 0
            shown = term.read_to_eof()
        assert shown == expected + RESTORE_TAIL


def test_the_file_and_id_path_never_imports_sqlalchemy(tmp_path: Path) -> None:
    session_id, _ = record_for_real(tmp_path, "echo hi")
    probe = ("import sys\nfrom sshrec.commands import play\nstatus = play.main(sys.argv[1:])\n"
             "print('SQLALCHEMY-LOADED' if 'sqlalchemy' in sys.modules else 'NO-SQLALCHEMY')\n"
             "sys.exit(status)\n")
    python = str(Path(SSHREC).parent / "python")
    with PtyProcess([python, "-c", probe, "--speed", "1000", session_id], env=env_for(tmp_path)) as term:
        term.expect_exact("NO-SQLALCHEMY")
        assert term.wait() == 0


def test_timing_is_kept_and_speed_scales_it(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "first "), (1.0, "o", "second")])
    with player(tmp_path, "--speed", "2", str(cast)) as term:
        term.expect_exact("first ")
        import time

        start = time.monotonic()
        term.expect_exact("second", timeout=5)
        assert 0.4 <= time.monotonic() - start < 3.0
        assert term.wait() == 0


def test_idle_time_limit_caps_long_pauses(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "before "), (3600.0, "o", "an hour later")])
    with player(tmp_path, "--idle-time-limit", "0.1", str(cast)) as term:
        term.expect_exact("an hour later", timeout=5)
        assert term.wait() == 0


def test_header_idle_time_limit_is_honoured(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "before "), (3600.0, "o", "later")],
                     extra={"idle_time_limit": 0.1})
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("later", timeout=5)
        assert term.wait() == 0


def test_space_pauses_dot_steps_space_resumes(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "one "), (1000.0, "o", "two "), (1000.1, "o", "three")])
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("one ")
        assert tty_flags(term) == (False, False)  # cbreak, no echo, while playing
        term.send(" ")  # pause
        term.send(".")  # step: only a paused player steps; the 1000 s gap is crossed at once
        term.expect_exact("two ", timeout=5)
        assert b"three" not in term.read_available(0.3)  # still paused after the step
        term.send(" ")  # resume: "three" is 0.1 s after "two"
        term.expect_exact("three", timeout=5)
        assert term.wait() == 0
        assert tty_flags(term) == (True, True)


def test_dot_does_nothing_while_playing(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "one "), (1000.0, "o", "two")])
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("one ")
        term.send(".")
        assert b"two" not in term.read_available(0.5)
        term.send("q")
        assert term.wait() == 0


SEEK_EVENTS = [(0.0, "o", "A0 "), (3.0, "o", "B3 "), (3.0, "m", "m-three"), (6.0, "o", "C6 "),
               (15.0, "m", "m-fifteen"), (20.0, "o", "D20 "), (100.0, "o", "E100")]


@pytest.mark.parametrize("version", [2, 3])
def test_arrows_seek_five_seconds_and_brackets_jump_to_markers(tmp_path: Path, version: int) -> None:
    cast = make_cast(tmp_path / "a.cast", SEEK_EVENTS, version)
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("A0 ")
        term.send(" ")  # pause: the position only moves by keys from here on
        term.send("\x1b[C")  # right: 0 -> 5
        term.expect(CLEAR + re.escape(b"A0 B3 ") + b"$")
        term.send("\x1b[C")  # 5 -> 10
        term.expect(CLEAR + re.escape(b"A0 B3 C6 ") + b"$")
        term.send("\x1bOD")  # left, as sent in application cursor mode: 10 -> 5
        term.expect(CLEAR + re.escape(b"A0 B3 ") + b"$")
        term.send("]")  # next marker after 5: 15
        term.expect(CLEAR + re.escape(b"A0 B3 C6 ") + b"$")
        term.send("[")  # previous marker before 15: 3
        term.expect(CLEAR + re.escape(b"A0 B3 ") + b"$")
        term.send(".")  # paused: next frame
        term.expect_exact("C6 ")
        term.send("q")
        assert term.wait() == 0


def test_start_at(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", SEEK_EVENTS)
    with player(tmp_path, "--at", "0:16", "--speed", "4", str(cast)) as term:
        term.expect_exact("D20 E100", timeout=30)
        assert term.wait() == 0
    # nothing before the seek's clear: playback started at 0:16, with what was on screen then
    assert bytes(term.output).startswith(b"\x1b[!p\x1b[0m\x1b[H\x1b[2JA0 B3 C6 D20 E100")


def test_plus_speeds_up(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "one "), (100.0, "o", "two")])
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("one ")
        term.send("+" * 10)  # x1024: 100 s become 0.1 s
        term.expect_exact("two", timeout=5)
        assert term.wait() == 0


def test_minus_slows_down(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "one "), (200.0, "o", "two")])
    with player(tmp_path, "--speed", "100", str(cast)) as term:  # "two" due after 2 s
        term.expect_exact("one ")
        term.send("-" * 10)  # /1024: now due after about half an hour
        assert b"two" not in term.read_available(3.0)
        term.send("q")
        assert term.wait() == 0


def test_q_quits_and_restores_the_terminal(tmp_path: Path) -> None:
    events = [(0.0, "o", f"{ESC}[?1049h{ESC}[?25l{ESC}[?1hfull"), (1000.0, "o", "x")]
    cast = make_cast(tmp_path / "a.cast", events)
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("full")
        term.send("q")
        assert term.wait() == 0
        rest = term.read_to_eof()
        assert tty_flags(term) == (True, True)
    assert rest.startswith(b"\x1b[?1049l")  # leaves the alternate screen first
    assert b"\x1b[?25h" in rest and b"\x1b[?1l" in rest


def test_ctrl_c_restores_the_terminal(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", f"{ESC}[?1049hfull"), (1000.0, "o", "x")])
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("full")
        term.sendcontrol("c")
        assert term.wait() == 130
        assert b"\x1b[?1049l" in term.read_to_eof()
        assert tty_flags(term) == (True, True)


def test_sigterm_restores_the_terminal(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", f"{ESC}[?1049hfull"), (1000.0, "o", "x")])
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("full")
        term.kill(signal.SIGTERM)
        assert term.wait() == 128 + signal.SIGTERM
        assert b"\x1b[?1049l" in term.read_to_eof()
        assert tty_flags(term) == (True, True)


def test_a_broken_line_mid_playback_restores_the_terminal_and_names_the_line(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", f"{ESC}[?1049hfull")])
    with open(cast, "ab") as handle:
        handle.write(b'[1.0, "o", "broken\n[2.0, "o", "x"]\n')
    with player(tmp_path, str(cast)) as term:
        term.expect_exact("full")
        assert term.wait() == 1
        rest = term.read_to_eof()
    assert b"\x1b[?1049l" in rest
    assert f"{cast}:3: event is not JSON".encode() in rest
    assert rest.index(b"\x1b[?1049l") < rest.index(b"event is not JSON")  # restored, then the message


def test_warns_when_the_terminal_is_smaller_than_the_recording(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "wide"), (0.1, "r", "200x60")], cols=120, rows=40)
    with player(tmp_path, str(cast), cols=80, rows=24) as term:
        term.expect_exact("the recording is 120x40 but this terminal is 80x24")
        term.expect_exact("wide")
        term.expect_exact("the recording grew to 200x60")
        assert term.wait() == 0


def test_no_warning_when_the_terminal_is_big_enough(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "a.cast", [(0.0, "o", "fits")], cols=80, rows=24)
    with player(tmp_path, str(cast), cols=80, rows=24) as term:
        assert term.wait() == 0
        assert b"this terminal" not in term.read_to_eof()


def test_dangerous_sequences_are_dropped_by_default_and_kept_with_raw(tmp_path: Path) -> None:
    events = [(0.0, "o", "start|")]
    events += [(0.001 * n, "o", f"{sequence}|") for n, sequence in enumerate(DANGEROUS.values(), 1)]
    events.append((1.0, "o", "end"))
    cast = make_cast(tmp_path / "a.cast", events)
    with player(tmp_path, "--speed", "1000", str(cast)) as term:
        assert term.wait() == 0
        safe = term.read_to_eof()
    assert safe.startswith(b"start|" + b"|" * len(DANGEROUS) + b"end")
    with player(tmp_path, "--raw", "--speed", "1000", str(cast)) as term:
        assert term.wait() == 0
        raw = term.read_to_eof()
    for name, sequence in DANGEROUS.items():
        assert sequence.encode() in raw, name


def test_follow_plays_a_recording_as_it_grows_until_its_session_ends(tmp_path: Path) -> None:
    stem = tmp_path / "01HZZZZZZZZZZZZZZZZZZZZZZZ"
    cast = make_cast(f"{stem}.cast", [(0.0, "o", "first line\r\n")])
    Path(f"{stem}.json").write_text(json.dumps({"id": stem.name, "status": "recording"}))
    lock = os.open(f"{stem}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as a live recorder holds it
    try:
        with player(tmp_path, "--follow", str(cast)) as term:
            term.expect_exact("first line")
            with open(cast, "ab") as handle:
                handle.write(b'[5.0, "o", "second line\\r\\n"]\n[6.0, "o", "par')
            term.expect_exact("second line", timeout=5)
            with open(cast, "ab") as handle:
                handle.write(b'tial completed"]\n')
            term.expect_exact("partial completed", timeout=5)
            assert term.alive
            Path(f"{stem}.json").write_text(json.dumps({"id": stem.name, "status": "complete"}))
            fcntl.flock(lock, fcntl.LOCK_UN)
            assert term.wait(timeout=10) == 0
    finally:
        os.close(lock)


def test_follow_starts_at_the_live_end(tmp_path: Path) -> None:
    events = [(float(n), "o", f"old-{n} ") for n in range(50)] + [(60.0, "o", f"{ESC}[H{ESC}[2Jlatest screen")]
    cast = make_cast(tmp_path / "a.cast", events)
    with player(tmp_path, "--follow", str(cast)) as term:  # no spool files beside: follow until q
        term.expect(CLEAR + re.escape(b"\x1b[H\x1b[2Jlatest screen"))
        assert b"old-49" not in bytes(term.output)
        term.send("q")
        assert term.wait() == 0


def test_errors_are_one_line_and_non_zero(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    for args, message in [
        (["nonexistent.cast"], "no such file, and not a session id"),
        (["01HZZZZZZZZZZZZZZZZZZZZZZZ"], "is not in the spool"),
        (["--speed", "0", "x"], "--speed must be more than 0"),
        (["--at", "soon", "x"], "is not a time"),
    ]:
        result = subprocess.run([SSHREC, "play", *args], env=env, capture_output=True, text=True)
        assert result.returncode != 0
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_help_shows_an_example() -> None:
    result = subprocess.run([SSHREC, "play", "--help"], capture_output=True, text=True, check=True)
    assert "sshrec play 01J" in result.stdout and "space pause" in result.stdout
