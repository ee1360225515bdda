"""Check recordings and exports against the digests written when they were made.

- A spool recording: its SHA-256 against the one in its session record. The ``<id>.json``
  beside the cast is authoritative (written when the session ended); the header's ``sshrec``
  object is a copy made at the start, before there was a digest. A recording the collector
  made also has ``<id>.chain`` (schema/chain.py): every commit point is checked, so an edit
  is placed in its block, a cut is found, and an interrupted recording verifies up to its
  last commit point; the final chain value must equal the record's ``seal``.
- A lone exported cast (verbatim copy): its events, with the original header kept under
  ``sshrec_source``, against the record's SHA-256 of the original recording.
- An export directory: every file against ``manifest.json`` (missing, extra, size, SHA-256),
  and each cast's events against its original digest as above.

A digest says *that* a file changed, not where; to say where, a failing file is also read
as asciicast (the first line that is not a valid event is named), its size and last event
are compared with the record (truncation), and for exports the per-block digests of the
manifest narrow the change to a range of bytes and lines.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

from sshrec.schema.asciicast import CastError, open_cast
from sshrec.schema.storage import Blob

from .export import BLOCK, MANIFEST, Hashes

READ_SIZE = 1 << 20


class Finding:
    """One result line: ``ok`` or a failure naming the file (and the line when known)."""

    def __init__(self, ok: bool, path: str, message: str, line: int | None = None) -> None:
        self.ok = ok
        self.path = path
        self.message = message
        self.line = line

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{'ok' if self.ok else 'FAIL'}  {where}: {self.message}"


def file_hashes(path: str) -> Hashes:
    hashes = Hashes()
    with open(path, "rb") as handle:
        while block := handle.read(READ_SIZE):
            hashes.update(block)
    return hashes


def first_bad_line(path: str) -> tuple[int, str] | None:
    """(line, problem) of the first line that is not a valid asciicast header/event."""
    try:
        handle, reader = open_cast(path, tolerate_partial_tail=False)
    except CastError as exc:
        return exc.line, exc.problem
    with handle:
        try:
            for _ in reader.events():
                pass
        except CastError as exc:
            return exc.line, exc.problem
    return None


class CastSummary:
    """What a full read of a cast found: last line and event time, output bytes, exit event."""

    def __init__(self, path: str) -> None:
        self.line = 1
        self.last = 0.0
        self.output_bytes = 0
        self.exit_event = False
        handle, reader = open_cast(path)
        with handle:
            for event in reader.events():
                self.last = event.time
                if event.code == "o":
                    self.output_bytes += len(event.data.encode("utf-8", "surrogatepass"))
                elif event.code == "x":
                    self.exit_event = True
        with open(path, "rb") as raw:
            raw.seek(max(os.path.getsize(path) - 1, 0))
            self.ends_with_newline = raw.read(1) == b"\n"
        self.line = _count_lines(path)


def _diagnose(path: str, record: dict[str, object]) -> Finding:
    """Why a cast does not match its digest, as precisely as the file allows."""
    bad = first_bad_line(path)
    if bad is not None:
        line, problem = bad
        if problem.startswith("event is not JSON") and _is_last_line(path, line):
            return Finding(False, path, f"the last line is cut off ({problem}): the file was truncated", line)
        return Finding(False, path, f"{problem} (the file was changed: SHA-256 differs from its record)", line)
    try:
        found = CastSummary(path)
    except CastError as exc:
        return Finding(False, path, f"{exc.problem} (SHA-256 differs from its record)", exc.line)
    if not found.ends_with_newline:
        return Finding(False, path, "the file does not end with a complete line: it was truncated", found.line)
    expected = record.get("bytes_out")
    exact = isinstance(expected, int) and not record.get("invalid_bytes") and record.get("status") == "complete"
    where = f"(it ends at line {found.line}, {found.last:.1f}s into the session)"
    if exact and found.output_bytes < expected:  # type: ignore[operator]
        return Finding(False, path, f"the file was truncated: it holds {found.output_bytes} of the {expected} "
                                    f"output bytes its record counts {where}")
    if exact and found.output_bytes > expected:  # type: ignore[operator]
        return Finding(False, path, f"output was added: the file holds {found.output_bytes} output bytes, its "
                                    f"record counts {expected} {where}")
    if record.get("status") == "complete" and _version(path) == 3 and not found.exit_event:
        return Finding(False, path, f"the file was truncated: the exit event is missing {where}")
    return Finding(False, path, "SHA-256 differs from its record although every line is well-formed: the "
                                "text of an event was changed (spool recordings have one digest, so the line "
                                "cannot be named; compare with a copy or an export)")


def _version(path: str) -> int:
    with open(path, "rb") as handle:
        try:
            return int(json.loads(handle.readline()).get("version", 2))
        except (ValueError, AttributeError):
            return 2


def _is_last_line(path: str, line: int) -> bool:
    return line >= _count_lines(path)


def record_beside(cast: str) -> tuple[dict[str, object] | None, str]:
    """(record, where it came from): the .json beside the cast, else the header's copy."""
    stem = cast[:-5] if cast.endswith(".cast") else cast
    try:
        with open(stem + ".json", encoding="utf-8") as handle:
            data = json.load(handle)
        if isinstance(data, dict):
            return data, stem + ".json"
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        return None, f"{stem}.json is unreadable ({exc})"
    return None, ""


