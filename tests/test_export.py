"""``sshrec export``: files that stand alone, play in asciinema 2.4, and appear only when complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ptydriver import PtyProcess
from recorder_helpers import SSHREC, record_env
from sshrec.schema.asciicast import open_cast
from test_play_seekindex import spool_session

Spool = tuple[Path, list[str]]
ASCIINEMA = str(Path(SSHREC).parent / "asciinema")
ESC = "\x1b"
EVENTS = [
    (0.0, "o", f"{ESC}[1;32malice@db1{ESC}[0m:~$ "),
    (0.5, "o", "l"), (0.6, "o", "x"), (0.7, "o", f"\b{ESC}[K"), (0.8, "o", "s"),
    (1.0, "o", "\r\nREADME  café.txt  日本\r\n"),
    (1.2, "m", "listed files"),
    (1.5, "o", f"alice@db1:~$ {ESC}]0;title\x07exit\r\n"),
]


def env_for(home: Path) -> dict[str, str]:
    return record_env(home, SSHREC_DB=f"sqlite:///{home}/index.db")


def sshrec(home: Path, *args: str, check: bool = True, stdin: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([SSHREC, *args], env=env_for(home), capture_output=True, text=True, input=stdin)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def events_of(path: Path | str) -> list[tuple[float, str, str]]:
    handle, reader = open_cast(str(path))
    with handle:
        return [(round(e.time, 6), e.code, e.data) for e in reader.events()]


def header_of(path: Path | str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.loads(handle.readline())


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    home = tmp_path / "home"
    one, _ = spool_session(home, EVENTS, 2, user="alice", original_command="ls")
    two, _ = spool_session(home, EVENTS + [(2.0, "x", "0")], 3, user="bob", offset=60)
    return home, [one, two]


def test_export_by_id_stands_alone_and_matches_the_recording(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    out = tmp_path / "case"
    result = sshrec(home, "export", *ids, "--out", str(out))
    assert "exported 2 session(s)" in result.stdout and "manifest.json SHA-256" in result.stdout
    assert sorted(os.listdir(out)) == sorted([f"{i}.cast" for i in ids] + ["manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["selection"] == {"ids": ids} and manifest["export_format"] == "v2"
    for entry, session_id in zip(manifest["files"], ids, strict=True):
        exported = out / entry["name"]
        spooled = json.loads(next(home.glob(f"recordings/*/*/*/{session_id}.json")).read_text())
        assert entry["record"] == spooled and entry["record"]["sha256"]  # the final record, not the header's
        assert header_of(exported)["sshrec"] == spooled
        assert entry["size"] == exported.stat().st_size
        assert entry["source"]["source_check"] == "ok"
        original = [e for e in events_of(spooled["path"]) if e[1] != "x"]
        assert events_of(exported) == original  # v3 -> v2: same absolute times, exit event left out
    assert sshrec(home, "verify", str(out)).returncode == 0


def test_asciinema_cat_of_the_export_equals_sshrec_cat(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    out = tmp_path / "case"
    sshrec(home, "export", *ids, "--out", str(out))
    for session_id in ids:
        ours = subprocess.run([SSHREC, "cat", session_id], env=env_for(home), capture_output=True, check=True)
        theirs = subprocess.run([ASCIINEMA, "cat", str(out / f"{session_id}.cast")], capture_output=True,
                                check=True)
        assert theirs.stdout == ours.stdout and b"README" in ours.stdout


def test_asciinema_play_runs_the_export_under_a_pty(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    out = tmp_path / "case"
    sshrec(home, "export", *ids, "--out", str(out))
    for session_id in ids:
        with PtyProcess([ASCIINEMA, "play", "-s", "100", str(out / f"{session_id}.cast")],
                        env=dict(os.environ, TERM="xterm", LC_ALL="C.UTF-8")) as term:
            term.expect_exact("README")
            assert term.wait(timeout=30) == 0


def test_v3_export_converts_times_and_keeps_the_exit_event(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    out = tmp_path / "v3"
    sshrec(home, "export", "--format", "v3", *ids, "--out", str(out))
    for session_id in ids:
        spooled = json.loads(next(home.glob(f"recordings/*/*/*/{session_id}.json")).read_text())
        exported = out / f"{session_id}.cast"
        assert header_of(exported)["version"] == 3
        assert events_of(exported) == events_of(spooled["path"])


def test_txt_export_is_the_screen_text_with_times(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    out = tmp_path / "txt"
    sshrec(home, "export", "--format", "txt", ids[0], "--out", str(out))
    text = (out / f"{ids[0]}.txt").read_text()
    lines = text.splitlines()
    assert lines[0].startswith(f"# sshrec session {ids[0]}: alice@db1") and "command: ls" in lines[0]
    body = [line.split("] ", 1) for line in lines[2:]]
    assert body == [
        ["[10:00:01 +1.000", "alice@db1:~$ ls"],  # typed 'lx', erased, 's': as it was when Enter was hit
        ["[10:00:01 +1.000", "README  café.txt  日本"],
        ["[10:00:01 +1.200", "[marker: listed files]"],
        ["[10:00:01 +1.500", "alice@db1:~$ exit"],
    ]
    assert ESC not in text and "title" not in text
    assert sshrec(home, "verify", str(out)).returncode == 0


def test_export_by_query_uses_the_index(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    sshrec(home, "index", "--quiet")
    out = tmp_path / "alice"
    sshrec(home, "export", "--query", "user=alice since=2024-05-01", "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == [f"{ids[0]}.cast"]
    selection = manifest["selection"]
    assert selection["query"] == "user=alice since=2024-05-01" and selection["matched"] == 1
    assert selection["filters"]["user"] == "alice"
    assert selection["filters"]["since"].startswith("2024-05-01T00:00")
    bad = sshrec(home, "export", "--query", "colour=red", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "unknown filter 'colour'; known: user: key:" in bad.stderr
    same = sshrec(home, "export", "--query", "user:alice since:2024-05-01", "--out", str(tmp_path / "w"))
    assert "exported 1 session(s)" in same.stdout  # the search bar's form: one parser for both
    none = sshrec(home, "export", "--query", "user=nobody", "--out", str(tmp_path / "y"), check=False)
    assert none.returncode == 1 and "no sessions selected" in none.stderr
    assert not (tmp_path / "y").exists()


def test_ids_from_stdin(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    sshrec(home, "export", "--ids-from", "-", "--out", str(tmp_path / "out"), stdin="\n".join(ids) + "\n")
    assert len(json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]) == 2


def test_an_altered_recording_stops_the_export_and_leaves_nothing(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    cast = next(home.glob(f"recordings/*/*/*/{ids[1]}.cast"))
    cast.write_bytes(cast.read_bytes().replace(b"README", b"READYOU"))
    out = tmp_path / "case"
    result = sshrec(home, "export", *ids, "--out", str(out), check=False)
    assert result.returncode == 1 and "does not match the SHA-256 in its session record" in result.stderr
    assert os.listdir(tmp_path) == ["home"]  # no output directory, no partial directory
    flagged = sshrec(home, "export", *ids, "--out", str(out), "--include-altered")
    assert "DOES NOT MATCH" in flagged.stderr
    checks = [f["source"]["source_check"] for f in json.loads((out / "manifest.json").read_text())["files"]]
    assert checks == ["ok", "mismatch"]


def test_a_killed_export_never_looks_complete(spool: Spool, tmp_path: Path) -> None:
    """The second source is a FIFO nobody writes: the export blocks inside it and is killed."""
    home, ids = spool
    fifo = tmp_path / "stuck.cast"
    os.mkfifo(fifo)
    (tmp_path / "stuck.json").write_text(json.dumps({"id": "STUCK", "sha256": "0" * 64}))
    out = tmp_path / "case"
    process = subprocess.Popen([SSHREC, "export", ids[0], str(fifo), "--out", str(out)], env=env_for(home))
    try:
        deadline = time.monotonic() + 20
        partial: list[Path] = []
        while time.monotonic() < deadline and not (partial and (partial[0] / f"{ids[0]}.cast").exists()):
            partial = list(tmp_path.glob(".case.partial-*"))
            time.sleep(0.02)
        assert partial, "the export never started"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not out.exists()
    assert not (partial[0] / "manifest.json").exists()


def test_a_torn_last_line_is_left_out_and_the_original_digest_still_checks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    session_id, cast = spool_session(home, EVENTS)
    record_file = cast.with_suffix(".json")
    with open(cast, "ab") as handle:
        handle.write(b'[9.0, "o", "torn')
    record = json.loads(record_file.read_text())
    record["sha256"] = __import__("hashlib").sha256(cast.read_bytes()).hexdigest()
    record["status"] = "interrupted"
    record_file.write_text(json.dumps(record))
    out = tmp_path / "out"
    sshrec(home, "export", session_id, "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"][0]["source"]["dropped_tail_bytes"] == len(b'[9.0, "o", "torn')
    exported = out / f"{session_id}.cast"
    assert exported.read_bytes().endswith(b"exit\\r\\n\"]\n")
    alone = tmp_path / "alone.cast"
    alone.write_bytes(exported.read_bytes())
    result = sshrec(home, "verify", str(alone))
    assert "match the original recording's SHA-256" in result.stdout


def test_refuses_an_existing_directory_and_bad_arguments(spool: Spool, tmp_path: Path) -> None:
    home, ids = spool
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    result = sshrec(home, "export", ids[0], "--out", str(taken), check=False)
    assert result.returncode == 1 and "already exists and is not an empty directory" in result.stderr
    assert os.listdir(taken) == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    sshrec(home, "export", ids[0], "--out", str(empty))  # an empty directory is filled
    assert (empty / "manifest.json").exists()
    assert sshrec(home, "export", "--out", str(tmp_path / "z"), check=False).returncode == 2
    both = sshrec(home, "export", ids[0], "--query", "user=a", "--out", str(tmp_path / "z"), check=False)
    assert both.returncode == 2 and "not both" in both.stderr


def test_help_shows_examples() -> None:
    result = subprocess.run([SSHREC, "export", "--help"], capture_output=True, text=True, check=True)
    assert "sshrec export --query" in result.stdout and "--format" in result.stdout
