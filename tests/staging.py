"""An sshrec that the sshd test users can run, wherever the clone lives.

sshd runs each session as the test user, who cannot enter a clone in a private folder (a
checkout under /root, mode 0700): the venv's ``sshrec`` fails with 126. Then the venv is
copied to a world-readable temporary folder with its editable install pointed at a copy of
the package folders, and sessions run that. The copy keeps the venv's own interpreter link
(the Makefile builds the venv from /usr/bin/python3, which everyone can run).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sshd_harness import TestUser

ROOT = Path(__file__).resolve().parent.parent
# Not needed by sessions, and large. (Compiled bytecode is kept: the test users cannot
# write it, so without it every session would compile SQLAlchemy again.)
SKIPPED = shutil.ignore_patterns("ruff", "ruff-*", "pip", "pip-*")


def runnable_by(user: TestUser, executable: Path) -> bool:
    """Whether ``user`` can start ``executable --version`` (as sshd would start it, as them)."""
    if not user.privileged or os.geteuid() != 0:
        return True  # sessions run as ourselves
    try:
        result = subprocess.run([str(executable), "--version"], user=user.uid, group=user.gid,
                                extra_groups=[], capture_output=True, timeout=60, cwd="/",
                                env={"PATH": "/usr/bin:/bin", "HOME": user.home})
    except PermissionError:
        return False
    return result.returncode == 0


def editable_mapping(site_packages: Path) -> tuple[Path, dict[str, str]]:
    """The editable install's finder module and its package -> folder mapping."""
    finders = sorted(site_packages.glob("__editable___sshrec_*_finder.py"))
    if not finders:
        raise RuntimeError(f"no editable sshrec install in {site_packages} (make install does one)")
    text = finders[0].read_text()
    found = re.search(r"^MAPPING[^=]*=\s*(\{.*?\})\s*$", text, re.MULTILINE)
    if not found:
        raise RuntimeError(f"{finders[0]}: no MAPPING")
    return finders[0], ast.literal_eval(found.group(1))


def copy_venv(venv: Path, target: Path, packages_root: Path) -> Path:
    """Copy ``venv`` to ``target``, its editable sshrec mapped onto ``packages_root`` (a folder
    laid out as the repository: sshrec/, recorder/, player/, schema/). Returns target/bin/sshrec."""
    site = Path(next(p for p in sys.path if p.startswith(str(venv)) and p.endswith("site-packages")))
    finder, mapping = editable_mapping(site)
    shutil.copytree(venv, target, symlinks=True, ignore=SKIPPED)
    new_site = target / site.relative_to(venv)
    text = (new_site / finder.name).read_text()
    for folder in mapping.values():
        text = text.replace(repr(folder), repr(str(packages_root / Path(folder).name)))
    (new_site / finder.name).write_text(text)
    for script in (target / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            data = script.read_bytes()
            if data.startswith(b"#!") and str(venv).encode() in data.split(b"\n", 1)[0]:
                script.write_bytes(data.replace(str(venv).encode(), str(target).encode(), 1))
    return target / "bin" / "sshrec"


def copy_packages(target: Path) -> Path:
    """The package folders of this checkout (C accelerator included) under ``target``."""
    venv = Path(sys.prefix)
    site = Path(next(p for p in sys.path if p.startswith(str(venv)) and p.endswith("site-packages")))
    _, mapping = editable_mapping(site)
    for folder in mapping.values():
        shutil.copytree(folder, target / Path(folder).name)
    return target


def open_to_all(root: Path) -> None:
    """a+rX on everything: a umask of 077 in the clone must not lock the test users out."""
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, mode | 0o444 | (0o111 if mode & 0o100 else 0))


def stage(target: Path) -> Path:
    """A runnable copy of this checkout's sshrec under ``target`` (made world-readable)."""
    packages = copy_packages(target / "src")
    executable = copy_venv(Path(sys.prefix), target / "venv", packages)
    open_to_all(target)
    return executable
