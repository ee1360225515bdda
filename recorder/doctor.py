"""``sshrec doctor``: the ways around recording on this host, each with how to close it.

A ForceCommand records what it runs, but sshd offers paths that never reach it (forwarding,
~/.ssh/rc), settings that blind it (ExposeAuthInfo off, user environment), and login shells
that run a file the user controls before it (Debian's bash reads ~/.bashrc in the ``bash -c``
that starts the ForceCommand: one ``exec bash -i`` there and the session is unrecorded). The
checks read sshd's effective settings for one user (``sshd -T -C user=...``, so Match blocks
apply; DisableForwarding overrides the individual forwarding settings) and the files
themselves.
"""

from __future__ import annotations

import fnmatch
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sshrec.schema import spool
from sshrec.schema.settings import Settings

OPEN, OK, UNKNOWN = "open", "ok", "unknown"
DANGEROUS_ENV = ("LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
                 "SSHREC_HOME", "SSHREC_DB", "SSHREC_CONFIG", "BASH_ENV", "ENV", "PATH", "SHELLOPTS",
                 "PS4", "SHELL", "HOME")
# What a shell reads, even for `SHELL -c COMMAND`, from files the user may write.
SHELL_FILES = {"zsh": (".zshenv",), "csh": (".cshrc",), "tcsh": (".tcshrc", ".cshrc"),
               "fish": (".config/fish/config.fish",)}
SAFE_SHELLS = ("sh", "dash", "ksh", "mksh", "ash", "busybox")


@dataclass
class Finding:
    check: str
    status: str  # open, ok, unknown
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class SshdConfig:
    """sshd's effective settings for one connection (``sshd -T``: lower-case keywords)."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values

    def get(self, name: str, default: str = "") -> str:
        found = self.values.get(name.lower())
        return found[0] if found else default

    def all(self, name: str) -> list[str]:
        return self.values.get(name.lower(), [])

    def yes(self, name: str) -> bool:
        return self.get(name).lower() not in ("no", "none", "")


def read_sshd_config(user: str, config_file: str | None) -> SshdConfig:
    """``sshd -T`` for ``user`` connecting from 127.0.0.1; raises RuntimeError with sshd's words."""
    sshd = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", ""))
    if sshd is None:
        raise RuntimeError("sshd is not installed here")
    argv = [sshd, "-T", "-C", f"user={user},host=localhost,addr=127.0.0.1"]
    if config_file:
        argv += ["-f", config_file]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise RuntimeError(f"sshd -T failed: {reason}" + ("" if os.geteuid() == 0 else " (run doctor as root)"))
    values: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key.lower(), []).append(value.strip())
    return SshdConfig(values)


# -- the checks: each returns its findings ---------------------------------------------------


def check_force_command(config: SshdConfig) -> list[Finding]:
    command = config.get("forcecommand", "none")
    if command == "none":
        return [Finding("force-command", OPEN, "no ForceCommand: sessions run without the recorder",
                        "ForceCommand /usr/local/bin/sshrec (see: sshrec setup)")]
    words = command.split()
    if not any(os.path.basename(w) == "sshrec" or w == "sshrec" for w in words[:3]):
        return [Finding("force-command", OPEN, f"the ForceCommand is {command!r}, not sshrec",
                        f"ForceCommand /usr/local/bin/sshrec -- {command}")]
    return [Finding("force-command", OK, f"ForceCommand {command}")]


def check_forwarding(config: SshdConfig) -> list[Finding]:
    if config.get("disableforwarding").lower() == "yes":
        return [Finding("forwarding", OK, "DisableForwarding yes")]
    holes = []
    tcp = config.get("allowtcpforwarding", "yes").lower()
    if tcp in ("yes", "all", "local") and config.get("permitopen", "any").lower() != "none":
        holes.append("local TCP forwarding and ssh -W (AllowTcpForwarding, PermitOpen)")
    if tcp in ("yes", "all", "remote") and config.get("permitlisten", "any").lower() != "none":
        holes.append("remote TCP forwarding (AllowTcpForwarding, PermitListen)")
    if config.get("allowstreamlocalforwarding", "yes").lower() != "no":
        holes.append("Unix socket forwarding (AllowStreamLocalForwarding)")
    if config.get("permittunnel", "no").lower() != "no":
        holes.append("tun/tap tunnels (PermitTunnel)")
    if config.get("x11forwarding", "no").lower() == "yes":
        holes.append("X11 forwarding (X11Forwarding)")
    if not holes:
        return [Finding("forwarding", OK, "no forwarding allowed")]
    return [Finding("forwarding", OPEN,
                    "connections that only forward (ssh -N -L/-R, -W, ProxyJump through this host) never "
                    "run the ForceCommand, so nothing of them is recorded: " + "; ".join(holes),
                    "DisableForwarding yes (for these users, in a Match block)")]


