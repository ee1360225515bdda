"""The one session's process: the recorder (``sshrec --record-input -- ...``) on a pty or on pipes.

serve does not record anything itself: it starts the ordinary recorder, exactly as sshd's
ForceCommand would, on a terminal set up like sshd's (or on three pipes without a pty), and
moves bytes between that and the SSH channel with asyncio. The recorder's asciicast lines
come back on a pipe (``--transcript-fd``), are copied to ``--log`` and tell serve which
session record to read at the end.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import select
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..relay import exited
from .pty import open_pty, set_window_size

READ_SIZE = 64 * 1024
INPUT_HIGH_WATER = 256 * 1024  # pause the SSH channel when this much typed input is not yet written
DRAIN_GRACE = 5.0  # seconds to wait for the terminal/pipes to reach EOF once the recorder exited
KILL_AFTER = 10.0  # seconds between hanging up a recorder and SIGKILL to its process group
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGHUP, signal.SIGINT,
                 signal.SIGTERM, signal.SIGWINCH)


class SpawnFailed(Exception):
    """The recorder could not be started at all."""


@dataclass
class PtyRequest:
    """What the client asked for in its pty-req."""

    term: str
    cols: int
    rows: int
    xpixels: int = 0
    ypixels: int = 0
    modes: Mapping[int, int] = field(default_factory=dict)


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of everything, even to a descriptor someone made non-blocking."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


class TranscriptCopy:
    """Copies the recorder's asciicast lines to the --log destination; remembers the header.

    A failing destination (disk full, reader gone) stops the copy with one warning; the
    session and its spool recording go on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, read_fd: int, log_fd: int,
                 warn: Callable[[str], None]) -> None:
        self.loop = loop
        self.read_fd = read_fd
        self.log_fd: int | None = log_fd
        self.warn = warn
        self.header: dict | None = None
        self._first = bytearray()
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, self._readable)
        self._open = True

    def _readable(self) -> None:
        self._read_available()

    def _read_available(self) -> None:
        while self._open:
            try:
                data = os.read(self.read_fd, READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                self.close()
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        if self.header is None and len(self._first) < 1 << 20:
            self._first += data
            end = self._first.find(b"\n")
            if end >= 0:
                try:
                    self.header = json.loads(self._first[:end])
                except ValueError:
                    self.header = {}
        if self.log_fd is None:
            return
        try:
            write_all(self.log_fd, data)
        except OSError as exc:
            self.warn(f"the transcript (--log) stopped: {exc.strerror or exc}; the spool recording continues")
            self.log_fd = None

    @property
    def record(self) -> dict:
        """The session record the recorder put in the cast header (id, path...), or {}."""
        value = (self.header or {}).get("sshrec")
        return value if isinstance(value, dict) else {}

    def finish(self) -> None:
        """After the recorder exited: everything it wrote is in the pipe; take it and stop."""
        self._read_available()
        self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            self.loop.remove_reader(self.read_fd)
            os.close(self.read_fd)


class SessionProcess:
    """The recorder child and the descriptors between it and serve.

    ``send(data, is_stderr)`` receives the child's output for the channel; ``pause_input(flag)``
    asks the channel to stop (True) or resume (False) delivering typed input.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, argv: Sequence[str], env: Mapping[str, str],
                 pty: PtyRequest | None, send: Callable[[bytes, bool], None],
                 pause_input: Callable[[bool], None], transcript_fd: int) -> None:
        self.loop = loop
        self.argv = list(argv)
        self.env = dict(env)
        self.pty = pty
        self.send = send
        self.pause_input = pause_input
        self.transcript_fd = transcript_fd
        self.pid = 0
        self.returncode: int | None = None
        self.master: int | None = None
        self.input_fd: int | None = None
        self.outputs: dict[int, bool] = {}  # fd -> is stderr, while open
        self.output_paused = False
        self.discard_output = False
        self.input_backlog = bytearray()
        self.input_eof = False
        self.input_paused = False
        self._exited = loop.create_future()
        self._outputs_done = loop.create_future()
        self._pidfd: int | None = None
        self._kill_timer: asyncio.TimerHandle | None = None

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self.pty is not None:
            master, slave = open_pty(self.pty.cols, self.pty.rows, self.pty.modes)
            try:
                # Opened by name as the new session's leader: the slave becomes the recorder's
                # controlling terminal, so a TIOCSWINSZ on the master reaches it as SIGWINCH.
                actions = [(os.POSIX_SPAWN_OPEN, 0, os.ttyname(slave), os.O_RDWR, 0),
                           (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
                self.pid = self._spawn(actions)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            self.master = self.input_fd = master
            self.outputs = {master: False}
        else:
            pipes = [os.pipe() for _ in range(3)]
            (in_r, in_w), (out_r, out_w), (err_r, err_w) = pipes
            try:
                self.pid = self._spawn([(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                                        (os.POSIX_SPAWN_DUP2, err_w, 2)])
            except BaseException:
                for fd in (in_w, out_r, err_r):
                    os.close(fd)
                raise
            finally:
                for fd in (in_r, out_w, err_w):
                    os.close(fd)
            self.input_fd = in_w
            self.outputs = {out_r: False, err_r: True}
        for fd in {*self.outputs, self.input_fd}:
            os.set_blocking(fd, False)
        for fd in self.outputs:
            self.loop.add_reader(fd, self._readable, fd)
        self._watch_exit()

    def _spawn(self, actions: list[tuple]) -> int:
        os.set_inheritable(self.transcript_fd, True)
        try:
            return os.posix_spawn(self.argv[0], self.argv, self.env, file_actions=actions, setsid=True,
                                  setsigdef=RESET_SIGNALS, setsigmask=())
        except OSError as exc:
            raise SpawnFailed(f"cannot start the recorder {self.argv[0]}: {exc.strerror or exc}") from None
        finally:
            os.set_inheritable(self.transcript_fd, False)

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._pidfd = None
        if self._pidfd is not None:
            self.loop.add_reader(self._pidfd, self._reap)
        else:  # no pidfd (old kernel): a thread blocks in waitpid for this one pid
            future = self.loop.run_in_executor(None, os.waitpid, self.pid, 0)
            future.add_done_callback(lambda f: self._exited_with(f.result()[1]))

    def _reap(self) -> None:
        status = exited(self.pid)
        if status is None:
            return
        assert self._pidfd is not None
        self.loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._exited_with(status)

    def _exited_with(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        self._close_input()
        if not self._exited.done():
            self._exited.set_result(self.returncode)

    # -- output: child -> channel ---------------------------------------------------------------

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO on the master: every slave descriptor is closed
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            self._close_output(fd)
            return
        if not self.discard_output:
            self.send(data, self.outputs[fd])

    def _close_output(self, fd: int) -> None:
        if fd not in self.outputs:
            return
        del self.outputs[fd]
        if not self.output_paused:
            self.loop.remove_reader(fd)
        if fd != self.master:
            os.close(fd)
        if not self.outputs and not self._outputs_done.done():
            self._outputs_done.set_result(None)

    def pause_output(self) -> None:
        """The channel's send buffer is full: stop reading, so the child blocks instead of us buffering."""
        if not self.output_paused:
            self.output_paused = True
            for fd in self.outputs:
                self.loop.remove_reader(fd)

    def resume_output(self) -> None:
        if self.output_paused:
            self.output_paused = False
            for fd in self.outputs:
                self.loop.add_reader(fd, self._readable, fd)

    # -- input: channel -> child ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.input_fd is None or self.input_eof:
            return
        if not self.input_backlog:
            try:
                written = os.write(self.input_fd, data)
            except BlockingIOError:
                written = 0
            except OSError:
                self._close_input()
                return
            data = data[written:]
            if not data:
                return
            self.loop.add_writer(self.input_fd, self._writable)
        self.input_backlog += data
        if len(self.input_backlog) > INPUT_HIGH_WATER and not self.input_paused:
            self.input_paused = True
            self.pause_input(True)

    def _writable(self) -> None:
        assert self.input_fd is not None
        try:
            written = os.write(self.input_fd, self.input_backlog)
        except BlockingIOError:
            return
        except OSError:
            self._close_input()
            return
        del self.input_backlog[:written]
        if self.input_backlog:
            return
        self.loop.remove_writer(self.input_fd)
        if self.input_eof:
            self._close_input()
        elif self.input_paused:
            # Resuming delivers what the channel held back, synchronously: more data (a new
            # backlog) and possibly the EOF, which end_input() handles on its own.
            self.input_paused = False
            self.pause_input(False)

    def end_input(self) -> None:
        """The client sent EOF. On pipes the child's stdin closes once everything is written;
        on a terminal there is nothing to close (sshd ignores it there too)."""
        if self.pty is not None or self.input_eof:
            return
        self.input_eof = True
        if not self.input_backlog:
            self._close_input()

    def _close_input(self) -> None:
        fd = self.input_fd
        if fd is None:
            return
        if self.input_backlog:
            self.loop.remove_writer(fd)
            self.input_backlog.clear()
        self.input_fd = None
        if fd != self.master:
            os.close(fd)

    def resize(self, cols: int, rows: int, xpixels: int = 0, ypixels: int = 0) -> None:
        if self.master is not None and self.returncode is None:
            set_window_size(self.master, cols, rows, xpixels, ypixels)

    # -- the end -------------------------------------------------------------------------------

    def hang_up(self) -> None:
        """The client is gone: SIGHUP the recorder (it hangs up the shell and closes the recording);
        SIGKILL its process group if it is still there KILL_AFTER seconds later."""
        self.discard_output = True
        self._close_input()
        if self.returncode is not None or self._kill_timer is not None:
            return
        self._signal(signal.SIGHUP)
        self._kill_timer = self.loop.call_later(KILL_AFTER, self._signal, signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                if signum == signal.SIGKILL:
                    os.killpg(self.pid, signum)
                else:
                    os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        """The recorder's returncode (negative: killed by that signal), once its output is drained."""
        returncode = await asyncio.shield(self._exited)
        if self.outputs:
            try:
                await asyncio.wait_for(asyncio.shield(self._outputs_done), DRAIN_GRACE)
            except TimeoutError:
                for fd in list(self.outputs):
                    self._close_output(fd)
        if self.master is not None:
            os.close(self.master)
            self.master = None
        return returncode

    def close(self) -> None:
        """Last resort on the way out: no process left behind, no descriptor left open."""
        if self.pid and self.returncode is None:
            self._signal(signal.SIGKILL)
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        for fd in list(self.outputs):
            self._close_output(fd)
        self._close_input()
        if self.master is not None:
            os.close(self.master)
            self.master = None
        if self._pidfd is not None:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
