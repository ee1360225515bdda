"""One recorded session, start to end: context -> spool files -> relay -> final record -> index.

This is the ForceCommand path, run on every login: standard library and sshrec only.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import sys
import time
from collections.abc import Mapping

from sshrec.schema import spool
from sshrec.schema.asciicast import CastHeader
from sshrec.schema.record import SessionRecord, iso_utc, new_session_id, write_record_atomically
from sshrec.schema.settings import DEFAULT_AUTHORIZED_KEYS

from . import context, relay
from .castfile import CastFile
from .command import Command, check_policies, resolve_command, user_shell
from .watch import Destination, TreeWatch, become_subreaper

VERSION = "0.1.0"


class RecordOptions:
    """What to record and how (plain classes on the login path: dataclasses costs ms)."""

    __slots__ = ("command", "home", "personal", "format", "record_input", "destination", "on_failure",
                 "index", "db_url", "transcript_fd", "notes", "authorized_keys_file", "deny_interactive",
                 "mosh", "transfer_contents", "watch", "shell", "sink", "collector_socket", "collector_buffer",
                 "collector_timeout")

    def __init__(self, command: list[str], home: str, format: str = "v2", record_input: bool = False,
                 destination: str | None = None, on_failure: str = "allow", index: bool = True,
                 db_url: str | None = None, transcript_fd: int | None = None,
                 notes: list[str] | None = None, personal: bool = False,
                 authorized_keys_file: str | None = None, deny_interactive: bool = False,
                 mosh: str = "deny", transfer_contents: bool = False, watch: bool = True,
                 shell: str | None = None, sink: str = "spool", collector_socket: str = "",
                 collector_buffer: int = 8 << 20, collector_timeout: float = 10.0) -> None:
        self.command = command
        self.home = home
        self.personal = personal  # home is a shared spool: record into this user's folder of it
        self.format = format
        self.record_input = record_input
        self.destination = destination
        self.on_failure = on_failure
        self.index = index
        self.db_url = db_url
        self.transcript_fd = transcript_fd
        self.notes = notes or []
        self.authorized_keys_file = authorized_keys_file
        self.deny_interactive = deny_interactive  # a command-only gateway: no shells
        self.mosh = mosh  # deny or allow mosh-server (its session leaves SSH for UDP)
        self.transfer_contents = transfer_contents  # keep the bytes of sftp/scp/rsync, not only the files
        self.watch = watch  # follow the process tree for destinations
        self.shell = shell  # run sessions with this shell, not the passwd one
        self.sink = sink  # "spool" (files written directly) or "collector"
        self.collector_socket = collector_socket
        self.collector_buffer = collector_buffer  # bytes kept until the collector acknowledges them
        self.collector_timeout = collector_timeout  # seconds the collector may be away before on_failure


TRANSFER_MODES = ("sftp", "scp", "rsync")


def session_mode(cmd: Command, interactive: bool) -> str:
    """pty or pipe, except that file transfers are named as such (an auditor filters on them)."""
    if interactive:
        return "pty"
    return cmd.mode or "pipe"


def key_restrictions(opts: RecordOptions, env: Mapping[str, str],
                     auth: context.AuthInfo) -> tuple[str | None, list[str]]:
    """The key's own command= to run (sshd drops it under a ForceCommand), and notes saying
    what was found. With ``-- COMMAND`` the wrapped command wins, as sshd's ForceCommand does."""
    if auth.key_blob is None:
        if env.get("SSH_CONNECTION") and not env.get("SSH_USER_AUTH"):
            return None, ["key options unknown: sshd's ExposeAuthInfo is off, so a command= "
                          "restriction on the key cannot be honoured"]
        return None, []
    from .authkeys import expand_key_files, key_options

    user, uid = context.local_user()
    files = expand_key_files(opts.authorized_keys_file or DEFAULT_AUTHORIZED_KEYS, user, uid, user_home(env))
    conn = context.parse_ssh_connection(env.get("SSH_CONNECTION"))
    lookup = key_options(files, auth.key_blob, conn.client_addr)
    if lookup.options is None:
        return None, [str(lookup.unknown)]
    found = lookup.options
    notes = [f"key options ({found.where()}): {', '.join(found.names)}"] if found.names else []
    if found.command is None:
        return None, notes
    if opts.command:
        notes.append(f"the key's command= ({found.where()}) is overridden by the wrapped command, "
                     "as sshd's ForceCommand overrides it")
        return None, notes
    notes.append(f"ran the key's command= ({found.where()}), which sshd ignores under a ForceCommand")
    return found.command, notes


