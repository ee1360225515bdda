"""From spool files to what the index stores for one session, with no SQL involved.

Everything here is a function of the files (and of whether the recorder still holds its
lock), so indexing the same files incrementally or in a rebuild gives the same rows.

A record still saying ``recording`` whose recorder is gone (no ``<id>.lock``, or nobody
holds it) is indexed as ``interrupted``: its end, duration and sizes come from the last
complete event in the cast, and its sha256 from the cast as it lies on disk. The files are
left alone: the indexer may not be allowed to write them, and a rebuild derives the same.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from .asciicast import CastError, open_cast
from .record import SessionRecord, iso_utc, session_id_time
from .screentext import Chunk, ScreenTextBuilder
from .spool import recorder_alive_at
from .storage import Blob

INTERRUPTED_NOTE = (
    "interrupted: the recorder ended without finishing the record; "
    "end time and sizes come from the last complete event in the cast"
)
_INT_FIELDS = ("uid", "client_port", "server_port", "exit_status")
_COUNT_FIELDS = ("cols", "rows", "bytes_out", "bytes_in", "invalid_bytes", "input_masked")
PROTOCOL_MODES = frozenset({"sftp", "scp", "rsync"})  # their output is a file transfer protocol, not a screen
COMMAND_MARK = "$ "  # a marker that is a command the shell ran (recorder/typed.py writes them)


class RecordError(ValueError):
    """A record file that cannot be indexed; the message names the file."""


@dataclass
class CastSummary:
    """What the index needs from a cast: screen text and, for interrupted sessions, the rest."""

    chunks: list[Chunk] = field(default_factory=list)
    last_time: float = 0.0
    bytes_out: int = 0
    bytes_in: int = 0
    problem: str | None = None  # why reading stopped early (a corrupt line), if it did
    text_bytes: int = 0
    text_note: str | None = None  # output left out of the screen text (binary, over the cap)
    commands: list[tuple[float, str]] = field(default_factory=list)  # the shell's "$ COMMAND" markers


@dataclass
class Entry:
    record: SessionRecord
    chunks: list[Chunk]
    json_path: str
    json_sig: str
    json_mtime_ns: int
    cast_sig: str
    problem: str | None = None
    text_bytes: int = 0
    commands: list[tuple[float, str]] = field(default_factory=list)
    host: str = ""  # the host whose spool it is in; "" for this one


def file_sig(stat: os.stat_result | None) -> str:
    """Identity of one version of a file; records are replaced by rename, so the inode moves."""
    if stat is None:
        return ""
    return f"{stat.st_mtime_ns}:{stat.st_size}:{stat.st_ino}"


def stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def cast_path_for(json_path: str) -> str:
    return json_path[: -len(".json")] + ".cast"


def lock_path_for(json_path: str) -> str:
    return json_path[: -len(".json")] + ".lock"


def command_text(original: str | None, command: list[str] | None) -> str:
    """What ``ls --command`` searches: the requested command line, then the argv run."""
    argv = " ".join(str(arg) for arg in command or [])
    return "\n".join(part for part in (original or "", argv) if part)


def read_record_file(json_path: str) -> tuple[SessionRecord, os.stat_result]:
    """The record and the stat of exactly the file version that was read."""
    try:
        fd = os.open(json_path, os.O_RDONLY)
    except OSError as exc:
        raise RecordError(f"{json_path}: cannot read record: {exc.strerror}") from None
    try:
        stat = os.fstat(fd)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
    finally:
        os.close(fd)
    try:
        record = SessionRecord.from_dict(json.loads(data))
    except (ValueError, TypeError) as exc:
        raise RecordError(f"{json_path}: not a session record: {exc}") from None
    return _clean(record, json_path), stat


def _clean(record: SessionRecord, json_path: str) -> SessionRecord:
    """Coerce field types so one odd record cannot break a batch insert."""
    for name in _INT_FIELDS:
        value = getattr(record, name)
        if value is not None and not isinstance(value, int):
            try:
                setattr(record, name, int(value))
            except (TypeError, ValueError):
                setattr(record, name, None)
    for name in _COUNT_FIELDS:
        value = getattr(record, name)
        if not isinstance(value, int):
            try:
                setattr(record, name, int(value or 0))
            except (TypeError, ValueError):
                setattr(record, name, 0)
    if isinstance(record.command, str):
        record.command = [record.command]
    record.command = [str(arg) for arg in record.command or []]
    if isinstance(record.notes, str):
        record.notes = [record.notes]
    record.notes = [str(note) for note in record.notes or []]
    if record.duration is not None and not isinstance(record.duration, (int, float)):
        record.duration = None
    for name in ("destinations", "files"):
        items = getattr(record, name)
        setattr(record, name, [i for i in items if isinstance(i, dict)] if isinstance(items, list) else [])
    if record.connection_id is not None:
        record.connection_id = str(record.connection_id)
    expected = os.path.basename(json_path)[: -len(".json")]
    if record.id != expected:
        raise RecordError(f"{json_path}: record id {record.id!r} does not match its file name")
    return record


def _claim_for_owner(record: SessionRecord, owner_uid: int) -> None:
    """A record in someone's personal spool is theirs: a user cannot file sessions under
    another user's name by writing it in their own records."""
    import pwd

    try:
        owner = pwd.getpwuid(owner_uid).pw_name
    except KeyError:
        owner = str(owner_uid)
    record.notes.append(f"the record names user {record.user!r} (uid {record.uid}) but lies in the "
                        f"spool of {owner!r} (uid {owner_uid}): indexed as {owner!r}")
    record.user, record.uid = owner, owner_uid


