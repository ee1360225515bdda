"""Who is connecting, from where, with which key, to run what: the session context from sshd's environment."""

from __future__ import annotations

import binascii
import hashlib
import os
import pwd
from collections.abc import Mapping

# ssh(1) options that take an argument (OpenSSH 9.x); needed to find the host among the words.
SSH_OPTS_WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")
# nc/ncat/netcat options that take an argument.
NC_OPTS_WITH_ARG = set("IiMmOPpqsTVwXx")
# scp and sftp options that take an argument (OpenSSH 9.x).
SCP_OPTS_WITH_ARG = set("cDFiJlOoPSXBRs")
NC_NAMES = ("nc", "ncat", "netcat", "nc.openbsd", "nc.traditional")


class AuthInfo:
    """How the user authenticated (plain classes on the login path: dataclasses costs ms)."""

    __slots__ = ("method", "key_type", "key_fingerprint", "key_blob")

    def __init__(self, method: str | None, key_type: str | None, key_fingerprint: str | None,
                 key_blob: str | None = None) -> None:
        self.method = method
        self.key_type = key_type
        self.key_fingerprint = key_fingerprint
        self.key_blob = key_blob  # base64, as in authorized_keys


def key_fingerprint(blob_b64: str) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it (unpadded base64 of the blob's SHA-256).

    binascii, not base64: the base64 module imports re (5 ms on every login)."""
    blob = binascii.a2b_base64(blob_b64.encode("ascii"), strict_mode=True)
    digest = binascii.b2a_base64(hashlib.sha256(blob).digest(), newline=False).decode().rstrip("=")
    return f"SHA256:{digest}"


def parse_auth_info(text: str) -> AuthInfo:
    """Read sshd's ExposeAuthInfo file: one line per successful method, e.g. ``publickey ssh-ed25519 AAAA...``.

    Several lines appear with ``AuthenticationMethods publickey,password``; the methods are joined
    with commas and the (last) public key is the one reported.
    """
    methods: list[str] = []
    key_type = fingerprint = blob = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        methods.append(words[0])
        if words[0] == "publickey" and len(words) >= 3:
            try:
                fingerprint = key_fingerprint(words[2])
                key_type, blob = words[1], words[2]
            except (binascii.Error, ValueError):
                continue
    return AuthInfo(",".join(methods) or None, key_type, fingerprint, blob)


def read_auth_info(env: Mapping[str, str]) -> AuthInfo:
    path = env.get("SSH_USER_AUTH")
    if not path:
        return AuthInfo(None, None, None)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_auth_info(handle.read())
    except OSError:
        return AuthInfo(None, None, None)


class Connection:
    __slots__ = ("client_addr", "client_port", "server_addr", "server_port")

    def __init__(self, client_addr: str | None, client_port: int | None, server_addr: str | None,
                 server_port: int | None) -> None:
        self.client_addr = client_addr
        self.client_port = client_port
        self.server_addr = server_addr
        self.server_port = server_port


def parse_ssh_connection(value: str | None) -> Connection:
    """``SSH_CONNECTION`` is "client_ip client_port server_ip server_port"."""
    words = (value or "").split()
    if len(words) != 4:
        return Connection(None, None, None, None)
    try:
        return Connection(words[0], int(words[1]), words[2], int(words[3]))
    except ValueError:
        return Connection(words[0], None, words[2], None)


def _operands(argv: list[str], opts_with_arg: set[str]) -> tuple[list[str], dict[str, str]]:
    """Split ``argv`` (without argv[0]) into operands and the last value of each option."""
    operands: list[str] = []
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            operands.extend(argv[i + 1 :])
            break
        if word.startswith("-") and len(word) > 1 and not operands:
            j = 1
            while j < len(word):
                letter = word[j]
                if letter in opts_with_arg:
                    value = word[j + 1 :]
                    if not value and i + 1 < len(argv):
                        i += 1
                        value = argv[i]
                    values[letter] = value
                    break
                values[letter] = ""
                j += 1
        else:
            operands.append(word)
        i += 1
    return operands, values


def detect_destination(argv: list[str]) -> str | None:
    """The host a wrapped command obviously connects to: ``ssh [opts] HOST``, ``ssh -W H:P``, ``nc H P``."""
    if not argv:
        return None
    name = os.path.basename(argv[0])
    if name in ("ssh", "slogin"):
        operands, values = _operands(argv[1:], SSH_OPTS_WITH_ARG)
        if values.get("W"):
            return values["W"]
        if not operands:
            return None
        host = operands[0].removeprefix("ssh://")
        if "l" in values and "@" not in host:
            host = f"{values['l']}@{host}"
        if values.get("p"):
            host = f"{host}:{values['p']}"
        return host
    if name in NC_NAMES:
        operands, _ = _operands(argv[1:], NC_OPTS_WITH_ARG)
        if len(operands) >= 2:
            return f"{operands[0]}:{operands[1]}"
        return operands[0] if operands else None
    if name in ("scp", "sftp"):
        operands, values = _operands(argv[1:], SCP_OPTS_WITH_ARG)
        if "t" in values or "f" in values:
            return None  # the server side of a copy
        hosts = [_remote_host(op, allow_bare=name == "sftp") for op in operands]
        host = next((h for h in hosts if h), None)
        return f"{host}:{values['P']}" if host and values.get("P") else host
    if name == "rsync" and "--server" not in argv:
        return next((h for h in (_rsync_host(op) for op in argv[1:] if not op.startswith("-")) if h), None)
    return None


def _remote_host(operand: str, allow_bare: bool = False) -> str | None:
    """``[user@]host:path`` (scp), ``scp://[user@]host[:port]/path``; sftp also takes a bare host."""
    if operand.startswith("scp://") or operand.startswith("sftp://"):
        rest = operand.split("://", 1)[1].split("/", 1)[0]
        return rest or None
    if operand.startswith(("/", "./", "../")):
        return None
    if ":" in operand:
        host = operand.split(":", 1)[0]
        if host.startswith("[") or host:
            return host.strip("[]") or None
    return operand if allow_bare and operand else None


def _rsync_host(operand: str) -> str | None:
    if operand.startswith("rsync://"):
        return operand[8:].split("/", 1)[0] or None
    if operand.startswith(("/", "./", "../")) or ":" not in operand:
        return None
    return operand.split(":", 1)[0] or None


SSHD_NAMES = (b"sshd", b"sshd-session")  # the per-connection process (OpenSSH 9.8 renamed it)


def connection_id(env: Mapping[str, str], pid: int | None = None) -> str | None:
    """An id shared by every session of one SSH connection (ControlMaster multiplexing): the
    client's address and port plus the sshd process serving the connection (its pid and start
    time, so a reused pid is another connection). None outside sshd."""
    connection = env.get("SSH_CONNECTION")
    if not connection:
        return None
    current = os.getppid() if pid is None else pid
    for _ in range(8):  # the recorder's parent, or the shell sshd started in between
        stat = _proc_stat(current)
        if stat is None:
            return None
        name, fields = stat
        if name in SSHD_NAMES:
            text = f"{hostname()} {connection} {current} {fields[19].decode()}"
            return hashlib.sha256(text.encode()).hexdigest()[:16]
        current = int(fields[1])
        if current <= 1:
            return None
    return None


def _proc_stat(pid: int) -> tuple[bytes, list[bytes]] | None:
    """(command name, the fields after it) of /proc/PID/stat."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data[data.find(b"(") + 1 : data.rfind(b")")], data[data.rfind(b")") + 2 :].split()


def local_user() -> tuple[str, int]:
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name, uid
    except KeyError:
        return os.environ.get("USER", str(uid)), uid


def hostname() -> str:
    return os.uname().nodename