def verify_recording(cast: str) -> Finding:
    """A spool recording (or a lone exported cast) against its recorded SHA-256."""
    if not os.path.exists(cast):
        return Finding(False, cast, "missing")
    record, origin = record_beside(cast)
    if record is None and origin:
        return Finding(False, cast, origin)
    if record is None:
        return _verify_standalone(cast)
    chain = (cast[:-5] if cast.endswith(".cast") else cast) + ".chain"
    if os.path.exists(chain):
        return _verify_chain(cast, chain, record)
    digest = record.get("sha256")
    if not digest:
        return _no_digest(cast, record)
    actual = file_hashes(cast).whole.hexdigest()
    if actual == digest:
        return Finding(True, cast, f"matches the SHA-256 in {os.path.basename(origin)} ({actual[:16]}…)")
    return _diagnose(cast, record)


def _verify_chain(cast: str, chain_file: str, record: dict[str, object]) -> Finding:
    from sshrec.schema import chain

    try:
        found = chain.check(cast, chain_file)
    except (OSError, chain.ChainError) as exc:
        return Finding(False, cast, f"its chain cannot be read: {exc}")
    if not found.ok:
        return Finding(False, cast, f"{found.problem} (chain {os.path.basename(chain_file)})")
    seal = record.get("seal")
    if record.get("status") == "recording":
        return Finding(True, cast, f"still being recorded: verified up to its last commit point "
                                   f"({found.verified_bytes} bytes, {found.checkpoints} commit points)")
    if found.unverified_tail:
        return Finding(False, cast, f"{found.unverified_tail} bytes after the last commit point were added "
                                    "after the recording was sealed")
    if seal != found.seal:
        return Finding(False, cast, f"the chain does not end in the record's seal ({str(seal)[:16]}… expected, "
                                    f"{str(found.seal)[:16]}… found): the chain file was replaced")
    digest = record.get("sha256")
    if digest and file_hashes(cast).whole.hexdigest() != digest:
        return _diagnose(cast, record)
    return Finding(True, cast, f"sealed chain of {found.checkpoints} commit points matches "
                               f"({str(seal)[:16]}…)")


def _no_digest(cast: str, record: dict[str, object]) -> Finding:
    if record.get("status") == "recording":
        from sshrec.schema.spool import recorder_alive_at

        stem = cast[:-5] if cast.endswith(".cast") else cast
        if recorder_alive_at(stem + ".lock"):
            return Finding(False, cast, "still being recorded: there is no digest until the session ends")
        return Finding(False, cast, "interrupted recording without a digest: run 'sshrec index' to seal it "
                                    "(it records the SHA-256 of the file as found)")
    return Finding(False, cast, "its session record has no SHA-256 (recording failed?)")


def _verify_standalone(cast: str) -> Finding:
    """A cast without a .json: an export carries the original header, so the original file's
    digest can be recomputed; a plain cast has nothing to check against."""
    with open(cast, "rb") as handle:
        first = handle.readline(4 << 20)
        try:
            header = json.loads(first)
        except ValueError:
            return Finding(False, cast, "header is not JSON", 1)
        record = header.get("sshrec") if isinstance(header, dict) else None
        source = header.get("sshrec_source") if isinstance(header, dict) else None
        if not isinstance(record, dict) or not isinstance(source, dict) or not record.get("sha256"):
            return Finding(False, cast, "no session record with a SHA-256 beside or inside this file: nothing "
                                        "to verify against (give the spool id, or the export directory)")
        digest = hashlib.sha256(str(source.get("header", "")).encode() + b"\n")
        while block := handle.read(READ_SIZE):
            digest.update(block)
    tail = source.get("tail_base64")
    if tail:
        digest.update(base64.b64decode(str(tail)))
    if digest.hexdigest() == record["sha256"]:
        return Finding(True, cast, "its events match the original recording's SHA-256 (from its header)")
    return _diagnose(cast, record)


def _block_range(path: str, expected: list[str], actual: list[str]) -> str:
    """'bytes A-B, lines L1-L2' of the first block that differs."""
    differing = [n for n, (want, got) in enumerate(zip(expected, actual, strict=False)) if want != got]
    number = differing[0] if differing else min(len(expected), len(actual))
    start = number * BLOCK
    with open(path, "rb") as handle:
        before = handle.read(start)
        block = handle.read(BLOCK)
    first = before.count(b"\n") + 1
    last = first + block.count(b"\n")
    return f"bytes {start}-{start + max(len(block) - 1, 0)}, lines {first}-{last}"


