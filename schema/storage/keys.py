"""Stable object keys: ``PREFIX/HOST/YYYY/MM/DD/ID`` + a suffix per file of a session.

The day comes from the session id (a ULID encodes its start), so a key is known from the
record alone and never changes; the host keeps each gateway's recordings apart and makes a
rebuild from the bucket name every row's host. sshrec's own objects (holds, the deletion
log) live under ``PREFIX/_sshrec/``, which no host name can take (hosts never start with _).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from ..record import is_session_id, session_id_time
from .base import Store

CAST, RECORD, CHAIN, SEEK = ".cast", ".json", ".chain", ".seek.json"
SUFFIXES = (SEEK, CAST, RECORD, CHAIN)  # SEEK before RECORD: both end in .json
INTERNAL = "_sshrec"
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


def host_part(host: str) -> str:
    """A host name as one key segment: letters, digits, dots and dashes only."""
    safe = _UNSAFE.sub("_", host or "").lstrip("._")
    return safe or "unknown-host"


def join(prefix: str, *parts: str) -> str:
    return "/".join(p.strip("/") for p in (prefix, *parts) if p.strip("/"))


def session_stem(prefix: str, host: str, session_id: str) -> str:
    day = time.gmtime(session_id_time(session_id))
    return join(prefix, host_part(host), f"{day.tm_year:04d}", f"{day.tm_mon:02d}", f"{day.tm_mday:02d}",
                session_id)


def session_key(prefix: str, host: str, session_id: str, suffix: str = CAST) -> str:
    return session_stem(prefix, host, session_id) + suffix


def parse_key(prefix: str, key: str) -> tuple[str, str, str] | None:
    """(host, session id, suffix) of a session's object key, or None for anything else."""
    rest = key[len(prefix.strip("/")):].lstrip("/") if prefix.strip("/") else key
    parts = rest.split("/")
    if len(parts) != 5 or parts[0].startswith("_"):
        return None
    name = parts[4]
    for suffix in SUFFIXES:
        if name.endswith(suffix) and is_session_id(name[: -len(suffix)]):
            return parts[0], name[: -len(suffix)], suffix
    return None


def internal_objects(store: Store, folder: str) -> Iterator[tuple[str, Any]]:
    """(key, parsed JSON) of each of sshrec's own objects under ``PREFIX/_sshrec/FOLDER/``."""
    for info in store.list(join(store.prefix, INTERNAL, folder) + "/"):
        try:
            yield info.key, json.loads(store.read(info.key))
        except ValueError:
            continue  # not ours, or cut short: nothing to restore from it


def hold_key(prefix: str, session_id: str) -> str:
    """The marker object that carries a session's legal holds through an index rebuild."""
    return join(prefix, INTERNAL, "holds", f"{session_id}.json")


def deletion_log_key(prefix: str, session_id: str, when: float) -> str:
    stamp = time.strftime("%Y/%m/%d/%Y%m%dT%H%M%SZ", time.gmtime(when))
    return join(prefix, INTERNAL, "deletions", f"{stamp}-{session_id}.json")
