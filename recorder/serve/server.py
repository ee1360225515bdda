"""``sshrec serve``: a one-shot SSH server that lets one authorised person in, records the session, exits.

Lifecycle (issue 5, after otssh): load the authorized keys; copy the environment; generate
an ed25519 host key and print its public line (first line of stdout); open the listening
socket; run the announce command; accept connections, authenticate each by public key
against the loaded keys only (a failure closes that connection, others keep coming); the
first authenticated connection closes the port for good; its session runs the recorder on
a pty or pipes; serve exits with the shell's exit status.

Everything that can be checked before listening is checked before listening; each problem
is a :class:`ServeError` whose message is the one line printed on stderr.

This module is the controller: it owns the rules (one session, ever; the timeout; who may
still authenticate). asyncssh callbacks live in session.py, the recorder process in
child.py. asyncssh is imported by :func:`run` (through loader.py), never at module
import, so ``sshrec serve --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncssh

    from .authorized_keys import AuthorizedKeys
    from .child import SessionProcess, TranscriptCopy
    from .session import ServeConnection, ServeSession

DEFAULT_PORT = 2022
DEFAULT_TIMEOUT = 600.0
LOGIN_GRACE = 60.0  # seconds an unauthenticated connection may take (asyncssh login_timeout)
CLOSE_GRACE = 5.0  # seconds to wait for the client to close after the exit status was sent
EXIT_ERROR = 1  # serve could not do its job (bad keys, port in use, ...)
EXIT_CLIENT_GONE = 255  # the remote side went away mid-session (ssh uses 255 for that too)


class ServeError(Exception):
    """serve cannot go on; the message is the single line printed on stderr."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServeOptions:
    authorized_keys: str
    port: int = DEFAULT_PORT
    address: str = "0.0.0.0"
    log: str | None = None  # None: standard output
    announce: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    home: str | None = None
    format: str | None = None
    index: bool = True
    quiet: bool = False
    debug: bool = False


@dataclass
class Outcome:
    """How serve ends: its exit status and, for the error paths, the line for stderr."""

    status: int
    error: str | None = None


