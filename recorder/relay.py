"""The relay: runs the session's command and moves bytes between it and the client.

One poll loop, no threads. Each direction is a Pump (source fd -> destination fd with a
small backlog); the recorder only sees "output happened", "input happened", "resize
happened". PTY mode when the client has a terminal, byte-exact pipes when it does not.
The child gets its own session so that, when the client is gone, everything it started can
be hung up and, if it will not go, killed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import termios
import time
from collections.abc import Callable, Mapping, Sequence

from .burst import burst

READ_SIZE = 64 * 1024
PARENT_CHECK_INTERVAL = 0.5
KILL_GRACE = 2.0  # seconds between SIGHUP and SIGKILL
CLIENT_GONE_GRACE = 1.0  # pipes: seconds a command may take to end by itself once the client left
DRAIN_GRACE = 1.0  # seconds to wait for output still in flight after the child exited
DEFAULT_SIZE = (80, 24)
HANGUP_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Recorder(Protocol):
        """What the relay reports to (the cast file sink)."""

        stop_reason: str | None  # set when the session must end (recording failed under deny)

        def output(self, data: bytes) -> None: ...
        def input(self, data: bytes) -> None: ...
        def count_input(self, size: int) -> None: ...
        def resize(self, cols: int, rows: int) -> None: ...
        def flush_due_in(self) -> float | None: ...
        def flush(self) -> None: ...
        # A sink with a socket of its own (the collector's) has it polled with the session's fds:
        def io(self) -> tuple[int, int] | None: ...  # (fd, poll mask) to watch, or None
        def on_io(self, events: int) -> None: ...
        def congested(self) -> bool: ...  # True: stop reading the session until it has room

    class Watch(Protocol):
        """Something that looks at the session's processes now and then (recorder/watch.py)."""

        def due_in(self, now: float) -> float: ...
        def scan(self, now: float) -> None: ...

    WatchFactory = Callable[[int], Watch]

    from .typed import TypedInput


class SpawnError(Exception):
    """The command could not be started; ``status`` is the shell-style exit status (126/127)."""

    def __init__(self, argv: Sequence[str], exc: OSError) -> None:
        self.status = 127 if isinstance(exc, FileNotFoundError) else 126
        super().__init__(f"cannot run {argv[0]!r}: {exc.strerror or exc}")


class Outcome:
    """How the session ended. (Plain classes here: dataclasses costs ms on every login.)"""

    __slots__ = ("exit_status", "exit_signal", "client_gone", "notes", "ended_by_client")

    def __init__(self, exit_status: int, exit_signal: str | None, client_gone: str | None = None,
                 notes: list[str] | None = None, ended_by_client: bool = False) -> None:
        self.exit_status = exit_status
        self.exit_signal = exit_signal
        self.client_gone = client_gone  # why we decided the client had left, if it did
        self.notes = notes or []
        # The client closed its input, then left, while the command still ran (an nc hop
        # waiting on its connection): an orderly end of the session, not a failed command.
        self.ended_by_client = ended_by_client


class Pump:
    """Bytes from ``src`` to ``dst``; reads pause while the backlog is not yet written."""

    __slots__ = ("src", "dst", "on_data", "to_client", "close_dst_at_eof", "reading", "dst_open",
                 "dst_closed", "backlog")

    def __init__(self, src: int, dst: int, on_data: Callable[[bytes], None], to_client: bool,
                 close_dst_at_eof: bool = False) -> None:
        self.src = src
        self.dst = dst
        self.on_data = on_data
        self.to_client = to_client
        self.close_dst_at_eof = close_dst_at_eof
        self.reading = True
        self.dst_open = True  # False once writes stopped (closed, broken, or the client is gone)
        self.dst_closed = False
        self.backlog = bytearray()


