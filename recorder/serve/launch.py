"""What serve runs for the session: the recorder's argv and the environment sshd would have given it.

Pure functions of the session's facts, so the rules (which variables a client may send,
what a forced command does to SSH_ORIGINAL_COMMAND) are tested without any network.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from ..command import user_shell  # the recorder's own rule: $SHELL, else the passwd shell

# Variables that describe *an* SSH session: never inherited from serve's own environment
# (serve may itself run inside an ssh session), always set from this one.
SSH_SESSION_VARS = ("SSH_CONNECTION", "SSH_CLIENT", "SSH_ORIGINAL_COMMAND", "SSH_USER_AUTH", "SSH_TTY",
                    "SSH_AUTH_SOCK", "SSHREC_SESSION_ID")


@dataclass
class Peer:
    """The TCP connection: who connected to which of our addresses."""

    client_addr: str
    client_port: int
    server_addr: str
    server_port: int

    def ssh_connection(self) -> str:
        return f"{self.client_addr} {self.client_port} {self.server_addr} {self.server_port}"

    def ssh_client(self) -> str:
        return f"{self.client_addr} {self.client_port} {self.server_port}"


def plain_address(addr: str) -> str:
    """``::ffff:192.0.2.7`` (an IPv4 client of a dual-stack socket) as ``192.0.2.7``, as sshd shows it."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return addr


def client_var_allowed(name: str) -> bool:
    """Debian's default ``AcceptEnv LANG LC_*``: a client may pick its language, nothing else
    (anything more could redirect the recording, e.g. SSHREC_HOME, or preload code)."""
    return name == "LANG" or (name.startswith("LC_") and name[3:].replace("_", "").isalnum())


def session_env(base: Mapping[str, str], peer: Peer, auth_file: str, *, term: str | None,
                command: str | None, client_env: Mapping[str, str],
                key_env: Mapping[str, str]) -> dict[str, str]:
    """The copied environment plus what sshd sets for a session.

    ``command`` is what the client asked to run (None: a shell); it becomes
    SSH_ORIGINAL_COMMAND, which the recorder runs via ``$SHELL -c`` (or, with a forced
    command, just records). ``key_env`` comes from the key's environment= options and wins
    over what the client sent.
    """
    env = {k: v for k, v in base.items() if k not in SSH_SESSION_VARS}
    env.update({k: v for k, v in client_env.items() if client_var_allowed(k)})
    env["SSH_CONNECTION"] = peer.ssh_connection()
    env["SSH_CLIENT"] = peer.ssh_client()
    env["SSH_USER_AUTH"] = auth_file
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    if term:
        env["TERM"] = term
    env.update(key_env)
    return env


def recorder_argv(*, home: str | None, forced_command: str | None, env: Mapping[str, str],
                  transcript_fd: int, index: bool = True, format: str | None = None,
                  python: str = sys.executable) -> list[str]:
    """``sshrec --record-input --on-failure deny --transcript-fd N [...] -- [SHELL -c FORCED]``.

    Input is recorded because this mode exists to audit what was typed; on-failure deny
    because an unrecorded session would defeat the point of serve. With no command after
    ``--`` the recorder runs SSH_ORIGINAL_COMMAND via ``$SHELL -c`` or a login shell; a forced
    command (authorized_keys command=) is given explicitly so the client's request stays in
    SSH_ORIGINAL_COMMAND, as with sshd. ``-P``: the session's working directory is not put on
    the recorder's import path.
    """
    argv = [python, "-P", "-m", "sshrec", "--record-input", "--on-failure", "deny",
            "--transcript-fd", str(transcript_fd)]
    if home:
        argv += ["--home", home]
    if format:
        argv += ["--format", format]
    if not index:
        argv.append("--no-index")
    argv.append("--")
    if forced_command is not None:
        argv += [user_shell(env), "-c", forced_command]
    return argv


def describe_command(command: str | None, forced: str | None, pty: bool) -> str:
    """For serve's own log line: what the session runs."""
    mode = "pty" if pty else "pipes"
    if forced is not None:
        shown = f"forced command {forced!r}" + (f" (client asked for {command!r})" if command else "")
    elif command is not None:
        shown = f"command {command!r}"
    else:
        shown = "login shell"
    return f"{shown} on {mode}"

