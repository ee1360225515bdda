"""asyncssh's side of serve: one SSHServer per TCP connection, one SSHServerSession for the session.

These classes only translate asyncssh callbacks into decisions of the controller
(recorder/serve.py), which owns the one-session-ever rule, and into bytes for the
recorder process (child.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncssh

from .authorized_keys import KeyEntry
from .child import PtyRequest, SessionProcess
from .launch import Peer, plain_address

if TYPE_CHECKING:
    from .server import Controller


class ServeConnection(asyncssh.SSHServer):
    """One TCP connection: public-key authentication against the loaded keys, nothing else."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.conn: asyncssh.SSHServerConnection | None = None
        self.peer = Peer("?", 0, "?", 0)
        self.username = ""
        self.entry: KeyEntry | None = None
        self.authenticated = False
        self._refused: set[str] = set()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        client = conn.get_extra_info("peername") or ("?", 0)
        server = conn.get_extra_info("sockname") or ("?", 0)
        self.peer = Peer(plain_address(str(client[0])), int(client[1]), plain_address(str(server[0])),
                         int(server[1]))
        self.ctl.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ctl.connection_closed(self, exc)

    @property
    def where(self) -> str:
        return f"{self.peer.client_addr} port {self.peer.client_port}"

    def begin_auth(self, username: str) -> bool:
        self.username = username
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if not self.ctl.may_authenticate(self):
            return False
        reasons = []
        for entry in self.ctl.keys.find(key):
            why = entry.refusal(self.peer.client_addr)
            if why is None:
                self.entry = entry
                return True
            reasons.append(why)
        fingerprint = str(key.get_fingerprint("sha256"))
        if fingerprint not in self._refused:  # clients offer a key once, then sign with it
            self._refused.add(fingerprint)
            why = "; ".join(reasons) or f"not in {self.ctl.keys.source}"
            self.ctl.log(f"refused {key.get_algorithm()} key {fingerprint} for {username!r} from {self.where}: "
                         f"{why}")
        return False

    def auth_completed(self) -> None:
        self.authenticated = True
        self.ctl.authenticated(self)

    def session_requested(self) -> ServeSession | bool:
        return self.ctl.open_session(self) or False

    # Forwarding of any kind is refused (agent and X11 by the listener's options): serve exists
    # to give one recorded shell, and a tunnel would carry traffic no recording shows.

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        self.ctl.log(f"refused direct-tcpip to {dest_host} port {dest_port}: serve forwards nothing")
        return False

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        where = listen_host or "*"
        self.ctl.log(f"refused tcpip-forward on {where} port {listen_port}: serve forwards nothing")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        self.ctl.log(f"refused direct-streamlocal to {dest_path}: serve forwards nothing")
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        self.ctl.log(f"refused streamlocal-forward on {listen_path}: serve forwards nothing")
        return False


class ServeSession(asyncssh.SSHServerSession):
    """The session channel: records what the client asked for, then feeds the recorder process."""

    def __init__(self, ctl: Controller, connection: ServeConnection) -> None:
        self.ctl = ctl
        self.connection = connection
        self.chan: asyncssh.SSHServerChannel | None = None
        self.pty: PtyRequest | None = None
        self.command: str | None = None
        self.process: SessionProcess | None = None
        self.exit_sent = False
        self.client_gone: str | None = None  # why the channel closed before the exit status was sent

    @property
    def entry(self) -> KeyEntry:
        assert self.connection.entry is not None
        return self.connection.entry

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int],
                      term_modes: dict[int, int]) -> bool:
        if not self.entry.pty:
            self.ctl.log(f"refused a pty: no-pty/restrict on line {self.entry.line} of {self.ctl.keys.source}")
            return False
        cols, rows, xpixels, ypixels = term_size
        self.pty = PtyRequest(term_type, cols, rows, xpixels, ypixels, dict(term_modes))
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.ctl.log(f"refused the {subsystem!r} subsystem: serve runs shells and commands only")
        return False

    def session_started(self) -> None:
        self.ctl.start_session(self)

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self.process is not None:
            self.process.write(data)

    def eof_received(self) -> bool:
        if self.process is not None:
            self.process.end_input()
        return True  # half-close: output keeps flowing until the shell exits

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if self.process is not None:
            self.process.resize(width, height, pixwidth, pixheight)

    def pause_writing(self) -> None:
        if self.process is not None:
            self.process.pause_output()

    def resume_writing(self) -> None:
        if self.process is not None:
            self.process.resume_output()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.exit_sent and self.client_gone is None:
            self.client_gone = str(exc) if exc else "the client closed the session channel"
        self.ctl.channel_closed(self)

    # -- used by the controller ------------------------------------------------------------------

    def send(self, data: bytes, is_stderr: bool) -> None:
        if self.chan is None or self.chan.is_closing():
            return
        self.chan.write(data, asyncssh.EXTENDED_DATA_STDERR if is_stderr else None)

    def pause_input(self, paused: bool) -> None:
        if self.chan is None or self.chan.is_closing():
            return
        if paused:
            self.chan.pause_reading()
        else:
            self.chan.resume_reading()

    def client_env(self) -> dict[str, str]:
        assert self.chan is not None
        env = {}
        for name, value in self.chan.get_environment().items():
            name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            value = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            env[name] = value
        return env

    def report_exit(self, status: int, signal_name: str | None) -> None:
        """exit-status, or exit-signal when the shell (or the recorder) was killed, then close."""
        if self.chan is None or self.chan.is_closing():
            return
        self.exit_sent = True
        self.chan.write_eof()
        if signal_name:
            self.chan.exit_with_signal(signal_name)
        else:
            self.chan.exit(status)
