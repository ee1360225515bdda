"""Drive a program under a real pseudo-terminal, the way sshd or a terminal emulator would.

The test owns the master side: it reads what the program writes (``expect``), types into it
(``send``), changes the window size (``resize``) and waits for the exit status. The program
gets a new session with the slave as its controlling terminal, so job control, SIGWINCH,
SIGHUP on hang-up and ``isatty()`` all behave as in real life.

Every read is non-blocking with a deadline; everything read is kept in ``output`` so a
failure message can show what the program actually printed. ``close()`` kills the whole
process group and reaps it; use the driver as a context manager.

    with PtyProcess([sys.executable, "-c", "print(input('name? '))"], cols=100, rows=30) as p:
        p.expect("name\\? ")
        p.sendline("alice")
        p.expect("alice")
        assert p.wait(timeout=5) == 0
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

Pattern = str | bytes | re.Pattern[bytes]

DEFAULT_TIMEOUT = 10.0
_READ_SIZE = 65536
_SHOWN_TAIL = 2000


class PtyError(AssertionError):
    """An expectation about the program under the PTY failed; the message shows its output."""


class PtyTimeout(PtyError):
    pass


class PtyEOF(PtyError):
    pass


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    """(cols, rows) of the terminal behind ``fd``."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return cols, rows


def _compile(pattern: Pattern) -> re.Pattern[bytes]:
    if isinstance(pattern, re.Pattern):
        return pattern
    if isinstance(pattern, str):
        pattern = pattern.encode()
    return re.compile(pattern)


