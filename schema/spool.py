"""The spool layout: recordings/YYYY/MM/DD/<id>.cast and <id>.json under a spool directory.

A *spool* is any directory with ``recordings/`` below it. Directories are created 0700 and
files 0600: in direct mode a spool belongs to the user being recorded.

A *shared* spool (made by ``sshrec setup`` for a host with many users) is a root-owned,
non-listable SSHREC_HOME with a ``users/`` folder that is sticky and writable but not
readable by all (mode 1733, as /tmp without the listing). Each user's recorder creates and
owns ``users/<name>/``, a spool of its own: nobody else can list, read or change it, the
sticky bit keeps others from renaming or removing it, and since ``users/`` cannot be listed
nobody learns which users exist. A ``users/<name>`` that someone else made first (squatting)
is refused and the session goes to a fresh, unguessable ``users/<name>~XXXXXXXX``. Root (the
owner of SSHREC_HOME) reads every personal spool; whoever owns a recording's folder is the
user it belongs to, whatever its record claims.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable, Iterator

from .record import session_id_time

DIR_MODE = 0o700
FILE_MODE = 0o600
USERS = "users"
SHARED_HOME_MODE = 0o711  # others may pass through to users/, not list it
USERS_MODE = 0o1733  # sticky; anyone may create their own folder, nobody may list


class SpoolError(OSError):
    """A spool folder cannot be used safely; the message says why and what to do."""


def users_dir(home: str) -> str:
    return os.path.join(home, USERS)


def is_shared(home: str) -> bool:
    """True for a spool prepared by ``sshrec setup`` (it has the users/ folder)."""
    return os.path.isdir(users_dir(home))


def personal_dir(home: str, name: str) -> str:
    return os.path.join(home, USERS, name)


def claim_personal_dir(home: str, name: str, uid: int) -> tuple[str, str | None]:
    """This user's own spool under a shared ``home``: created on first use, checked every time.

    Returns (directory, note); the note says why a fallback folder was used. Only a real
    directory owned by ``uid`` and closed to others is accepted: never a symlink, never a
    folder someone else created first (the sticky users/ folder guarantees that what is ours
    stays ours once checked).
    """
    path = personal_dir(home, name)
    for _ in range(2):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            pass
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue  # removed between mkdir and lstat: try again
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid:
            if info.st_mode & 0o077:
                os.chmod(path, DIR_MODE)
            return path, None
        break
    else:
        raise SpoolError(f"{path} keeps disappearing")
    import tempfile

    fallback = tempfile.mkdtemp(prefix=f"{name}~", dir=users_dir(home))  # 0700, unguessable
    note = (f"{path} is not a folder of this user's (owner uid {info.st_uid}): recorded in "
            f"{fallback} instead; root can repair it with: sshrec setup --home {home}")
    return fallback, note


def spools_under(home: str) -> list[str]:
    """``home`` and every personal spool in its users/ folder: what the spool's owner reads."""
    found = [home]
    try:
        entries = sorted(os.scandir(users_dir(home)), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return found
    found.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
    return found


def recording_dir(home: str, session_id: str) -> str:
    day = time.gmtime(session_id_time(session_id))
    return os.path.join(home, "recordings", f"{day.tm_year:04d}", f"{day.tm_mon:02d}", f"{day.tm_mday:02d}")


def cast_path(home: str, session_id: str) -> str:
    return os.path.join(recording_dir(home, session_id), f"{session_id}.cast")


def record_path(home: str, session_id: str) -> str:
    return os.path.join(recording_dir(home, session_id), f"{session_id}.json")


def ensure_dir(path: str) -> None:
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)


def day_dirs(spools: Iterable[str]) -> Iterator[str]:
    """Every recordings/YYYY/MM/DD folder of the given spools, oldest day first in each."""
    for spool in spools:
        root = os.path.join(spool, "recordings")
        for year in _subdirs(root):
            for month in _subdirs(year):
                yield from _subdirs(month)


def _subdirs(path: str) -> list[str]:
    try:
        entries = os.scandir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    with entries:
        return sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))


def record_files_in(day_dir: str) -> list[str]:
    """The <id>.json session records in one day folder (temporary files excluded)."""
    try:
        names = os.listdir(day_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [os.path.join(day_dir, n) for n in sorted(names) if n.endswith(".json") and ".tmp." not in n]


def iter_record_files(spools: str | Iterable[str]) -> Iterator[str]:
    """Every <id>.json in the given spool(s), oldest day first."""
    for day in day_dirs([spools] if isinstance(spools, str) else spools):
        yield from record_files_in(day)


def find_session_files(spools: Iterable[str], session_id: str) -> str | None:
    """The <id>.cast of a session in the first of ``spools`` that has it."""
    for spool in spools:
        path = cast_path(spool, session_id)
        if os.path.exists(path):
            return path
    return None


def lock_path(home: str, session_id: str) -> str:
    """<id>.lock: the recorder holds an flock on it for as long as it runs."""
    return os.path.join(recording_dir(home, session_id), f"{session_id}.lock")


def recorder_alive_at(path: str) -> bool:
    """True while some process holds the lock file ``path``.

    Probing takes a shared lock for an instant, so a recorder must create and lock its
    <id>.lock (blocking LOCK_EX) before writing the first <id>.json. A lock file we may not
    open counts as held: better to leave a session 'recording' than to call it interrupted.
    """
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def recorder_alive(home: str, session_id: str) -> bool:
    """Whether the recorder of a session still runs (it holds <id>.lock)."""
    return recorder_alive_at(lock_path(home, session_id))
