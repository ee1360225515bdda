"""The auditor's terminal: key input without echo, and a promise to put everything back.

The player changes two kinds of state: the tty's line discipline (cbreak, no echo, so single
keys arrive at once) and the screen's modes (whatever the recording switched on: alternate
screen, hidden cursor, application keys, a scroll region, colours). :class:`Terminal` undoes
both on every way out: normal end, ``q``, Ctrl-C (ISIG stays on, so it is a SIGINT and a
KeyboardInterrupt), SIGTERM/SIGHUP (turned into SystemExit), an exception, and Ctrl-Z (the
terminal is restored while stopped and set up again on ``fg``).
"""

from __future__ import annotations

import os
import re
import signal
import termios
import tty
from collections.abc import Callable
from types import FrameType

# Modes a recording may leave on, and how to turn each off again.
_PRIVATE_MODE = re.compile(r"\x1b\[\?([0-9;]+)([hl])")
_SCROLL_REGION = re.compile(r"\x1b\[[0-9]*;?[0-9]*r")
_MODE_OFF = {
    "1049": "\x1b[?1049l", "1047": "\x1b[?1047l", "47": "\x1b[?47l",
    "1": "\x1b[?1l", "25": "\x1b[?25h", "5": "\x1b[?5l", "6": "\x1b[?6l", "66": "\x1b[?66l",
    "7": "\x1b[?7h", "2026": "\x1b[?2026l", "1000": "\x1b[?1000l", "1002": "\x1b[?1002l",
    "1003": "\x1b[?1003l", "1006": "\x1b[?1006l", "1004": "\x1b[?1004l", "2004": "\x1b[?2004l",
}
_ALT_SCREENS = ("1049", "1047", "47")
# Leave the alternate screen first (it has its own cursor), then reset what draws.
RESTORE_TAIL = "\x1b[0m\x1b(B\x1b>"


class ModeTracker:
    """Watches written output for modes that must be switched off when the player exits."""

    def __init__(self) -> None:
        self.on: dict[str, bool] = {}
        self.scroll_region = False

    def feed(self, text: str) -> None:
        if "\x1b[" not in text:
            return
        for numbers, action in _PRIVATE_MODE.findall(text):
            for number in numbers.split(";"):
                if number in _MODE_OFF:
                    self.on[number] = action == "h"
        if "r" in text and _SCROLL_REGION.search(text):
            self.scroll_region = True

    @property
    def alternate_screen(self) -> bool:
        return any(self.on.get(n) for n in _ALT_SCREENS)

    def restore_sequence(self) -> str:
        parts = [_MODE_OFF[n] for n in _ALT_SCREENS if self.on.get(n)]
        if self.scroll_region:
            parts.append("\x1b7\x1b[r\x1b8")  # DECSTBM homes the cursor: save and restore it
        parts.extend(_MODE_OFF[n] for n, on in self.on.items() if on and n not in _ALT_SCREENS)
        if self.on.get("25") is False:
            parts.append(_MODE_OFF["25"])
        parts.append(RESTORE_TAIL)
        return "".join(parts)


class Terminal:
    """Context manager: cbreak input on ``in_fd`` (when it is a tty) and restoration on exit."""

    def __init__(self, in_fd: int, out_fd: int, exact_output: bool = True,
                 restore_text: Callable[[], str] | None = None) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.keys = os.isatty(in_fd)
        # exact_output: no newline translation (OPOST off), so recorded bytes reach the screen
        # as they were recorded; a pipe-mode recording keeps it, as its client's terminal did.
        self.exact_output = exact_output and os.isatty(out_fd)
        self._saved: dict[int, list[object]] = {}
        self._previous: dict[int, object] = {}
        self.restore_text = restore_text  # what to write on the way out
        self._restored = True

    def __enter__(self) -> Terminal:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, _exit_on_signal)
        self._previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, self._suspend)
        self._enter_cbreak()
        return self

    def _enter_cbreak(self) -> None:
        # Save before changing anything: stdin and stdout are usually the same tty.
        self._saved = {}
        if self.keys:
            self._saved[self.in_fd] = termios.tcgetattr(self.in_fd)
        if self.exact_output:
            self._saved[self.out_fd] = termios.tcgetattr(self.out_fd)
        if self.keys:
            tty.setcbreak(self.in_fd, termios.TCSANOW)  # ISIG stays: Ctrl-C is SIGINT
        if self.exact_output:
            attrs = termios.tcgetattr(self.out_fd)
            attrs[1] &= ~termios.OPOST
            termios.tcsetattr(self.out_fd, termios.TCSANOW, attrs)
        self._restored = False

    def restore(self) -> None:
        """Put the screen modes and the tty back (safe to call more than once)."""
        if self._restored:
            return
        self._restored = True
        try:
            text = self.restore_text() if self.restore_text else ""
            if text:
                write_all(self.out_fd, text.encode())
        except OSError:
            pass
        for fd, attrs in self._saved.items():
            try:
                termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
            except termios.error:
                pass

    def __exit__(self, *_: object) -> None:
        try:
            self.restore()
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]

    def _suspend(self, signum: int, frame: FrameType | None) -> None:
        self.restore()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT
        signal.signal(signal.SIGTSTP, self._suspend)
        self._enter_cbreak()

    def read_keys(self) -> bytes:
        try:
            return os.read(self.in_fd, 1024)
        except (BlockingIOError, InterruptedError):
            return b""


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1.0)


def size(fd: int) -> tuple[int, int] | None:
    """(cols, rows) of the terminal on ``fd``, or None when it is not one."""
    try:
        cols, rows = os.get_terminal_size(fd)
    except OSError:
        return None
    return cols, rows


# Keys: what the terminal sends -> the player's name for it. Arrow keys come as CSI or, in
# application cursor mode (a recording may turn it on), as SS3.
KEYS = {
    b" ": "pause", b".": "step", b"q": "quit", b"Q": "quit", b"\x03": "quit",
    b"]": "next-marker", b"[": "previous-marker", b"+": "faster", b"=": "faster", b"-": "slower",
    b"\x1b[C": "forward", b"\x1bOC": "forward", b"\x1b[D": "back", b"\x1bOD": "back",
}
_KEY_SEQUENCE = re.compile(rb"\x1b(?:\[[0-9;]*[ -/]*[@-~]|O.)|.", re.DOTALL)


def parse_keys(data: bytes) -> list[str]:
    """Names of the keys in ``data``; unknown keys and sequences are ignored."""
    names = []
    for match in _KEY_SEQUENCE.finditer(data):
        name = KEYS.get(match.group())
        if name:
            names.append(name)
    return names
