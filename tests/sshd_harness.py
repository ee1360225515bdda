"""A real OpenSSH sshd on 127.0.0.1 and a real ssh client, for end-to-end tests.

Two ways to run, chosen by who runs the tests:

* **privileged** (root, as on CI): sshd runs as root and users log in as a dedicated system
  user (``sshrec-test``, created once with ``useradd`` and reused), exactly like production.
* **unprivileged** (anyone else): sshd runs as the current user, which OpenSSH allows; it can
  then only log in that same user. Everything else is the same.

Each :class:`Sshd` gets its own directory (config, fresh ed25519 host key, authorized_keys,
log at LogLevel DEBUG3, a spool exported to sessions as ``SSHREC_HOME`` and an sshrec config
as ``SSHREC_CONFIG`` (naming the key file, as ``sshrec setup`` would), a scratch directory
the test user can write), listens on a free port, and is ready when its log says "Server
listening on". ``stop()`` ends the daemon *and every process its sessions left behind*: the
daemon's environment and (through ``SetEnv``) every session's environment carry a unique tag,
found again in ``/proc/*/environ``.

    sshd = Sshd.start(user=ensure_test_user(), client_key=make_client_key(tmpdir),
                      force_command=f"{sshrec_executable()}")
    result = sshd.client().run("echo hi")
    sshd.stop()

Nothing here depends on sshrec except ``sshrec_executable()`` and the spool helpers at the
end, so ``sshrec serve`` tests or any other SSH test can reuse it.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from ptydriver import PtyProcess

TEST_USER = "sshrec-test"
SECOND_TEST_USER = "sshrec-test2"  # for what two users on one host must not see of each other
HOST = "127.0.0.1"
DAEMON_TAG_VAR = "SSHREC_E2E_DAEMON"
SESSION_TAG_VAR = "SSHREC_E2E_SESSION"
PRIVSEP_DIR = Path("/run/sshd")
_SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
_SFTP_SERVER_CANDIDATES = (
    "/usr/lib/openssh/sftp-server",  # Debian, Ubuntu
    "/usr/libexec/openssh/sftp-server",  # Fedora, RHEL
    "/usr/libexec/sftp-server",  # Arch, Alpine, BSDs
    "/usr/lib/ssh/sftp-server",
)

# The end of the output when a shell waits at its prompt (bash/sh "$ "/"# ", zsh "% ").
SHELL_PROMPT = re.compile(rb"[$#%>] $")

T = TypeVar("T")


class HarnessError(RuntimeError):
    """The harness itself could not do its job (sshd would not start, user not creatable...)."""


# -- small utilities ------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    describe: Callable[[], str] | str = "condition",
    interval: float = 0.02,
) -> T:
    """Poll ``condition`` until it returns something truthy, at most ``timeout`` seconds.

    Returns that value; raises AssertionError naming what was awaited otherwise.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = describe() if callable(describe) else describe
            raise AssertionError(f"timed out after {timeout:g}s waiting for {text}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def find_sshd() -> str | None:
    return shutil.which("sshd", path=_SBIN_PATH)


def find_sftp_server() -> str | None:
    for candidate in _SFTP_SERVER_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def openssh_missing() -> str | None:
    """Why end-to-end SSH tests cannot run here, or None when they can."""
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"OpenSSH client tool {tool!r} not on PATH (apt-get install openssh-client)"
    if find_sshd() is None:
        return "OpenSSH server not installed (apt-get install openssh-server)"
    return None


def unprivileged_pty_problem() -> str | None:
    """Why an sshd running as this (non-root) user cannot give sessions a pty, or None.

    sshd chowns a session's pty to group "tty"; only root can, unless devpts already creates
    ptys in that group (mount option gid=5, usual on hosts, often missing in containers).
    """
    if os.geteuid() == 0:
        return None
    try:
        tty_gid = grp.getgrnam("tty").gr_gid
    except KeyError:
        return None  # sshd then keeps the user's own group
    master, slave = os.openpty()
    try:
        pty_gid = os.fstat(slave).st_gid
    finally:
        os.close(master)
        os.close(slave)
    if pty_gid == tty_gid or tty_gid in os.getgroups():
        return None
    return (
        "unprivileged sshd cannot allocate ptys here: devpts creates them in group "
        f"{pty_gid}, not tty ({tty_gid}) (mount -o remount,gid=5 /dev/pts, or run as root)"
    )


def sshrec_executable() -> Path:
    """The console script of the venv running the tests (reachable by the test user)."""
    return Path(sys.executable).parent / "sshrec"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _run(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # type: ignore[call-overload]
        list(argv), capture_output=True, text=True, timeout=60, **kwargs
    )
    if result.returncode != 0:
        raise HarnessError(
            f"{shlex.join(argv)} failed with {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result  # type: ignore[no-any-return]


def show(result: subprocess.CompletedProcess[bytes], tail: int = 3000) -> str:
    """A finished client run for an assertion message: status and the ends of its output."""
    return f"rc={result.returncode}\nstdout={result.stdout[-tail:]!r}\nstderr={result.stderr[-tail:]!r}"


# -- processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    uid: int
    cmdline: tuple[str, ...]

    def __str__(self) -> str:
        return f"pid {self.pid} (ppid {self.ppid}, uid {self.uid}): {shlex.join(self.cmdline)}"


def proc_info(pid: int) -> ProcInfo | None:
    """A live (non-zombie) process, or None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as handle:
            status = handle.read()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    if fields.get("State", "").startswith("Z"):
        return None
    return ProcInfo(
        pid=pid,
        ppid=int(fields.get("PPid", "0")),
        uid=int(fields.get("Uid", "0\t").split()[0]),
        cmdline=tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part),
    )


def all_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def processes_with_env(name: str, value: str) -> list[ProcInfo]:
    """Live processes whose initial environment has ``name=value`` (the readable ones)."""
    wanted = f"{name}={value}".encode()
    found = []
    for pid in all_pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if wanted in environ.split(b"\0"):
            info = proc_info(pid)
            if info is not None:
                found.append(info)
    return found


def processes_matching(predicate: Callable[[ProcInfo], bool]) -> list[ProcInfo]:
    found = []
    for pid in all_pids():
        info = proc_info(pid)
        if info is not None and predicate(info):
            found.append(info)
    return found


def kill_processes(find: Callable[[], list[ProcInfo]], timeout: float = 5.0) -> list[ProcInfo]:
    """SIGTERM (then, after half of ``timeout``, SIGKILL) whatever ``find`` returns, until it
    returns nothing. Returns the processes found alive at the start, for reporting."""
    initial = find()
    start = time.monotonic()
    while True:
        current = find()
        if not current:
            return initial
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise HarnessError("could not kill:\n" + "\n".join(map(str, current)))
        sig = signal.SIGTERM if elapsed < timeout / 2 else signal.SIGKILL
        for info in current:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(info.pid, sig)
        time.sleep(0.02)


# -- the user sessions log in as -------------------------------------------------------------


@dataclass(frozen=True)
class TestUser:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    privileged: bool  # True: sshd runs as root, the user is a dedicated account

    __test__ = False  # not a pytest test class

    @property
    def mode(self) -> str:
        if self.privileged:
            return f"privileged sshd (root), logins as dedicated user {self.name!r}"
        return f"unprivileged sshd running as {self.name!r}, logins as that same user"

    @classmethod
    def from_passwd(cls, entry: pwd.struct_passwd, privileged: bool) -> TestUser:
        return cls(
            name=entry.pw_name,
            uid=entry.pw_uid,
            gid=entry.pw_gid,
            home=entry.pw_dir,
            shell=entry.pw_shell or "/bin/sh",
            privileged=privileged,
        )


def _shadow_password(name: str) -> str | None:
    try:
        with open("/etc/shadow", encoding="utf-8") as handle:
            for line in handle:
                parts = line.split(":")
                if parts[0] == name and len(parts) > 1:
                    return parts[1]
    except OSError:
        return None
    return None


def ensure_test_user(name: str = TEST_USER) -> TestUser:
    """As root: the dedicated login user, created on first use. Otherwise: the current user."""
    if os.geteuid() != 0:
        return TestUser.from_passwd(pwd.getpwuid(os.geteuid()), privileged=False)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        # '*' rather than useradd's default '!': with UsePAM no, sshd refuses a *locked*
        # account ("!"), even for public-key logins; '*' only means "no password".
        useradd = ["useradd", "--system", "--create-home", "--shell", "/bin/bash"]
        useradd += ["--password", "*", "--comment", "sshrec end-to-end tests", name]
        result = subprocess.run(useradd, capture_output=True, text=True, timeout=60)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:  # not a concurrent creation either
            raise HarnessError(
                f"useradd {name} failed ({result.returncode}): {result.stderr.strip()}"
            ) from None
    if (_shadow_password(name) or "").startswith("!"):
        _run(["usermod", "--password", "*", name])
    if not Path(entry.pw_shell).name.endswith("sh"):
        _run(["usermod", "--shell", "/bin/bash", name])
        entry = pwd.getpwnam(name)
    if not os.path.isdir(entry.pw_dir):
        owner = ["-o", str(entry.pw_uid), "-g", str(entry.pw_gid)]
        _run(["install", "-d", *owner, "-m", "0755", entry.pw_dir])
    return TestUser.from_passwd(entry, privileged=True)


# -- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientKey:
    private: Path
    public: Path
    public_line: str  # "ssh-ed25519 AAAA... comment"
    fingerprint: str  # "SHA256:...", the second field of ssh-keygen -lf
    key_type: str  # "ssh-ed25519"


def generate_key(path: Path, comment: str) -> None:
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def fingerprint_of(public_key: Path) -> str:
    return _run(["ssh-keygen", "-lf", str(public_key)]).stdout.split()[1]


def make_client_key(directory: Path, comment: str = "sshrec-e2e-client") -> ClientKey:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "id_ed25519"
    generate_key(private, comment)
    public = private.with_suffix(".pub")
    line = public.read_text().strip()
    return ClientKey(
        private=private,
        public=public,
        public_line=line,
        fingerprint=fingerprint_of(public),
        key_type=line.split()[0],
    )


# -- the client -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SshClient:
    """The real OpenSSH client, configured only by its command line (-F /dev/null)."""

    port: int
    user: str
    key: ClientKey
    known_hosts: Path
    host: str = HOST

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}"

    def remote(self, path: str | os.PathLike[str]) -> str:
        """``user@host:path`` for scp."""
        return f"{self.target}:{os.fspath(path)}"

    def options(self) -> list[str]:
        """Options shared by ssh, scp and sftp (port excluded: ssh says -p, the others -P)."""
        opts = {
            "IdentitiesOnly": "yes",
            "IdentityAgent": "none",
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "BatchMode": "yes",
            "ConnectTimeout": "10",
            "ControlMaster": "no",
            "ControlPath": "none",
            "ForwardAgent": "no",
            "ForwardX11": "no",
            "LogLevel": "ERROR",  # no "Connection closed" chatter on stderr
        }
        argv = ["-F", "/dev/null", "-i", str(self.key.private)]
        for key, value in opts.items():
            argv += ["-o", f"{key}={value}"]
        return argv

    def env(self, term: str | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("SSH_AUTH_SOCK", "SSH_AGENT_PID", "DISPLAY", "SSH_ASKPASS")
        }
        if term is not None:
            env["TERM"] = term
        return env

    def ssh_argv(
        self, command: str | None = None, *, tty: bool = False, extra: Sequence[str] = ()
    ) -> list[str]:
        """``ssh`` with ``-tt`` (tty) or ``-T``; ``command`` None asks for a login shell."""
        argv = [
            "ssh",
            *self.options(),
            "-p",
            str(self.port),
            "-tt" if tty else "-T",
            *extra,
            self.target,
        ]
        if command is not None:
            argv += ["--", command]
        return argv

    def run(
        self,
        command: str,
        *,
        input: bytes | None = None,
        timeout: float = 60.0,
        tty: bool = False,
        extra: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[bytes]:
        """``ssh host command``; stdin is ``input`` or /dev/null. ``tty`` adds -tt: a remote
        pty with a 0x0 window, since the local side has no terminal."""
        return subprocess.run(
            self.ssh_argv(command, tty=tty, extra=extra),
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            timeout=timeout,
            env=self.env(),
        )

    def popen(self, command: str | None, *, tty: bool = False, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start ``ssh`` in the background; the caller kills and reaps it."""
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            self.ssh_argv(command, tty=tty), env=self.env(), **kwargs
        )

    def spawn_pty(
        self,
        command: str | None = None,
        *,
        cols: int = 80,
        rows: int = 24,
        term: str = "xterm-256color",
    ) -> PtyProcess:
        """``ssh -tt`` on a new pseudo-terminal of cols x rows, driven by the test."""
        return PtyProcess(self.ssh_argv(command, tty=True), env=self.env(term), cols=cols, rows=rows)

    def scp_argv(self, *args: str, legacy: bool = False) -> list[str]:
        """``scp`` (SFTP protocol; ``legacy`` adds -O for the old rcp protocol)."""
        return ["scp", *self.options(), "-P", str(self.port), *(["-O"] if legacy else []), *args]

    def sftp_argv(self, batch_file: str | os.PathLike[str]) -> list[str]:
        return [
            "sftp",
            *self.options(),
            "-P",
            str(self.port),
            "-b",
            os.fspath(batch_file),
            self.target,
        ]


# -- the daemon -----------------------------------------------------------------------------


def _quote_setenv(name: str, value: str) -> str:
    item = f"{name}={value}"
    if re.fullmatch(r"[A-Za-z0-9_=/.,:+@%-]+", item):
        return item
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Sshd:
    """One running sshd. Build it with :meth:`start`; always :meth:`stop` it."""

    user: TestUser
    client_key: ClientKey
    workdir: Path
    port: int
    config_path: Path
    log_path: Path
    spool: Path  # exported to every session as SSHREC_HOME
    scratch: Path  # a directory the test user may write to
    host_key: Path
    force_command: str | None
    tag: str
    process: subprocess.Popen[bytes]
    keep_workdir: bool = False
    leftovers: list[ProcInfo] = field(default_factory=list)  # killed by stop()
    _log_handle: IO[bytes] | None = None
    _stopped: bool = False

    @classmethod
    def start(
        cls,
        *,
        user: TestUser,
        client_key: ClientKey,
        force_command: str | None = None,
        set_env: Mapping[str, str] | None = None,
        options: Mapping[str, str | None] | None = None,
        extra_config: Sequence[str] = (),
        authorized_keys: Sequence[str] | None = None,
        keep_workdir: bool = False,
        startup_timeout: float = 15.0,
        other_users: Sequence[TestUser] = (),
    ) -> Sshd:
        """Start sshd -D -e with a fresh directory, host key and port.

        ``force_command``: the ForceCommand line, or None for none.
        ``set_env``: more variables for every session (besides SSHREC_HOME and the tag).
        ``options``: sshd_config keywords overriding the defaults (None drops a default).
        ``extra_config``: raw lines appended at the end (e.g. Match blocks).
        ``authorized_keys``: lines for the AuthorizedKeysFile (default: the client key).
        ``other_users``: more accounts allowed in (same key file); ``client(user=...)``.
        """
        sshd_path = find_sshd()
        if sshd_path is None:
            raise HarnessError("sshd not found (apt-get install openssh-server)")
        if user.privileged:
            _ensure_privsep()
        workdir = Path(tempfile.mkdtemp(prefix="sshrec-sshd-"))
        try:
            return cls._start_in(
                workdir,
                sshd_path,
                user=user,
                client_key=client_key,
                force_command=force_command,
                set_env=set_env or {},
                options=options or {},
                extra_config=extra_config,
                authorized_keys=authorized_keys,
                keep_workdir=keep_workdir,
                startup_timeout=startup_timeout,
                other_users=other_users,
            )
        except BaseException:
            if not keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            raise

    @classmethod
    def _start_in(
        cls,
        workdir: Path,
        sshd_path: str,
        *,
        user: TestUser,
        client_key: ClientKey,
        force_command: str | None,
        set_env: Mapping[str, str],
        options: Mapping[str, str | None],
        extra_config: Sequence[str],
        authorized_keys: Sequence[str] | None,
        keep_workdir: bool,
        startup_timeout: float,
        other_users: Sequence[TestUser],
    ) -> Sshd:
        # The test user must traverse the directory (authorized_keys is read as that user).
        workdir.chmod(0o755)
        host_key = workdir / "ssh_host_ed25519_key"
        generate_key(host_key, "sshrec-e2e-host")
        auth_keys = workdir / "authorized_keys"
        auth_keys.write_text("\n".join(authorized_keys or [client_key.public_line]) + "\n")
        auth_keys.chmod(0o644)
        spool = workdir / "spool"
        spool.mkdir(mode=0o700)
        scratch = workdir / "scratch"
        scratch.mkdir(mode=0o755)
        if user.privileged:
            for path in (spool, scratch):
                os.chown(path, user.uid, user.gid)
        tag = uuid.uuid4().hex
        # What `sshrec setup` would write from `sshd -T`: the key file sshd reads.
        sshrec_config = workdir / "sshrec.toml"
        sshrec_config.write_text(f"authorized_keys_file = {json.dumps(str(auth_keys))}\n")
        sshrec_config.chmod(0o644)
        env_lines = {"SSHREC_HOME": str(spool), "SSHREC_CONFIG": str(sshrec_config), SESSION_TAG_VAR: tag,
                     **set_env}
        log_path = workdir / "sshd.log"
        config_path = workdir / "sshd_config"
        sftp_server = find_sftp_server()

        last_log = ""
        for _attempt in range(5):  # a free port can be taken between probing and binding
            port = free_port()
            settings: dict[str, str | None] = {
                "Port": str(port),
                "ListenAddress": HOST,
                "AddressFamily": "inet",
                "HostKey": str(host_key),
                "PidFile": "none",
                "UsePAM": "no",
                "StrictModes": "no",
                "PubkeyAuthentication": "yes",
                "PasswordAuthentication": "no",
                "KbdInteractiveAuthentication": "no",
                "HostbasedAuthentication": "no",
                "AuthenticationMethods": "publickey",
                "AuthorizedKeysFile": str(auth_keys),
                "AllowUsers": " ".join([user.name, *(u.name for u in other_users)]),
                "PermitRootLogin": "no" if user.privileged else None,
                "ExposeAuthInfo": "yes",
                "LogLevel": "DEBUG3",
                "PrintMotd": "no",
                "PrintLastLog": "no",
                "UseDNS": "no",
                "X11Forwarding": "no",
                "AllowAgentForwarding": "no",
                "AllowTcpForwarding": "no",
                "LoginGraceTime": "30",
                "Subsystem": f"sftp {sftp_server}" if sftp_server else None,
                "SetEnv": " ".join(_quote_setenv(k, v) for k, v in env_lines.items()),
                "ForceCommand": force_command,
            }
            settings.update(options)
            lines = [f"{key} {value}" for key, value in settings.items() if value is not None]
            config_path.write_text(
                "# written by tests/sshd_harness.py\n" + "\n".join([*lines, *extra_config]) + "\n"
            )
            log_handle = open(log_path, "ab")  # noqa: SIM115 - closed by stop()
            process = subprocess.Popen(
                [sshd_path, "-D", "-e", "-f", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=log_handle,
                env={"PATH": _SBIN_PATH, DAEMON_TAG_VAR: tag},
                start_new_session=True,
            )
            sshd = cls(
                user=user,
                client_key=client_key,
                workdir=workdir,
                port=port,
                config_path=config_path,
                log_path=log_path,
                spool=spool,
                scratch=scratch,
                host_key=host_key,
                force_command=force_command,
                tag=tag,
                process=process,
                keep_workdir=keep_workdir,
                _log_handle=log_handle,
            )
            listening = re.compile(rf"Server listening on {re.escape(HOST)} port {port}\b")
            deadline = time.monotonic() + startup_timeout
            while process.poll() is None and time.monotonic() < deadline:
                if listening.search(sshd.log_text()):
                    sshd._write_known_hosts()
                    return sshd
                time.sleep(0.01)
            last_log = sshd.log_text()
            sshd._stop_daemon(remove=False)
            if "Address already in use" not in last_log:
                break
        raise HarnessError(f"sshd did not start listening (config {config_path}):\n{_tail(last_log, 60)}")

    # -- what tests use ---------------------------------------------------------------------

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    def _write_known_hosts(self) -> None:
        public = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[{HOST}]:{self.port} {public[0]} {public[1]}\n")

    def client(self, key: ClientKey | None = None, user: TestUser | None = None) -> SshClient:
        return SshClient(
            port=self.port,
            user=(user or self.user).name,
            key=key or self.client_key,
            known_hosts=self.known_hosts,
        )

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_excerpt(self, lines: int = 80, interesting_only: bool = True) -> str:
        """The end of the sshd log; by default without the per-packet DEBUG3 noise."""
        text = self.log_text()
        if interesting_only:
            noise = re.compile(
                r"debug3: (receive packet|send packet|channel \d+: (rcvd adjust|"
                r"will not send data|window \d+ sent adjust)|ssh_packet_)|"
                r"debug2: channel \d+: (rcvd adjust|window)"
            )
            text = "\n".join(line for line in text.splitlines() if not noise.search(line))
        return _tail(text, lines)

    def pty_problem(self) -> str | None:
        """Why ``ssh -tt`` sessions cannot work on this daemon, or None (see
        :func:`unprivileged_pty_problem`)."""
        return None if self.user.privileged else unprivileged_pty_problem()

    def session_processes(self) -> list[ProcInfo]:
        """Live processes of this daemon's sessions (they carry the session tag)."""
        return processes_with_env(SESSION_TAG_VAR, self.tag)

    def daemon_processes(self) -> list[ProcInfo]:
        """The listener and every sshd process forked for a connection."""
        return processes_with_env(DAEMON_TAG_VAR, self.tag)

    def diagnostics(self, log_lines: int = 80) -> str:
        """For failure messages: the processes still running, the spool, the log's end."""
        spool_files = (
            sorted(str(p.relative_to(self.spool)) for p in self.spool.rglob("*") if p.is_file())
            if self.spool.exists()
            else []
        )
        procs = self.session_processes()
        return "\n".join(
            [
                f"sshd {self.user.mode}; port {self.port}; workdir {self.workdir}",
                f"ForceCommand: {self.force_command!r}",
                "session processes: " + ("none" if not procs else ""),
                *(f"  {p}" for p in procs),
                "spool files: " + (", ".join(spool_files) or "none"),
                f"sshd log (last {log_lines} lines, DEBUG3 packet noise dropped):",
                self.log_excerpt(log_lines),
            ]
        )

    def stop(self) -> None:
        """Stop the daemon, kill every process its sessions left, remove the directory."""
        if self._stopped:
            return
        self._stop_daemon(remove=not self.keep_workdir)

    def _stop_daemon(self, remove: bool) -> None:
        self._stopped = True
        try:
            if self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGTERM)
                    self.process.wait(timeout=5)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=5)
            # Connection handlers run in their own sessions and outlive the listener; user
            # sessions have their own sessions too. Both are found by their tags.
            self.leftovers = kill_processes(lambda: self.daemon_processes() + self.session_processes())
        finally:
            if self._log_handle is not None:
                self._log_handle.close()
                self._log_handle = None
            if remove:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<Sshd port {self.port} force_command={self.force_command!r} {self.workdir}>"

    def __enter__(self) -> Sshd:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _ensure_privsep() -> None:
    """sshd running as root chroots its pre-auth child into /run/sshd."""
    if not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        pwd.getpwnam("sshd")
    except KeyError:
        raise HarnessError("privilege separation user 'sshd' is missing (reinstall openssh-server)") from None


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


