"""`make test` from a clone in a private folder (e.g. under /root, mode 0700): the sshd test
users cannot enter it, yet the end-to-end tests must pass (tests/staging.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import staging
from sshd_harness import TestUser

pytestmark = pytest.mark.sshd

E2E_TESTS = "command_without_tty or interactive_login_shell or record_identifies"


def test_sshd_tests_pass_from_a_clone_in_a_private_folder(tmp_path: Path, ssh_test_user: TestUser) -> None:
    if not ssh_test_user.privileged:
        pytest.skip("needs a privileged sshd (root): an unprivileged one logs in only ourselves")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    clone = private / "sshrec"
    shutil.copytree(staging.ROOT, clone, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".ruff_cache"))
    inner = staging.copy_venv(Path(sys.prefix), clone / ".venv", clone)
    assert not staging.runnable_by(ssh_test_user, inner), f"{ssh_test_user.name} can reach {inner}: not private"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SSHREC"))}
    result = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "tests/test_e2e_sshd.py", "-k", E2E_TESTS],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout[-5000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert re.search(r"\b3 passed\b", result.stdout) and "skipped" not in result.stdout, output
