"""What a session runs, and what it is: the argv sshd would have run, file transfers told
apart from shells, and the gateway policies that refuse a session before anything runs.

A transfer (sftp, ``scp -t/-f``, ``rsync --server``) is recorded as file operations and byte
counts, not contents, so calling something a transfer must not be a way around recording:
only a command that is exactly one transfer program (no shell syntax at all) counts, and it
is run directly, from a root-owned path, never through the user's shell (whose startup files
or PATH the user controls). Anything else is a shell session, recorded in full.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping

TRUSTED_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")
SHELL_SYNTAX = frozenset(";&|<>()")  # a word of these is an operator, not an argument
POLICIES = ("deny", "allow")


class Command:
    """The argv to run, and what the record calls it. (Plain classes: the login path.)"""

    __slots__ = ("argv", "executable", "shown", "login", "mode", "notes", "runs")

    def __init__(self, argv: list[str], executable: str | None, shown: list[str], login: bool,
                 mode: str | None = None) -> None:
        self.argv = argv
        self.executable = executable
        self.shown = shown
        self.login = login
        self.mode = mode  # sftp/scp/rsync for a transfer, else None (pty or pipe)
        self.notes: list[str] = []
        # The program and arguments that end up running, where known: a ``SHELL -c LINE`` whose
        # LINE is one simple command (a ProxyCommand hop's ``nc %h %p``) runs LINE's words, so
        # its destination is known before it starts.
        self.runs = argv


class Refusal(Exception):
    """A policy refuses the session; the message is what the client is told."""


def user_shell(env: Mapping[str, str], configured: str | None = None) -> str:
    """The configured shell, else $SHELL (sshd sets it from passwd), else the passwd one."""
    shell = configured or env.get("SHELL")
    if shell:
        return shell
    try:
        return pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
    except KeyError:
        return "/bin/sh"


def resolve_command(command: list[str], env: Mapping[str, str], key_command: str | None = None,
                    shell: str | None = None) -> Command:
    """What sshd would have run: the given argv; else the key's command= or SSH_ORIGINAL_COMMAND
    (run directly when it is a transfer, else via the shell); else a login shell. ``shell``
    replaces the passwd one (whose startup files may run before the recorder)."""
    if command:
        return Command(list(command), None, list(command), login=False)
    shell = user_shell(env, shell)
    requested = key_command if key_command is not None else env.get("SSH_ORIGINAL_COMMAND", "")
    if requested:
        words = shell_words(requested)
        transfer = _transfer(words) if words else None
        if transfer is not None:
            return transfer
        argv = [shell, "-c", requested]
        found = Command(argv, None, argv, login=False)
        found.runs = words or argv
        return found
    return Command(["-" + os.path.basename(shell)], shell, [shell], login=True)


def shell_words(text: str) -> list[str] | None:
    """The words of a command line that is one simple command, or None when it has any shell
    syntax (operators, substitutions, expansions, several lines)."""
    if any(c in text for c in "`$\n\\*?[~{"):
        return None
    import shlex

    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return None
    if not words or any(w and set(w) <= SHELL_SYNTAX for w in words):
        return None
    return words


def transfer_command(text: str) -> Command | None:
    """The transfer ``text`` asks for, run from a trusted path; None if it is not exactly one."""
    words = shell_words(text)
    return _transfer(words) if words else None


def _transfer(words: list[str]) -> Command | None:
    name = os.path.basename(words[0])
    if name == "internal-sftp":  # sshd's built-in server cannot be exec'd: run the binary
        program = next((p for p in SFTP_SERVERS if trusted_program(p)), None)
        mode = "sftp"
    else:
        mode = _transfer_mode(name, words)
        program = _trusted_path(words[0]) if mode else None
    if program is None or mode is None:
        return None
    argv = [program, *words[1:]]
    found = Command(argv, None, argv, login=False, mode=mode)
    if name == "internal-sftp":
        found.notes.append(f"internal-sftp requested: ran {program} in its place")
    return found


def _transfer_mode(name: str, words: list[str]) -> str | None:
    if name == "sftp-server":
        return "sftp"
    if name == "scp" and {"t", "f"} & set("".join(_short_flags(words[1:]))):
        return "scp"
    if name == "rsync" and "--server" in words[1:]:
        return "rsync"
    return None


def _short_flags(words: list[str]) -> list[str]:
    """The letters of ``-xyz`` options up to ``--`` or the first operand."""
    letters = []
    for word in words:
        if word == "--" or not word.startswith("-") or word.startswith("--"):
            break
        letters.append(word[1:])
    return letters


def _trusted_path(program: str) -> str | None:
    if "/" in program:
        return program if trusted_program(program) else None
    for folder in TRUSTED_PATH:
        candidate = os.path.join(folder, program)
        if trusted_program(candidate):
            return candidate
    return None


def trusted_program(path: str) -> bool:
    """An executable that only root can have put there: it and every folder above it owned
    by root and writable by nobody else."""
    path = os.path.realpath(path)
    try:
        info = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
        return False
    while True:
        if info.st_uid != 0 or info.st_mode & 0o022:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent
        try:
            info = os.stat(path)
        except OSError:
            return False


def check_policies(cmd: Command, env: Mapping[str, str], key_command: str | None, wrapped: bool,
                   deny_interactive: bool, mosh: str) -> str | None:
    """Why the session must be refused, or None. ``wrapped``: sshrec runs a fixed ``-- COMMAND``
    (the user's request, if any, is in SSH_ORIGINAL_COMMAND)."""
    requested = key_command if key_command is not None else env.get("SSH_ORIGINAL_COMMAND", "")
    if deny_interactive and not requested.strip():
        return ("interactive shells are not allowed here: give the command to run "
                "(ssh HOST COMMAND); this attempt is recorded")
    words = requested.split()
    if words and os.path.basename(words[0]) == "mosh-server" and not wrapped:
        if mosh == "deny":
            return ("mosh is not allowed here: after its start its session goes over UDP, where it "
                    "cannot be recorded; use plain ssh")
        cmd.notes.append("mosh: only the start of the session (the SSH part) is recorded; after it "
                         "the session goes over UDP, unrecorded")
    return None
