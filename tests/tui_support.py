"""A spool made by the real recorder for the TUI tests, and helpers to drive the app.

Each session is recorded by running ``sshrec -- CMD`` (under a real PTY when it needs one),
then indexed by the indexer. Only what the test machine decides is then fixed in the records
(start times, the account name, the host), so the snapshots look the same on every run and
as any user; the recordings themselves are untouched.
"""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from index_support import BASE_TIME, rewrite_record
from ptydriver import PtyProcess
from recorder_helpers import SSHREC, record_env
from sshrec.player.tui.app import SshrecApp
from sshrec.schema.db import open_index
from sshrec.schema.index import sync
from sshrec.schema.record import iso_utc, read_record
from sshrec.schema.settings import load_settings

# What the colourful PTY session draws: colours, attributes, wide characters, the alternate
# screen (entered and left), and text that must not drive the auditor's terminal. The pauses
# are content (time for the seek bar to cover), not synchronisation.
VIM_LIKE = (
    r"printf '\033[1;31mred alert\033[0m \033[4;32munderlined green\033[0m 日本語 wide\n';"
    r"printf '\033[?1049h\033[2J\033[Hin the alternate screen\033[?1049l';"
    r"printf 'clipboard \033]52;c;cm0gLXJmIC8=\007 kept out\n';"
    r"sleep 0.2; printf 'needle on screen\n'; sleep 0.2; printf 'the end of it\n'"
)
EVIL_COMMAND = "printf 'harmless\\n' # \x1b]52;c;cm0gLXJm\x07 \x1b[2J [bold]markup[/]"


@dataclass
class FixtureSpool:
    home: str
    db_url: str
    ids: dict[str, str]  # name -> session id


def _record_pty(home: str, argv: list[str], **env: str) -> None:
    with PtyProcess([SSHREC, "--no-index", "--", *argv], env=record_env(home, **env), cols=80, rows=12) as term:
        term.read_to_eof()
        term.wait()


def _record_pipe(home: str, argv: list[str] | None, **env: str) -> None:
    command = [SSHREC, "--no-index"] + (["--", *argv] if argv else [])
    subprocess.run(command, env=record_env(home, SHELL="/bin/sh", **env), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)


def _newest_record(home: str, known: set[str]) -> str:
    found = [p for p in glob.glob(os.path.join(home, "recordings", "*", "*", "*", "*.json")) if p not in known]
    assert len(found) == 1, found
    return found[0]


def make_fixture_spool(tmp: Path) -> FixtureSpool:
    home = str(tmp / "spool")
    os.makedirs(home)
    plan = [
        ("colours", lambda: _record_pty(home, ["sh", "-c", VIM_LIKE]), "alice", 0),
        ("deploy", lambda: _record_pipe(home, ["sh", "-c", "echo deploying build 42; exit 3"]), "deploy", 60),
        ("evil", lambda: _record_pipe(home, None, SSH_ORIGINAL_COMMAND=EVIL_COMMAND), "mallory", 120),
    ]
    ids: dict[str, str] = {}
    seen: set[str] = set()
    for name, record_it, user, offset in plan:
        record_it()
        path = _newest_record(home, seen)
        seen.add(path)
        record = read_record(path)
        start = BASE_TIME + offset
        rewrite_record(home, record, user=user, host="bastion", started_at=iso_utc(start),
                       ended_at=iso_utc(start + 1), duration=1.0)
        ids[name] = record.id
    db_url = f"sqlite:///{home}/index.db"
    engine = open_index(db_url)
    try:
        sync(engine, home)
    finally:
        engine.dispose()
    return FixtureSpool(home, db_url, ids)


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> FixtureSpool:
    """The recorded spool, once per test module."""
    return make_fixture_spool(tmp_path_factory.mktemp("tui"))


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seek indexes (and keyframes) in the test's own directory."""
    monkeypatch.setenv("SSHREC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def app(spool: FixtureSpool, private_cache: None) -> Iterator[SshrecApp]:
    """The app over the recorded spool's index."""
    engine = open_index(spool.db_url)
    yield SshrecApp(engine, load_settings(home=spool.home))
    engine.dispose()
