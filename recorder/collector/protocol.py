"""The recorder-collector protocol, version 1 (docs/collector-protocol.md): length-prefixed
frames on a Unix stream socket.

A frame is ``uint32 length`` (of what follows, big-endian), ``uint8 type``, the body. Bodies
of HELLO, WELCOME, END and ERROR are JSON (UTF-8); EVENT is ``uint64 seq, float64 time,
uint8 code`` then the event's raw bytes (output as the program wrote it: the collector does
the UTF-8 and JSON work); ACK and DONE are ``uint64 seq``.
"""

from __future__ import annotations

import struct

VERSION = 1
MAX_FRAME = 1 << 20  # no event is bigger (reads are 64 KiB); anything bigger is not a recorder

HELLO, EVENT, END, GAP = 1, 2, 3, 4  # recorder -> collector
WELCOME, ACK, ERROR, DONE = 101, 102, 103, 104  # collector -> recorder
CODES = {ord("o"): "o", ord("i"): "i", ord("r"): "r", ord("m"): "m", ord("x"): "x"}

_LENGTH = struct.Struct(">I")
_EVENT = struct.Struct(">BQdB")  # type, seq, time, code
_SEQ = struct.Struct(">BQ")


class ProtocolError(ValueError):
    """The peer sent something that is not this protocol; the connection is closed."""


def frame(kind: int, body: bytes) -> bytes:
    return _LENGTH.pack(len(body) + 1) + bytes([kind]) + body


def event(seq: int, time: float, code: str, data: bytes) -> bytes:
    return _LENGTH.pack(_EVENT.size + len(data)) + _EVENT.pack(EVENT, seq, time, ord(code)) + data


def seq_frame(kind: int, seq: int) -> bytes:
    return _LENGTH.pack(_SEQ.size) + _SEQ.pack(kind, seq)


def json_frame(kind: int, value: object) -> bytes:
    from sshrec.schema import jsontext

    return frame(kind, jsontext.dumps(value).encode())


def parse_event(body: bytes) -> tuple[int, float, str, bytes]:
    """(seq, time, code, data) of an EVENT frame (``body`` from its type byte on)."""
    if len(body) < _EVENT.size:
        raise ProtocolError("EVENT frame too short")
    _, seq, time, code = _EVENT.unpack_from(body)
    if code not in CODES:
        raise ProtocolError(f"unknown event code {code}")
    if not 0 <= time < 1e9:
        raise ProtocolError(f"event time {time!r}")
    return seq, time, CODES[code], body[_EVENT.size :]


def parse_seq(body: bytes) -> int:
    if len(body) != _SEQ.size:
        raise ProtocolError("sequence frame of the wrong size")
    return int(_SEQ.unpack(body)[1])


def parse_json(body: bytes) -> dict[str, object]:
    import json

    try:
        value = json.loads(body[1:])
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("frame body is not JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("frame body is not a JSON object")
    return value


class Splitter:
    """Cuts a byte stream into frames (each returned from its type byte on)."""

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.limit = limit
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if length < 1 or length > self.limit:
                raise ProtocolError(f"frame of {length} bytes (at most {self.limit})")
            if len(self.buffer) < 4 + length:
                break
            frames.append(bytes(self.buffer[4 : 4 + length]))
            del self.buffer[: 4 + length]
        return frames
