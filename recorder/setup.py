"""``sshrec setup``: make SSHREC_HOME a spool that records every user and leaks nothing.

The layout (see :mod:`sshrec.schema.spool`): SSHREC_HOME owned by root, mode 0711; its
``users/`` folder root-owned, sticky and 1733 (anyone creates their own folder, nobody lists);
``users/<name>`` owned by that user, 0700; the index and recordings made by root, 0600/0700.

Setup is a plan of changes, each checked against what is on disk, then applied: a second run
changes nothing and says so. It never deletes a recording. A ``users/<name>`` folder owned by
someone else (squatting) is renamed to the squatter's own ``<squatter>~squat-XXXX`` (still
indexed as theirs) and a proper one is made for ``name``.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sshrec.schema import spool
from sshrec.schema.settings import DEFAULT_AUTHORIZED_KEYS, DEFAULT_CONFIG

NOLOGIN_SHELLS = ("nologin", "false", "sync", "shutdown", "halt")
UID_MIN_DEFAULT = 1000


class SetupError(Exception):
    """Setup cannot go on; the message says what to do."""


@dataclass
class Change:
    """One thing setup does (or, with --dry-run, would do)."""

    what: str
    apply: Callable[[], None] = field(repr=False)


@dataclass
class Plan:
    home: str
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sshd_lines: list[str] = field(default_factory=list)
    config_path: str = DEFAULT_CONFIG

    def add(self, what: str, apply: Callable[[], None]) -> None:
        self.changes.append(Change(what, apply))

    def apply(self) -> None:
        for change in self.changes:
            change.apply()


def _mode_text(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"


def _owner_text(uid: int, gid: int) -> str:
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return f"{_name_of(uid)}:{group}"


def ensure_dir(plan: Plan, path: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    """``path`` a real directory with this owner and mode (created when missing)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        plan.add(f"create {path} ({_owner_text(uid, gid)} {mode:04o})", lambda: _make_dir(path, mode, uid, gid))
        return
    if not stat.S_ISDIR(info.st_mode):
        raise SetupError(f"{path} exists and is not a directory (a symlink or file): move it away first")
    if (info.st_uid, info.st_gid) != (uid, gid):
        plan.add(f"owner of {path}: {_owner_text(info.st_uid, info.st_gid)} -> {_owner_text(uid, gid)}",
                 lambda: os.chown(path, uid, gid, follow_symlinks=False))
    if stat.S_IMODE(info.st_mode) != mode:
        plan.add(f"mode of {path}: {_mode_text(info.st_mode)} -> {mode:04o}", lambda: os.chmod(path, mode))


