"""Output that keeps coming is relayed in one go and recorded as one event.

A terminal delivers at most 4 KiB per read, and a flood of output is thousands of reads a
second; paying the poll loop and the recording for each one is what made the recorder slower
than ``script``. So after a read, the relay hands the source to ``burst``, which reads and
writes on until the relay has something else to do (see recorder/_burst.c, the same loop in C
without the interpreter between reads). The client gets every byte as soon as it is read; the
recording gets the burst when it ends, at most WINDOW later, stamped at its end; a key typed
during a flood reaches the program at most WINDOW late (the relay polls again after a burst).
"""

from __future__ import annotations

import errno
import os
import select
import time

try:
    from . import _burst  # type: ignore[attr-defined]
except ImportError:  # built without a compiler: the Python loop below, slower, same bytes
    _burst = None

READ_SIZE = 64 * 1024
LIMIT = 256 * 1024  # bytes of output held back from the recording at most
WINDOW = 0.01  # seconds a burst lasts at most (the recording's lag behind the screen)
IDLE = 0.002  # seconds of quiet that end a burst


def burst(src: int, dst: int, waits: tuple[int, ...], limit: int = LIMIT, window: float = WINDOW,
          idle: float = IDLE) -> tuple[bytes, int, int]:
    """Relay ``src`` to ``dst`` until a ``waits`` fd is readable, ``src`` is quiet for ``idle``,
    ``window`` passed, ``limit`` bytes were read, or ``src`` or ``dst`` cannot go on (a full
    ``dst`` is waited for, within the window).
    Returns (bytes read, how many of them were written, errno of a failed write or 0)."""
    if _burst is not None:
        return _burst.burst(src, dst, waits, limit, window, idle)
    return python_burst(src, dst, waits, limit, window, idle)


def python_burst(src: int, dst: int, waits: tuple[int, ...], limit: int, window: float,
                 idle: float) -> tuple[bytes, int, int]:
    buf = bytearray()
    written, src_open = 0, True
    end = time.monotonic() + window
    while True:
        put, failed = _write_some(dst, memoryview(buf)[written:])
        written += put
        if failed:
            return bytes(buf), written, failed
        dst_full = written < len(buf)
        can_read = src_open and len(buf) < limit
        left = end - time.monotonic()
        if not (can_read or dst_full) or left <= 0:
            return bytes(buf), written, 0
        if can_read:  # read first, as the C loop does; a full dst does not stop it
            try:
                data = os.read(src, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data is not None:
                src_open = bool(data)
                buf += data
                continue
        if not _wait(src if can_read else None, dst if dst_full else None, waits,
                     left if dst_full else min(left, idle)):
            return bytes(buf), written, 0


def _write_some(dst: int, pending: memoryview) -> tuple[int, int]:
    """(bytes written, errno of the write that failed or 0); a full dst stops it with 0."""
    done = 0
    with pending:
        while done < len(pending):
            try:
                done += os.write(dst, pending[done:])
            except InterruptedError:
                continue
            except BlockingIOError:
                break
            except OSError as exc:
                return done, exc.errno or errno.EIO
    return done, 0


def _wait(src: int | None, dst: int | None, waits: tuple[int, ...], timeout: float) -> bool:
    """Whether the burst goes on: src readable or dst writable within ``timeout``, and neither
    a wait fd nor an error on dst calls the relay first."""
    poller = select.poll()
    if src is not None:
        poller.register(src, select.POLLIN)
    if dst is not None:
        poller.register(dst, select.POLLOUT)
    for fd in waits:
        poller.register(fd, select.POLLIN)
    ready = poller.poll(timeout * 1000)
    trouble = select.POLLERR | select.POLLHUP | select.POLLNVAL
    for fd, event in ready:
        if fd not in (src, dst) or (fd == dst and event & trouble):
            return False
    return bool(ready)
