"""``sshrec verify``: each kind of damage is found and named with its file (and line)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from test_export import EVENTS, sshrec
from test_play_seekindex import make_cast, spool_session


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, str, Path]:
    home = tmp_path / "home"
    session_id, cast = spool_session(home, EVENTS)
    return home, session_id, cast


@pytest.fixture
def exported(recorded: tuple[Path, str, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    home, session_id, _ = recorded
    two, _ = spool_session(home, [(float(n), "o", f"line {n:04d} " + "z" * 200 + "\r\n") for n in range(1500)],
                           offset=120)
    out = tmp_path / "case"
    sshrec(home, "export", session_id, two, "--out", str(out))
    return home, out, out / f"{two}.cast"


def verify(home: Path, *targets: str) -> tuple[int, str, str]:
    result = sshrec(home, "verify", *targets, check=False)
    return result.returncode, result.stdout, result.stderr


def flip(path: Path, offset: int, new: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + 1] = new
    path.write_bytes(bytes(data))


def test_an_intact_recording_verifies_by_id_path_and_json(recorded: tuple[Path, str, Path]) -> None:
    home, session_id, cast = recorded
    for target in (session_id, str(cast), str(cast.with_suffix(".json"))):
        status, out, err = verify(home, target)
        assert status == 0 and f"ok  {cast}: matches the SHA-256 in {session_id}.json" in out, err


def test_a_changed_character_in_an_event_is_found(recorded: tuple[Path, str, Path]) -> None:
    home, session_id, cast = recorded
    data = cast.read_bytes()
    flip(cast, data.index(b"README"), b"X")  # still valid JSON: only the digest can tell
    status, _, err = verify(home, session_id)
    assert status == 1
    assert f"FAIL  {cast}: SHA-256 differs from its record although every line is well-formed" in err


def test_a_flipped_byte_that_breaks_a_line_is_named_with_its_line(recorded: tuple[Path, str, Path]) -> None:
    home, session_id, cast = recorded
    lines = cast.read_bytes().split(b"\n")
    offset = len(b"\n".join(lines[:5])) + 1  # the first byte of line 6
    flip(cast, offset, b"{")
    status, _, err = verify(home, session_id)
    assert status == 1 and f"FAIL  {cast}:6: event is not" in err


def test_a_truncated_recording_is_reported_as_truncated(recorded: tuple[Path, str, Path]) -> None:
    home, session_id, cast = recorded
    data = cast.read_bytes()
    cast.write_bytes(data[:-10])  # cut inside the last line
    status, _, err = verify(home, session_id)
    assert status == 1 and "the last line is cut off" in err and "truncated" in err
    lines = data.split(b"\n")
    cast.write_bytes(b"\n".join(lines[:4]) + b"\n")  # cut at a line boundary, 3 events of 8 left
    status, _, err = verify(home, session_id)
    assert status == 1 and "the file was truncated: it holds 26 of the 89" in err
    assert "ends at line 4, 0.6s" in err


def test_a_missing_recording(recorded: tuple[Path, str, Path]) -> None:
    home, session_id, cast = recorded
    cast.unlink()
    status, _, err = verify(home, str(cast.with_suffix(".json")))
    assert status == 1 and "missing" in err


def test_a_recording_still_in_progress_has_nothing_to_verify_yet(tmp_path: Path) -> None:
    stem = tmp_path / "01HZZZZZZZZZZZZZZZZZZZZZZZ"
    make_cast(f"{stem}.cast", EVENTS)
    Path(f"{stem}.json").write_text(json.dumps({"id": stem.name, "status": "recording", "sha256": None}))
    lock = os.open(f"{stem}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        status, _, err = verify(tmp_path, f"{stem}.cast")
        assert status == 1 and "still being recorded" in err
    finally:
        os.close(lock)
    status, _, err = verify(tmp_path, f"{stem}.cast")
    assert status == 1 and "run 'sshrec index' to seal it" in err


def test_an_intact_export(exported: tuple[Path, Path, Path]) -> None:
    home, out, _ = exported
    status, stdout, _ = verify(home, str(out))
    assert status == 0 and stdout.count("matches manifest.json") == 2


def test_export_flipped_byte_names_the_file_and_where(exported: tuple[Path, Path, Path]) -> None:
    home, out, cast = exported
    data = cast.read_bytes()
    offset = data.index(b"line 1000 ")
    flip(cast, offset + 5, b"7")
    status, _, err = verify(home, str(out))
    assert status == 1
    line = data[:offset].count(b"\n") + 1
    (failure,) = [x for x in err.splitlines() if x.startswith("FAIL")]
    assert failure.startswith(f"FAIL  {cast}: SHA-256 differs from manifest.json; first change in bytes ")
    first, last = (int(n) for n in failure.rsplit("lines ", 1)[1].split("-"))
    assert first <= line <= last and last - first < 400


def test_export_truncated_file(exported: tuple[Path, Path, Path]) -> None:
    home, out, cast = exported
    data = cast.read_bytes()
    cast.write_bytes(data[: len(data) // 2])
    status, _, err = verify(home, str(out))
    assert status == 1 and f"FAIL  {cast}:" in err and "truncated:" in err and "manifest.json says" in err


def test_export_missing_file(exported: tuple[Path, Path, Path]) -> None:
    home, out, cast = exported
    cast.unlink()
    status, _, err = verify(home, str(out))
    assert status == 1 and f"FAIL  {cast}: missing (listed in manifest.json)" in err


def test_export_extra_file(exported: tuple[Path, Path, Path]) -> None:
    home, out, _ = exported
    shutil.copy(out / "manifest.json", out / "notes.cast")
    status, _, err = verify(home, str(out))
    assert status == 1 and f"FAIL  {out / 'notes.cast'}: not listed in manifest.json" in err


def test_export_without_manifest(exported: tuple[Path, Path, Path]) -> None:
    home, out, _ = exported
    (out / "manifest.json").unlink()
    status, _, err = verify(home, str(out))
    assert status == 1 and "no manifest.json and no recordings" in err


def test_a_manifest_rewritten_with_the_file_is_still_caught(exported: tuple[Path, Path, Path]) -> None:
    """A forger who edits a cast and recomputes its manifest entry still fails the check of the
    events against the original recording's digest kept in the cast header."""
    home, out, cast = exported
    cast.write_bytes(cast.read_bytes().replace(b"line 0007", b"line 9999"))
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["name"] == cast.name:
            entry["sha256"] = hashlib.sha256(cast.read_bytes()).hexdigest()
            entry["size"] = cast.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest))
    status, _, err = verify(home, str(out))
    assert status == 1 and "matches manifest.json but not the original recording's SHA-256" in err


