"""SFTP version 3 packets built by hand, for the decoder's tests and the fuzz corpus."""

from __future__ import annotations

import struct

from sshrec.recorder.transfer import sftp as p


def string(value: bytes | str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack(">I", len(raw)) + raw


def packet(kind: int, *parts: bytes) -> bytes:
    body = bytes([kind]) + b"".join(parts)
    return struct.pack(">I", len(body)) + body


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    return struct.pack(">Q", value)


NO_ATTRS = u32(0)


def upload_and_download(size: int = 100_000, chunk: int = 32768) -> tuple[bytes, bytes]:
    """(client bytes, server bytes) of: write /up.bin, read /down.bin, rename, remove a missing file."""
    client, server = [packet(p.INIT, u32(3))], [packet(p.VERSION, u32(3))]
    client.append(packet(p.OPEN, u32(1), string("/up.bin"), u32(p.FLAG_WRITE | p.FLAG_CREAT | p.FLAG_TRUNC),
                         NO_ATTRS))
    server.append(packet(p.HANDLE, u32(1), string(b"h1")))
    request = 2
    for offset in range(0, size, chunk):
        length = min(chunk, size - offset)
        client.append(packet(p.WRITE, u32(request), string(b"h1"), u64(offset), string(b"x" * length)))
        server.append(packet(p.STATUS, u32(request), u32(0), string(""), string("")))
        request += 1
    client.append(packet(p.CLOSE, u32(request), string(b"h1")))
    server.append(packet(p.STATUS, u32(request), u32(0), string(""), string("")))
    client.append(packet(p.OPEN, u32(50), string("/down.bin"), u32(1), NO_ATTRS))
    server.append(packet(p.HANDLE, u32(50), string(b"h2")))
    client.append(packet(p.READ, u32(51), string(b"h2"), u64(0), u32(chunk)))
    server.append(packet(p.DATA, u32(51), string(b"y" * 1234)))
    client.append(packet(p.READ, u32(52), string(b"h2"), u64(1234), u32(chunk)))
    server.append(packet(p.STATUS, u32(52), u32(1), string("EOF"), string("")))
    client.append(packet(p.CLOSE, u32(53), string(b"h2")))
    server.append(packet(p.STATUS, u32(53), u32(0), string(""), string("")))
    client.append(packet(p.RENAME, u32(54), string("/up.bin"), string("/final.bin")))
    server.append(packet(p.STATUS, u32(54), u32(0), string(""), string("")))
    client.append(packet(p.REMOVE, u32(55), string("/missing")))
    server.append(packet(p.STATUS, u32(55), u32(2), string("No such file"), string("")))
    return b"".join(client), b"".join(server)