def user_home(env: Mapping[str, str]) -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return env.get("HOME", "/")


def build_record(session_id: str, cmd: Command, opts: RecordOptions, env: Mapping[str, str],
                 mode: str, size: tuple[int, int], started: float, auth: context.AuthInfo) -> SessionRecord:
    user, uid = context.local_user()
    conn = context.parse_ssh_connection(env.get("SSH_CONNECTION"))
    return SessionRecord(
        id=session_id,
        user=user,
        uid=uid,
        host=context.hostname(),
        client_addr=conn.client_addr,
        client_port=conn.client_port,
        server_addr=conn.server_addr,
        server_port=conn.server_port,
        auth_method=auth.method,
        key_type=auth.key_type,
        key_fingerprint=auth.key_fingerprint,
        original_command=env.get("SSH_ORIGINAL_COMMAND"),
        command=cmd.shown,
        destination=opts.destination or context.detect_destination(cmd.runs),
        mode=mode,
        term=env.get("TERM") if mode == "pty" else None,
        cols=size[0],
        rows=size[1],
        started_at=iso_utc(started),
        recorder_version=VERSION,
        notes=(["login shell"] if cmd.login else []) + cmd.notes,
        connection_id=context.connection_id(env),
    )


def warn(message: str) -> None:
    """One line on stderr, which reaches the ssh client: ending in CR LF only while the
    terminal is raw (during a PTY session), where LF alone would not return the carriage."""
    try:
        os.write(2, f"sshrec: {message}{relay.line_end(2)}".encode(errors="replace"))
    except OSError:
        pass


class SpoolSession:
    """The files of one session in the spool, and the lock that says its recorder is alive."""

    def __init__(self, home: str, record: SessionRecord, header: CastHeader, opts: RecordOptions):
        self.record = record
        self.opts = opts
        directory = spool.recording_dir(home, record.id)
        old_umask = os.umask(0o077)
        try:
            spool.ensure_dir(directory)
            self.lock_path = os.path.join(directory, f"{record.id}.lock")
            self._lock_fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                                    spool.FILE_MODE)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            os.write(self._lock_fd, f"{os.getpid()}\n".encode())
            self.json_path = spool.record_path(home, record.id)
            record.path = spool.cast_path(home, record.id)
            header.sshrec = record.to_dict()
            self.cast = CastFile(record.path, header.to_json(), header.version, self._failed,
                                 mirror_fd=opts.transcript_fd)
            write_record_atomically(record, self.json_path, durable=False)
        finally:
            os.umask(old_umask)

    def _failed(self, exc: OSError) -> None:
        if self.opts.on_failure == "deny":
            warn(f"recording failed ({exc.strerror}); ending the session (on-failure=deny)")
            self.cast.stop_reason = f"recording failed: {exc.strerror}"
        else:
            warn(f"recording failed ({exc.strerror}); the rest of this session is NOT recorded")

    def finish(self, outcome: relay.Outcome, started_mono: float, refused: str | None = None) -> None:
        record = self.record
        self.cast.exit(outcome.exit_status)
        record.sha256 = self.cast.close()
        record.ended_at = iso_utc(time.time())
        record.duration = round(time.monotonic() - started_mono, 6)
        record.exit_status, record.exit_signal = reported_exit(outcome)
        record.bytes_out = self.cast.bytes_out
        record.bytes_in = self.cast.bytes_in
        record.invalid_bytes = self.cast.invalid_bytes
        record.notes.extend(outcome_notes(outcome))
        if self.cast.mirror_error is not None:
            record.notes.append(f"transcript copy stopped: {self.cast.mirror_error.strerror}")
        if refused is not None:
            record.status = "refused"
            record.notes.append(f"refused: {refused}")
        elif self.cast.error is not None:
            record.status = "failed"
            record.notes.append(f"recording stopped early: {self.cast.error.strerror}")
        else:
            record.status = "complete"
        try:
            write_record_atomically(record, self.json_path)
        except OSError as exc:
            warn(f"could not write the final session record {self.json_path}: {exc.strerror}")
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(self._lock_fd)


