"""What the collector writes for one session: the cast (encoded from the recorder's raw event
frames), its digest chain, and the session record, in the collector's own spool.

Writing and committing are split so that the collector's event loop never waits on a disk:
``add`` only encodes into memory; ``write`` and ``commit`` (a thread runs them) append what is
pending, fsync, then append the commit point to the chain and fsync that. A write that fails
(a full disk) keeps what it could not write and is tried again; nothing acknowledged is ever
lost, because a commit point is only made after everything it covers is on disk.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time

from sshrec.schema import spool
from sshrec.schema.asciicast import CastHeader, EventEncoder, Utf8Stream, json_string_bytes
from sshrec.schema.chain import ChainWriter, read_checkpoints
from sshrec.schema.record import SessionRecord, iso_utc, read_record, write_record_atomically

COMMIT_BYTES = 1 << 20
COMMIT_INTERVAL = 0.2  # seconds: at most this much acknowledged later than written
# Fields of the record that the recorder reports at the end; everything about who and from
# where was fixed at the start, and the identity by the collector itself.
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
FINAL_FIELDS = ("exit_status", "exit_signal", "notes", "destinations", "files", "destination")


def chain_path(home: str, session_id: str) -> str:
    return os.path.join(spool.recording_dir(home, session_id), f"{session_id}.chain")


class SessionStore:
    """One session's files; the event loop calls ``add``, a worker thread ``commit``."""

    def __init__(self, home: str, record: SessionRecord, version: int) -> None:
        self.home = home
        self.record = record
        self.json_path = spool.record_path(home, record.id)
        self.cast_path = spool.cast_path(home, record.id)
        self.encoder = EventEncoder(version)
        self.streams = {"o": Utf8Stream(), "i": Utf8Stream()}
        self.chain = ChainWriter()
        self.pending = bytearray()  # encoded, not yet written
        self.pending_chain = b""  # a commit point line not yet written
        self.last_seq = 0  # last event added
        self.written_seq = 0  # last event whose line is on disk (not yet committed)
        self.committed_seq = 0  # last event covered by a durable commit point
        self.bytes_out = 0
        self.bytes_in = 0
        self.last_time = 0.0
        self.first_pending = 0.0
        self.lock = threading.Lock()  # one commit at a time
        self.error: OSError | None = None  # the last write failure (a full disk), until one succeeds
        self.hash = hashlib.sha256()
        self.fd = -1
        self.chain_fd = -1

    # -- creating, and finding again after a restart ---------------------------------------

    @classmethod
    def create(cls, home: str, record: SessionRecord, header: CastHeader) -> SessionStore:
        store = cls(home, record, header.version)
        old = os.umask(0o077)
        try:
            spool.ensure_dir(spool.recording_dir(home, record.id))
            store.fd = os.open(store.cast_path, NEW_FILE, spool.FILE_MODE)
            store.chain_fd = os.open(chain_path(home, record.id), NEW_FILE, spool.FILE_MODE)
            record.path = store.cast_path
            header.sshrec = record.to_dict()
            store.pending += header.to_json().encode() + b"\n"
            write_record_atomically(record, store.json_path)
        finally:
            os.umask(old)
        return store

    @classmethod
    def reopen(cls, home: str, session_id: str) -> SessionStore:
        """A session left ``recording`` by a collector that stopped: cut the cast and the chain
        back to the last commit point (what was acknowledged), ready for the recorder to resume."""
        record = read_record(spool.record_path(home, session_id))
        with open(spool.cast_path(home, session_id), encoding="utf-8", errors="replace") as handle:
            version = int(json.loads(handle.readline()).get("version", 2))
        store = cls(home, record, version)
        points = read_checkpoints(chain_path(home, session_id))
        offset = points[-1].offset if points else 0
        store.fd = os.open(store.cast_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        os.truncate(store.cast_path, offset)
        with open(chain_path(home, session_id), "rb") as handle:
            complete = b"".join(line for line in handle if line.endswith(b"\n"))
        os.truncate(chain_path(home, session_id), len(complete))
        store.chain_fd = os.open(chain_path(home, session_id), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        if points:
            last = points[-1]
            store.chain = ChainWriter(bytes.fromhex(last.chain), last.offset)
            store.last_seq = store.written_seq = store.committed_seq = last.seq
            store.bytes_out, store.bytes_in, store.last_time = last.bytes_out, last.bytes_in, last.time
        with open(store.cast_path, "rb") as handle:
            while block := handle.read(1 << 20):
                store.hash.update(block)
        return store

    # -- the event loop's side --------------------------------------------------------------

    def add(self, seq: int, at: float, code: str, data: bytes) -> None:
        if code in self.streams:
            literal = self.streams[code].feed_literal(data)
            if code == "o":
                self.bytes_out += len(data)
            else:
                self.bytes_in += len(data)
        else:
            literal = json_string_bytes(data.decode("utf-8", "replace").encode())
        if literal != b'""':
            if not self.pending:
                self.first_pending = time.monotonic()
            self.pending += self.encoder.line_literal(at, code.encode(), literal)
        self.last_seq = seq
        self.last_time = max(self.last_time, at)

    def commit_due(self, now: float) -> bool:
        if self.last_seq == self.committed_seq and not self.pending and not self.pending_chain:
            return False
        return len(self.pending) >= COMMIT_BYTES or now - self.first_pending >= COMMIT_INTERVAL or bool(
            self.error)

    # -- the worker's side ------------------------------------------------------------------

    def commit(self) -> int:
        """Write what is pending, fsync, make the commit point durable; returns the seq now
        committed. A failure (full disk) leaves the rest pending and ``error`` set."""
        with self.lock:
            data, seq = bytes(self.pending), self.last_seq
            del self.pending[: len(data)]
            written = self._write_cast(data)
            if written < len(data):
                self.pending[:0] = data[written:]
                return self.committed_seq
            self.written_seq = seq
            try:
                os.fsync(self.fd)
                if not self.pending_chain:
                    counters = {"bytes_out": self.bytes_out, "bytes_in": self.bytes_in,
                                "time": round(self.last_time, 6)}
                    self.pending_chain = self.chain.checkpoint(seq, counters)
                self._write_all(self.chain_fd, self.pending_chain)
                os.fsync(self.chain_fd)
            except OSError as exc:
                self.error = exc
                return self.committed_seq
            self.pending_chain = b""
            self.committed_seq = seq
            self.error = None
            return seq

    def _write_cast(self, data: bytes) -> int:
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                count = os.write(self.fd, view[done:])
                self.chain.add(view[done : done + count])
                self.hash.update(view[done : done + count])
                done += count
        except OSError as exc:
            self.error = exc
        return done

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def finish(self, status: str, final: dict[str, object], notes: list[str]) -> bool:
        """The last commit and the closed record; False while the disk refuses it."""
        for stream_code, stream in self.streams.items():
            tail = stream.feed_literal(b"", final=True)
            if tail != b'""':
                self.pending += self.encoder.line_literal(self.last_time, stream_code.encode(), tail)
        self.commit()
        if self.error is not None and self.error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return False
        record = self.record
        for name in FINAL_FIELDS:
            if name in final:
                setattr(record, name, final[name])
        record.notes = [*record.notes, *notes]
        started = _epoch(record.started_at)
        record.duration = round(self.last_time, 6)
        record.ended_at = iso_utc(started + self.last_time if started else time.time())
        # Output the recorder did not send (a transfer's contents) it counted itself.
        record.bytes_out = self.bytes_out or _count(final.get("bytes_out_count"))
        record.bytes_in = self.bytes_in or _count(final.get("bytes_in_count"))
        record.invalid_bytes = self.streams["o"].invalid
        record.status = "refused" if final.get("refused") else status
        if final.get("refused"):
            record.notes.append(f"refused: {final['refused']}")
        record.sha256 = self.hash.hexdigest()
        record.seal = self.chain.seal
        write_record_atomically(record, self.json_path)
        self.close()
        return True

    def close(self) -> None:
        for fd in (self.fd, self.chain_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.chain_fd = -1


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
