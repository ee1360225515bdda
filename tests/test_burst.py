"""The relay's burst loop, in C and in Python: the same bytes, the same reasons to stop."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from sshrec.recorder import burst as burst_module

Burst = Callable[..., tuple[bytes, int, int]]


def implementations() -> list[object]:
    c = burst_module._burst
    return [
        pytest.param(burst_module.python_burst, id="python"),
        pytest.param(c.burst if c else None, id="c",
                     marks=pytest.mark.skipif(c is None, reason="the C loop is not built here (no compiler)")),
    ]


@pytest.fixture(params=implementations())
def run(request: pytest.FixtureRequest) -> Burst:
    return request.param


def pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


@pytest.fixture
def fds() -> Iterator[list[int]]:
    opened: list[int] = []
    yield opened
    for fd in opened:
        os.close(fd)


def drain(fd: int) -> bytes:
    out = bytearray()
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return bytes(out)
        if not data:
            return bytes(out)
        out += data


def test_what_is_waiting_is_relayed_byte_for_byte(run: Burst, fds: list[int]) -> None:
    src_r, src_w = pipe()
    dst_r, dst_w = pipe()
    fds += [src_r, src_w, dst_r, dst_w]
    fcntl.fcntl(dst_w, 1031, 1 << 20)  # F_SETPIPE_SZ: room for all of it
    payload = bytes(range(256)) * 200  # 51200 bytes, every byte value
    os.write(src_w, payload)
    data, written, failed = run(src_r, dst_w, (), 1 << 20, 1.0, 0.05)
    assert (data, written, failed) == (payload, len(payload), 0)
    assert drain(dst_r) == payload


def test_a_writer_that_keeps_going_is_followed_until_it_stops(run: Burst, fds: list[int]) -> None:
    """A real process writing in pieces: the burst takes them all, then stops on quiet."""
    dst_r, dst_w = pipe()
    fds += [dst_r, dst_w]
    fcntl.fcntl(dst_w, 1031, 1 << 20)
    script = "import os,sys\nfor i in range(50): os.write(1, b'%04d' % i * 256)\n"
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert child.stdout is not None
    src = child.stdout.fileno()
    os.set_blocking(src, False)
    got = bytearray()
    while len(got) < 50 * 1024:
        data, written, failed = run(src, dst_w, (), 1 << 20, 1.0, 0.2)
        assert written == len(data) and failed == 0
        got += data
    child.stdout.close()
    assert child.wait() == 0
    assert bytes(got) == b"".join(b"%04d" % i * 256 for i in range(50)) == drain(dst_r)


def test_input_on_a_wait_fd_ends_it_when_the_source_runs_dry(run: Burst, fds: list[int]) -> None:
    src_r, src_w = pipe()
    dst_r, dst_w = pipe()
    key_r, key_w = pipe()
    fds += [src_r, src_w, dst_r, dst_w, key_r, key_w]
    os.write(key_w, b"k")
    started = time.monotonic()
    data, written, failed = run(src_r, dst_w, (key_r,), 1 << 20, 5.0, 5.0)
    assert (data, written, failed) == (b"", 0, 0)
    assert time.monotonic() - started < 2.0  # not the 5 s window nor the idle time


def test_the_window_bounds_a_flood(run: Burst, fds: list[int]) -> None:
    """Output that never stops is handed to the recording at least every window."""
    dst_r, dst_w = pipe()
    fds += [dst_r, dst_w]
    child = subprocess.Popen(["yes", "flood"], stdout=subprocess.PIPE)
    assert child.stdout is not None
    src = child.stdout.fileno()
    os.set_blocking(src, False)
    try:
        fcntl.fcntl(dst_w, 1031, 1 << 20)
        total, rounds = 0, 0
        started = time.monotonic()
        while time.monotonic() - started < 0.5:
            data, written, failed = run(src, dst_w, (), 1 << 24, 0.05, 1.0)
            drain(dst_r)
            total += len(data)
            rounds += 1
        assert total > 0 and rounds >= 5  # each call ended after its 50 ms window
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_the_limit_bounds_what_is_held(run: Burst, fds: list[int]) -> None:
    src_r, src_w = pipe()
    dst_r, dst_w = pipe()
    fds += [src_r, src_w, dst_r, dst_w]
    for fd in (src_w, dst_w):
        fcntl.fcntl(fd, 1031, 1 << 20)
    os.write(src_w, b"x" * 300_000)
    data, written, _ = run(src_r, dst_w, (), 100_000, 1.0, 0.05)
    assert 100_000 <= len(data) < 100_000 + 65536 + 1 and written == len(data)


def test_a_full_destination_leaves_the_rest_to_the_backlog(run: Burst, fds: list[int]) -> None:
    src_r, src_w = pipe()
    dst_r, dst_w = pipe()
    fds += [src_r, src_w, dst_r, dst_w]
    fcntl.fcntl(src_w, 1031, 1 << 20)
    fcntl.fcntl(dst_w, 1031, 4096)  # the smallest pipe: fills at once
    os.write(src_w, b"y" * 200_000)
    started = time.monotonic()
    data, written, failed = run(src_r, dst_w, (), 1 << 20, 0.2, 0.05)
    assert failed == 0 and 0 < written < len(data)
    assert time.monotonic() - started >= 0.2  # the room it waited for never came
    assert drain(dst_r) == b"y" * written


def test_a_slow_destination_is_waited_for_within_the_window(run: Burst, fds: list[int]) -> None:
    """A client that reads slowly holds the burst (and so the program) back, as a blocking
    write would, instead of leaving a backlog for the interpreter."""
    import threading

    src_r, src_w = pipe()
    dst_r, dst_w = pipe()
    fds += [src_r, src_w, dst_r, dst_w]
    fcntl.fcntl(src_w, 1031, 1 << 20)
    fcntl.fcntl(dst_w, 1031, 4096)
    os.write(src_w, b"s" * 100_000)
    got = bytearray()

    def client() -> None:
        os.set_blocking(dst_r, True)
        while len(got) < 100_000:
            got.extend(os.read(dst_r, 1024))  # a quarter of the pipe at a time

    reader = threading.Thread(target=client)
    reader.start()
    data, written, failed = run(src_r, dst_w, (), 1 << 20, 10.0, 0.05)
    reader.join(timeout=10)
    assert (len(data), written, failed) == (100_000, 100_000, 0)
    assert bytes(got) == b"s" * 100_000


def test_keys_end_the_wait_for_a_full_destination(run: Burst, fds: list[int]) -> None:
    src_r, src_w = pipe()
    dst_r, dst_w = pipe()
    keys_r, keys_w = pipe()
    fds += [src_r, src_w, dst_r, dst_w, keys_r, keys_w]
    fcntl.fcntl(src_w, 1031, 1 << 20)
    fcntl.fcntl(dst_w, 1031, 4096)
    os.write(src_w, b"k" * 100_000)
    os.write(keys_w, b"q")  # a key is waiting: the relay must get it long before the window ends
    started = time.monotonic()
    data, written, failed = run(src_r, dst_w, (keys_r,), 1 << 20, 10.0, 0.05)
    assert time.monotonic() - started < 5
    assert failed == 0 and 0 < written < len(data)


def test_a_broken_destination_is_reported(run: Burst, fds: list[int]) -> None:
    src_r, src_w = pipe()
    dst_r, dst_w = pipe()
    fds += [src_r, src_w, dst_w]
    os.close(dst_r)
    os.write(src_w, b"z" * 1000)
    data, written, failed = run(src_r, dst_w, (), 1 << 20, 1.0, 0.05)
    assert (data, written, failed) == (b"z" * 1000, 0, errno.EPIPE)


def test_end_of_input_stops_it_and_stays_for_the_relay(run: Burst, fds: list[int]) -> None:
    src_r, src_w = pipe()
    dst_r, dst_w = pipe()
    fds += [src_r, dst_r, dst_w]
    os.write(src_w, b"last words")
    os.close(src_w)
    assert run(src_r, dst_w, (), 1 << 20, 1.0, 0.05) == (b"last words", 10, 0)
    assert os.read(src_r, 10) == b""  # the relay still sees the end itself
