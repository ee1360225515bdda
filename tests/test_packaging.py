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
    for folder, package in (("sshrec/commands", "sshrec/commands"), ("recorder", "sshrec/recorder"),
                            ("player", "sshrec/player"), ("schema", "sshrec/schema"),
                            ("schema/migrations", "sshrec/schema/migrations"),
                            ("schema/migrations/versions", "sshrec/schema/migrations/versions")):
        for source in (ROOT / folder).glob("*.py"):
            assert f"{package}/{source.name}" in names, f"{source} is missing from the wheel"
    for style in (ROOT / "player").glob("*.tcss"):
        assert f"sshrec/player/{style.name}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "sshrec = sshrec.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
