"""The wheel holds every module and data file the installed commands need (an editable
install in development would hide a missing one)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_commands_migrations_and_layers(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("sshrec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    checked = 0
    for folder, package in (("sshrec", "sshrec"), ("recorder", "sshrec/recorder"),
                            ("player", "sshrec/player"), ("schema", "sshrec/schema")):
        for source in (ROOT / folder).rglob("*"):
            if source.suffix in (".py", ".tcss") or source.name == "alembic.ini":
                relative = source.relative_to(ROOT / folder).as_posix()
                assert f"{package}/{relative}" in names, f"{source} is missing from the wheel"
                checked += 1
    assert checked >= 50, f"only {checked} source files found under {ROOT}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "sshrec = sshrec.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
