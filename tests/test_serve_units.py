"""``sshrec serve`` pieces without a network: environment, argv, terminal modes, exit mapping, checks."""

from __future__ import annotations

import os
import signal
import socket
import termios
from pathlib import Path

import pytest
from sshrec.recorder.serve import pty as serve_pty
from sshrec.recorder.serve.launch import Peer, client_var_allowed, plain_address, recorder_argv, session_env
from sshrec.recorder.serve.server import ServeError, bind, exit_of, open_log, resolve_announce

PEER = Peer("192.0.2.7", 50123, "10.0.0.2", 2022)


def test_session_env_replaces_inherited_ssh_variables() -> None:
    base = {"PATH": "/bin", "SSH_CONNECTION": "1 2 3 4", "SSH_ORIGINAL_COMMAND": "stale", "SSH_AUTH_SOCK": "/a",
            "SSHREC_SESSION_ID": "OLD", "SSHREC_HOME": "/spool", "TERM": "dumb"}
    env = session_env(base, PEER, "/tmp/auth", term="xterm", command=None,
                      client_env={"LANG": "C.UTF-8", "LC_TIME": "C", "SSHREC_HOME": "/evil", "LD_PRELOAD": "x"},
                      key_env={"LANG": "de_DE.UTF-8"})
    assert env["SSH_CONNECTION"] == "192.0.2.7 50123 10.0.0.2 2022"
    assert env["SSH_CLIENT"] == "192.0.2.7 50123 2022"
    assert env["SSH_USER_AUTH"] == "/tmp/auth"
    assert env["TERM"] == "xterm" and env["PATH"] == "/bin" and env["SSHREC_HOME"] == "/spool"
    assert env["LANG"] == "de_DE.UTF-8" and env["LC_TIME"] == "C"  # key options win over the client
    for gone in ("SSH_ORIGINAL_COMMAND", "SSH_AUTH_SOCK", "SSHREC_SESSION_ID", "LD_PRELOAD"):
        assert gone not in env


def test_session_env_for_exec() -> None:
    env = session_env({"TERM": "dumb"}, PEER, "/a", term=None, command="uptime", client_env={}, key_env={})
    assert env["SSH_ORIGINAL_COMMAND"] == "uptime" and env["TERM"] == "dumb"


@pytest.mark.parametrize(("name", "allowed"), [
    ("LANG", True), ("LC_ALL", True), ("LC_MESSAGES", True), ("LC_", False), ("LC_A-B", False),
    ("LANGUAGE", False), ("PATH", False), ("SSHREC_HOME", False),
])
def test_client_variables(name: str, allowed: bool) -> None:
    assert client_var_allowed(name) is allowed


def test_ipv4_clients_of_a_dual_stack_socket_look_like_ipv4() -> None:
    assert plain_address("::ffff:192.0.2.7") == "192.0.2.7"
    assert plain_address("2001:db8::1") == "2001:db8::1"
    assert plain_address("fe80::1%eth0") == "fe80::1%eth0"
    assert plain_address("127.0.0.1") == "127.0.0.1"


def test_recorder_argv() -> None:
    argv = recorder_argv(home="/spool", forced_command=None, env={}, transcript_fd=7, python="/py")
    assert argv == ["/py", "-P", "-m", "sshrec", "--record-input", "--on-failure", "deny",
                    "--transcript-fd", "7", "--home", "/spool", "--"]
    forced = recorder_argv(home=None, forced_command="date", env={"SHELL": "/bin/zsh"}, transcript_fd=3,
                           index=False, format="v3", python="/py")
    assert forced[-5:] == ["--no-index", "--", "/bin/zsh", "-c", "date"]
    assert "--format" in forced and "v3" in forced


def test_terminal_modes_reach_the_pty() -> None:
    modes = {3: 8, 1: 255, 53: 0, 36: 1, 72: 0, 91: 1, 129: 38400, 200: 1, 11: 1}
    master, slave = serve_pty.open_pty(91, 27, modes)
    try:
        attrs = termios.tcgetattr(slave)
        assert attrs[6][termios.VERASE] == b"\x08"
        assert attrs[6][termios.VINTR] == b"\x00"  # 255 on the wire: disabled
        assert not attrs[3] & termios.ECHO and attrs[0] & termios.ICRNL and not attrs[1] & termios.ONLCR
        assert attrs[2] & termios.CSIZE == termios.CS8
        assert attrs[5] == termios.B38400
        assert serve_pty_size(slave) == (91, 27)
    finally:
        os.close(master)
        os.close(slave)


def serve_pty_size(fd: int) -> tuple[int, int]:
    import fcntl
    import struct

    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return cols, rows


def test_exit_mapping() -> None:
    assert exit_of(5, {"exit_status": 5, "exit_signal": None}) == (5, None)
    assert exit_of(143, {"exit_status": 143, "exit_signal": "SIGTERM"}) == (143, "TERM")
    assert exit_of(143, {}) == (143, None)  # a shell that said "exit 143"
    assert exit_of(-signal.SIGKILL, {}) == (137, "KILL")  # the recorder itself was killed


def test_open_log(tmp_path: Path) -> None:
    fd = open_log(str(tmp_path / "t.cast"))
    os.close(fd)
    assert (tmp_path / "t.cast").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ServeError, match="is not a writable destination: Is a directory"):
        open_log(str(tmp_path))
    assert open_log(None) == 1


def test_resolve_announce(tmp_path: Path) -> None:
    assert resolve_announce(None) is None
    assert resolve_announce("true --flag")[1:] == ["--flag"]  # type: ignore[index]
    with pytest.raises(ServeError, match="not found or not executable: nope-xyz"):
        resolve_announce("nope-xyz")
    with pytest.raises(ServeError, match="announce command not found: /no/such"):
        resolve_announce("/no/such")
    with pytest.raises(ServeError, match="cannot be parsed"):
        resolve_announce("echo 'unbalanced")


def test_bind_reports_the_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=f"cannot bind 127.0.0.1 port {port}: Address already in use"):
            bind("127.0.0.1", port)
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()
