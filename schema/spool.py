"""The spool layout: recordings/YYYY/MM/DD/<id>.cast and <id>.json under SSHREC_HOME.

Directories are created 0700 and files 0600: in direct mode the spool belongs to the user
being recorded; the collector owns a shared spool.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from .record import session_id_time

DIR_MODE = 0o700
FILE_MODE = 0o600


def recording_dir(home: str, session_id: str) -> str:
    day = time.gmtime(session_id_time(session_id))
    return os.path.join(home, "recordings", f"{day.tm_year:04d}", f"{day.tm_mon:02d}", f"{day.tm_mday:02d}")


def cast_path(home: str, session_id: str) -> str:
    return os.path.join(recording_dir(home, session_id), f"{session_id}.cast")


def record_path(home: str, session_id: str) -> str:
    return os.path.join(recording_dir(home, session_id), f"{session_id}.json")


def ensure_dir(path: str) -> None:
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)


def iter_record_files(home: str) -> Iterator[str]:
    """Every <id>.json in the spool, oldest day first."""
    root = os.path.join(home, "recordings")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".json") and ".tmp." not in name:
                yield os.path.join(dirpath, name)


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