def summarize_cast(path: str | Blob, sizes: bool, text: bool = True) -> CastSummary:
    """Screen text of ``path`` (a file or a stored object; none when not ``text``: file transfer
    protocols); with ``sizes`` also the output/input byte counts."""
    summary = CastSummary()
    builder = ScreenTextBuilder() if text else None
    try:
        handle, reader = open_cast(path, tolerate_partial_tail=True)
    except FileNotFoundError:
        summary.problem = "cast file is missing"
        return summary
    except CastError as exc:
        summary.problem = str(exc)
        return summary
    with handle:
        try:
            for event in reader.events():
                summary.last_time = event.time
                if event.code == "o":
                    if builder is not None:
                        builder.add(event.time, event.data)
                    if sizes:
                        summary.bytes_out += len(event.data.encode("utf-8", "surrogatepass"))
                elif event.code == "i" and sizes:
                    summary.bytes_in += len(event.data.encode("utf-8", "surrogatepass"))
                elif event.code == "m" and event.data.startswith(COMMAND_MARK):
                    summary.commands.append((event.time, event.data[len(COMMAND_MARK) :]))
        except CastError as exc:
            summary.problem = str(exc)
    if builder is not None:
        summary.chunks = builder.finish()
        summary.text_bytes = builder.chars
        if builder.dropped_binary or builder.truncated:
            summary.text_note = builder.describe_dropped()
    return summary


def sha256_file(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def mark_interrupted(record: SessionRecord, summary: CastSummary, cast_path: str,
                     digest: str | None = None) -> None:
    """Fill in what the recorder never wrote, from the cast alone (``digest``: its SHA-256 when
    already known, as for a stored cast)."""
    record.status = "interrupted"
    record.duration = round(summary.last_time, 6)
    start = _epoch(record.started_at) or session_id_time(record.id)
    record.ended_at = iso_utc(start + summary.last_time)
    record.bytes_out = record.bytes_out or summary.bytes_out
    record.bytes_in = record.bytes_in or summary.bytes_in
    record.sha256 = digest or sha256_file(cast_path)
    if INTERRUPTED_NOTE not in record.notes:
        record.notes.append(INTERRUPTED_NOTE)


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def load_entry(json_path: str, alive: Callable[[str], bool] = recorder_alive_at, attempts: int = 3,
               owner_uid: int | None = None) -> Entry:
    """Everything the index stores for the session whose record is ``json_path``.

    A ``recording`` record is re-read if its file changed while we checked the lock: the
    recorder writes the final record *before* releasing the lock, so a free lock plus an
    unchanged record really means the recorder is gone.
    """
    record, stat = read_record_file(json_path)
    cast_path = cast_path_for(json_path)
    interrupted = False
    for _ in range(attempts):
        if record.status != "recording" or alive(lock_path_for(json_path)):
            break
        again = stat_or_none(json_path)
        if again is not None and file_sig(again) == file_sig(stat):
            interrupted = True
            break
        record, stat = read_record_file(json_path)
    if owner_uid is not None and record.uid != owner_uid:
        _claim_for_owner(record, owner_uid)
    cast_stat = stat_or_none(cast_path)
    summary = summarize_cast(cast_path, sizes=interrupted, text=record.mode not in PROTOCOL_MODES)
    if interrupted:
        mark_interrupted(record, summary, cast_path)
    if summary.text_note:
        record.notes.append(summary.text_note)
    if cast_stat is not None:
        record.path = os.path.abspath(cast_path)
    return Entry(
        record=record,
        chunks=summary.chunks,
        json_path=os.path.abspath(json_path),
        json_sig=file_sig(stat),
        json_mtime_ns=stat.st_mtime_ns,
        cast_sig=file_sig(cast_stat),
        problem=summary.problem if cast_stat is not None else None,
        text_bytes=summary.text_bytes,
        commands=summary.commands or requested_command(record),
    )


def requested_command(record: SessionRecord) -> list[tuple[float, str]]:
    """A session that asked for a command (not a shell): that command, at its start."""
    if record.original_command:
        return [(0.0, record.original_command)]
    if record.mode != "pty" and record.command:
        return [(0.0, " ".join(record.command))]
    return []
