"""Fuzz the sftp decoder with atheris (libFuzzer for Python), from the corpus beside it.

    .venv/bin/python tests/fuzz/fuzz_sftp.py tests/fuzz/sftp_corpus -max_total_time=300

Each input is split in two: the client's bytes, then the server's (a first byte picks where).
The decoder may stop (a malformed stream is expected); it must never raise, hold more than its
bounds, or report an internal error. New inputs that find new paths are written into the
corpus folder: keep the interesting ones in git (tests/test_transfer_decoders.py replays them).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from sshrec.recorder.transfer import sftp


def check(data: bytes) -> None:
    cut = data[0] * len(data) // 256 if data else 0
    decoder = sftp.SftpDecoder(lambda: 0.0)
    for start in range(1, cut, 97):  # in uneven pieces, as reads arrive
        decoder.client(data[start : start + 97])
    decoder.server(data[cut:])
    decoder.finish()
    if decoder.stopped and "internal error" in decoder.stopped:
        raise AssertionError(decoder.stopped)
    assert len(decoder.pending) <= sftp.MAX_PENDING and len(decoder.handles) <= sftp.MAX_HANDLES
    assert len(decoder.requests.buffer) <= sftp.MAX_HEADER and len(decoder.replies.buffer) <= sftp.MAX_HEADER


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