def verify_export(directory: str) -> list[Finding]:
    manifest_path = os.path.join(directory, MANIFEST)
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        files = manifest["files"]
        listed = {str(f["name"]): f for f in files}
    except FileNotFoundError:
        return [Finding(False, manifest_path, "missing: not an sshrec export (or it was never completed)")]
    except (ValueError, KeyError, TypeError) as exc:
        return [Finding(False, manifest_path, f"not a valid manifest ({exc})")]
    findings = []
    for name, entry in listed.items():
        findings.append(_verify_listed(directory, name, entry))
    present = {n for n in os.listdir(directory) if n != MANIFEST}
    for extra in sorted(present - set(listed)):
        findings.append(Finding(False, os.path.join(directory, extra),
                                "not listed in manifest.json (added after the export)"))
    return findings


def _verify_listed(directory: str, name: str, entry: dict[str, object]) -> Finding:
    path = os.path.join(directory, name)
    if os.path.basename(name) != name:
        return Finding(False, path, "manifest.json names a file outside the export directory")
    if not os.path.isfile(path):
        return Finding(False, path, "missing (listed in manifest.json)")
    hashes = file_hashes(path)
    digest, blocks = hashes.finish()
    size = entry.get("size")
    if digest == entry.get("sha256") and hashes.size == size:
        return _check_original(path, entry)
    if isinstance(size, int) and hashes.size < size:
        detail = f"truncated: {hashes.size} bytes, manifest.json says {size}"
        if path.endswith(".cast"):
            lines = _count_lines(path)
            return Finding(False, path, f"{detail}; it ends after line {lines}", lines + 1)
        return Finding(False, path, detail)
    where = _block_range(path, list(entry.get("block_crc32") or []), blocks)  # type: ignore[arg-type]
    message = f"SHA-256 differs from manifest.json; first change in {where}"
    if isinstance(size, int) and hashes.size > size:
        message = f"{hashes.size} bytes, manifest.json says {size}; {message}"
    if path.endswith(".cast"):
        bad = first_bad_line(path)
        if bad is not None:
            return Finding(False, path, f"{bad[1]}; {message}", bad[0])
    return Finding(False, path, message)


def _count_lines(path: str) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def _check_original(path: str, entry: dict[str, object]) -> Finding:
    """Matches the manifest; a verbatim cast is also checked against the original digest, so a
    manifest rewritten together with the file is caught as well."""
    source = entry.get("source") if isinstance(entry.get("source"), dict) else {}
    if path.endswith(".cast") and source.get("source_check") == "ok":  # type: ignore[union-attr]
        lone = _verify_standalone(path)
        if not lone.ok and "nothing to verify against" not in lone.message:
            return Finding(False, path, "matches manifest.json but not the original recording's SHA-256 in "
                                        f"its header: {lone.message}", lone.line)
    return Finding(True, path, f"matches manifest.json ({str(entry.get('sha256'))[:16]}…)")


def verify_spool_tree(directory: str) -> list[Finding]:
    """Every recording (``<id>.json`` with its ``.cast``) under ``directory``."""
    findings = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".json") and ".tmp." not in name and name != MANIFEST:
                cast = os.path.join(dirpath, name[:-5] + ".cast")
                findings.append(verify_recording(cast))
    if not findings:
        findings.append(Finding(False, directory, "no manifest.json and no recordings (<id>.json + .cast)"))
    return findings


def verify_stored(blob: Blob) -> list[Finding]:
    """A recording in object storage: its cast, record and chain are read from the store (a
    digest needs every byte) into a private folder and checked as a spool recording is; the
    findings name the objects."""
    import tempfile

    from sshrec.schema.storage import StorageError

    with tempfile.TemporaryDirectory(prefix="sshrec-verify-") as work:
        stem = os.path.join(work, os.path.basename(blob.key)[: -len(".cast")])
        try:
            _download(blob, stem + ".cast")
            for suffix in (".json", ".chain"):
                if blob.sibling(suffix).stat() is not None:
                    _download(blob.sibling(suffix), stem + suffix)
        except StorageError as exc:
            return [Finding(False, blob.name, str(exc))]
        except FileNotFoundError:
            return [Finding(False, blob.name, "missing from the store")]
        finding = verify_recording(stem + ".cast")
    finding.path = blob.name
    finding.message = finding.message.replace(work + os.sep, "")
    return [finding]


def _download(blob: Blob, path: str) -> None:
    import shutil

    with blob.open() as remote, open(path, "wb") as local:
        shutil.copyfileobj(remote, local, READ_SIZE)


def verify_path(path: str | Blob) -> list[Finding]:
    if isinstance(path, Blob):
        return verify_stored(path)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, MANIFEST)):
            return verify_export(path)
        return verify_spool_tree(path)
    if path.endswith(".json") and os.path.exists(path[:-5] + ".cast"):
        path = path[:-5] + ".cast"
    return [verify_recording(path)]
