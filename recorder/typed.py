"""What is typed in a terminal session: keystrokes that must never be kept (a password typed
with echo off) and the commands the shell runs (a ``$ COMMAND`` marker each).

Passwords: a program that asks for a secret turns the terminal's echo off and leaves it in
line mode (getpass, sudo, ssh, passwd, ``read -s``, ``stty -echo``); line editors that echo
themselves (readline, vim, less) turn echo off too but also leave line mode. So input that
arrives while the inner terminal has ECHO off and ICANON on is counted, never stored: not in
input events, not in markers, not in the index. The state is read from the inner terminal at
the moment each keystroke arrives, which is exact for what was typed after the prompt; keys
typed *ahead* of a prompt (before the program turned echo off) were typed with echo on and
are kept, as is a secret a program reads with echo on.

Commands: from OSC 133 marks where the shell emits them (``B`` ends the prompt, ``C`` starts
the command: the text echoed between them is the command line); else when Enter is pressed
while the shell itself is in the foreground, the current screen line with its prompt cut off;
else the line as typed. A full-screen program in the foreground makes no markers.
"""

from __future__ import annotations

import os
import termios

try:
    from sshrec.schema._fastcast import find_osc133 as _find_osc133
except ImportError:  # built without a compiler
    _find_osc133 = None

LINE_LIMIT = 4096  # bytes of screen line or typed line kept
PROMPT_ENDS = ("$ ", "# ", "% ", "> ")
OSC133 = b"\x1b]133;"
COMMAND_MARK = "$ "  # markers that are commands start with this (the indexer looks for it)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .relay import Recorder


def find_osc133(data: bytes, start: int) -> int:
    """Where the next OSC 133 mark starts, or -1 (bytes.find is slow on a 6-byte needle, and
    this runs on every burst of output)."""
    if _find_osc133 is not None:
        return int(_find_osc133(data, start))
    return data.find(OSC133, start)


def render(raw: bytes) -> str:
    """Screen bytes of one line as text: escape sequences dropped, backspace applied, a CR
    starts the line again (readline redraws that way), a line end ends it, other controls
    are ignored."""
    text = raw.decode("utf-8", "replace")
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            i = _after_escape(text, i)
            continue
        if ch == "\b":
            if out:
                out.pop()
        elif ch == "\n" or text.startswith("\r\n", i):
            break
        elif ch == "\r":
            out.clear()
        elif ch >= " " or ch == "\t":
            out.append(ch)
        i += 1
    return "".join(out).strip()


def _after_escape(text: str, i: int) -> int:
    """The index after the escape sequence that starts at ``i``."""
    if i + 1 >= len(text):
        return len(text)
    kind = text[i + 1]
    j = i + 2
    if kind == "[":
        while j < len(text) and not "@" <= text[j] <= "~":
            j += 1
        return j + 1
    if kind == "]":
        while j < len(text):
            if text[j] == "\x07":
                return j + 1
            if text[j] == "\x1b" and j + 1 < len(text) and text[j + 1] == "\\":
                return j + 2
            j += 1
        return j
    return i + 2


def without_prompt(line: str) -> str | None:
    """The command after a shell prompt (``user@host:~$ ls`` -> ``ls``), None without one."""
    ends = [line.find(end) for end in PROMPT_ENDS if end in line]
    if not ends:
        return None
    start = min(ends) + 2
    return line[start:].strip()


class TypedLine:
    """The line as typed: printable characters, with erase, kill-line and kill-word applied."""

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.edited = False  # cursor keys or completion were used: the text may be wrong

    def feed(self, data: bytes) -> list[str]:
        """Characters typed; returns the lines completed by Enter."""
        done = []
        text = data.decode("utf-8", "replace")
        i = 0
        while i < len(text):
            ch = text[i]
            if ch in "\r\n":
                done.append("".join(self.chars).strip())
                self.chars, self.edited = [], False
            elif ch in "\x7f\b":
                if self.chars:
                    self.chars.pop()
            elif ch in "\x15\x03":  # ^U kills the line, ^C abandons it
                self.chars.clear()
            elif ch == "\x17":  # ^W: the last word
                while self.chars and self.chars[-1] == " ":
                    self.chars.pop()
                while self.chars and self.chars[-1] != " ":
                    self.chars.pop()
            elif ch == "\x1b":
                i = _after_escape(text, i)
                self.edited = True
                continue
            elif ch == "\t":
                self.edited = True
            elif ch >= " " and len(self.chars) < LINE_LIMIT:
                self.chars.append(ch)
            i += 1
        return done