def check_auth_info(config: SshdConfig, settings: Settings) -> list[Finding]:
    found = []
    if config.get("exposeauthinfo").lower() != "yes":
        found.append(Finding("expose-auth-info", OPEN, "ExposeAuthInfo is off: records have no key "
                             "fingerprint and a key's command= restriction cannot be honoured",
                             "ExposeAuthInfo yes"))
    else:
        found.append(Finding("expose-auth-info", OK, "ExposeAuthInfo yes"))
    keys_command = config.get("authorizedkeyscommand", "none")
    if keys_command != "none":
        found.append(Finding("authorized-keys-command", UNKNOWN,
                             f"keys also come from AuthorizedKeysCommand {keys_command}: their options "
                             "(command=) are unknown to sshrec and not enforced under the ForceCommand",
                             "keep restricted keys in the key files, or give those users a ForceCommand "
                             "with the command: sshrec -- COMMAND"))
    sshd_files = " ".join(config.all("authorizedkeysfile")) or ".ssh/authorized_keys .ssh/authorized_keys2"
    if sshd_files.split() != settings.authorized_keys_file.split():
        found.append(Finding("authorized-keys-file", OPEN,
                             f"sshd reads keys from {sshd_files!r} but sshrec looks in "
                             f"{settings.authorized_keys_file!r}: a key's command= there is not honoured",
                             f'authorized_keys_file = "{sshd_files}" in the sshrec config'))
    return found


def check_user_settings(config: SshdConfig) -> list[Finding]:
    found = []
    if config.get("permituserrc", "yes").lower() == "yes":
        found.append(Finding("user-rc", OPEN, "PermitUserRC yes: ~/.ssh/rc runs before the ForceCommand, "
                             "unrecorded, with the user's own commands", "PermitUserRC no"))
    if config.get("permituserenvironment", "no").lower() != "no":
        found.append(Finding("user-environment", OPEN, "PermitUserEnvironment: ~/.ssh/environment and "
                             "environment= can set LD_PRELOAD, PYTHONPATH or SSHREC_HOME for the recorder",
                             "PermitUserEnvironment no"))
    risky = sorted({name for pattern in " ".join(config.all("acceptenv")).split()
                    for name in DANGEROUS_ENV if fnmatch.fnmatchcase(name, pattern)})
    if risky:
        found.append(Finding("accept-env", OPEN, f"AcceptEnv lets the client set {', '.join(risky)}, "
                             "which change what the recorder or the shell runs",
                             "AcceptEnv LANG LC_* (nothing that starts with LD_, PYTHON, SSHREC_)"))
    if not found:
        found.append(Finding("user-settings", OK, "PermitUserRC no, no user environment, safe AcceptEnv"))
    return found


def check_shell(user: pwd.struct_passwd, settings_shell: str | None,
                bash_reads_rc: Callable[[], bool]) -> list[Finding]:
    """sshd starts the ForceCommand as ``SHELL -c``: what that shell reads first must not be
    the user's to write."""
    shell = user.pw_shell or "/bin/sh"
    name = os.path.basename(shell)
    if name in SAFE_SHELLS:
        return [Finding("login-shell", OK, f"{shell} reads no startup file for -c")]
    if name in ("nologin", "false"):
        return [Finding("login-shell", UNKNOWN, f"{user.pw_name}'s shell is {shell}: sshd cannot start the "
                        "ForceCommand with it, so this user cannot log in at all")]
    files = (".bashrc",) if name == "bash" and bash_reads_rc() else SHELL_FILES.get(name, ())
    if name == "bash" and not files:
        return [Finding("login-shell", OK, f"{shell} reads no ~/.bashrc for -c")]
    if not files:
        return [Finding("login-shell", UNKNOWN, f"{shell}: not known what it reads for -c")]
    writable = [f for f in files if user_can_change(os.path.join(user.pw_dir, f), user)]
    if not writable:
        read = ", ".join(files)
        return [Finding("login-shell", OK, f"{shell} reads {read}, which {user.pw_name} cannot change")]
    keep = "" if settings_shell else f' and shell = "{shell}" in the sshrec config (sessions still get {name})'
    return [Finding("login-shell", OPEN,
                    f"{shell} runs ~/{', ~/'.join(writable)} before the ForceCommand: {user.pw_name} can put "
                    "commands (exec bash -i) there that run unrecorded",
                    f"chsh -s /bin/sh {user.pw_name}{keep}; or make the file root-owned in a folder "
                    f"{user.pw_name} cannot write")]


