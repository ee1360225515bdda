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
    ``window`` passed, ``limit`` bytes were read, or ``src`` or ``dst`` cannot go on.
    Returns (bytes read, how many of them were written, errno of a failed write or 0)."""
    if _burst is not None:
        return _burst.burst(src, dst, waits, limit, window, idle)
    return python_burst(src, dst, waits, limit, window, idle)


def python_burst(src: int, dst: int, waits: tuple[int, ...], limit: int, window: float,
                 idle: float) -> tuple[bytes, int, int]:
    poller = select.poll()
    poller.register(src, select.POLLIN)
    for fd in waits:
        poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    size = written = 0
    end = time.monotonic() + window
    while size < limit:
        left = end - time.monotonic()
        if left <= 0:
            break
        data = _read_or_wait(src, poller, min(left, idle))  # read first, as the C loop does
        if not data:
            break
        chunks.append(data)
        size += len(data)
        put, failed = _write_all(dst, data)
        written += put
        if failed or put < len(data):
            return b"".join(chunks), written, failed
    return b"".join(chunks), written, 0


def _read_or_wait(src: int, poller: select.poll, idle: float) -> bytes:
    """What ``src`` has now, else what it has within ``idle`` if nothing else is readable
    first; b"" for quiet, another fd, EOF or an error (the relay reads again and sees those)."""
    try:
        return os.read(src, READ_SIZE)
    except BlockingIOError:
        pass
    except OSError:
        return b""
    ready = poller.poll(idle * 1000)
    if len(ready) != 1 or ready[0][0] != src or not ready[0][1] & select.POLLIN:
        return b""
    try:
        return os.read(src, READ_SIZE)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> tuple[int, int]:
    """(bytes written, errno of the write that failed or 0); a full pipe stops it with 0."""
    done = 0
    while done < len(data):
        try:
            done += os.write(fd, data[done:])
        except BlockingIOError:
            return done, 0
        except InterruptedError:
            continue
        except OSError as exc:
            return done, exc.errno or errno.EIO
    return done, 0