def test_a_lone_exported_cast(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    home, _, cast = exported
    alone = tmp_path / "alone.cast"
    shutil.copy(cast, alone)
    status, stdout, _ = verify(home, str(alone))
    assert status == 0 and "match the original recording's SHA-256" in stdout
    flip(alone, alone.read_bytes().index(b"line 0100"), b"L")
    status, _, err = verify(home, str(alone))
    assert status == 1 and f"FAIL  {alone}:" in err


def test_a_plain_cast_has_nothing_to_verify_against(tmp_path: Path) -> None:
    cast = make_cast(tmp_path / "plain.cast", EVENTS)
    status, _, err = verify(tmp_path, str(cast))
    assert status == 1 and "nothing to verify against" in err


def test_a_spool_directory_verifies_every_recording(recorded: tuple[Path, str, Path]) -> None:
    home, _, cast = recorded
    spool_session(home, EVENTS, offset=30)
    status, stdout, _ = verify(home, str(home / "recordings"))
    assert status == 0 and stdout.count("ok  ") == 2
    flip(cast, cast.read_bytes().index(b"README"), b"r")
    status, stdout, err = verify(home, str(home / "recordings"))
    assert status == 1 and stdout.count("ok  ") == 1 and err.count("FAIL") == 1


def test_json_output(recorded: tuple[Path, str, Path]) -> None:
    home, session_id, cast = recorded
    result = sshrec(home, "verify", "--json", session_id)
    assert json.loads(result.stdout) == {"ok": True, "path": str(cast), "line": None,
                                         "message": f"matches the SHA-256 in {session_id}.json "
                                                    f"({json.loads(cast.with_suffix('.json').read_text())['sha256'][:16]}…)"}
