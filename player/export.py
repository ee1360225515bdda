"""Export sessions as files anyone can play: one asciicast per session and a manifest.

Each exported cast carries the full session record (the final ``.json``, not the header's
start-of-session copy) in its header under ``"sshrec"``, so one file stands on its own.
When the format is unchanged the events are copied byte for byte and the original header
line is kept under ``"sshrec_source"``: the original file's SHA-256 is then
``sha256(source header + "\\n" + events [+ the torn tail left out])``, which ``sshrec
verify`` checks on a lone exported file. Converting v2<->v3 rewrites the times only.

``manifest.json`` lists every file with its SHA-256, size, a CRC-32 of each 64 KiB block (so
``verify`` can say where a file changed), the session record, and what selected the
sessions (ids or the query, with relative times resolved).

Atomicity: everything is written into a hidden sibling directory ``.NAME.partial-XXXX``,
the manifest last, all of it made durable (one syncfs, else an fsync per file), then the
directory is renamed to NAME. A crash leaves
only the hidden partial directory (no manifest, wrong name); NAME either does not exist or is
complete.

Every source is hashed while it is copied and compared with its record's SHA-256: a
recording that no longer matches is not exported unless ``include_altered`` (then the
manifest says ``"source_check": "mismatch"``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from sshrec.schema.asciicast import CastError, CastHeader, parse_header
from sshrec.schema.record import iso_utc
from sshrec.schema.storage import Blob, StorageError, open_source

from .cursor import EventCursor, read_header
from .transcript import transcript

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "sshrec-export/1"
BLOCK = 64 * 1024
READ_SIZE = 1 << 20
_HEAD = re.compile(rb'[ \t]*\[[ \t]*(-?[0-9][0-9.eE+-]*)[ \t]*,[ \t]*"([^"\\]*)"')


class ExportError(Exception):
    """The export cannot be made; nothing was left behind under the output name."""


class Source:
    """One session to export: its record (a dict with the contract's field names) and cast."""

    def __init__(self, record: dict[str, object], cast_path: str | Blob) -> None:
        self.record = record
        self.cast_path = cast_path

    @property
    def name(self) -> str:
        return str(self.record.get("id") or os.path.splitext(os.path.basename(str(self.cast_path)))[0])


def sources_for(rows: Iterable[dict[str, object]], settings: Any) -> list[Source]:
    """Index rows as sources: each one's recording, with the record beside it when that is the
    same session (it is the final one), else the row. Raises locate.NotFound."""
    from .locate import cast_of

    sources = []
    for row in rows:
        path = cast_of(row, settings)
        record = record_for(path)
        sources.append(Source(record if record.get("id") == row["id"] else dict(row), path))
    return sources


def record_for(cast_path: str | Blob) -> dict[str, object]:
    """The authoritative record of a cast: ``<id>.json`` beside it (written at the end), else
    the header's copy (written at the start), else a bare one named after the file."""
    name = str(cast_path)
    stem = name[:-5] if name.endswith(".cast") else name
    try:
        if isinstance(cast_path, Blob):
            data = json.loads(cast_path.sibling(".json").read())
        else:
            with open(stem + ".json", encoding="utf-8") as handle:
                data = json.load(handle)
        if isinstance(data, dict) and data.get("id"):
            return data
    except (OSError, ValueError, StorageError):
        pass  # the header's copy still serves
    header, _ = read_header(cast_path)
    if header.sshrec and header.sshrec.get("id"):
        return dict(header.sshrec)
    return {"id": os.path.basename(stem), "path": cast_path}


class Hashes:
    """SHA-256 of a whole file, and a CRC-32 of each BLOCK of it, fed in any pieces.

    The SHA-256 is the proof; the block checksums only say *where* a file that failed it
    changed, so the cheaper CRC (twice the speed of SHA-256 here) is enough for them.
    """

    def __init__(self) -> None:
        self.whole = hashlib.sha256()
        self.blocks: list[str] = []
        self._crc = 0
        self._fill = 0
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self.whole.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            take = min(BLOCK - self._fill, len(view))
            self._crc = zlib.crc32(view[:take], self._crc)
            self._fill += take
            view = view[take:]
            if self._fill == BLOCK:
                self._close_block()

    def _close_block(self) -> None:
        self.blocks.append(f"{self._crc:08x}")
        self._crc = 0
        self._fill = 0

    def finish(self) -> tuple[str, list[str]]:
        if self._fill:
            self._close_block()
        return self.whole.hexdigest(), self.blocks


class Writer:
    """An output file that hashes what it writes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.handle = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self.hashes = Hashes()

    def write(self, data: bytes | memoryview) -> None:
        if data:
            self.hashes.update(data)
            self.handle.write(data)

    def close(self) -> None:
        self.handle.close()


def _export_header(header: CastHeader, record: dict[str, object], version: int, source_line: bytes | None
                   ) -> bytes:
    extra = {k: v for k, v in header.extra.items() if not k.startswith("sshrec")}
    if source_line is not None:
        extra["sshrec_source"] = {"header": source_line.decode("utf-8", "replace")}
    timestamp = header.timestamp
    out = CastHeader(version=version, cols=header.cols, rows=header.rows, timestamp=timestamp, term=header.term,
                     title=header.title, env=header.env, sshrec=record, extra=extra)
    return out.to_json().encode() + b"\n"


def _copy_cast(source: Source, out: Writer, version: int) -> dict[str, object]:
    """Header with the full record, then the events (verbatim, or with times converted).
    Returns what the manifest says about the source."""
    src_hash = hashlib.sha256()
    name = str(source.cast_path)
    with open_source(source.cast_path) as handle:
        first = handle.readline(4 << 20)
        src_hash.update(first)
        if not first.endswith(b"\n"):
            raise CastError(name, 1, "header line is incomplete")
        header = parse_header(name, first.decode("utf-8", "replace"))
        verbatim = header.version == version
        head_line = _export_header(header, source.record, version, first.rstrip(b"\n") if verbatim else None)
        out.write(head_line)
        convert = None if verbatim else _converter(header.version, version)
        pending = b""
        while block := handle.read(READ_SIZE):
            src_hash.update(block)
            if pending:
                block = pending + block
            cut = block.rfind(b"\n") + 1
            pending = block[cut:]
            whole = memoryview(block)[:cut]
            out.write(whole if convert is None else convert(whole))
    tail = pending  # a torn last line (killed recorder): left out of the events
    digest = src_hash.hexdigest()
    recorded = source.record.get("sha256")
    check = "no digest" if not recorded else ("ok" if recorded == digest else "mismatch")
    info: dict[str, object] = {"path": name, "sha256": digest, "source_check": check,
                               "version": header.version}
    if tail:
        info["dropped_tail_bytes"] = len(tail)
    return info | {"_tail": tail, "_verbatim": verbatim}


def _converter(source_version: int, version: int) -> Callable[[memoryview], bytes]:
    """Rewrite event times between v2 (absolute) and v3 (intervals); v2 has no exit event."""
    state = {"last": 0.0}

    def convert(data: memoryview) -> bytes:
        out = []
        last = state["last"]
        for line in bytes(data).splitlines(keepends=True):
            match = _HEAD.match(line)
            if match is None:
                continue  # comments and blank lines
            t = float(match.group(1))
            if source_version == 2:
                t, last = t - last, t
            else:
                last += t
                t = last
                if match.group(2) == b"x":
                    continue
            out.append(b"[%.6f" % t + line[match.end(1):])
        state["last"] = last
        return b"".join(out)

    return convert


def _write_text(source: Source, out: Writer) -> dict[str, object]:
    record = source.record
    header, offset = read_header(source.cast_path)
    started = _epoch(str(record.get("started_at") or "")) or header.timestamp
    lines = [f"# sshrec session {record.get('id')}: {_describe(record)}",
             "# each line: [UTC time +seconds since the start] the line as it was on screen when finished"]
    out.write("".join(_safe(line) + "\n" for line in lines).encode())
    with EventCursor(source.cast_path, header.version, offset) as cursor:
        def events() -> Iterable[tuple[float, str, str]]:
            while (event := cursor.next()) is not None:
                yield event.time, event.code, event.data

        batch = []
        for t, text in transcript(iter(events())):
            stamp = time.strftime("%H:%M:%S", time.gmtime(started + t)) if started else ""
            batch.append(f"[{stamp} +{t:.3f}] {_safe(text)}\n")
            if len(batch) >= 1024:
                out.write("".join(batch).encode("utf-8", "replace"))
                batch.clear()
        out.write("".join(batch).encode("utf-8", "replace"))
    digest = _sha256_file(source.cast_path)
    recorded = record.get("sha256")
    check = "no digest" if not recorded else ("ok" if recorded == digest else "mismatch")
    return {"path": str(source.cast_path), "sha256": digest, "source_check": check, "version": header.version}


def _safe(text: str) -> str:
    """Printable as it is; anything a terminal could act on or that hides text (bidi
    overrides, other format characters) as a visible escape."""
    if text.isprintable():
        return text
    from sshrec.schema.safe_text import visible

    return "".join(c if c.isprintable() else visible(c) for c in text)


def _describe(record: dict[str, object]) -> str:
    who = f"{record.get('user') or '?'}@{record.get('host') or '?'}"
    command = record.get("original_command") or " ".join(str(a) for a in (record.get("command") or [])) or "-"
    return (f"{who} from {record.get('client_addr') or '-'} to {record.get('destination') or '-'}, started "
            f"{record.get('started_at') or '-'}, command: {command}, exit {record.get('exit_status')}")


def _epoch(text: str) -> float | None:
    if not text:
        return None
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _sha256_file(path: str | Blob) -> str:
    digest = hashlib.sha256()
    with open_source(path) as handle:
        while block := handle.read(READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def _file_names(sources: list[Source], suffix: str) -> list[str]:
    names, seen = [], set()
    for source in sources:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", source.name)[:100] or "session"
        name, n = f"{base}{suffix}", 1
        while name in seen:
            n += 1
            name = f"{base}-{n}{suffix}"
        seen.add(name)
        names.append(name)
    return names


def _prepare_target(out_dir: str) -> tuple[str, str]:
    out_dir = os.path.abspath(out_dir)
    parent, name = os.path.split(out_dir.rstrip("/"))
    if not name:
        raise ExportError(f"{out_dir}: give a new directory name for the export")
    if os.path.lexists(out_dir) and not (os.path.isdir(out_dir) and not os.listdir(out_dir)):
        raise ExportError(f"{out_dir} already exists and is not an empty directory; choose a new name")
    if not os.path.isdir(parent):
        raise ExportError(f"{parent}: no such directory (create it first)")
    return parent, name


def export(sources: list[Source], out_dir: str, fmt: str = "v2", selection: dict[str, object] | None = None,
           include_altered: bool = False, sync: bool = True,
           progress: Callable[[int, int], None] | None = None) -> dict[str, object]:
    """Write the export; returns the manifest. Raises ExportError (nothing left behind)."""
    if fmt not in ("v2", "v3", "txt"):
        raise ExportError(f"unknown format {fmt!r}: use v2, v3 or txt")
    if not sources:
        raise ExportError("no sessions selected: nothing to export")
    parent, name = _prepare_target(out_dir)
    suffix = ".txt" if fmt == "txt" else ".cast"
    names = _file_names(sources, suffix)
    work = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    try:
        files = []
        for number, (source, file_name) in enumerate(zip(sources, names, strict=True), 1):
            files.append(_export_one(source, os.path.join(work, file_name), fmt, include_altered))
            files[-1] = {"name": file_name, **files[-1]}
            if progress:
                progress(number, len(sources))
        manifest = {
            "format": MANIFEST_FORMAT,
            "created_at": iso_utc(time.time()),
            "export_format": fmt,
            "selection": selection or {},
            "files": files,
        }
        _write_manifest(os.path.join(work, MANIFEST), manifest)
        os.chmod(work, 0o755 & ~_umask())
        if sync:
            _make_durable(work)
        target = os.path.join(parent, name)
        if os.path.isdir(target):
            os.rmdir(target)  # empty (checked above); rename cannot replace it atomically otherwise
        os.rename(work, target)
        if sync:
            _fsync_dir(parent)
        return manifest
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _export_one(source: Source, path: str, fmt: str, include_altered: bool) -> dict[str, object]:
    writer = Writer(path)
    try:
        if fmt == "txt":
            info = _write_text(source, writer)
        else:
            info = _copy_cast(source, writer, int(fmt[1]))
            tail, verbatim = info.pop("_tail"), info.pop("_verbatim")
            if tail and verbatim:
                _note_tail(writer, path, tail)
    except OSError as exc:
        raise ExportError(f"{source.cast_path}: {exc.strerror}") from None
    except CastError as exc:
        raise ExportError(f"{exc} (export stopped; nothing was written)") from None
    finally:
        writer.close()
    if info["source_check"] == "mismatch" and not include_altered:
        raise ExportError(
            f"{source.cast_path}: does not match the SHA-256 in its session record (changed since it was "
            f"recorded?); see: sshrec verify {source.name}; or export it flagged with --include-altered")
    digest, blocks = writer.hashes.finish()
    return {"sha256": digest, "size": writer.hashes.size, "block_size": BLOCK, "block_crc32": blocks,
            "record": source.record, "source": info}


def _note_tail(writer: Writer, path: str, tail: bytes) -> None:
    """Record the torn tail in the header's sshrec_source, so the original digest stays checkable.

    The header is rewritten in place: it is the first line and the file is small enough to
    re-hash, but torn tails are rare (a killed recorder), so the simple way is fine.
    """
    writer.handle.flush()
    with open(path, "rb") as handle:
        first = handle.readline()
        rest = handle.read()
    header = json.loads(first)
    header["sshrec_source"]["tail_base64"] = base64.b64encode(tail).decode()
    new_first = json.dumps(header, ensure_ascii=False).encode() + b"\n"
    writer.handle.seek(0)
    writer.handle.truncate()
    writer.hashes = Hashes()
    writer.write(new_first)
    writer.write(rest)


def _write_manifest(path: str, manifest: dict[str, object]) -> None:
    """One file entry per line: readable, and the C encoder (an indent would force the slow one)."""
    head = {k: v for k, v in manifest.items() if k != "files"}
    files = manifest["files"]
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "files": [\n'
    text += ",\n".join(json.dumps(f, ensure_ascii=False) for f in files) + "\n]}\n"  # type: ignore[attr-defined]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _make_durable(work: str) -> None:
    """Everything under ``work`` on disk before the rename makes it visible: one syncfs for
    the file system (1,000 fsyncs cost more than the copying), else an fsync per file."""
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if not _syncfs(fd):
            for name in os.listdir(work):
                file_fd = os.open(os.path.join(work, name), os.O_RDONLY)
                try:
                    os.fsync(file_fd)
                finally:
                    os.close(file_fd)
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(fd: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.syncfs(fd) == 0)
    except (OSError, AttributeError):
        return False


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
