"""Bring asciicast files made elsewhere (asciinema 2 and 3, other tools) into the spool.

A file is read and checked completely before anything is written, so a malformed file is
reported (file, line, problem) and leaves no trace. A good one is copied byte for byte (its
sha256 stays that of the original) next to a session record built from its header, mode
``import``; the cast lands first and the record last, both by rename, and the indexer only
looks at records, so an import that dies half-way is invisible.
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
from dataclasses import dataclass

from .asciicast import CastError, CastHeader, CastReader
from .record import FIELD_NAMES, SessionRecord, iso_utc, new_session_id, write_record_atomically
from .spool import FILE_MODE, cast_path, ensure_dir, record_path, recording_dir

# Fields an sshrec-written header may carry that describe the original session.
_KEPT_FIELDS = frozenset(FIELD_NAMES) - {
    "id",
    "mode",
    "status",
    "sha256",
    "path",
    "started_at",
    "ended_at",
    "duration",
    "bytes_out",
    "bytes_in",
    "cols",
    "rows",
    "notes",
}


@dataclass
class CheckedCast:
    """A cast file that parsed completely, with what its record needs."""

    source: str
    data: bytes
    header: CastHeader
    duration: float
    bytes_out: int
    bytes_in: int
    sha256: str


def _undecodable_line(path: str, data: bytes, error: UnicodeDecodeError) -> CastError:
    line = data.count(b"\n", 0, error.start) + 1
    return CastError(path, line, f"not UTF-8 text (byte 0x{data[error.start]:02x})")


def check_cast(path: str) -> CheckedCast:
    """Parse all of ``path``; CastError names the first problem's line."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CastError(path, 0, f"cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable_line(path, data, exc) from None
    lines = _Lines(text)
    reader = CastReader(lines, path, tolerate_partial_tail=False)  # type: ignore[arg-type]
    duration, out, typed = 0.0, 0, 0
    for event in reader.events():
        if not math.isfinite(event.time) or event.time < 0 or event.time < duration - 1e-6:
            raise CastError(path, lines.number, f"event time {event.time} is negative or goes back")
        duration = event.time
        if event.code == "o":
            out += len(event.data.encode("utf-8", "surrogatepass"))
        elif event.code == "i":
            typed += len(event.data.encode("utf-8", "surrogatepass"))
    return CheckedCast(
        source=os.path.abspath(path),
        data=data,
        header=reader.header,
        duration=duration,
        bytes_out=out,
        bytes_in=typed,
        sha256=hashlib.sha256(data).hexdigest(),
    )


class _Lines:
    """Lines of a text that know the number of the last one handed out."""

    def __init__(self, text: str) -> None:
        parts = text.split("\n")  # not splitlines(): U+2028 may sit raw inside JSON strings
        lines = [part + "\n" for part in parts[:-1]]
        if parts[-1]:
            lines.append(parts[-1])
        self._lines = iter(lines)
        self.number = 0

    def readline(self) -> str:
        self.number += 1
        return next(self._lines, "")

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        return line


def build_record(cast: CheckedCast, now: float) -> SessionRecord:
    header = cast.header
    start = float(header.timestamp) if header.timestamp is not None else None
    if start is None:
        start = os.stat(cast.source).st_mtime - cast.duration
    record = SessionRecord(id=new_session_id(start))
    previous = header.sshrec or {}
    for name, value in previous.items():
        if name in _KEPT_FIELDS:
            setattr(record, name, value)
    command = header.extra.get("command")
    if isinstance(command, str) and command and not record.command:
        try:
            record.command = shlex.split(command)
        except ValueError:
            record.command = [command]
    record.mode = "import"
    record.term = header.term or record.term
    record.cols, record.rows = header.cols, header.rows
    record.started_at = iso_utc(start)
    record.duration = round(cast.duration, 6)
    record.ended_at = iso_utc(start + cast.duration)
    record.bytes_out, record.bytes_in = cast.bytes_out, cast.bytes_in
    record.status = "complete"
    record.sha256 = cast.sha256
    record.notes = [f"imported from {cast.source} at {iso_utc(now)}"]
    if previous.get("id"):
        record.notes.append(f"originally sshrec session {previous['id']}")
    if header.title:
        record.notes.append(f"title: {header.title}")
    return record


def write_import(home: str, cast: CheckedCast, record: SessionRecord) -> str:
    """Copy the cast into the spool, then its record; returns the record's path."""
    ensure_dir(recording_dir(home, record.id))
    target = cast_path(home, record.id)
    record.path = target
    tmp = f"{target}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        try:
            view = memoryview(cast.data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        json_path = record_path(home, record.id)
        write_record_atomically(record, json_path)
    except BaseException:
        for leftover in (tmp, target):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        raise
    return json_path