class SshdFactory:
    """Starts daemons for one test and stops all of them at its end (the fixture's object)."""

    def __init__(self, user: TestUser, client_key: ClientKey) -> None:
        self.user = user
        self.client_key = client_key
        self.started: list[Sshd] = []

    def __call__(self, force_command: str | None = None, **kwargs: object) -> Sshd:
        sshd = Sshd.start(
            user=self.user,
            client_key=self.client_key,
            force_command=force_command,
            **kwargs,  # type: ignore[arg-type]
        )
        self.started.append(sshd)
        return sshd

    def stop_all(self) -> None:
        errors = []
        for sshd in self.started:
            try:
                sshd.stop()
            except Exception as exc:  # stop the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]


# -- reading what sshrec wrote into a spool --------------------------------------------------


def spool_record_files(spool: Path) -> list[Path]:
    """Every recordings/YYYY/MM/DD/<id>.json (temporary files excluded)."""
    root = spool / "recordings"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*/*/*/*.json") if ".tmp." not in p.name)


def read_json(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise AssertionError(f"{path}: not a JSON object")
    return data


def wait_for_records(
    spool: Path,
    count: int,
    *,
    final: bool = True,
    timeout: float = 15.0,
    describe: Callable[[], str] | None = None,
) -> list[dict[str, object]]:
    """Wait until the spool holds ``count`` records (all past "recording" if ``final``)."""

    def ready() -> list[dict[str, object]] | None:
        records = []
        for path in spool_record_files(spool):
            try:
                records.append(read_json(path))
            except (OSError, ValueError):  # replaced while reading: look again
                return None
        if len(records) != count:
            return None
        if final and any(r.get("status") == "recording" for r in records):
            return None
        return records

    def what() -> str:
        files = spool_record_files(spool)
        statuses = []
        for path in files:
            try:
                statuses.append(f"{path.name}: {read_json(path).get('status')}")
            except (OSError, ValueError) as exc:
                statuses.append(f"{path.name}: unreadable ({exc})")
        text = f"{count} {'finished ' if final else ''}record(s) in {spool}; found {len(files)}: {statuses}"
        return text + ("\n" + describe() if describe else "")

    return wait_until(ready, timeout, what, interval=0.05)


def cast_events(path: Path) -> tuple[dict[str, object], list[list[object]]]:
    """(header, events) of an asciicast v2/v3 file; every line must be complete JSON."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise AssertionError(f"{path}: empty cast")
    header = json.loads(lines[0])
    events = [json.loads(line) for line in lines[1:] if line.strip()]
    return header, events


def cast_output(path: Path) -> str:
    """All output ("o") event data of a cast, concatenated."""
    _, events = cast_events(path)
    return "".join(str(e[2]) for e in events if len(e) >= 3 and e[1] == "o")
