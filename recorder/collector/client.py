"""A session recorded through the collector: the same command and relay as direct mode, into
the collector's sink instead of a file the user owns."""

from __future__ import annotations

from collections.abc import Mapping

from sshrec.schema.asciicast import CastHeader
from sshrec.schema.record import SessionRecord

from .. import relay
from ..command import Command
from ..session import (
    RecordOptions,
    client_status,
    outcome_notes,
    reported_exit,
    run_command,
    unrecordable,
    warn,
)
from .sink import CollectorSink, CollectorUnavailable


def hello_for(record: SessionRecord, header: CastHeader) -> dict[str, object]:
    return {"version": 1, "record": record.to_dict(),
            "header": {"version": header.version, "cols": header.cols, "rows": header.rows,
                       "timestamp": header.timestamp, "term": header.term, "env": header.env}}


def record_to_collector(opts: RecordOptions, cmd: Command, env: Mapping[str, str], record: SessionRecord,
                        header: CastHeader, refusal: str | None, terminal: tuple[bool, tuple[int, int]]) -> int:
    sink = CollectorSink(opts.collector_socket, hello_for(record, header), opts.collector_buffer,
                         opts.collector_timeout, opts.on_failure, version=header.version)
    try:
        sink.open()
    except CollectorUnavailable as exc:
        return unrecordable(str(exc), refusal, opts, cmd, dict(env))
    if refusal is not None:
        warn(f"session refused: {refusal}")
        sink.output(f"sshrec: session refused: {refusal}{relay.line_end(2)}".encode())
        sink.close({"refused": refusal, "exit_status": 1}, opts.collector_timeout)
        return 1
    notes_before = len(record.notes)
    outcome = run_command(cmd, dict(env), sink, opts, record, terminal)
    exit_status, exit_signal = reported_exit(outcome)
    sink.exit(outcome.exit_status)
    final = {"exit_status": exit_status, "exit_signal": exit_signal, "destination": record.destination,
             "destinations": record.destinations, "files": record.files,
             "notes": record.notes[notes_before:] + outcome_notes(outcome)}
    if not sink.close(final, opts.collector_timeout):
        warn("the recording service did not confirm the end of this session: its recording may be incomplete")
    return client_status(outcome)