class TypedInput:
    """Sits between the relay and the recorder for a PTY session (see the module doc)."""

    def __init__(self, recorder: Recorder, record_input: bool) -> None:
        self.recorder = recorder
        self.record_input = record_input
        self.master = -1
        self.shell = -1
        self.masked = 0  # bytes never stored
        self.hidden_run = 0  # masked bytes since the last marker about them
        self.typed = TypedLine()
        self.screen_line = b""  # output since the last newline
        self.osc133 = False  # the shell marks its prompts: trust those marks only
        self.echo: bytearray | None = None  # output between OSC 133 B and C
        self.last_typed = ""  # the last line Enter completed
        self.commands = 0

    def attach(self, master: int, shell: int) -> None:
        self.master, self.shell = master, shell

    # -- keystrokes -------------------------------------------------------------------------

    def input(self, data: bytes) -> None:
        if self._secret():
            self.masked += len(data)
            self.hidden_run += len(data)
            self.recorder.count_input(len(data))
            return
        if self.hidden_run:
            self.recorder.marker(f"input hidden: {self.hidden_run} bytes typed with echo off")
            self.hidden_run = 0
        if self.record_input:
            self.recorder.input(data)
        else:
            self.recorder.count_input(len(data))
        for line in self.typed.feed(data):
            self.last_typed = line
            if not self.osc133 and self._shell_reads():
                self._command(without_prompt(render(self.screen_line)), line)

    def _secret(self) -> bool:
        """Echo off in line mode: a password prompt (see the module doc)."""
        try:
            flags = termios.tcgetattr(self.master)[3]
        except (termios.error, OSError):
            return False
        return not flags & termios.ECHO and bool(flags & termios.ICANON)

    def _shell_reads(self) -> bool:
        """The session's shell is the terminal's foreground process group (no program runs)."""
        try:
            return os.tcgetpgrp(self.master) == self.shell
        except OSError:
            return False

    # -- what the program writes ------------------------------------------------------------

    def output(self, data: bytes) -> None:
        self.recorder.output(data)
        if self.echo is not None or find_osc133(data, 0) >= 0:
            self._marks(data)
        cut = data.rfind(b"\n")
        if cut >= 0:
            self.screen_line = data[cut + 1 :][-LINE_LIMIT:]
        else:
            self.screen_line = (self.screen_line + data)[-LINE_LIMIT:]

    def _marks(self, data: bytes) -> None:
        start = 0
        while True:
            at = find_osc133(data, start)
            if self.echo is not None:
                self.echo += data[start : at if at >= 0 else len(data)]
                del self.echo[: max(0, len(self.echo) - LINE_LIMIT)]
            if at < 0:
                return
            kind = data[at + len(OSC133) : at + len(OSC133) + 1]
            start = at + len(OSC133) + 1
            self.osc133 = True
            if kind == b"B":
                self.echo = bytearray()
            elif kind == b"C" and self.echo is not None:
                echoed = render(bytes(self.echo))
                self.echo = None
                self._command(echoed, self.last_typed)
            elif kind in (b"A", b"D"):
                self.echo = None

    def _command(self, shown: str | None, typed: str) -> None:
        text = shown or typed
        if text:
            self.commands += 1
            self.recorder.marker(COMMAND_MARK + text[:1000])

    def finish(self) -> list[str]:
        if self.masked:
            return [f"{self.masked} bytes typed with echo off (password prompts) were not recorded"]
        return []