def bash_reads_bashrc() -> bool:
    """Whether this bash reads ~/.bashrc for ``bash -c`` when started by sshd (Debian builds
    it with SSH_SOURCE_BASHRC). Tried, not guessed."""
    bash = shutil.which("bash")
    if bash is None:
        return False
    with tempfile.TemporaryDirectory(prefix="sshrec-doctor-") as home:
        marker = os.path.join(home, "read")
        with open(os.path.join(home, ".bashrc"), "w", encoding="utf-8") as handle:
            handle.write(f": > {marker}\n")
        env = {"HOME": home, "PATH": "/usr/bin:/bin", "SSH_CLIENT": "127.0.0.1 1 22"}
        subprocess.run([bash, "-c", "true"], env=env, capture_output=True, timeout=10, check=False)
        return os.path.exists(marker)


def user_can_change(path: str, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` can write ``path`` or put another file in its place."""
    try:
        info = os.stat(path)
        if info.st_uid == user.pw_uid or info.st_mode & 0o002:
            return True
    except FileNotFoundError:
        pass
    folder = os.path.dirname(path)
    try:
        parent = os.stat(folder)
    except OSError:
        return False
    return parent.st_uid == user.pw_uid or bool(parent.st_mode & 0o002 and not parent.st_mode & stat.S_ISVTX)


def check_sshrec_path(config: SshdConfig) -> list[Finding]:
    """The recorder, its Python and its package must be root's alone: whoever can write them
    can make them record nothing."""
    words = config.get("forcecommand", "none").split()
    executable = next((w for w in words if os.path.basename(w) == "sshrec"), None)
    if executable is None:
        return []
    path = shutil.which(executable) or executable
    problems = [p for p in (not_root_only(path), not_root_only(_interpreter(path))) if p]
    import sshrec

    package = not_root_only(os.path.dirname(sshrec.__file__ or ""))
    if package:
        problems.append(package)
    if problems:
        return [Finding("sshrec-path", OPEN, "; ".join(problems),
                        "install sshrec as root into a root-owned folder (e.g. /opt/sshrec) and link "
                        "/usr/local/bin/sshrec to it")]
    return [Finding("sshrec-path", OK, f"{path} and its Python are root's alone")]


def _interpreter(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            first = handle.readline()
    except OSError:
        return path
    return first[2:].split()[0].decode() if first.startswith(b"#!") else path


def not_root_only(path: str) -> str | None:
    """What makes ``path`` changeable by someone other than root, or None."""
    if not path:
        return None
    current = os.path.realpath(path)
    while True:
        try:
            info = os.stat(current)
        except OSError as exc:
            return f"{current}: {exc.strerror}"
        if info.st_uid != 0:
            return f"{current} belongs to uid {info.st_uid}, not root"
        if info.st_mode & 0o022 and not (stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
            return f"{current} is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def check_spool(settings: Settings) -> list[Finding]:
    home = settings.home
    if not os.path.isdir(home):
        return [Finding("spool", OPEN, f"{home} does not exist: sessions cannot be recorded",
                        f"sshrec setup --home {home}")]
    if not spool.is_shared(home):
        return [Finding("spool", OPEN, f"{home} is not set up for several users: only its owner's sessions "
                        "get recorded, or the first user of a day locks the others out",
                        f"sshrec setup --home {home}")]
    problems = []
    for path, owner, mode in ((home, 0, spool.SHARED_HOME_MODE), (spool.users_dir(home), 0, spool.USERS_MODE)):
        info = os.stat(path)
        if info.st_uid != owner or stat.S_IMODE(info.st_mode) != mode:
            problems.append(f"{path} is uid {info.st_uid} mode {stat.S_IMODE(info.st_mode):04o}, "
                            f"not root {mode:04o}")
    index = os.path.join(home, "index.db")
    if os.path.exists(index) and stat.S_IMODE(os.stat(index).st_mode) & 0o077:
        problems.append(f"{index} is readable by others: every user's commands and screen text")
    if problems:
        return [Finding("spool", OPEN, "; ".join(problems), f"sshrec setup --home {home}")]
    return [Finding("spool", OK, f"{home} is set up for every user; the index is root's alone")]


def check_chroot(config: SshdConfig) -> list[Finding]:
    chroot = config.get("chrootdirectory", "none")
    if chroot == "none":
        return []
    return [Finding("chroot", UNKNOWN, f"ChrootDirectory {chroot}: the ForceCommand runs inside it, where "
                    "sshrec and its spool must exist", "install sshrec inside the chroot, or no chroot")]


def diagnose(settings: Settings, user: str, config_file: str | None) -> list[Finding]:
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(f"no such user {user!r}") from None
    findings: list[Finding] = []
    try:
        config = read_sshd_config(user, config_file)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        findings.append(Finding("sshd-config", UNKNOWN, str(exc), "run as root, with --sshd-config FILE if "
                                "sshd does not read /etc/ssh/sshd_config"))
        config = None
    if config is not None:
        for check in (check_force_command, check_forwarding, check_user_settings, check_chroot,
                      check_sshrec_path):
            findings += check(config)
        findings += check_auth_info(config, settings)
    findings += check_shell(account, settings.shell, bash_reads_bashrc)
    findings += check_spool(settings)
    return findings
