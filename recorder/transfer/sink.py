"""The recorder of a file transfer session: in place of the cast file for the relay, it
counts bytes, decodes the protocol into file operations (each a marker in the cast and an
entry of the record's ``files``) and keeps the contents only when asked to.

A 5 MB download would otherwise be 12 MB of U+FFFD in the cast and in nobody's interest;
what an auditor asks of a transfer is which files, which way, how big.
"""

from __future__ import annotations

import time

from ..castfile import CastFile
from .scp import ScpDecoder
from .sftp import SftpDecoder

Op = dict[str, object]


def scp_direction(argv: list[str]) -> tuple[bool, list[str]]:
    """(receiving, paths) of ``scp [-flags] -t|-f [--] PATH...`` on the server side."""
    receiving = False
    paths: list[str] = []
    options = True
    for word in argv[1:]:
        if options and word == "--":
            options = False
        elif options and word.startswith("-"):
            receiving = receiving or "t" in word[1:]
        else:
            options = False
            paths.append(word)
    return receiving, paths


def rsync_files(argv: list[str], at: float) -> list[Op]:
    """``rsync --server [--sender] OPTIONS . PATH...``: the paths, and which way they go."""
    if "." not in argv:
        return []
    op = "download" if "--sender" in argv else "upload"
    return [{"op": op, "path": path, "at": at} for path in argv[argv.index(".") + 1 :]]


class TransferSink:
    """What the relay reports to during sftp/scp/rsync (the relay's Recorder protocol)."""

    def __init__(self, cast: CastFile, mode: str, argv: list[str], contents: bool, record_input: bool) -> None:
        self.cast = cast
        self.mode = mode
        self.contents = contents
        self.record_input = record_input
        self.files: list[Op] = []
        self.sftp: SftpDecoder | None = None
        self.scp: ScpDecoder | None = None
        self.scp_from_client = False
        clock = self.elapsed
        if mode == "sftp":
            self.sftp = SftpDecoder(clock, self._op)
        elif mode == "scp":
            receiving, paths = scp_direction(argv)
            self.scp = ScpDecoder(paths, receiving, clock, self._op)
            self.scp_from_client = receiving
        stored = "the contents too" if contents else "file operations and sizes, not the contents"
        cast.marker(f"{mode} transfer: recorded {stored}")
        if mode == "rsync":
            for op in rsync_files(argv, clock()):
                self._op(op)

    def elapsed(self) -> float:
        return time.monotonic() - self.cast.start

    @property
    def stop_reason(self) -> str | None:
        return self.cast.stop_reason

    def output(self, data: bytes) -> None:
        if self.contents:
            self.cast.output(data)
        else:
            self.cast.count_output(len(data))
        if self.sftp is not None:
            self.sftp.server(data)
        elif self.scp is not None and not self.scp_from_client:
            self.scp.feed(data)

    def input(self, data: bytes) -> None:
        if self.contents and self.record_input:
            self.cast.input(data)
        else:
            self.cast.count_input(len(data))
        if self.sftp is not None:
            self.sftp.client(data)
        elif self.scp is not None and self.scp_from_client:
            self.scp.feed(data)

    def count_input(self, size: int) -> None:
        self.cast.count_input(size)

    def resize(self, cols: int, rows: int) -> None:
        self.cast.resize(cols, rows)

    def flush_due_in(self) -> float | None:
        return self.cast.flush_due_in()

    def io(self) -> tuple[int, int] | None:
        return self.cast.io()

    def on_io(self, events: int) -> None:
        self.cast.on_io(events)

    def congested(self) -> bool:
        return self.cast.congested()

    def flush(self) -> None:
        self.cast.flush()

    def _op(self, op: Op) -> None:
        self.files.append(op)
        size = f" ({op['bytes']} bytes)" if "bytes" in op else ""
        to = f" -> {op['to']}" if "to" in op else ""
        error = f": {op['error']}" if "error" in op else ""
        self.cast.marker(f"{op['op']} {op['path']}{to}{size}{error}")

    def finish(self) -> list[str]:
        """Report what is still open; notes on what the decoding could not see."""
        notes = []
        if self.sftp is not None:
            self.sftp.finish()
        decoder = self.sftp or self.scp
        if decoder is not None:
            if decoder.stopped:
                notes.append(f"{decoder.stopped}; the transfer itself went on untouched")
            if decoder.dropped:
                notes.append(f"{decoder.dropped} more file operations not listed")
        if not self.contents:
            notes.append(f"{self.mode} transfer: file contents not recorded (transfer_contents = false)")
        return notes