def say(message: str) -> None:
    """One line on stderr, prefixed; stderr is serve's log (stdout carries the host key and transcript)."""
    try:
        sys.stderr.write(f"sshrec serve: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# -- before listening ------------------------------------------------------------------------------


def open_log(path: str | None) -> int:
    """The transcript's descriptor: --log FILE (created 0600, truncated) or standard output."""
    if path is None:
        try:
            mode = os.fstat(1).st_mode
            import fcntl

            flags = fcntl.fcntl(1, fcntl.F_GETFL)
        except OSError:
            raise ServeError("cannot write the transcript: standard output is closed (use --log FILE)"
                             ) from None
        if flags & os.O_ACCMODE == os.O_RDONLY or stat.S_ISDIR(mode):
            raise ServeError("cannot write the transcript: standard output is not writable (use --log FILE)")
        return 1
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ServeError(f"--log {path} is not a writable destination: {reason}") from None


def resolve_announce(command: str | None) -> list[str] | None:
    """The announce argv (CMD is split like a shell would, then gets the key as one more argument)."""
    if command is None:
        return None
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ServeError(f"announce command {command!r} cannot be parsed: {exc}") from None
    if not argv:
        raise ServeError("announce command is empty")
    program = argv[0]
    if "/" in program:
        if not os.path.exists(program):
            raise ServeError(f"announce command not found: {program}")
        if os.path.isdir(program) or not os.access(program, os.X_OK):
            raise ServeError(f"announce command not executable: {program}")
        return argv
    found = shutil.which(program)
    if found is None:
        raise ServeError(f"announce command not found or not executable: {program} (not on PATH)")
    return [found, *argv[1:]]


def check_spool(home: str | None) -> str:
    """Where sessions are recorded; the recorder refuses a session it cannot record, so check now."""
    from sshrec.schema.settings import ConfigError, load_settings

    try:
        settings = load_settings(home=home)
    except ConfigError as exc:
        raise ServeError(f"configuration: {exc}") from None
    try:
        os.makedirs(settings.home, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ServeError(f"cannot record sessions in {settings.home}: {exc.strerror} "
                         "(set --home or SSHREC_HOME)") from None
    if not os.access(settings.home, os.W_OK | os.X_OK):
        raise ServeError(f"cannot record sessions in {settings.home}: not writable (set --home or SSHREC_HOME)")
    return settings.home


def bind(address: str, port: int) -> socket.socket:
    """The listening socket, opened before the announce so a client told the port can connect at once."""
    try:
        infos = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {address} port {port}: {exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        privileged = exc.errno == errno.EACCES and 0 < port < 1024
        hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" if privileged else ""
        raise ServeError(f"cannot bind {address} port {port}: {exc.strerror}{hint}") from None
    sock.setblocking(False)
    return sock


def announce(argv: list[str], host_key_line: str, address: str, port: int, env: dict[str, str]) -> None:
    """Run CMD KEY with its output on our stderr; a failure to start or a non-zero exit ends serve."""
    child_env = dict(env, SSHREC_SERVE_ADDRESS=address, SSHREC_SERVE_PORT=str(port))
    try:
        result = subprocess.run([*argv, host_key_line], stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                                env=child_env, check=False)
    except OSError as exc:
        raise ServeError(f"announce command not found or not executable: {argv[0]} ({exc.strerror})") from None
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name
        raise ServeError(f"announce command {shlex.join(argv)} was killed by {name}")
    if result.returncode != 0:
        raise ServeError(f"announce command {shlex.join(argv)} exited with status {result.returncode}")


# -- the one session --------------------------------------------------------------------------------


@dataclass
class Prepared:
    """Everything settled before the event loop starts."""

    opts: ServeOptions
    keys: AuthorizedKeys
    env: dict[str, str]
    log_fd: int
    host_key: asyncssh.SSHKey
    sock: socket.socket
    started: float = field(default_factory=time.monotonic)


class Controller:
    """The rules: any number of connection attempts, one authenticated connection, one session, ever."""

    def __init__(self, prep: Prepared, loop: asyncio.AbstractEventLoop) -> None:
        self.prep = prep
        self.opts = prep.opts
        self.keys = prep.keys
        self.loop = loop
        self.done: asyncio.Future[Outcome] = loop.create_future()
        self.connections: set[ServeConnection] = set()
        self.winner: ServeConnection | None = None
        self.session: ServeSession | None = None
        self.process: SessionProcess | None = None
        self.transcript: TranscriptCopy | None = None
        self.auth_file: str | None = None
        self.acceptor: asyncssh.SSHAcceptor | None = None
        self.stop_signal: int | None = None

    def log(self, message: str) -> None:
        if not self.opts.quiet:
            say(message)

    def finish(self, outcome: Outcome) -> None:
        if not self.done.done():
            self.done.set_result(outcome)

    # -- connections (called from ServeConnection) --------------------------------------------------

    def connection_opened(self, conn: ServeConnection) -> None:
        if self.winner is not None:  # accepted by the kernel before the port closed
            assert conn.conn is not None
            conn.conn.close()
            return
        self.connections.add(conn)
        self.log(f"connection from {conn.where}")

    def connection_closed(self, conn: ServeConnection, exc: Exception | None) -> None:
        self.connections.discard(conn)
        if conn is not self.winner or self.done.done():
            return
        if self.session is None or self.session.process is None:
            why = f" ({exc})" if exc else ""
            self.finish(Outcome(EXIT_CLIENT_GONE, "the remote side terminated the connection unexpectedly"
                                                  f"{why}, before a session began"))

    def may_authenticate(self, conn: ServeConnection) -> bool:
        return self.winner is None or self.winner is conn

    def authenticated(self, conn: ServeConnection) -> None:
        """The first connection to authenticate wins: the port closes and every other attempt ends."""
        if self.winner is not None and self.winner is not conn:
            assert conn.conn is not None
            conn.conn.close()
            return
        self.winner = conn
        if self.acceptor is not None:
            self.acceptor.close()
        for other in list(self.connections):
            if other is not conn and other.conn is not None:
                other.conn.close()
        assert conn.entry is not None
        self.log(f"accepted {conn.entry.describe()} (line {conn.entry.line}) for {conn.username!r} "
                 f"from {conn.where}; port closed")

    def open_session(self, conn: ServeConnection) -> ServeSession | None:
        """A session channel: only on the authenticated connection, and only until one has started."""
        from .session import ServeSession

        if conn is not self.winner or (self.session is not None and self.session.process is not None):
            return None
        self.session = ServeSession(self, conn)
        return self.session

    # -- the session ------------------------------------------------------------------------------

    def start_session(self, session: ServeSession) -> None:
        """The shell or exec request was accepted: start the recorder for it (once)."""
        from .child import SpawnFailed

        if self.done.done() or session is not self.session:
            return
        try:
            self._start_recorder(session)
        except (OSError, SpawnFailed) as exc:
            message = f"cannot start the session: {exc}"
            session.send(f"sshrec serve: {message}\r\n".encode(), True)
            session.report_exit(1, None)
            self.finish(Outcome(EXIT_ERROR, message))

    def _start_recorder(self, session: ServeSession) -> None:
        from .authorized_keys import auth_info_line
        from .child import SessionProcess, TranscriptCopy
        from .launch import describe_command, recorder_argv, session_env

        entry = session.entry
        fd, self.auth_file = tempfile.mkstemp(prefix="sshrec-serve-auth-")
        with os.fdopen(fd, "w") as handle:
            handle.write(auth_info_line(entry))
        env = session_env(self.prep.env, session.connection.peer, self.auth_file,
                          term=session.pty.term if session.pty else None, command=session.command,
                          client_env=session.client_env(), key_env=entry.environment)
        read_fd, write_fd = os.pipe()
        argv = recorder_argv(home=self.opts.home, forced_command=entry.command, env=env,
                             transcript_fd=write_fd, index=self.opts.index, format=self.opts.format)
        self.transcript = TranscriptCopy(self.loop, read_fd, self.prep.log_fd, self.log)
        process = SessionProcess(self.loop, argv, env, session.pty, session.send, session.pause_input, write_fd)
        try:
            process.start()
        finally:
            os.close(write_fd)
        session.process = self.process = process
        size = f" ({session.pty.term} {session.pty.cols}x{session.pty.rows})" if session.pty else ""
        self.log(f"session started: {describe_command(session.command, entry.command, session.pty is not None)}"
                 f"{size}")
        self.loop.create_task(self._run_session(session, process))

    async def _run_session(self, session: ServeSession, process: SessionProcess) -> None:
        try:
            await self._finish_session(session, process)
        except Exception as exc:  # never leave serve waiting forever on a bug
            self.finish(Outcome(EXIT_ERROR, f"internal error while ending the session: {exc!r}"))
            raise

    async def _finish_session(self, session: ServeSession, process: SessionProcess) -> None:
        returncode = await process.wait()
        assert self.transcript is not None
        self.transcript.finish()
        self._remove_auth_file()
        record = read_final_record(self.transcript.record)
        status, signal_name = exit_of(returncode, record)
        where = f"session {record.get('id')} recorded in {record.get('path')}" if record else \
            "the recorder wrote no session record"
        if session.client_gone is not None and self.stop_signal is None:
            self.finish(Outcome(EXIT_CLIENT_GONE, f"the remote side terminated the connection unexpectedly "
                                                  f"({session.client_gone}); {where}"))
            return
        session.report_exit(status, signal_name)
        how = f"killed by SIG{signal_name}" if signal_name else f"exit status {status}"
        self.log(f"session ended with {how}; {where}")
        if session.chan is not None:
            try:
                await asyncio.wait_for(session.chan.wait_closed(), CLOSE_GRACE)
            except TimeoutError:
                pass
        if self.stop_signal is not None:
            name = signal.Signals(self.stop_signal).name
            self.finish(Outcome(128 + self.stop_signal, f"stopped by {name}; {where}"))
        else:
            self.finish(Outcome(status))

    def channel_closed(self, session: ServeSession) -> None:
        if session.process is not None and session.client_gone is not None:
            session.process.hang_up()

    def _remove_auth_file(self) -> None:
        if self.auth_file is not None:
            try:
                os.unlink(self.auth_file)
            except OSError:
                pass
            self.auth_file = None

    # -- the end ------------------------------------------------------------------------------------

    def timed_out(self) -> None:
        if self.process is None:
            self.finish(Outcome(0, f"no authenticated session began within {self.opts.timeout:g} seconds; "
                                   "exiting"))

    def stop(self, signum: int) -> None:
        """SIGTERM/SIGINT/SIGHUP to serve: before a session, exit; during one, hang it up and let the
        recorder close the recording first."""
        self.stop_signal = signum
        if self.process is not None and self.process.returncode is None:
            self.process.hang_up()
            return
        if self.process is None:
            name = signal.Signals(signum).name
            self.finish(Outcome(128 + signum, f"stopped by {name} before a session began"))

    async def close(self) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
        conns = [c.conn for c in self.connections | ({self.winner} if self.winner else set()) if c.conn]
        for conn in conns:
            conn.close()
        for conn in conns:
            try:
                await asyncio.wait_for(conn.wait_closed(), CLOSE_GRACE)
            except (TimeoutError, OSError):
                pass
        if self.process is not None:
            self.process.close()
        if self.transcript is not None:
            self.transcript.close()
        self._remove_auth_file()


def read_final_record(header_record: dict) -> dict:
    """The session record as the recorder left it at the end (the header only has the start)."""
    path = header_record.get("path")
    if not isinstance(path, str):
        return {}
    try:
        with open(os.path.splitext(path)[0] + ".json", encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return dict(header_record)
    return record if isinstance(record, dict) else dict(header_record)


def exit_of(returncode: int, record: dict) -> tuple[int, str | None]:
    """(exit status, signal name without SIG or None) for the client and for serve.

    The recorder reports a shell killed by signal N as status 128+N and names the signal in
    the record; the client then gets exit-signal, as sshd would send. A recorder that was
    itself killed shows up as a negative returncode.
    """
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"SIG{number}"
        return 128 + number, name.removeprefix("SIG")
    recorded = record.get("exit_signal")
    if isinstance(recorded, str) and recorded and record.get("exit_status") == returncode:
        return returncode, recorded.removeprefix("SIG")
    return returncode, None


# -- entry point ---------------------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_early_signals: list[int] = []


def _remember_signal(signum: int, frame: object) -> None:
    """Until the event loop takes over, a stop signal is noted, so one sent right after the
    "listening" line still ends serve cleanly (status 128+N, one line on stderr)."""
    _early_signals.append(signum)


def prepare(opts: ServeOptions) -> Prepared:
    """Lifecycle steps 1 to 5, each failure a ServeError."""
    from .loader import load_asyncssh

    load_asyncssh()
    import asyncssh

    from .authorized_keys import AuthorizedKeysError, load_authorized_keys

    try:
        keys = load_authorized_keys(opts.authorized_keys)  # 1
    except AuthorizedKeysError as exc:
        raise ServeError(str(exc)) from None
    env = dict(os.environ)  # 2
    if not 0 <= opts.port <= 65535:
        raise ServeError(f"--port {opts.port} is not a TCP port (0-65535; 0 picks a free one)")
    announce_argv = resolve_announce(opts.announce)
    check_spool(opts.home)
    log_fd = open_log(opts.log)
    host_key = asyncssh.generate_private_key("ssh-ed25519")  # 3
    key_line = " ".join(host_key.export_public_key("openssh").decode().split()[:2])
    try:
        sys.stdout.write(key_line + "\n")
        sys.stdout.flush()
    except OSError as exc:
        raise ServeError(f"cannot print the host key on standard output: {exc.strerror}") from None
    for signum in STOP_SIGNALS:
        signal.signal(signum, _remember_signal)
    sock = bind(opts.address, opts.port)  # 4
    address, port = sock.getsockname()[:2]
    say(f"listening on {address} port {port}")
    if announce_argv is not None:  # 5
        try:
            announce(announce_argv, key_line, address, port, env)
        except ServeError:
            sock.close()
            raise
    return Prepared(opts=opts, keys=keys, env=env, log_fd=log_fd, host_key=host_key, sock=sock)


async def serve_one(prep: Prepared) -> Outcome:
    """Steps 6 to 11: accept, authenticate, run the one session, close."""
    import asyncssh

    from .session import ServeConnection

    loop = asyncio.get_running_loop()
    ctl = Controller(prep, loop)
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, ctl.stop, signum)
    if _early_signals:
        prep.sock.close()
        ctl.stop(_early_signals[0])
        return await ctl.done
    ctl.acceptor = await asyncssh.listen(
        sock=prep.sock,
        server_factory=lambda: ServeConnection(ctl),
        server_host_keys=[prep.host_key],
        config=None,
        encoding=None,
        public_key_auth=True,
        password_auth=False,
        kbdint_auth=False,
        host_based_auth=False,
        gss_host=None,
        agent_forwarding=False,
        x11_forwarding=False,
        allow_scp=False,
        login_timeout=min(LOGIN_GRACE, max(prep.opts.timeout, 1.0)),
    )
    timer = loop.call_later(max(0.0, prep.opts.timeout), ctl.timed_out)
    try:
        return await ctl.done
    finally:
        timer.cancel()
        await ctl.close()


def run(opts: ServeOptions) -> int:
    """The whole of ``sshrec serve``; returns its exit status, having printed any error on stderr."""
    try:
        prep = prepare(opts)
    except ServeError as exc:
        say(str(exc))
        return exc.status
    if opts.debug:
        import logging

        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, format="asyncssh: %(message)s")
        import asyncssh

        asyncssh.set_debug_level(2)
    else:
        import logging

        logging.getLogger("asyncssh").setLevel(logging.CRITICAL)
    try:
        outcome = asyncio.run(serve_one(prep))
    finally:
        if prep.log_fd != 1:
            os.close(prep.log_fd)
    if outcome.error:
        say(outcome.error)
    return outcome.status