def window_size(fd: int) -> tuple[int, int]:
    """(cols, rows) of the terminal on ``fd``; (0, 0) when unknown."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return 0, 0
    return cols, rows


def line_end(fd: int) -> str:
    """What ends a line written to ``fd``: the terminal adds the CR itself unless it is raw."""
    try:
        oflag = termios.tcgetattr(fd)[1]
    except (termios.error, OSError):
        return "\n"  # a pipe or a file: LF, as every tool writes
    return "\n" if oflag & termios.OPOST and oflag & termios.ONLCR else "\r\n"


def set_window_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def exit_status_of(returncode: int) -> tuple[int, str | None]:
    """Shell convention: a death by signal N is status 128+N."""
    if returncode >= 0:
        return returncode, None
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"SIG{number}"
    return 128 + number, name


def exited(pid: int) -> int | None:
    """The wait status of ``pid`` if it has exited (reaping it), else None; never blocks."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # already reaped elsewhere
        return 0
    return status if done else None


def session_process_groups(session_id: int) -> set[int]:
    """Process groups of every process still in ``session_id`` (linux /proc)."""
    groups: set[int] = set()
    try:
        names = os.listdir("/proc")
    except OSError:
        return groups
    for name in names:
        if not name.isdigit():
            continue
        try:  # os.open/os.read: three syscalls a process, where open() takes seven
            fd = os.open(f"/proc/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            stat = os.read(fd, 1024)
        except OSError:
            continue
        finally:
            os.close(fd)
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == session_id:
            groups.add(int(fields[2]))
    return groups


def signal_session(session_id: int, signum: int) -> None:
    for group in session_process_groups(session_id) | {session_id}:
        for sig in (signum, signal.SIGCONT) if signum == signal.SIGHUP else (signum,):
            try:
                os.killpg(group, sig)
            except OSError:
                pass


class SignalPipe:
    """Turns asynchronous signals into bytes on a pipe that the poll loop watches."""

    SIGNALS = (signal.SIGCHLD, signal.SIGWINCH, *HANGUP_SIGNALS)

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._old_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._old = {sig: signal.signal(sig, _ignore_in_python) for sig in self.SIGNALS}
        # A hang-up that arrived while the session was being set up is delivered now, to the pipe.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANGUP_SIGNALS)

    def pending(self) -> set[int]:
        received: set[int] = set()
        while True:
            try:
                data = os.read(self.read_fd, 256)
            except BlockingIOError:
                return received
            if not data:
                return received
            received.update(data)

    def close(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self.read_fd)
        os.close(self._write_fd)


def hold_hangups() -> None:
    """Block hang-up signals until a SignalPipe takes them: a client that drops during set-up
    must still produce a closed record, not a recorder killed before it wrote one."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HANGUP_SIGNALS)


def release_hangups() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANGUP_SIGNALS)


def _ignore_in_python(signum: int, frame: object) -> None:
    """The wakeup pipe carries the signal; the Python-level handler has nothing to do."""


class Relay:
    """Runs one child and relays until it has exited and its output is drained."""

    def __init__(self, pid: int, pumps: list[Pump], recorder: Recorder,
                 signals: SignalPipe, master: int | None = None, outer_tty: int | None = None,
                 on_resize: Callable[[int, int], None] | None = None, watch: Watch | None = None) -> None:
        self.pid = pid
        self.watch = watch
        self.sink_fd = -1
        self.pumps = pumps
        self.recorder = recorder
        self.signals = signals
        self.master = master
        self.outer_tty = outer_tty
        self.on_resize = on_resize
        self.returncode: int | None = None
        self.client_gone: str | None = None
        self.kill_at: float | None = None
        self.hup_at: float | None = None
        self.client_eof = False  # pipes: the client closed its input (EOF on stdin)
        self.client_left = False  # pipes: the command was hung up because the client left on its own
        self.exited_at: float | None = None
        self.parent = os.getppid()
        self.next_parent_check = time.monotonic() + PARENT_CHECK_INTERVAL
        self.poller = select.poll()
        self.registered: dict[int, int] = {}
        self.poller.register(signals.read_fd, select.POLLIN)

    # -- life cycle -------------------------------------------------------------------------

    def run(self) -> Outcome:
        while not self._finished():
            self._watch()
            ready = self.poller.poll(self._timeout_ms())
            if not ready and self.returncode is None:
                self._reap()  # a safety net only: SIGCHLD normally arrives on the signal pipe
            # Signals first: a resize that happened before a keystroke is applied before it.
            if any(fd == self.signals.read_fd for fd, _ in ready):
                self._on_signals(self.signals.pending())
            for fd, events in ready:
                if fd != self.signals.read_fd:
                    self._on_ready(fd, events)
            self._periodic()
        self.recorder.flush()
        status, sig = exit_status_of(self.returncode if self.returncode is not None else -9)
        orderly = self.client_left and self.client_eof and sig is not None
        return Outcome(status, sig, self.client_gone, ended_by_client=orderly)

    def hang_up(self, reason: str, graceful: bool = False) -> None:
        """The client is gone or we were told to stop: hang up the child, kill it if it lingers.

        ``graceful`` (the client left on its own, without a terminal): the command's stdin is
        closed first and it gets CLIENT_GONE_GRACE to end by itself, as an ``nc`` hop does
        when the connection it carries is over; only then comes SIGHUP.
        """
        if self.client_gone is None:
            self.client_gone = reason
        for pump in self.pumps:
            if pump.to_client:
                pump.backlog.clear()
                pump.dst_open = False
            elif pump.src == 0:
                pump.reading = False
                if graceful and pump.close_dst_at_eof:
                    pump.backlog.clear()
                    self._close_dst(pump)
        if self.returncode is not None or self.kill_at is not None:
            return
        if graceful and self.master is None:
            if self.hup_at is None:
                self.hup_at = time.monotonic() + CLIENT_GONE_GRACE
            return
        self._send_hangup()

    def _send_hangup(self) -> None:
        self.hup_at = None
        signal_session(self.pid, signal.SIGHUP)
        self.kill_at = time.monotonic() + KILL_GRACE

    def _finished(self) -> bool:
        """Over when the child has exited and its output is all delivered. Through pipes, as
        sshd does, that waits for every process still holding stdout or stderr to close it;
        on a terminal the hang-up at the end stops them, and a short grace bounds the wait."""
        if self.returncode is None:
            return False
        outputs = [p for p in self.pumps if p.to_client]
        busy = any(p.reading or p.backlog for p in outputs if p.dst_open)
        if not busy:
            return True
        if self.master is None:
            return False
        assert self.exited_at is not None
        return time.monotonic() - self.exited_at > DRAIN_GRACE + KILL_GRACE

    def _reap(self) -> None:
        """Collect every child that ended: the command, and orphans adopted as subreaper."""
        status = None
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == self.pid:
                status = wait_status
        if status is None or self.returncode is not None:
            return
        self.returncode = os.waitstatus_to_exitcode(status)
        self.exited_at = time.monotonic()
        for pump in self.pumps:
            if not pump.to_client:
                pump.reading = False
                if pump.close_dst_at_eof:  # sshd closes the session's stdin when its command exits
                    pump.backlog.clear()
                    self._close_dst(pump)
        if self.master is None:
            return  # pipes: background jobs live on, as under sshd; their output is still relayed
        # A terminal hangs up when its session leader exits: what it left behind gets SIGHUP.
        self._drain_master()
        signal_session(self.pid, signal.SIGHUP)
        self._drain_master()
        for pump in self.pumps:
            if pump.src == self.master:
                pump.reading = False

    def _drain_master(self) -> None:
        """After the child exits, take what is still in the terminal's buffer, without waiting."""
        for pump in self.pumps:
            if pump.src != self.master or not pump.reading:
                continue
            while True:
                try:
                    data = os.read(pump.src, READ_SIZE)
                except OSError:
                    return
                if not data:
                    return
                pump.on_data(data)
                if pump.dst_open:
                    pump.backlog += data
                self._write(pump)

    # -- polling ------------------------------------------------------------------------------

    def _watch(self) -> None:
        wanted: dict[int, int] = {}
        sink = self.recorder.io()
        if sink is not None:
            self.sink_fd = sink[0]
            wanted[sink[0]] = sink[1]
        held = self.recorder.congested()  # the recording cannot keep up: the session waits
        for pump in self.pumps:
            if pump.reading and not pump.backlog and not held:
                wanted[pump.src] = wanted.get(pump.src, 0) | select.POLLIN
            if pump.backlog and pump.dst_open:
                wanted[pump.dst] = wanted.get(pump.dst, 0) | select.POLLOUT
        for fd in list(self.registered):
            if fd not in wanted:
                self.poller.unregister(fd)
                del self.registered[fd]
        for fd, mask in wanted.items():
            if self.registered.get(fd) != mask:
                self.poller.register(fd, mask)
                self.registered[fd] = mask

    def _timeout_ms(self) -> int:
        timeout = PARENT_CHECK_INTERVAL
        due = self.recorder.flush_due_in()
        if due is not None:
            timeout = min(timeout, due)
        for moment in (self.kill_at, self.hup_at):
            if moment is not None:
                timeout = min(timeout, max(0.0, moment - time.monotonic()))
        if self.exited_at is not None and self.master is not None:
            timeout = min(timeout, 0.1)
        if self.watch is not None:
            timeout = min(timeout, self.watch.due_in(time.monotonic()))
        return int(timeout * 1000) + 1

    def _on_ready(self, fd: int, events: int) -> None:
        if fd == self.sink_fd:
            self.recorder.on_io(events)
            return
        for pump in self.pumps:
            if pump.src == fd and pump.reading and not pump.backlog:
                self._read(pump)
            if pump.dst == fd and pump.backlog and events & (select.POLLOUT | select.POLLERR | select.POLLHUP):
                self._write(pump)

    def _read(self, pump: Pump) -> None:
        try:
            data = os.read(pump.src, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the terminal's other side is closed
            if exc.errno not in (errno.EIO, errno.EBADF, errno.ECONNRESET):
                raise
            data = b""
        if not data:
            self._on_eof(pump)
            return
        if pump.to_client:
            self._relay_output(pump, data)
        else:
            # Keys are looked at before the program gets them: whether a key is a secret
            # depends on the terminal's echo state before the program reads it (recorder/typed.py).
            pump.on_data(data)
            self._send(pump, data)

    def _relay_output(self, pump: Pump, data: bytes) -> None:
        """The client first, the recording after: output that keeps coming is relayed in a
        burst (recorder/burst.py) and recorded as one event with ``data``."""
        if self._send(pump, data):
            more, written, failed = burst(pump.src, pump.dst, self._burst_waits(pump))
            data += more
            if written < len(more):
                pump.backlog += memoryview(more)[written:]
            if failed:
                pump.on_data(data)
                self._write_failed(pump, OSError(failed, os.strerror(failed)))
                return
        pump.on_data(data)

    def _burst_waits(self, pump: Pump) -> tuple[int, ...]:
        """What ends a burst at once: a signal, or input on any other source."""
        return (self.signals.read_fd, *(p.src for p in self.pumps if p is not pump and p.reading))

    def _send(self, pump: Pump, data: bytes) -> bool:
        """Write what was just read (reads only happen with an empty backlog); True when all of
        it went, else the rest is the backlog or the destination failed."""
        if not pump.dst_open:
            return False
        try:
            written = os.write(pump.dst, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._write_failed(pump, exc)
            return False
        if written < len(data):
            pump.backlog += memoryview(data)[written:]
            return False
        return True

    def _write(self, pump: Pump) -> None:
        try:
            while pump.backlog:
                written = os.write(pump.dst, pump.backlog)
                del pump.backlog[:written]
        except BlockingIOError:
            return
        except OSError as exc:
            self._write_failed(pump, exc)
            return
        if not pump.reading and pump.close_dst_at_eof:
            self._close_dst(pump)

    def _write_failed(self, pump: Pump, exc: OSError) -> None:
        if exc.errno not in (errno.EPIPE, errno.EIO, errno.ECONNRESET, errno.EBADF):
            raise exc
        pump.backlog.clear()
        pump.dst_open = False
        if pump.to_client:
            self.hang_up(f"writing to the client failed ({errno.errorcode[exc.errno]})", graceful=True)

    def _on_eof(self, pump: Pump) -> None:
        pump.reading = False
        if pump.src == 0 and self.master is None and self.client_gone is None:
            self.client_eof = True
        if pump.src == 0 and self.master is not None:
            self.hang_up("the client's terminal closed")
        elif pump.close_dst_at_eof and not pump.backlog:
            self._close_dst(pump)

    def _close_dst(self, pump: Pump) -> None:
        if not pump.dst_closed:
            pump.dst_open = False
            pump.dst_closed = True
            os.close(pump.dst)

    def _on_signals(self, received: set[int]) -> None:
        if signal.SIGCHLD in received:
            self._reap()
        if signal.SIGWINCH in received and self.outer_tty is not None and self.on_resize:
            self.on_resize(*window_size(self.outer_tty))
        hangups = [s for s in received if s in HANGUP_SIGNALS]
        if hangups:
            self.hang_up(f"received {signal.Signals(hangups[0]).name}")

    def _periodic(self) -> None:
        now = time.monotonic()
        if self.watch is not None and self.watch.due_in(now) <= 0:
            self.watch.scan(now)
        due = self.recorder.flush_due_in()
        if due is not None and due <= 0:
            self.recorder.flush()
        if self.hup_at is not None and now >= self.hup_at and self.returncode is None:
            self.client_left = True
            self._send_hangup()
        if self.kill_at is not None and now >= self.kill_at and self.returncode is None:
            signal_session(self.pid, signal.SIGKILL)
            self.kill_at = now + KILL_GRACE
        if self.recorder.stop_reason and self.client_gone is None:
            self.hang_up(self.recorder.stop_reason)
        if now >= self.next_parent_check:
            self.next_parent_check = now + PARENT_CHECK_INTERVAL
            if os.getppid() != self.parent and self.client_gone is None:
                self.hang_up("sshd (the parent process) is gone", graceful=True)


# -- the two modes ------------------------------------------------------------------------------


class BlockingRestored:
    """Non-blocking I/O on the given fds for the relay's lifetime, their flags restored after."""

    def __init__(self, fds: Sequence[int]) -> None:
        self._saved: dict[int, int] = {}
        for fd in fds:
            try:
                self._saved[fd] = fcntl.fcntl(fd, fcntl.F_GETFL)
                fcntl.fcntl(fd, fcntl.F_SETFL, self._saved[fd] | os.O_NONBLOCK)
            except OSError:
                continue

    def restore(self) -> None:
        for fd, flags in self._saved.items():
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)
            except OSError:
                continue


# Python ignores these; a child must start with the defaults (``yes | head`` relies on SIGPIPE).
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, *SignalPipe.SIGNALS)


def _spawn(argv: Sequence[str], executable: str | None, env: Mapping[str, str],
           file_actions: list[tuple[int, ...]]) -> int:
    """posix_spawn in a new session: vfork-fast, and exec errors come back as OSError."""
    try:
        return os.posix_spawnp(executable or argv[0], list(argv), dict(env), setsid=True,
                               file_actions=file_actions, setsigdef=RESET_SIGNALS, setsigmask=())
    except OSError as exc:
        raise SpawnError(argv, exc) from None


def inner_size(outer: int) -> tuple[int, int, bool]:
    """The inner terminal's size; a 0x0 outer terminal (``ssh -tt`` with no local tty) gets 80x24."""
    cols, rows = window_size(outer)
    if cols and rows:
        return cols, rows, False
    return (*DEFAULT_SIZE, True)


def run_pty(argv: Sequence[str], executable: str | None, env: Mapping[str, str], recorder: Recorder,
            record_input: bool, size: tuple[int, int], watch: WatchFactory | None = None,
            typing: TypedInput | None = None) -> Outcome:
    """Relay through a new pseudo-terminal of ``size``; the outer one (fd 0) is raw meanwhile.
    ``typing`` (recorder/typed.py) stands between the terminal and ``recorder`` when given."""
    outer = 0
    master, slave = os.openpty()
    saved_attrs = termios.tcgetattr(outer)
    termios.tcsetattr(slave, termios.TCSANOW, saved_attrs)
    set_window_size(slave, *size)
    if "SSH_TTY" in env:  # sshd names the client's terminal; the program runs on the inner one
        env = {**env, "SSH_TTY": os.ttyname(slave)}
    signals = SignalPipe()
    flags = BlockingRestored([0, 1, master])
    try:
        # Opening the terminal by name as the new session's leader makes it the controlling tty.
        pid = _spawn(argv, executable, env, [
            (os.POSIX_SPAWN_OPEN, 0, os.ttyname(slave), os.O_RDWR, 0),
            (os.POSIX_SPAWN_DUP2, 0, 1),
            (os.POSIX_SPAWN_DUP2, 0, 2),
        ])
    except BaseException:
        flags.restore()
        signals.close()
        os.close(master)
        os.close(slave)
        raise
    os.close(slave)

    def resized(new_cols: int, new_rows: int) -> None:
        if not (new_cols and new_rows):
            return
        set_window_size(master, new_cols, new_rows)
        recorder.resize(new_cols, new_rows)

    _make_raw(outer)
    if typing is not None:
        typing.attach(master, pid)
        pumps = [Pump(0, master, typing.input, to_client=False), Pump(master, 1, typing.output, to_client=True)]
    else:
        pumps = [
            Pump(0, master, recorder.input if record_input else _counter(recorder), to_client=False),
            Pump(master, 1, recorder.output, to_client=True),
        ]
    try:
        outcome = Relay(pid, pumps, recorder, signals, master=master, outer_tty=outer,
                        on_resize=resized, watch=watch(pid) if watch else None).run()
    finally:
        try:
            termios.tcsetattr(outer, termios.TCSADRAIN, saved_attrs)
        except (termios.error, OSError):
            pass  # the client's terminal is gone (hang-up): nothing left to restore
        flags.restore()
        signals.close()
        os.close(master)
    return outcome


def run_pipes(argv: Sequence[str], executable: str | None, env: Mapping[str, str], recorder: Recorder,
              record_input: bool, watch: WatchFactory | None = None) -> Outcome:
    """Relay stdin, stdout and stderr on separate pipes, byte for byte."""
    in_r, child_in = os.pipe()
    child_out, out_w = os.pipe()
    child_err, err_w = os.pipe()
    ends = [in_r, out_w, err_w]
    signals = SignalPipe()
    try:
        pid = _spawn(argv, executable, env, [
            (os.POSIX_SPAWN_DUP2, in_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ])
    except BaseException:
        signals.close()
        for fd in (*ends, child_in, child_out, child_err):
            os.close(fd)
        raise
    for fd in ends:
        os.close(fd)
    flags = BlockingRestored([0, 1, 2, child_in, child_out, child_err])
    pumps = [
        Pump(0, child_in, recorder.input if record_input else _counter(recorder), to_client=False,
             close_dst_at_eof=True),
        Pump(child_out, 1, recorder.output, to_client=True),
        Pump(child_err, 2, recorder.output, to_client=True),
    ]
    try:
        return Relay(pid, pumps, recorder, signals, watch=watch(pid) if watch else None).run()
    finally:
        flags.restore()
        signals.close()
        os.close(child_out)
        os.close(child_err)
        if not pumps[0].dst_closed:
            os.close(child_in)


def _counter(recorder: Recorder) -> Callable[[bytes], None]:
    def count(data: bytes) -> None:
        recorder.count_input(len(data))

    return count


def _make_raw(fd: int) -> None:
    """cfmakeraw(3) on ``fd``: every byte goes through, the inner terminal does the line discipline."""
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
                  | termios.IGNCR | termios.ICRNL | termios.IXON)
    attrs[1] &= ~termios.OPOST
    attrs[2] &= ~(termios.CSIZE | termios.PARENB)
    attrs[2] |= termios.CS8
    attrs[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)  # not TCSAFLUSH: keys typed ahead must survive