def reported_exit(outcome: relay.Outcome) -> tuple[int | None, str | None]:
    """The exit status and signal the record keeps (none when the client ended the session)."""
    if outcome.ended_by_client:
        return None, None
    return outcome.exit_status, outcome.exit_signal


def outcome_notes(outcome: relay.Outcome) -> list[str]:
    notes = list(outcome.notes)
    if outcome.ended_by_client:
        notes.append(f"the client closed its input and left ({outcome.client_gone}) while the command "
                     f"still ran; it was then ended ({outcome.exit_signal}): no exit status")
    elif outcome.client_gone:
        notes.append(f"session ended because {outcome.client_gone}")
    return notes


def spawn_indexer(json_path: str, opts: RecordOptions) -> None:
    """Index the finished session in a detached process so the user never waits for SQLAlchemy."""
    env = dict(os.environ, SSHREC_HOME=opts.home)
    if opts.db_url:
        env["SSHREC_DB"] = opts.db_url
    argv = [sys.executable, "-m", "sshrec", "index", "--add", json_path, "--quiet"]
    try:
        os.posix_spawn(
            sys.executable, argv, env,
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
                (os.POSIX_SPAWN_DUP2, 0, 1),
                (os.POSIX_SPAWN_DUP2, 0, 2),
            ],
        )
    except OSError as exc:
        warn(f"could not start the indexer ({exc.strerror}); run 'sshrec index' later")


def record_session(opts: RecordOptions, env: Mapping[str, str] | None = None) -> int:
    """Record one session; returns the exit status the client must see, or -N when the
    command died of signal N (the recorder should then die of it too, so that sshd reports
    the same exit-signal it would have without the recorder)."""
    relay.hold_hangups()
    env = dict(os.environ if env is None else env)
    auth = context.read_auth_info(env)
    key_command, notes = key_restrictions(opts, env, auth)
    cmd = resolve_command(opts.command, env, key_command, opts.shell)
    if opts.shell:
        env["SHELL"] = opts.shell
    refusal = check_policies(cmd, env, key_command, bool(opts.command), opts.deny_interactive, opts.mosh)
    interactive = os.isatty(0)
    if interactive:
        cols, rows, defaulted = relay.inner_size(0)
        if defaulted:
            notes.append("client terminal reported 0x0 (ssh -tt without a local tty); used 80x24")
    else:
        cols, rows = relay.DEFAULT_SIZE
    started, started_mono = time.time(), time.monotonic()
    session_id = new_session_id(started)
    mode = session_mode(cmd, interactive)
    record = build_record(session_id, cmd, opts, env, mode, (cols, rows), started, auth)
    record.notes.extend(notes + opts.notes)
    header = CastHeader(
        version=3 if opts.format == "v3" else 2,
        cols=cols,
        rows=rows,
        timestamp=started,
        term=record.term,
        env={"SHELL": user_shell(env, opts.shell), **({"TERM": record.term} if record.term else {})},
    )
    if opts.sink == "collector":
        from .collector.client import record_to_collector

        return record_to_collector(opts, cmd, env, record, header, refusal, (interactive, (cols, rows)))
    try:
        spool_dir = choose_spool(opts, record)
        session = SpoolSession(spool_dir, record, header, opts)
    except OSError as exc:
        where = exc.filename or opts.home
        reason = exc.strerror or str(exc)
        if isinstance(exc, PermissionError) and not opts.personal:
            reason += f"; a spool for several users is made by root with: sshrec setup --home {opts.home}"
        return unrecordable(f"cannot record to {where}: {reason}", refusal, opts, cmd, env)
    if refusal is not None:
        return refuse(session, refusal, started_mono, opts)
    outcome = run_command(cmd, env, session.cast, opts, record, (interactive, (cols, rows)))
    session.finish(outcome, started_mono)
    if opts.index:
        spawn_indexer(session.json_path, opts)
    return client_status(outcome)


def unrecordable(why: str, refusal: str | None, opts: RecordOptions, cmd: Command, env: dict[str, str]) -> int:
    """The session cannot be recorded: refuse it (a policy, or on-failure=deny), else run it as is."""
    if refusal is not None:
        warn(f"session refused: {refusal}")
        return 1
    if opts.on_failure == "deny":
        warn(f"session refused: {why} (on-failure=deny)")
        return 1
    warn(f"this session is NOT recorded: {why}")
    return exec_unrecorded(cmd, env)


