"""The collector daemon: accepts recorders on a Unix socket, takes each one's identity from the
kernel (SO_PEERCRED), writes its session into the spool it alone owns, and acknowledges what
is durable (docs/collector-protocol.md).

One asyncio loop holds the connections; a small thread pool does the writing and fsyncing, so
a slow or full disk never blocks a connection, and a stalled or hostile recorder holds only
its own connection: each reads at most MAX_FRAME bytes of a frame and stops reading while
COLLECTOR_PENDING bytes of its session are not yet written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pwd
import socket
import struct
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sshrec.schema import spool
from sshrec.schema.asciicast import CastHeader
from sshrec.schema.record import SessionRecord, is_session_id, read_record

from . import protocol as p
from .store import COMMIT_BYTES, SessionStore

TICK = 0.05  # seconds between looks at what is due to commit
HELLO_TIMEOUT = 10.0
RESUME_GRACE = 5.0  # a recorder whose connection broke may come back this long
RESTART_GRACE = 30.0  # after a restart, sessions left open wait this long for their recorders
PENDING_LIMIT = 4 << 20  # per session: stop reading its connection beyond this, until written
SSHD_NAMES = (b"sshd", b"sshd-session")


class Refused(Exception):
    """A session the collector will not take; the message goes to the recorder."""


@dataclass
class Peer:
    pid: int
    uid: int
    gid: int

    @property
    def name(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)


def peer_of(connection: socket.socket) -> Peer:
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def ancestry(pid: int) -> list[str]:
    """Program names from ``pid`` up to init (as far as /proc lets us see)."""
    names = []
    for _ in range(16):
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            break
        names.append(data[data.find(b"(") + 1 : data.rfind(b")")].decode(errors="replace"))
        pid = int(data[data.rfind(b")") + 2 :].split()[1])
        if pid <= 1:
            break
    return names


@dataclass
class Live:
    """A session the collector holds: connected, or waiting for its recorder to come back."""

    store: SessionStore
    uid: int
    writer: asyncio.StreamWriter | None = None
    deadline: float | None = None  # when to give up waiting for the recorder
    notes: list[str] = field(default_factory=list)
    final: dict[str, object] | None = None  # the recorder's END: finishing
    status: str = "complete"
    committing: bool = False
    finishing: bool = False
    finished: bool = False
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, data: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)


class Collector:
    def __init__(self, home: str, socket_path: str, db_url: str | None = None, workers: int = 4,
                 ship: Callable[[object, str], None] | None = None, index: bool = True) -> None:
        self.home = home
        self.indexing = index  # else `sshrec index` catches up (a timer, or another host)
        self.ship = ship  # (engine, session id): send a finished, indexed session to the store
        self.socket_path = socket_path
        self.db_url = db_url
        self.sessions: dict[str, Live] = {}
        self.disk_error: str | None = None
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sshrec-commit")
        self.index_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sshrec-index")
        self.stopping = asyncio.Event()
        self.engine: object | None = None

    # -- life cycle ---------------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        self.recover()
        _remove_stale_socket(self.socket_path)
        server = await asyncio.start_unix_server(self.handle, path=self.socket_path, limit=p.MAX_FRAME)
        os.chmod(self.socket_path, 0o666)  # anyone may connect: who they are comes from the kernel
        ticker = asyncio.create_task(self.tick())
        if ready is not None:
            ready.set()
        try:
            await self.stopping.wait()
        finally:
            server.close()
            ticker.cancel()
            await self.flush_all()
            self.pool.shutdown(wait=True)
            self.index_pool.shutdown(wait=True)

    def recover(self) -> None:
        """Sessions a previous collector left open wait RESTART_GRACE for their recorders."""
        for path in spool.iter_record_files(self.home):
            try:
                record = read_record(path)
            except (OSError, ValueError):
                continue
            if record.status != "recording":
                continue
            try:
                store = SessionStore.reopen(self.home, record.id)
            except (OSError, ValueError) as exc:
                print(f"sshrec collector: cannot reopen {path}: {exc}", file=sys.stderr)
                continue
            waiting = Live(store, int(record.uid or 0), deadline=time.monotonic() + RESTART_GRACE)
            waiting.notes.append("the collector restarted during the session")
            self.sessions[record.id] = waiting

    async def flush_all(self) -> None:
        for live in list(self.sessions.values()):
            if not live.finished:
                await self.commit(live)

    # -- one connection ---------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_of(writer.get_extra_info("socket"))
        frames = Frames(reader)
        live: Live | None = None
        try:
            hello = await asyncio.wait_for(frames.next(), HELLO_TIMEOUT)
            if hello is None:
                return
            live = self.welcome(hello, peer, writer)
            await self.stream(frames, live)
        except Refused as exc:
            writer.write(p.json_frame(p.ERROR, {"message": str(exc)}))
        except p.ProtocolError as exc:
            writer.write(p.json_frame(p.ERROR, {"message": f"protocol error: {exc}"}))
            if live is not None:
                live.notes.append(f"the recorder's stream was refused (protocol error: {exc})")
                live.status = "failed"
                live.final = live.final or {}
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if live is not None and live.writer is writer:
                live.writer = None
                if live.final is None:
                    live.deadline = time.monotonic() + RESUME_GRACE
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()

    def welcome(self, hello: bytes, peer: Peer, writer: asyncio.StreamWriter) -> Live:
        if hello[0] != p.HELLO:
            raise p.ProtocolError("the first frame is not HELLO")
        body = p.parse_json(hello)
        if body.get("version") != p.VERSION:
            raise Refused(f"protocol version {body.get('version')!r} is not spoken here (version {p.VERSION})")
        claimed = body.get("record")
        if not isinstance(claimed, dict):
            raise p.ProtocolError("HELLO has no record")
        if claimed.get("uid") != peer.uid:
            raise Refused(f"the session claims uid {claimed.get('uid')!r}, but its recorder runs as uid "
                          f"{peer.uid}")
        resume = body.get("resume")
        if resume is not None:
            return self._resume(resume, peer, writer)
        if self.disk_error is not None:
            raise Refused(f"the collector cannot write its spool ({self.disk_error}): new sessions are refused "
                          "until there is room")
        live = self._new(claimed, body.get("header"), peer)
        live.writer = writer
        writer.write(p.json_frame(p.WELCOME, {"id": live.store.record.id, "committed": 0}))
        return live

    def _new(self, claimed: dict[str, object], header: object, peer: Peer) -> Live:
        session_id = str(claimed.get("id", ""))
        if not is_session_id(session_id) or session_id in self.sessions:
            raise Refused(f"not a new session id: {session_id!r}")
        if not isinstance(header, dict) or not isinstance(header.get("cols"), int) or not isinstance(
                header.get("rows"), int):
            raise p.ProtocolError("HELLO has no terminal size")
        try:
            record = SessionRecord.from_dict(claimed)
        except (TypeError, ValueError) as exc:
            raise p.ProtocolError(f"HELLO's record: {exc}") from None
        record.user, record.uid, record.status = peer.name, peer.uid, "recording"
        record.notes = [str(n) for n in record.notes or []]
        record.notes.append(f"recorded by the collector for uid {peer.uid} (pid {peer.pid})")
        chain = ancestry(peer.pid)
        if not any(name.encode() in SSHD_NAMES for name in chain):
            record.notes.append("not started by sshd: process ancestry " + " < ".join(chain or ["unknown"]))
        cast_header = CastHeader(version=3 if header.get("version") == 3 else 2, cols=int(header["cols"]),
                                 rows=int(header["rows"]), timestamp=_number(header.get("timestamp")),
                                 term=_text(header.get("term")), env=_strings(header.get("env")))
        if os.path.exists(spool.record_path(self.home, session_id)):
            raise Refused(f"session {session_id} exists already")
        try:
            store = SessionStore.create(self.home, record, cast_header)
        except OSError as exc:
            self._disk_state(exc.strerror or str(exc))
            raise Refused(f"the collector cannot write its spool ({self.disk_error})") from None
        live = Live(store, peer.uid)
        self.sessions[session_id] = live
        return live

    def _resume(self, resume: object, peer: Peer, writer: asyncio.StreamWriter) -> Live:
        session_id = str(resume.get("id", "")) if isinstance(resume, dict) else ""
        live = self.sessions.get(session_id)
        if live is None or live.finished:
            raise Refused(f"no open session {session_id!r} to resume")
        if live.uid != peer.uid:
            raise Refused(f"session {session_id} is not a session of uid {peer.uid}")
        if live.writer is not None:
            live.writer.close()
        live.writer, live.deadline = writer, None
        writer.write(p.json_frame(p.WELCOME, {"id": session_id, "committed": live.store.committed_seq}))
        return live

    async def stream(self, frames: Frames, live: Live) -> None:
        loop = asyncio.get_running_loop()
        while live.final is None:
            if len(live.store.pending) >= COMMIT_BYTES and not live.committing:
                loop.create_task(self.commit(live))  # a full block: now, not at the next tick
            while len(live.store.pending) >= PENDING_LIMIT:  # the disk is behind: stop reading
                live.room.clear()
                if not live.committing:
                    loop.create_task(self.commit(live))
                await live.room.wait()
            frame = await frames.next()
            if frame is None:
                return
            self.on_frame(live, frame)
        await self.finish(live)

    def on_frame(self, live: Live, frame: bytes) -> None:
        kind = frame[0]
        if kind == p.EVENT:
            seq, at, code, data = p.parse_event(frame)
            if seq <= live.store.last_seq:
                return  # sent again after a reconnect: already here
            if seq != live.store.last_seq + 1:
                raise p.ProtocolError(f"event {seq} after {live.store.last_seq}")
            live.store.add(seq, at, code, data)
        elif kind == p.GAP:
            lost = p.parse_json(frame).get("bytes", "some")
            live.notes.append(f"{lost} bytes of the session were not recorded: the recorder could not keep "
                              "them while the collector was unreachable (on-failure=allow)")
            live.status = "failed"
        elif kind == p.END:
            live.final = p.parse_json(frame)
        else:
            raise p.ProtocolError(f"unexpected frame type {kind}")

    # -- committing and finishing -----------------------------------------------------------

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_probe = 0.0
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            if self.disk_error and now >= next_probe and self._other_errors() is None:
                next_probe = now + 1.0
                self._disk_state(await loop.run_in_executor(self.pool, probe_spool, self.home))
            for live in list(self.sessions.values()):
                if live.finished or live.finishing or live.committing:
                    continue
                gone = live.writer is None and live.deadline is not None and now >= live.deadline
                if live.final is None and gone:
                    live.final = {}
                    live.status = "interrupted"
                    live.notes.append("interrupted: the recorder's stream ended without its end; the recording "
                                      "is what was received, sealed")
                if live.final is not None and live.writer is None:
                    loop.create_task(self.finish(live))  # (a connected one finishes in stream())
                elif live.store.commit_due(now):
                    loop.create_task(self.commit(live))

    async def commit(self, live: Live) -> None:
        if live.committing:
            return
        live.committing = True
        try:
            before = live.store.committed_seq
            committed = await asyncio.get_running_loop().run_in_executor(self.pool, live.store.commit)
        finally:
            live.committing = False
        error = live.store.error
        self._disk_state((error.strerror or str(error)) if error is not None else self._other_errors())
        if committed > before:
            live.send(p.seq_frame(p.ACK, committed))
        if len(live.store.pending) < PENDING_LIMIT:
            live.room.set()

    def _disk_state(self, error: str | None) -> None:
        """Say when writing stops and starts again (once, not at every retry)."""
        if error and not self.disk_error:
            print(f"sshrec collector: cannot write the spool {self.home}: {error}; retrying, and refusing "
                  "new sessions until it works", file=sys.stderr, flush=True)
        elif self.disk_error and not error:
            print(f"sshrec collector: writing the spool {self.home} again", file=sys.stderr, flush=True)
        self.disk_error = error

    def _other_errors(self) -> str | None:
        for other in self.sessions.values():
            if other.store.error is not None:
                return other.store.error.strerror or str(other.store.error)
        return None

    async def finish(self, live: Live) -> None:
        if live.finishing or live.finished:
            return
        live.finishing = True
        while live.committing:
            await asyncio.sleep(TICK)
        live.committing = True
        loop = asyncio.get_running_loop()
        try:
            final = live.final or {}
            sent = final.get("notes")
            notes = [str(n) for n in sent] if isinstance(sent, list) else []
            notes += live.notes
            final = {k: v for k, v in final.items() if k != "notes"}
            while not await loop.run_in_executor(self.pool, live.store.finish, live.status, final, notes):
                self._disk_state(live.store.error.strerror if live.store.error else "write failed")
                await asyncio.sleep(1.0)  # a full disk: try again until there is room
        finally:
            live.committing = False
        live.finished = True
        self._disk_state(self._other_errors())
        self.sessions.pop(live.store.record.id, None)
        live.send(p.seq_frame(p.DONE, live.store.committed_seq))
        if self.indexing:
            loop.run_in_executor(self.index_pool, self.index, live.store.json_path)

    def index(self, json_path: str) -> None:
        """Index a finished session (its own thread: SQLAlchemy blocks)."""
        try:
            from sshrec.schema.db import open_engine
            from sshrec.schema.index import add_records
            from sshrec.schema.settings import load_settings

            if self.engine is None:
                self.engine = open_engine(self.db_url or load_settings(home=self.home).db_url)
            add_records(self.engine, [json_path])  # type: ignore[arg-type]
        except Exception as exc:  # the recording is safe in the spool; `sshrec index` catches up
            print(f"sshrec collector: indexing {json_path} failed: {exc}", file=sys.stderr)
            return
        if self.ship is not None:
            session_id = os.path.basename(json_path)[: -len(".json")]
            try:
                self.ship(self.engine, session_id)
            except Exception as exc:  # the next `sshrec ship` (its timer) sends it
                print(f"sshrec collector: shipping {session_id} failed: {exc}", file=sys.stderr)


def probe_spool(home: str) -> str | None:
    """Whether the spool takes writes again (after a full disk refused a new session)."""
    path = os.path.join(home, ".sshrec-probe")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


class Frames:
    """The frames of one connection, read as they are needed (bounded by MAX_FRAME)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.splitter = p.Splitter()
        self.queue: collections.deque[bytes] = collections.deque()

    async def next(self) -> bytes | None:
        while not self.queue:
            data = await self.reader.read(65536)
            if not data:
                return None
            self.queue.extend(self.splitter.feed(data))
        return self.queue.popleft()


def _remove_stale_socket(path: str) -> None:
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # left by a collector that died
    else:
        raise RuntimeError(f"another collector is listening on {path}")
    finally:
        probe.close()


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, (str, int))}
