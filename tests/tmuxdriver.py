"""Drive a program in tmux: send-keys types, capture-pane reads the screen (tests and bench)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


class Tmux:
    """One tmux server of its own (``-L``, our config only), killed at the end whatever happened."""

    def __init__(self, socket: str, config: Path, cols: int, rows: int) -> None:
        self.socket = socket
        self.env = dict(os.environ, TMUX_TMPDIR=str(config.parent))  # its socket in the test's directory
        self.env.pop("TMUX", None)
        # the size from the start: a window resized after the app started would race its first paint
        config.write_text(f"set -g default-size {cols}x{rows}\nset -g status off\n")
        self.config = str(config)

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, "-f", self.config, *args], capture_output=True,
                              text=True, timeout=10, env=self.env)
        return done.stdout

    def start(self, command: str) -> None:
        """Run a shell ``command`` in the session "tui" (the window has the size from the start)."""
        self.run("new-session", "-d", "-s", "tui", command)

    def kill(self) -> None:
        self.run("kill-server")

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui")

    def wait_for(self, text: str, timeout: float = 15.0, poll: float = 0.02) -> str:
        """Poll the pane until ``text`` is on it (the app has drawn it)."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on the screen within {timeout} s; it shows:\n{shown}")
            time.sleep(poll)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "tui", *keys)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "tui", "-l", text)