def _make_dir(path: str, mode: int, uid: int, gid: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    os.mkdir(path, 0o700)
    os.chown(path, uid, gid)
    os.chmod(path, mode)  # after chown: chown clears the sticky and set-id bits on some systems


def private_tree(plan: Plan, root: str) -> None:
    """Everything under ``root`` owned by root, folders 0700 and files 0600 (a flat spool from
    before setup: sessions of several users, readable now by root only)."""
    wrong = 0
    for _, info in _walk(root):
        want = spool.DIR_MODE if stat.S_ISDIR(info.st_mode) else spool.FILE_MODE
        if info.st_uid != 0 or info.st_gid != 0 or stat.S_IMODE(info.st_mode) != want:
            wrong += 1
    if wrong:
        plan.add(f"{root}: {wrong} file(s) and folder(s) given to root, 0700/0600 (recorded before setup)",
                 lambda: _privatize(root))


def _walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    try:
        yield root, os.lstat(root)
    except FileNotFoundError:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                yield path, info


def _privatize(root: str) -> None:
    for path, info in _walk(root):
        os.chown(path, 0, 0, follow_symlinks=False)
        os.chmod(path, spool.DIR_MODE if stat.S_ISDIR(info.st_mode) else spool.FILE_MODE)


def private_index(plan: Plan, home: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(home, "index.db" + suffix)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if (info.st_uid, info.st_gid) != (0, 0) or stat.S_IMODE(info.st_mode) != 0o600:
            was = f"{_owner_text(info.st_uid, info.st_gid)} {_mode_text(info.st_mode)}"
            plan.add(f"{path}: {was} -> root:root 0600 (the index holds every user's commands and screen text)",
                     lambda p=path: (os.chown(p, 0, 0), os.chmod(p, 0o600)))


def login_users(uid_min: int) -> list[pwd.struct_passwd]:
    """Accounts people log in with: uid from UID_MIN (login.defs) up, and a real shell."""
    found = []
    for entry in pwd.getpwall():
        shell = os.path.basename(entry.pw_shell or "")
        if entry.pw_uid >= uid_min and entry.pw_uid != 65534 and shell and shell not in NOLOGIN_SHELLS:
            found.append(entry)
    return sorted(found, key=lambda e: e.pw_name)


def uid_min() -> int:
    try:
        with open("/etc/login.defs", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                words = line.split()
                if len(words) == 2 and words[0] == "UID_MIN" and words[1].isdigit():
                    return int(words[1])
    except OSError:
        pass
    return UID_MIN_DEFAULT


def personal_folders(plan: Plan, home: str, names: list[str]) -> None:
    """``users/<name>`` for each account: made now so nobody can take the name first, and
    every existing one checked (owned by its user, closed to others)."""
    users = spool.users_dir(home)
    existing = {}
    try:
        for entry in os.scandir(users):
            existing[entry.name] = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        pass
    for name in sorted(set(names) | set(existing)):
        base = name.split("~", 1)[0]
        try:
            account = pwd.getpwnam(base)
        except KeyError:
            continue  # a folder of an account removed since: left as it is, still indexed
        path = spool.personal_dir(home, name)
        info = existing.get(name)
        if info is not None and (not stat.S_ISDIR(info.st_mode) or info.st_uid != account.pw_uid):
            squatter = _name_of(info.st_uid)
            aside = os.path.join(users, f"{squatter}~squat-{secrets.token_hex(4)}")
            plan.add(f"{path} belongs to {squatter}, not {base}: moved to {aside}",
                     lambda p=path, a=aside: os.rename(p, a))
            plan.warnings.append(f"{squatter} had taken the folder name of {base} in {users}")
            info = None
            if name != base:
                continue
        if info is None:
            plan.add(f"create {path} ({base} 0700)",
                     lambda p=path, a=account: _make_dir(p, spool.DIR_MODE, a.pw_uid, a.pw_gid))
        elif stat.S_IMODE(info.st_mode) != spool.DIR_MODE:
            plan.add(f"mode of {path}: {_mode_text(info.st_mode)} -> 0700",
                     lambda p=path: os.chmod(p, spool.DIR_MODE))


def _name_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def sshd_setting(name: str) -> str | None:
    """One value of the running sshd configuration (``sshd -T``), or None when unknown."""
    sshd = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", ""))
    if sshd is None:
        return None
    try:
        result = subprocess.run([sshd, "-T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == name.lower():
            return value.strip()
    return None


def config_file(plan: Plan, home: str, path: str) -> None:
    if os.path.exists(path):
        from sshrec.schema.settings import ConfigError, read_config

        try:
            configured = read_config(path, required=True).get("home")
        except ConfigError as exc:
            plan.warnings.append(f"{exc} (left as it is)")
            return
        if configured and os.path.abspath(str(configured)) != home:
            plan.warnings.append(f"{path} says home = {configured!r}, not {home!r}: recorders follow the file")
        return
    keys = sshd_setting("AuthorizedKeysFile") or DEFAULT_AUTHORIZED_KEYS
    text = (f"# sshrec settings, written by 'sshrec setup' on {time.strftime('%Y-%m-%d')}\n"
            f"home = {_toml_string(home)}\n"
            "# on_failure = \"deny\"    # refuse sessions that cannot be recorded (default: allow, warn)\n"
            "# The key files sshd reads (its AuthorizedKeysFile), for command= restrictions of keys:\n"
            f"authorized_keys_file = {_toml_string(keys)}\n")
    plan.add(f"write {path} (home = {home})", lambda: _write_public(path, text))


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_public(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def unreachable_part(path: str) -> str | None:
    """The first folder on the way to ``path`` (or the file) that other users cannot pass."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(2, len(parts) + 1):
        here = os.sep.join(parts[:i]) or os.sep
        try:
            mode = os.stat(here).st_mode
        except OSError:
            return here
        if not mode & stat.S_IXOTH or (i == len(parts) and not mode & stat.S_IROTH):
            return f"{here} (mode {_mode_text(mode)})"
    return None


def check_reachable(plan: Plan, executable: str) -> None:
    for what, path in (("sshrec", executable), ("its Python", sys.executable)):
        blocked = unreachable_part(path)
        if blocked:
            plan.warnings.append(
                f"users cannot run {what} at {path}: {blocked} is closed to them. Install sshrec where "
                "everyone can run it, e.g. python3 -m venv /opt/sshrec && /opt/sshrec/bin/pip install "
                "sshrec && ln -s /opt/sshrec/bin/sshrec /usr/local/bin/sshrec")


def sshd_lines(executable: str) -> list[str]:
    return [
        "# /etc/ssh/sshd_config.d/sshrec.conf, then reload sshd (systemctl reload ssh)",
        "ExposeAuthInfo yes",
        f"ForceCommand {executable}",
        "# on a gateway in front of sshproxy:",
        f"#ForceCommand {executable} -- /usr/sbin/sshproxy",
        "# sftp/scp must reach the recorder as a command, so an external sftp-server:",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    ]


def service_account(plan: Plan, name: str, home: str) -> tuple[int, int]:
    """The collector's own system user (made now, before the plan that gives it the spool,
    unless this is a dry run); (uid, gid), or (-1, -1) while it does not exist yet."""
    try:
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        pass
    argv = ["useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
            "--shell", "/usr/sbin/nologin", "--comment", "sshrec collector", name]
    plan.add(f"create the system user {name} (no login, no password)", lambda: _useradd(argv))
    return -1, -1


def _useradd(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise SetupError(f"useradd failed: {result.stderr.strip()}")


def make_collector_plan(home: str, config_path: str, executable: str, user: str, socket_path: str,
                        systemd_dir: str) -> Plan:
    """The secure deployment: a service user owns the spool (0700: recorded users cannot read
    or change a thing), a socket folder recorders reach, the systemd unit, the config."""
    if os.geteuid() != 0:
        raise SetupError("must run as root: it creates the collector's user and gives it the spool "
                         "(sudo sshrec setup --collector)")
    home = os.path.abspath(home)
    plan = Plan(home=home, config_path=config_path)
    uid, gid = service_account(plan, user, home)
    if uid < 0:
        plan.add(f"{home} and {os.path.dirname(socket_path)}: given to {user} (0700, 0755)",
                 lambda: _give_later(home, socket_path, user))
    else:
        ensure_dir(plan, home, 0o700, uid, gid)
        ensure_dir(plan, os.path.dirname(socket_path), 0o755, uid, gid)
        owned_tree(plan, os.path.join(home, "recordings"), uid, gid)
    unit = os.path.join(systemd_dir, "sshrec-collector.service")
    from .collector.unit import unit_text

    text = unit_text(user, executable, home, os.path.dirname(socket_path), needs_network(config_path))
    try:
        with open(unit, encoding="utf-8") as handle:
            if handle.read() != text:
                plan.warnings.append(f"{unit} differs from what setup would write: left as it is")
    except FileNotFoundError:
        plan.add(f"write {unit}", lambda: _write_public(unit, text))
    collector_config(plan, home, config_path, socket_path)
    check_reachable(plan, executable)
    plan.sshd_lines = sshd_lines(executable) + [
        "# then: systemctl daemon-reload && systemctl enable --now sshrec-collector"]
    return plan


def _give_later(home: str, socket_path: str, user: str) -> None:
    entry = pwd.getpwnam(user)
    for path, mode in ((home, 0o700), (os.path.dirname(socket_path), 0o755)):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, mode)


def owned_tree(plan: Plan, root: str, uid: int, gid: int) -> None:
    """Recordings already in the spool (direct mode before): the collector's from now on."""
    wrong = sum(1 for _, info in _walk(root) if (info.st_uid, info.st_gid) != (uid, gid))
    if wrong:
        plan.add(f"{root}: {wrong} file(s) and folder(s) given to the collector's user",
                 lambda: [os.chown(path, uid, gid, follow_symlinks=False) for path, _ in _walk(root)])


def needs_network(config_path: str) -> bool:
    """Whether the config sends the collector over TCP: a PostgreSQL index or an object store."""
    from sshrec.schema.settings import ConfigError, read_config

    try:
        config = read_config(config_path, required=False)
    except ConfigError:
        return False  # collector_config says what is wrong with it
    return bool(config.get("storage")) or str(config.get("db") or "").startswith("postgresql")


def collector_config(plan: Plan, home: str, path: str, socket_path: str) -> None:
    if os.path.exists(path):
        from sshrec.schema.settings import ConfigError, read_config

        try:
            config = read_config(path, required=True)
        except ConfigError as exc:
            plan.warnings.append(f"{exc} (left as it is)")
            return
        if config.get("sink") != "collector":
            plan.warnings.append(f'{path} has no sink = "collector": recorders still write the spool '
                                 f'themselves; add: sink = "collector" and collector_socket = "{socket_path}"')
        return
    keys = sshd_setting("AuthorizedKeysFile") or DEFAULT_AUTHORIZED_KEYS
    text = (f"# sshrec settings, written by 'sshrec setup --collector' on {time.strftime('%Y-%m-%d')}\n"
            f"home = {_toml_string(home)}\n"
            'sink = "collector"                 # recorders stream to the collector, which owns the spool\n'
            f"collector_socket = {_toml_string(socket_path)}\n"
            'on_failure = "deny"                # no session runs unrecorded\n'
            f"authorized_keys_file = {_toml_string(keys)}\n")
    plan.add(f"write {path} (sink = collector)", lambda: _write_public(path, text))


def make_plan(home: str, config_path: str, executable: str, precreate: list[str]) -> Plan:
    if os.geteuid() != 0:
        raise SetupError("must run as root: it gives the spool to root and a folder in it to each user "
                         "(sudo sshrec setup)")
    home = os.path.abspath(home)
    plan = Plan(home=home, config_path=config_path)
    ensure_dir(plan, home, spool.SHARED_HOME_MODE)
    ensure_dir(plan, spool.users_dir(home), spool.USERS_MODE)
    private_tree(plan, os.path.join(home, "recordings"))
    private_index(plan, home)
    personal_folders(plan, home, precreate)
    config_file(plan, home, config_path)
    blocked = unreachable_part(os.path.dirname(home))
    if blocked:
        plan.warnings.append(f"users cannot reach {home}: {blocked} is closed to them; choose another --home")
    check_reachable(plan, executable)
    plan.sshd_lines = sshd_lines(executable)
    return plan
