"""`sshrec tui` as a command: the record path never loads Textual; without a terminal it says so."""

from __future__ import annotations

import subprocess
from pathlib import Path

from recorder_helpers import SSHREC, record_env


def test_the_record_path_never_imports_textual(tmp_path: Path) -> None:
    env = record_env(tmp_path, PYTHONPROFILEIMPORTTIME="1")
    done = subprocess.run([SSHREC, "--no-index", "--", "true"], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "sshrec" in imported
    assert not imported & {"textual", "rich", "avt", "sqlalchemy"}, sorted(imported)


def test_tui_needs_a_terminal_and_has_help(tmp_path: Path) -> None:
    env = record_env(tmp_path)
    done = subprocess.run([SSHREC, "tui", "--home", str(tmp_path)], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs a terminal" in done.stderr
    shown = subprocess.run([SSHREC, "tui", "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "user:" in shown.stdout and "--db URL" in shown.stdout
    listed = subprocess.run([SSHREC, "help"], env=env, capture_output=True, text=True, timeout=60)
    assert "tui" in listed.stdout and "not available" not in listed.stderr