def _make_controlling_tty() -> None:  # runs in the child between fork and exec
    # start_new_session=True has already called setsid(); fd 0 is the slave.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    """A child process whose stdin, stdout and stderr are the slave side of a new PTY."""

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        cols: int = 80,
        rows: int = 24,
    ) -> None:
        self.argv = [os.fspath(a) for a in argv]
        self.output = bytearray()  # everything read from the master so far
        self.pos = 0  # where the next expect() starts searching
        self.eof = False
        master, slave = os.openpty()
        try:
            set_winsize(slave, cols, rows)
            self.proc = subprocess.Popen(
                self.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_make_controlling_tty,
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        os.close(slave)
        os.set_blocking(master, False)
        self.master = master
        self._closed = False

    # -- state -------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def text(self) -> str:
        """All output so far, decoded leniently (for assertions and messages)."""
        return self.output.decode("utf-8", "replace")

    @property
    def pending(self) -> bytes:
        """Output read but not yet consumed by a successful expect()."""
        return bytes(self.output[self.pos :])

    def describe(self, what: str = "") -> str:
        """A failure message: what was wanted, the process state and the unconsumed output."""
        state = "running" if self.alive else f"exited with {self.proc.returncode}"
        pending = self.output[self.pos :]
        shown = bytes(pending[-_SHOWN_TAIL:])
        cut = f" (last {_SHOWN_TAIL} of {len(pending)} bytes)" if len(pending) > _SHOWN_TAIL else ""
        lines = [
            what,
            f"  argv: {self.argv}",
            f"  process {self.pid}: {state}; pty {'at EOF' if self.eof else 'open'}",
            f"  output since the last match{cut}:",
            f"    {shown!r}",
        ]
        return "\n".join(line for line in lines if line)

    # -- reading -----------------------------------------------------------------------------

    def _read_once(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for output and append it; False when nothing came."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return False
        got_any = False
        while True:
            try:
                chunk = os.read(self.master, _READ_SIZE)
            except BlockingIOError:
                return got_any
            except OSError as exc:
                if exc.errno == errno.EIO:  # Linux: every slave fd is closed
                    self.eof = True
                    return got_any
                raise
            if not chunk:
                self.eof = True
                return got_any
            self.output += chunk
            got_any = True

    def read_available(self, timeout: float = 0.0) -> bytes:
        """Read whatever arrives within ``timeout`` (not consumed by expect)."""
        start = len(self.output)
        deadline = time.monotonic() + timeout
        while self._read_once(deadline - time.monotonic()):
            if time.monotonic() >= deadline:
                break
        return bytes(self.output[start:])

    def expect(self, pattern: Pattern, timeout: float = DEFAULT_TIMEOUT) -> re.Match[bytes]:
        """Wait until ``pattern`` (a regex) matches the unconsumed output; consume up to its end."""
        regex = _compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self.pos)
            if match:
                self.pos = match.end()
                return match
            remaining = deadline - time.monotonic()
            if self.eof:
                raise PtyEOF(self.describe(f"EOF before {regex.pattern!r} appeared"))
            if remaining <= 0:
                raise PtyTimeout(self.describe(f"{regex.pattern!r} did not appear within {timeout:g}s"))
            self._read_once(remaining)

    def expect_exact(self, text: str | bytes, timeout: float = DEFAULT_TIMEOUT) -> re.Match[bytes]:
        raw = text.encode() if isinstance(text, str) else text
        return self.expect(re.compile(re.escape(raw)), timeout)

    def read_to_eof(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Read until every slave fd is closed; returns the unconsumed output and consumes it."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PtyTimeout(self.describe(f"the pty did not reach EOF within {timeout:g}s"))
            self._read_once(remaining)
        rest = bytes(self.output[self.pos :])
        self.pos = len(self.output)
        return rest

    # -- writing and control -----------------------------------------------------------------

    def send(self, data: str | bytes, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Type ``data`` (bytes as a terminal sends them; use "\\r" for Enter)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        view = memoryview(raw)
        deadline = time.monotonic() + timeout
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PtyTimeout(self.describe(f"could not write {len(view)} more bytes within {timeout:g}s"))
            # Keep draining output meanwhile, or a program echoing our input could block us.
            readable, writable, _ = select.select(
                [] if self.eof else [self.master], [self.master], [], remaining
            )
            if readable:
                self._read_once(0)
            if writable:
                try:
                    written = os.write(self.master, view)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        raise PtyEOF(self.describe("the pty closed while writing")) from exc
                    raise
                view = view[written:]

    def sendline(self, line: str | bytes = "", timeout: float = DEFAULT_TIMEOUT) -> None:
        raw = line.encode() if isinstance(line, str) else line
        self.send(raw + b"\r", timeout)

    def sendcontrol(self, char: str) -> None:
        """sendcontrol("c") sends ^C."""
        self.send(bytes([ord(char.lower()) & 0x1F]))

    def resize(self, cols: int, rows: int) -> None:
        """Set the window size; the kernel sends SIGWINCH to the foreground process group."""
        set_winsize(self.master, cols, rows)

    def winsize(self) -> tuple[int, int]:
        return get_winsize(self.master)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the program (not its process group)."""
        if self.alive:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the program to exit while draining its output; returns its returncode
        (negative for a signal, as subprocess reports it)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PtyTimeout(self.describe(f"the program did not exit within {timeout:g}s"))
            if self.eof:
                # Nothing more to read; poll the exit with a short bounded wait.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=min(remaining, 0.05))
            else:
                self._read_once(min(remaining, 0.05))
        # Collect what was written just before the exit (grandchildren may hold the slave open,
        # so do not insist on EOF).
        while self._read_once(0.0):
            pass
        return self.proc.returncode

    def close(self, timeout: float = 5.0) -> None:
        """Kill the program's process group if it still runs, reap it, close the master."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.proc.poll() is None:
                for sig in (signal.SIGHUP, signal.SIGKILL):
                    try:
                        os.killpg(self.proc.pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        self.proc.wait(timeout=timeout if sig == signal.SIGKILL else 1.0)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            else:
                # The leader is gone; its group may not be.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        finally:
            os.close(self.master)

    def __enter__(self) -> PtyProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


__all__ = [
    "PtyEOF",
    "PtyError",
    "PtyProcess",
    "PtyTimeout",
    "get_winsize",
    "set_winsize",
]
