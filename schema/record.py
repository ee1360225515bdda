"""The session record: one definition shared by the .json file, the cast header, SQL and --json.

Field names are a contract (see DESIGN.md). Two fields extend the contract:
``invalid_bytes`` (output bytes that were not UTF-8 and became U+FFFD in the cast) and
``notes`` (human-readable remarks such as a defaulted window size). The contract's "as they
come" fields: ``connection_id`` (shared by the sessions of one SSH connection),
``destinations`` (every host the session reached: ``{"destination", "addr", "via", "at"}``)
and ``files`` (transfer operations: ``{"op", "path", "bytes", "at", ...}``). ``seal``: the
final digest of the collector's chain over the cast (schema/chain.py), None in direct mode;
``input_masked``: bytes typed with echo off (passwords) that were counted, never stored.
"""

from __future__ import annotations

import os
import time

from . import jsontext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATUSES = ("recording", "complete", "interrupted", "failed", "refused")
MODES = ("pty", "pipe", "sftp", "scp", "rsync", "import")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LIST: Any = object()  # marks a list default: each record gets its own list


def new_session_id(now: float | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, so ids sort by time and cannot be guessed."""
    millis = int((time.time() if now is None else now) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def session_id_time(session_id: str) -> float:
    """The creation time (epoch seconds) encoded in a session id."""
    value = 0
    for char in session_id.upper():
        value = value * 32 + _CROCKFORD.index(char)
    return (value >> 80) / 1000.0


def is_session_id(text: str) -> bool:
    return len(text) == 26 and all(c in _CROCKFORD for c in text.upper())


class SessionRecord:
    """A session record; attributes are the fields below, in contract order.

    Written by hand rather than with @dataclass: importing dataclasses pulls in inspect,
    about 8 ms on every SSH login. Same behaviour: keyword construction with defaults,
    equality, repr, to_dict().
    """

    id: str
    user: str = ""
    uid: int | None = None
    host: str = ""
    client_addr: str | None = None
    client_port: int | None = None
    server_addr: str | None = None
    server_port: int | None = None
    auth_method: str | None = None
    key_type: str | None = None
    key_fingerprint: str | None = None
    original_command: str | None = None
    command: list[str] = _LIST
    destination: str | None = None
    mode: str = "pty"
    term: str | None = None
    cols: int = 80
    rows: int = 24
    started_at: str = ""
    ended_at: str | None = None
    duration: float | None = None
    exit_status: int | None = None
    exit_signal: str | None = None
    bytes_out: int = 0
    bytes_in: int = 0
    status: str = "recording"
    sha256: str | None = None
    path: str | None = None
    recorder_version: str = ""
    invalid_bytes: int = 0
    notes: list[str] = _LIST
    connection_id: str | None = None
    destinations: list[dict[str, Any]] = _LIST
    files: list[dict[str, Any]] = _LIST
    seal: str | None = None
    input_masked: int = 0

    def __init__(self, id: str, **values: Any) -> None:
        unknown = set(values) - set(FIELD_NAMES)
        if unknown:
            raise TypeError(f"unknown session record field(s): {', '.join(sorted(unknown))}")
        self.id = id
        for name in FIELD_NAMES[1:]:
            value = values.get(name, getattr(SessionRecord, name))
            setattr(self, name, [] if value is _LIST else value)

    def to_dict(self) -> dict[str, Any]:
        return {name: _copy(getattr(self, name)) for name in FIELD_NAMES}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionRecord:
        """Build a record, ignoring unknown keys (newer recorders may add fields)."""
        if "id" not in data:
            raise ValueError("session record has no 'id'")
        return cls(**{k: v for k, v in data.items() if k in FIELD_NAMES})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionRecord) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SessionRecord({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


FIELD_NAMES: tuple[str, ...] = tuple(SessionRecord.__annotations__)


def iso_utc(epoch: float) -> str:
    """RFC 3339 UTC with microseconds: sorts as text and parses everywhere."""
    whole = time.gmtime(epoch)
    micros = int(round((epoch - int(epoch)) * 1_000_000))
    if micros == 1_000_000:
        whole, micros = time.gmtime(int(epoch) + 1), 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", whole) + f".{micros:06d}Z"


def write_record_atomically(record: SessionRecord, path: str, mode: int = 0o600, durable: bool = True
                            ) -> None:
    """Replace ``path`` with the record so readers see the old or the new file, never half of one.

    ``durable=False`` skips the fsync (the recorder's first write, replaced at the end anyway).
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, jsontext.dumps(record.to_dict(), indent=1).encode() + b"\n")
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_record(path: str) -> SessionRecord:
    import json

    with open(path, encoding="utf-8") as handle:
        return SessionRecord.from_dict(json.load(handle))
