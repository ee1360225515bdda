"""Shared by the recorder tests: where the sshrec command is and how to read what it wrote."""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path
from typing import Any

from sshrec.schema.asciicast import open_cast

SSHREC = str(Path(sys.executable).parent / "sshrec")


def recordings(home: str | os.PathLike[str]) -> list[str]:
    """The <id>.json files in a spool, oldest first."""
    return sorted(glob.glob(os.path.join(home, "recordings", "*", "*", "*", "*.json")))


def only_record(home: str | os.PathLike[str]) -> dict[str, Any]:
    found = recordings(home)
    assert len(found) == 1, f"expected one recording in {home}, found {found}"
    with open(found[0], encoding="utf-8") as handle:
        return json.load(handle)


def cast_output(cast: str) -> str:
    handle, reader = open_cast(cast)
    with handle:
        return "".join(e.data for e in reader.events() if e.code == "o")


def cast_events(cast: str) -> list[tuple[float, str, str]]:
    handle, reader = open_cast(cast)
    with handle:
        return [(e.time, e.code, e.data) for e in reader.events()]


def record_env(home: str | os.PathLike[str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH")}
    env.update(SSHREC_HOME=str(home), SSHREC_CONFIG="/dev/null", LC_ALL="C.UTF-8")
    env.update(extra)
    return env