def run_command(cmd: Command, env: dict[str, str], sink: CastFile, opts: RecordOptions, record: SessionRecord,
                terminal: tuple[bool, tuple[int, int]]) -> relay.Outcome:
    """Run the command through the relay into ``sink``; the record gets what was seen on the way
    (destinations, transfer operations, notes)."""
    interactive, size = terminal
    env["SSHREC_SESSION_ID"] = record.id
    destinations = DestinationLog(sink) if opts.watch else None
    transfer = None
    typing = None
    try:
        if interactive:
            from .typed import TypedInput

            typing = TypedInput(sink, opts.record_input)
            outcome = relay.run_pty(cmd.argv, cmd.executable, env, sink, opts.record_input, size, destinations,
                                    typing)
        elif record.mode in TRANSFER_MODES:
            from .transfer.sink import TransferSink

            transfer = TransferSink(sink, record.mode, cmd.argv, opts.transfer_contents, opts.record_input)
            outcome = relay.run_pipes(cmd.argv, cmd.executable, env, transfer, True, destinations)
        else:
            outcome = relay.run_pipes(cmd.argv, cmd.executable, env, sink, opts.record_input, destinations)
    except relay.SpawnError as exc:
        warn(str(exc))
        outcome = relay.Outcome(exc.status, None, notes=[str(exc)])
    if destinations is not None:
        destinations.into(record)
    if transfer is not None:
        record.notes.extend(transfer.finish())
        record.files = transfer.files
    if typing is not None:
        record.input_masked = typing.masked
        record.notes.extend(typing.finish())
    return outcome


def client_status(outcome: relay.Outcome) -> int:
    """What the recorder exits with: the command's status, or -N to die of its signal N."""
    if outcome.ended_by_client:
        return 0  # nobody is left to see it
    if outcome.exit_signal is not None and outcome.exit_status > 128:
        return 128 - outcome.exit_status
    return outcome.exit_status


class DestinationLog:
    """Starts the process-tree watch on the command and writes what it finds: a marker in the
    cast as it happens, the list into the record at the end."""

    def __init__(self, cast: CastFile) -> None:
        self.cast = cast
        self.watch: TreeWatch | None = None
        self.subreaper = become_subreaper()

    def __call__(self, pid: int) -> TreeWatch:
        self.watch = TreeWatch(pid, time.monotonic(), self.found, self.subreaper)
        return self.watch

    def found(self, destination: Destination) -> None:
        self.cast.marker(f"destination {destination.name()} via {destination.via}")

    def into(self, record: SessionRecord) -> None:
        if self.watch is None:
            return
        record.destinations = [d.to_dict() for d in self.watch.destinations]
        if record.destination is None and record.destinations:
            record.destination = str(record.destinations[0]["destination"])


def refuse(session: SpoolSession, reason: str, started_mono: float, opts: RecordOptions) -> int:
    """Nothing runs; the client is told why and the attempt is a record of its own."""
    message = f"sshrec: session refused: {reason}"
    warn(f"session refused: {reason}")
    session.cast.output(f"{message}{relay.line_end(2)}".encode())
    session.finish(relay.Outcome(1, None), started_mono, refused=reason)
    if opts.index:
        spawn_indexer(session.json_path, opts)
    return 1


def choose_spool(opts: RecordOptions, record: SessionRecord) -> str:
    """The spool this session is written to; on a shared spool, the user's own folder of it."""
    if not opts.personal:
        return opts.home
    old_umask = os.umask(0o077)
    try:
        directory, note = spool.claim_personal_dir(opts.home, record.user, os.getuid())
    finally:
        os.umask(old_umask)
    if note:
        warn(note)
        record.notes.append(note)
        opts.db_url = opts.db_url or "sqlite:///" + os.path.join(directory, "index.db")
    return directory


def die_by(signum: int) -> None:
    """End this process by ``signum``, as the recorded command ended (no core file: the
    recorder's memory is not the command's)."""
    import resource
    import signal

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # a signal that does not end a process by default


def exec_unrecorded(cmd: Command, env: Mapping[str, str]) -> int:
    relay.release_hangups()  # the signal mask survives exec
    try:
        os.execvpe(cmd.executable or cmd.argv[0], cmd.argv, env)
    except OSError as exc:
        warn(f"cannot run {cmd.argv[0]!r}: {exc.strerror}")
        return 127 if isinstance(exc, FileNotFoundError) else 126
