"""Inside a terminal session: passwords typed with echo off are never stored, the commands the
shell runs become markers and searchable data (recorder/typed.py), under a real PTY and
through a real sshd."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from ptydriver import PtyProcess
from recorder_helpers import SSHREC, cast_events, only_record, record_env
from sshd_harness import SHELL_PROMPT, SshdFactory

PROMPT = "typed-host$ "
OSC133_BASH = (r"PS0='\[\e]133;C\a\]'" + "\n"
               + r"PS1='\[\e]133;D;$?\a\e]133;A\a\]typed-host$ \[\e]133;B\a\]'" + "\n")
GETPASS = "python3 -c 'import getpass; print(len(getpass.getpass(\"pass\" + \"word: \")))'"


def bash(home: Path, rc: str, *options: str) -> PtyProcess:
    (home / "rc").write_text(rc)
    return PtyProcess([SSHREC, "--no-index", *options, "--", "bash", "--rcfile", str(home / "rc"), "-i"],
                      env=record_env(home / "spool", TERM="xterm"))


def markers(record: dict[str, object]) -> list[str]:
    return [e[2] for e in cast_events(str(record["path"])) if e[1] == "m"]


def every_byte(*folders: Path) -> bytes:
    return b"".join(p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file())


def index(home: Path) -> None:
    subprocess.run([SSHREC, "index", "--quiet"], env=record_env(home, SSHREC_DB=f"sqlite:///{home}/index.db"),
                   check=True, timeout=60)


@pytest.mark.parametrize("prompt", ["read -s", "getpass"])
def test_a_secret_typed_with_echo_off_is_in_no_byte_of_the_spool_or_the_index(tmp_path: Path,
                                                                              prompt: str) -> None:
    ask = 'read -s -p "pass""word: " pw; echo; echo got-${#pw}' if prompt == "read -s" else GETPASS
    with bash(tmp_path, f"PS1='{PROMPT}'\n", "--record-input") as term:
        term.expect_exact(PROMPT)
        term.sendline("echo before-the-secret")
        term.expect_exact(PROMPT)
        term.sendline(ask)
        term.expect_exact("password: ")
        term.sendline("hunter2-Xq7")
        term.expect("got-11|11")
        term.expect_exact(PROMPT)
        term.sendline("echo after-the-secret")
        term.expect_exact(PROMPT)
        term.sendline("exit")
        assert term.wait() == 0
    record = only_record(tmp_path / "spool")
    index(tmp_path / "spool")
    assert b"hunter2" not in every_byte(tmp_path / "spool")
    assert record["input_masked"] == len("hunter2-Xq7\r")
    typed = "".join(e[2] for e in cast_events(str(record["path"])) if e[1] == "i")
    assert "echo before-the-secret\r" in typed and "echo after-the-secret\r" in typed
    assert f"input hidden: {len('hunter2-Xq7') + 1} bytes typed with echo off" in markers(record)
    assert any("typed with echo off (password prompts) were not recorded" in n for n in record["notes"])


def test_keys_typed_ahead_are_kept_and_a_secret_after_its_prompt_hidden(tmp_path: Path) -> None:
    """A command typed ahead (while another runs, echo on) is kept; the secret typed after the
    prompt that turned echo off is not. (Programs that ask for a secret flush what was typed
    ahead of their prompt, so a password cannot be typed ahead of it.)"""
    with bash(tmp_path, f"PS1='{PROMPT}'\n", "--record-input") as term:
        term.expect_exact(PROMPT)
        term.send(b"sleep 0.3\recho typed-ahead-$((40+2))\r")
        term.expect_exact("typed-ahead-42")
        term.expect_exact(PROMPT)
        term.sendline('read -s -p "pass""word: " pw; echo got-${#pw}')
        term.expect_exact("password: ")
        term.sendline("later-Secret")
        term.expect_exact("got-12")
        term.sendline("exit")
        assert term.wait() == 0
    data = every_byte(tmp_path / "spool")
    assert b"echo typed-ahead-$((40+2))" in data and b"later-Secret" not in data


@pytest.mark.parametrize("marks", ["osc133", "prompt"])
def test_every_command_of_a_bash_session_is_a_marker(tmp_path: Path, marks: str) -> None:
    rc = OSC133_BASH if marks == "osc133" else f"PS1='{PROMPT}'\n"
    with bash(tmp_path, rc) as term:
        term.expect_exact(PROMPT)
        term.sendline("echo first-command")
        term.expect_exact(PROMPT)
        term.send(b"echo abc\x7f\x7fxy\r")  # erased and retyped
        term.expect_exact("axy")
        term.expect_exact(PROMPT)
        term.sendline("echo from-history")
        term.expect_exact(PROMPT)
        term.send(b"\x1b[A")  # up arrow: recalled from the history, nothing typed
        term.expect_exact("echo from-history")
        term.send(b"\r")
        term.expect_exact(PROMPT)
        term.sendline("stty -echo")  # from now on readline echoes nothing either
        term.expect_exact(PROMPT)
        term.sendline("echo unseen-command")
        term.expect_exact("unseen-command")
        term.expect_exact(PROMPT)
        term.sendline("stty echo")
        term.expect_exact(PROMPT)
        term.sendline("exit")
        assert term.wait() == 0
    commands = [m for m in markers(only_record(tmp_path / "spool")) if m.startswith("$ ")]
    assert commands == ["$ echo first-command", "$ echo axy", "$ echo from-history", "$ echo from-history",
                        "$ stty -echo", "$ echo unseen-command", "$ stty echo", "$ exit"]


def test_zsh_commands_are_markers(tmp_path: Path) -> None:
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (apt-get install zsh)")
    (tmp_path / "zdot").mkdir()
    (tmp_path / "zdot" / ".zshrc").write_text("PROMPT='zsh-host%% '\n")
    env = record_env(tmp_path / "spool", TERM="xterm", ZDOTDIR=str(tmp_path / "zdot"))
    with PtyProcess([SSHREC, "--no-index", "--", zsh, "-i"], env=env) as term:
        term.expect_exact("zsh-host% ")
        term.sendline("echo in-zsh")
        term.expect_exact("in-zsh")
        term.expect_exact("zsh-host% ")
        term.sendline("exit")
        assert term.wait() == 0
    commands = [m for m in markers(only_record(tmp_path / "spool")) if m.startswith("$ ")]
    assert commands == ["$ echo in-zsh", "$ exit"]


def test_a_full_screen_program_makes_no_markers(tmp_path: Path) -> None:
    program = tmp_path / "menu.py"
    program.write_text("import curses\n"
                       "def main(screen):\n"
                       "    for n in range(3):\n"
                       "        screen.addstr(n, 0, f'item {n}> ')\n"
                       "        screen.refresh()\n"
                       "        while screen.getch() not in (10, 13):\n"
                       "            pass\n"
                       "curses.wrapper(main)\n")
    with bash(tmp_path, f"PS1='{PROMPT}'\n") as term:
        term.expect_exact(PROMPT)
        term.sendline(f"python3 {program}")
        for n in range(3):
            term.expect_exact(f"item {n}> ")
            term.send(b"ab\r")
        term.expect_exact(PROMPT)
        term.sendline("exit")
        assert term.wait() == 0
    commands = [m for m in markers(only_record(tmp_path / "spool")) if m.startswith("$ ")]
    assert commands == [f"$ python3 {program}", "$ exit"]


def test_typed_commands_are_found_with_the_moment(tmp_path: Path) -> None:
    home = tmp_path / "spool"
    with bash(tmp_path, f"PS1='{PROMPT}'\n") as term:
        term.expect_exact(PROMPT)
        term.sendline("true; echo harmless")
        term.expect_exact(PROMPT)
        term.sendline("rm -rf /tmp/sshrec-typed-test-nothing")
        term.expect_exact(PROMPT)
        term.sendline("exit")
        assert term.wait() == 0
    interactive = only_record(home)
    subprocess.run([SSHREC, "--no-index", "--", "sh", "-c", "exit 0"], env=record_env(
        home, SSH_ORIGINAL_COMMAND="rm -rf /var/tmp/other"), check=True, timeout=60)
    env = record_env(home, SSHREC_DB=f"sqlite:///{tmp_path}/index.db")
    listing = subprocess.run([SSHREC, "ls", "--typed", "RM -RF", "--json"], env=env, capture_output=True,
                             text=True, check=True)
    found = json.loads(listing.stdout)
    by_id = {r["id"]: r["typed_match"] for r in found}
    assert len(by_id) == 2
    [match] = by_id[interactive["id"]]
    assert match["command"] == "rm -rf /tmp/sshrec-typed-test-nothing" and match["time"] > 0
    assert [m["command"] for r in found if r["id"] != interactive["id"] for m in r["typed_match"]] == [
        "rm -rf /var/tmp/other"]
    none = subprocess.run([SSHREC, "ls", "--typed", "shutdown", "--json"], env=env, capture_output=True,
                          text=True)
    assert json.loads(none.stdout) == []


def test_a_password_through_sshd_is_not_stored(sshd_factory: SshdFactory, session_sshrec: Path) -> None:
    sshd = sshd_factory(force_command=f"{shlex.quote(str(session_sshrec))} --record-input --no-index")
    if sshd.pty_problem():
        pytest.skip(sshd.pty_problem())
    with sshd.client().spawn_pty() as term:
        term.expect(SHELL_PROMPT, timeout=20)
        term.sendline(GETPASS)
        term.expect_exact("password: ")
        term.sendline("over-ssh-Pw9")
        term.expect_exact("12")
        term.expect(SHELL_PROMPT)
        term.sendline("exit")
        assert term.wait(timeout=20) == 0
    [cast] = list(sshd.spool.rglob("*.cast"))
    record = json.loads(cast.with_suffix(".json").read_text())
    assert b"over-ssh-Pw9" not in every_byte(sshd.spool) and record["input_masked"] == len("over-ssh-Pw9\r")
    assert os.stat(cast).st_size > 0
