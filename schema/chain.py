"""A digest chain over a cast, commit point by commit point: edits and truncation show, and a
recording that ended abruptly still has a verifiable prefix.

The collector appends each commit point to ``<id>.chain``, one JSON line after the cast bytes
it covers are fsynced: ``{"seq": N, "offset": BYTES, "chain": HEX}`` where ``chain`` is
``sha256(previous chain || sha256(cast bytes since the previous commit point))`` (the first
"previous" is 32 zero bytes) and ``seq`` the last event frame it covers. The final chain
value is the record's ``seal``. Checking it needs only the two files: every block is hashed
again and compared, so the first changed block, a cut, or bytes after the last commit point
are found and named.
"""

from __future__ import annotations

import hashlib
import os

from . import jsontext

GENESIS = bytes(32)
READ_BLOCK = 1 << 20


def link(previous: bytes, block_digest: bytes) -> bytes:
    return hashlib.sha256(previous + block_digest).digest()


class ChainWriter:
    """Keeps the running block digest; ``checkpoint`` closes a block and gives its chain line."""

    def __init__(self, previous: bytes = GENESIS, offset: int = 0) -> None:
        self.previous = previous
        self.offset = offset  # cast bytes covered by the last checkpoint
        self.block = hashlib.sha256()
        self.pending = 0  # cast bytes written since

    def add(self, data: bytes) -> None:
        self.block.update(data)
        self.pending += len(data)

    def checkpoint(self, seq: int, extra: dict[str, object] | None = None) -> bytes:
        """The ``.chain`` line for a commit point after every byte added so far; ``extra``
        fields (counters the collector resumes from) go along, outside the chain."""
        self.previous = link(self.previous, self.block.digest())
        self.offset += self.pending
        self.block = hashlib.sha256()
        self.pending = 0
        line = {"seq": seq, "offset": self.offset, "chain": self.previous.hex(), **(extra or {})}
        return (jsontext.dumps(line) + "\n").encode()

    @property
    def seal(self) -> str:
        return self.previous.hex()


class Checkpoint:
    __slots__ = ("seq", "offset", "chain", "bytes_out", "bytes_in", "time")

    def __init__(self, seq: int, offset: int, chain: str, bytes_out: int = 0, bytes_in: int = 0,
                 time: float = 0.0) -> None:
        self.seq = seq
        self.offset = offset
        self.chain = chain
        self.bytes_out = bytes_out
        self.bytes_in = bytes_in
        self.time = time


class ChainError(ValueError):
    """A chain file that cannot be read."""


def read_checkpoints(path: str) -> list[Checkpoint]:
    """The complete lines of a ``.chain`` file (a torn last line is what a crash leaves)."""
    import json

    found = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break
            try:
                item = json.loads(raw)
                found.append(Checkpoint(int(item["seq"]), int(item["offset"]), str(item["chain"]),
                                        int(item.get("bytes_out", 0)), int(item.get("bytes_in", 0)),
                                        float(item.get("time", 0.0))))
            except (ValueError, KeyError, TypeError):
                raise ChainError(f"{path}:{number}: not a chain line") from None
    return found


class ChainCheck:
    """What checking a cast against its chain found."""

    def __init__(self) -> None:
        self.ok = True
        self.verified_bytes = 0
        self.checkpoints = 0
        self.problem: str | None = None
        self.unverified_tail = 0  # bytes after the last commit point
        self.seal: str | None = None


def check(cast_path: str, chain_path: str) -> ChainCheck:
    """Hash every block of the cast again and compare it with the chain."""
    result = ChainCheck()
    checkpoints = read_checkpoints(chain_path)
    size = os.path.getsize(cast_path)
    previous = GENESIS
    with open(cast_path, "rb") as handle:
        start = 0
        for point in checkpoints:
            if point.offset > size:
                result.ok = False
                result.problem = (f"the cast is cut short: {size} bytes, but commit point {point.seq} covers "
                                  f"{point.offset}")
                return result
            block = hashlib.sha256()
            remaining = point.offset - start
            while remaining:
                data = handle.read(min(READ_BLOCK, remaining))
                if not data:
                    break
                block.update(data)
                remaining -= len(data)
            previous = link(previous, block.digest())
            if previous.hex() != point.chain:
                result.ok = False
                result.problem = (f"bytes {start}-{point.offset} changed after they were committed "
                                  f"(commit point {result.checkpoints + 1}, event {point.seq})")
                return result
            result.checkpoints += 1
            result.verified_bytes = start = point.offset
    result.unverified_tail = size - result.verified_bytes
    result.seal = previous.hex()
    return result
