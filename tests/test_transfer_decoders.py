"""The sftp and scp decoders (recorder/transfer/) on hand-made streams, hostile ones included,
and what counts as a transfer at all (recorder/command.py)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from sftp_packets import packet, string, u32, upload_and_download
from sshrec.recorder.command import shell_words, transfer_command
from sshrec.recorder.transfer import sftp
from sshrec.recorder.transfer.scp import ScpDecoder
from sshrec.recorder.transfer.sink import rsync_files, scp_direction

CORPUS = Path(__file__).parent / "fuzz" / "sftp_corpus"
EXPECTED = [
    {"op": "write", "path": "/up.bin", "bytes": 100_000},
    {"op": "read", "path": "/down.bin", "bytes": 1234},
    {"op": "rename", "path": "/up.bin", "to": "/final.bin"},
    {"op": "remove", "path": "/missing", "error": "no such file"},
]


def decode(client: bytes, server: bytes, pieces: int = 1, seed: int = 0) -> sftp.SftpDecoder:
    """Feed the client's bytes, then the server's (replies never overtake their requests), each
    cut at ``pieces - 1`` random places, as reads arrive in a relay."""
    decoder = sftp.SftpDecoder(lambda: 1.0)
    rng = random.Random(seed)
    for data, feed in ((client, decoder.client), (server, decoder.server)):
        cuts = sorted(rng.sample(range(1, len(data)), pieces - 1)) if pieces > 1 else []
        for chunk in _split(data, cuts):
            feed(chunk)
    decoder.finish()
    return decoder


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def without_times(ops: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in op.items() if k != "at"} for op in ops]


def test_operations_are_decoded_from_whole_packets() -> None:
    decoder = decode(*upload_and_download())
    assert decoder.stopped is None
    assert without_times(decoder.ops) == EXPECTED


@pytest.mark.parametrize("seed", range(5))
def test_any_split_of_the_stream_gives_the_same_operations(seed: int) -> None:
    client, server = upload_and_download()
    decoder = decode(client, server, pieces=200, seed=seed)
    assert without_times(decoder.ops) == EXPECTED


def test_a_packet_too_large_stops_decoding_only() -> None:
    decoder = sftp.SftpDecoder(lambda: 0.0)
    decoder.client(struct.pack(">I", 50_000_000) + b"\x03garbage")
    assert decoder.stopped and "packet length" in decoder.stopped
    decoder.client(b"anything at all")  # ignored from now on, without error
    assert decoder.ops == []


def test_a_truncated_field_stops_decoding_only() -> None:
    decoder = sftp.SftpDecoder(lambda: 0.0)
    decoder.client(packet(sftp.OPEN, u32(1), struct.pack(">I", 500) + b"/short"))
    assert decoder.stopped and "ends inside a string" in decoder.stopped


def test_memory_stays_bounded_under_a_flood_of_requests() -> None:
    decoder = sftp.SftpDecoder(lambda: 0.0)
    for n in range(sftp.MAX_PENDING * 3):
        decoder.client(packet(sftp.OPEN, u32(n), string(f"/f{n}"), u32(1), u32(0)))
    assert len(decoder.pending) <= sftp.MAX_PENDING
    for n in range(sftp.MAX_HANDLES * 2):
        decoder.client(packet(sftp.OPEN, u32(10**6 + n), string("/x"), u32(1), u32(0)))
        decoder.server(packet(sftp.HANDLE, u32(10**6 + n), string(f"h{n}")))
    assert len(decoder.handles) <= sftp.MAX_HANDLES
    big = packet(sftp.WRITE, u32(7), string(b"h0"), struct.pack(">Q", 0), string(b"z" * 200_000))
    decoder.client(big[:1000])
    assert len(decoder.requests.buffer) <= sftp.PREFIX


def test_the_corpus_never_breaks_the_decoder() -> None:
    """tests/fuzz/sftp_corpus: seeds plus what the fuzzer (tests/fuzz/fuzz_sftp.py) kept."""
    files = sorted(CORPUS.iterdir())
    assert len(files) >= 5
    for path in files:
        data = path.read_bytes()
        half = len(data) // 2
        decoder = sftp.SftpDecoder(lambda: 0.0)
        decoder.client(data[:half])
        decoder.server(data[half:])
        decoder.finish()
        assert decoder.stopped is None or "internal error" not in decoder.stopped, (path, decoder.stopped)
        assert len(decoder.ops) <= sftp.MAX_OPS


def test_scp_upload_lines_name_each_file(tmp_path: Path) -> None:
    target = tmp_path / "in"
    target.mkdir()
    decoder = ScpDecoder([str(target)], True, lambda: 2.0)
    stream = (b"T1700000000 0 1700000000 0\nC0644 5 a.txt\nhello\0D0755 0 sub\nC0600 3 b.bin\nxyz\0E\n"
              b"C0644 0 empty\n\0")
    for n in range(0, len(stream), 3):  # in small pieces
        decoder.feed(stream[n : n + 3])
    assert decoder.stopped is None
    assert without_times(decoder.ops) == [
        {"op": "upload", "path": str(target / "a.txt"), "bytes": 5},
        {"op": "upload", "path": str(target / "sub" / "b.bin"), "bytes": 3},
        {"op": "upload", "path": str(target / "empty"), "bytes": 0},
    ]


def test_scp_download_and_a_bad_line() -> None:
    decoder = ScpDecoder(["/etc/hosts"], False, lambda: 0.0)
    decoder.feed(b"C0644 10 hosts\n0123456789\0")
    assert without_times(decoder.ops) == [{"op": "download", "path": "/etc/hosts", "bytes": 10}]
    decoder.feed(b"C0644 1 ../../etc/passwd\n")
    assert decoder.stopped and "bad C line" in decoder.stopped


def test_scp_and_rsync_arguments() -> None:
    assert scp_direction(["scp", "-v", "-d", "-t", "--", "/tmp/x"]) == (True, ["/tmp/x"])
    assert scp_direction(["scp", "-f", "/a", "/b"]) == (False, ["/a", "/b"])
    assert rsync_files(["rsync", "--server", "--sender", "-vlogDtpre.iLsfxC", ".", "/srv/data"], 0.5) == [
        {"op": "download", "path": "/srv/data", "at": 0.5}]


@pytest.mark.parametrize("command", [
    "scp -t /tmp/x; bash -i", "scp -t /tmp/$(id)", "scp -f /tmp/*.log", "rsync --server . /x && sh",
    "sftp-server | tee /tmp/log", "scp -t /tmp/x\nbash", "/home/mallory/sftp-server", "rsync -a . /x",
    "scp /a /b",
])
def test_anything_with_shell_around_it_is_no_transfer(command: str) -> None:
    assert transfer_command(command) is None


@pytest.mark.parametrize(("command", "mode", "program"), [
    ("scp -t -- /tmp/x", "scp", "/usr/bin/scp"),
    ("scp -v -f /etc/hosts", "scp", "/usr/bin/scp"),
    ("rsync --server -vlogDtpre.iLsfxC . /tmp/x", "rsync", "/usr/bin/rsync"),
    ("internal-sftp", "sftp", "/usr/lib/openssh/sftp-server"),
    ("/usr/lib/openssh/sftp-server", "sftp", "/usr/lib/openssh/sftp-server"),
])
def test_exact_transfer_commands_run_from_trusted_paths(command: str, mode: str, program: str) -> None:
    if not Path(program).exists():
        pytest.skip(f"{program} is not installed")
    found = transfer_command(command)
    assert found is not None and found.mode == mode and found.argv[0] == program


def test_shell_words() -> None:
    assert shell_words("scp -t -- '/tmp/with space'") == ["scp", "-t", "--", "/tmp/with space"]
    assert shell_words("a;b") is None and shell_words("") is None


def test_a_short_fuzzing_run_finds_nothing(tmp_path: Path) -> None:
    """atheris from the corpus for a few seconds (the long runs: tests/fuzz/fuzz_sftp.py)."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("atheris", reason="atheris is not installed (pip install 'sshrec[test]')")
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    result = subprocess.run([sys.executable, str(CORPUS.parent / "fuzz_sftp.py"), str(corpus), "-runs=30000",
                             f"-artifact_prefix={tmp_path}/"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 30000 runs" in result.stderr
