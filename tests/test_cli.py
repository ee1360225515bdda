"""The command line around the subcommands: common options in either place, helpful errors,
the index progress bar on a terminal only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from index_support import make_session
from ptydriver import PtyProcess
from recorder_helpers import SSHREC, record_env


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SSHREC, *args], env=env, capture_output=True, text=True, timeout=60)


def test_common_options_go_before_or_after_the_subcommand(tmp_path: Path, home: str) -> None:
    record = make_session(home)
    env = record_env(tmp_path / "elsewhere")
    db = f"sqlite:///{tmp_path}/index.db"
    before = run("--home", home, f"--db={db}", "ls", "--json", env=env)
    after = run("ls", "--json", "--home", home, "--db", db, env=env)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    listed = [[r["id"] for r in json.loads(result.stdout)] for result in (before, after)]
    assert listed == [[record.id], [record.id]]


def test_a_word_that_is_no_subcommand_says_how_to_record_it(tmp_path: Path) -> None:
    result = run("top", env=record_env(tmp_path))
    assert result.returncode == 2
    assert "'top' is not a subcommand (see: sshrec help)" in result.stderr and "sshrec -- top" in result.stderr
    assert not (tmp_path / "recordings").exists()


def test_help_lists_setup(tmp_path: Path) -> None:
    result = run("help", env=record_env(tmp_path))
    assert result.returncode == 0 and "  setup " in result.stdout


def test_index_shows_progress_on_a_terminal_only(tmp_path: Path, home: str) -> None:
    for day in range(3):
        make_session(home, start=1_714_557_600.0 + day * 86400)
    env = record_env(home, SSHREC_DB=f"sqlite:///{tmp_path}/index.db")
    with PtyProcess([SSHREC, "index"], env=env) as term:
        term.expect_exact("indexing [")
        term.expect_exact("3 new, 0 changed")
        assert term.wait() == 0
    quiet = run("index", env=env)
    assert quiet.returncode == 0 and quiet.stderr == "" and "0 new" in quiet.stdout
