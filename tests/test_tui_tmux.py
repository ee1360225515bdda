# ruff: noqa: F811  (pytest fixtures imported from tui_support)
"""`sshrec tui` in a real terminal: tmux runs it, send-keys types, capture-pane reads the screen."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from recorder_helpers import SSHREC
from tmuxdriver import Tmux
from tui_support import FixtureSpool, spool  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux)")


COLS, ROWS = 120, 30


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(f"sshrec-test-{os.getpid()}-{secrets.token_hex(3)}", tmp_path / "tmux.conf", COLS, ROWS)
    try:
        yield server
    finally:
        server.kill()


def test_search_enter_enter_end_in_a_real_terminal(tmux: Tmux, spool: FixtureSpool, tmp_path: Path) -> None:
    env = {"SSHREC_CONFIG": "/dev/null", "SSHREC_CACHE_DIR": str(tmp_path / "cache"), "TERM": "xterm-256color",
           "LC_ALL": "C.UTF-8"}
    # COLUMNS/LINES from the test's own environment would override the window's real size
    argv = ["env", "-u", "COLUMNS", "-u", "LINES", *(f"{k}={v}" for k, v in env.items()),
            SSHREC, "tui", "--home", spool.home, "--db", spool.db_url]
    command = shlex.join(argv) + "; echo EXITED $?; sleep 60"  # the exit status stays on the screen
    tmux.start(command)
    first = tmux.wait_for("3 session(s)")
    rows = [line.split()[2] for line in first.splitlines() if line.rstrip().endswith("complete")]
    assert rows == ["mallory", "deploy", "alice"]  # newest first
    assert "\\e]52;c;cm0gLXJm\\x07" in first  # the user's escape sequence, shown and not obeyed
    tmux.type("user:alice")
    tmux.wait_for("1 session(s)")  # narrowed as typed, before Enter
    tmux.keys("Enter")
    tmux.wait_for("⏎ replay")  # the results have the keys now
    tmux.keys("Enter")
    tmux.wait_for(" / 0:00")  # the replay screen's seek bar
    tmux.keys("End")
    shown = tmux.wait_for("the end of it")
    assert "red alert underlined green 日本語 wide" in shown and "in the alternate screen" not in shown
    tmux.keys("Home")
    tmux.wait_for("0:00 / 0:00")
    tmux.keys("Escape")
    tmux.wait_for("1 session(s)")
    tmux.keys("C-q")
    assert "EXITED 0" in tmux.wait_for("EXITED")
