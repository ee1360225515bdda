"""Shared fixtures. sshd/ssh: see tests/sshd_harness.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import staging
from index_support import db_url, home, pg_database  # noqa: F401  (fixtures for every test module)
from s3_support import s3_env, s3_server  # noqa: F401
from sshd_harness import (
    SECOND_TEST_USER,
    ClientKey,
    SshdFactory,
    TestUser,
    ensure_test_user,
    make_client_key,
    openssh_missing,
    sshrec_executable,
)

_SSHD_FACTORIES = pytest.StashKey[SshdFactory]()


def pytest_report_header() -> str:
    if os.geteuid() == 0:
        return "sshd tests: privileged sshd (root), logins as dedicated user 'sshrec-test'"
    return "sshd tests: unprivileged sshd running as the current user"


@pytest.fixture(scope="session")
def ssh_test_user() -> TestUser:
    """The account sessions log in as; ``.privileged`` tells which of the two modes runs."""
    reason = openssh_missing()
    if reason:
        pytest.skip(reason)
    return ensure_test_user()


@pytest.fixture(scope="session")
def second_test_user(ssh_test_user: TestUser) -> TestUser:
    """Another account on the same host (privileged mode only: an unprivileged sshd can log in
    only the user running it)."""
    if not ssh_test_user.privileged:
        pytest.skip("a second login user needs a privileged sshd (run the tests as root)")
    return ensure_test_user(SECOND_TEST_USER)


@pytest.fixture(scope="session")
def session_sshrec(ssh_test_user: TestUser) -> Iterator[Path]:
    """The sshrec that sessions run: this venv's, or, when the test users cannot reach it (a
    clone in a private folder), a copy staged where they can, removed at the end."""
    executable = sshrec_executable()
    if staging.runnable_by(ssh_test_user, executable):
        yield executable
        return
    stage = Path(tempfile.mkdtemp(prefix="sshrec-stage-"))
    try:
        staged = staging.stage(stage)
        assert staging.runnable_by(ssh_test_user, staged), f"{ssh_test_user.name} cannot run {staged}"
        yield staged
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@pytest.fixture(scope="session")
def ssh_client_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    """A fresh ed25519 client key (no passphrase) for the whole run."""
    reason = openssh_missing()
    if reason:
        pytest.skip(reason)
    return make_client_key(Path(tmp_path_factory.mktemp("ssh-client")))


@pytest.fixture
def sshd_factory(
    request: pytest.FixtureRequest, ssh_test_user: TestUser, ssh_client_key: ClientKey
) -> Iterator[SshdFactory]:
    """``sshd_factory(force_command=..., **Sshd.start options)`` starts a real sshd; every
    daemon (and whatever its sessions left running) is stopped when the test ends, and a
    failing test's report gets each daemon's log."""
    factory = SshdFactory(ssh_test_user, ssh_client_key)
    request.node.stash[_SSHD_FACTORIES] = factory
    yield factory
    factory.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    factory = item.stash.get(_SSHD_FACTORIES, None)
    if factory is not None and report.failed and report.when == "call":
        for sshd in factory.started:
            report.sections.append((f"sshd on port {sshd.port}", sshd.diagnostics()))
    return report
