"""`sshrec import`: casts written by asciinema (and by hand) into the spool and the index."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sshrec.schema.record import read_record
from sshrec.schema.spool import iter_record_files

from sshrec.commands import import_ as import_command
from sshrec.commands import ls as ls_command
from sshrec.commands import search as search_command

ASCIINEMA = os.path.join(os.path.dirname(sys.executable), "asciinema")


def spool_files(home: str) -> list[str]:
    found = []
    for dirpath, _, names in os.walk(home):
        found += [os.path.join(dirpath, n) for n in names if not n.startswith("index.db")]
    return sorted(found)


def run_import(capsys: pytest.CaptureFixture[str], home: str, url: str, *args: str) -> tuple[int, str, str]:
    status = import_command.main([*args, "--home", home, "--db", url])
    out, err = capsys.readouterr()
    return status, out, err


def listed(capsys: pytest.CaptureFixture[str], home: str, url: str, *args: str) -> list[dict]:
    assert ls_command.main([*args, "--json", "--home", home, "--db", url]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def asciinema_cast(tmp_path: Path) -> Path:
    """A cast recorded by the real asciinema 2 (installed with the test extras)."""
    if not os.path.exists(ASCIINEMA) and not shutil.which("asciinema"):
        pytest.skip("asciinema is not installed (pip install 'sshrec[test]')")
    path = tmp_path / "demo.cast"
    command = "printf 'hello from asciinema\\n'; printf '\\033[1mbold\\033[0m deploy-token-42\\n'"
    subprocess.run(
        [
            ASCIINEMA if os.path.exists(ASCIINEMA) else "asciinema",
            "rec",
            "--quiet",
            "-t",
            "demo",
            "-c",
            command,
            str(path),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    return path


def test_import_asciinema_recording(
    asciinema_cast: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    original = asciinema_cast.read_bytes()
    status, out, err = run_import(capsys, home, db_url, str(asciinema_cast))
    assert status == 0, err
    assert "imported as" in out
    [json_path] = list(iter_record_files(home))
    record = read_record(json_path)
    header = json.loads(original.splitlines()[0])
    assert record.mode == "import"
    assert record.status == "complete"
    assert (record.cols, record.rows) == (header["width"], header["height"])
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(header["timestamp"]))
    assert record.started_at.startswith(started)
    assert record.sha256 == hashlib.sha256(original).hexdigest()
    assert record.duration is not None and record.duration >= 0
    assert "title: demo" in record.notes
    with open(record.path, "rb") as handle:  # copied byte for byte
        assert handle.read() == original
    [item] = listed(capsys, home, db_url)
    assert item["id"] == record.id and item["mode"] == "import"
    assert search_command.main(["deploy", "token", "42", "--json", "--home", home, "--db", db_url]) == 0
    [hit] = json.loads(capsys.readouterr().out)
    assert hit["id"] == record.id


def v3_cast() -> str:
    lines = [
        json.dumps(
            {
                "version": 3,
                "term": {"cols": 100, "rows": 30, "type": "xterm"},
                "timestamp": 1714557600,
                "command": "bash -c 'make test'",
                "title": "v3 demo",
            }
        ),
        "# a comment line",
        json.dumps([0.5, "o", "building...\r\n"]),
        json.dumps([1.25, "r", "120x40"]),
        json.dumps([2.0, "o", "tests passed\r\n"]),
        json.dumps([0.25, "x", "0"]),
    ]
    return "\n".join(lines) + "\n"


def test_import_v3_with_intervals(
    tmp_path: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v3.cast"
    path.write_text(v3_cast())
    status, out, err = run_import(capsys, home, db_url, str(path))
    assert status == 0, err
    [item] = listed(capsys, home, db_url)
    assert item["duration"] == pytest.approx(4.0)  # 0.5 + 1.25 + 2.0 + 0.25
    assert item["started_at"] == "2024-05-01T10:00:00.000000Z"
    assert item["ended_at"] == "2024-05-01T10:00:04.000000Z"
    assert item["command"] == ["bash", "-c", "make test"]
    assert (item["cols"], item["rows"], item["term"]) == (100, 30, "xterm")
    assert item["bytes_out"] == len("building...\r\ntests passed\r\n")
    assert search_command.main(["passed", "--json", "--home", home, "--db", db_url]) == 0
    [hit] = json.loads(capsys.readouterr().out)
    assert hit["match_time"] == pytest.approx(3.75)


BAD_CASTS = {
    "bad_json_line": (
        '{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "ok"]\n[0.2, "o", "broken\n[0.3, "o", "x"]\n',
        3,
        "event is not JSON",
    ),
    "time_goes_back": (
        '{"version": 2, "width": 80, "height": 24}\n[1.0, "o", "a"]\n[0.5, "o", "b"]\n',
        3,
        "goes back",
    ),
    "not_an_event": ('{"version": 2, "width": 80, "height": 24}\n{"t": 1}\n', 2, "not [time, code, data]"),
    "v1": (
        '{"version": 1, "width": 80, "height": 24, "stdout": [[0.1, "hi"]]}\n',
        1,
        "unsupported asciicast version 1",
    ),
    "empty": ("", 1, "empty"),
    "no_size": ('{"version": 2}\n', 1, "width/height"),
    "torn_tail": ('{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "ok"]\n[0.2, "o", "to', 3, "not JSON"),
    "negative_v3": (
        '{"version": 3, "term": {"cols": 80, "rows": 24}}\n[0.5, "o", "a"]\n[-1.0, "o", "b"]\n',
        3,
        "negative",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CASTS))
def test_malformed_file_is_named_and_nothing_imported(
    name: str, tmp_path: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line, problem = BAD_CASTS[name]
    good = tmp_path / "good.cast"
    good.write_text(v3_cast())
    bad = tmp_path / f"{name}.cast"
    bad.write_text(text)
    status, out, err = run_import(capsys, home, db_url, str(good), str(bad))
    assert status == 1
    first = err.splitlines()[0]
    assert first.startswith(f"sshrec import: {bad}:{line}: ")
    assert problem in first
    assert "nothing imported" in err
    assert spool_files(home) == []  # not even the good one


def test_not_utf8_names_the_line(
    tmp_path: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "latin1.cast"
    bad.write_bytes(b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "ok"]\n[0.2, "o", "caf\xe9"]\n')
    status, _, err = run_import(capsys, home, db_url, str(bad))
    assert status == 1
    assert f"{bad}:3: not UTF-8" in err


def test_missing_file(tmp_path: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_import(capsys, home, db_url, str(tmp_path / "nope.cast"))
    assert status == 1 and "nope.cast" in err and "No such file" in err


def test_same_file_twice_is_skipped_unless_again(
    tmp_path: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v3.cast"
    path.write_text(v3_cast())
    assert run_import(capsys, home, db_url, str(path))[0] == 0
    status, out, _ = run_import(capsys, home, db_url, str(path))
    assert status == 0 and "already imported as" in out
    assert len(listed(capsys, home, db_url)) == 1
    assert run_import(capsys, home, db_url, "--again", str(path))[0] == 0
    assert len(listed(capsys, home, db_url)) == 2


def test_no_index_then_index_later(
    tmp_path: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlalchemy as sa
    from sshrec.schema.db import open_index
    from sshrec.schema.tables import sessions

    from sshrec.commands import index as index_command

    def indexed() -> list[str]:
        engine = open_index(db_url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(sa.select(sessions.c.mode)).scalars())
        finally:
            engine.dispose()

    path = tmp_path / "v3.cast"
    path.write_text(v3_cast())
    assert run_import(capsys, home, db_url, "--no-index", "--quiet", str(path))[:2] == (0, "")
    assert indexed() == []
    assert index_command.main(["--quiet", "--home", home, "--db", db_url]) == 0
    assert indexed() == ["import"]


def test_sshrec_header_fields_are_kept(
    tmp_path: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    header = {
        "version": 2,
        "width": 80,
        "height": 24,
        "timestamp": 1714557600,
        "sshrec": {
            "id": "01HWX0000000000000000000AA",
            "user": "alice",
            "key_fingerprint": "SHA256:abc",
            "status": "recording",
            "mode": "pty",
        },
    }
    path = tmp_path / "exported.cast"
    path.write_text(json.dumps(header) + "\n" + json.dumps([0.5, "o", "hi"]) + "\n")
    assert run_import(capsys, home, db_url, str(path))[0] == 0
    [item] = listed(capsys, home, db_url, "--key", "SHA256:abc")
    assert (item["user"], item["mode"], item["status"]) == ("alice", "import", "complete")
    assert item["id"] != "01HWX0000000000000000000AA"
    assert "originally sshrec session 01HWX0000000000000000000AA" in item["notes"]


def test_escapes_in_file_names_are_shown(
    tmp_path: Path, db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "evil\x1b[2J.cast"
    bad.write_text("nope\n")
    status, _, err = run_import(capsys, home, db_url, str(bad))
    assert status == 1 and "\x1b" not in err and "evil\\e[2J.cast:1:" in err
