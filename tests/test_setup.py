"""`sshrec setup` on a spool folder of its own (root only; the two-user end-to-end checks are
in tests/test_shared_spool.py)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from recorder_helpers import SSHREC

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sshrec setup changes owners: run the tests as root")


def setup(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHREC")}
    env["SSHREC_CONFIG"] = str(tmp_path / "etc" / "sshrec.toml")
    return subprocess.run([SSHREC, "setup", "--home", str(tmp_path / "spool"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def mode_of(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, stat.S_IMODE(info.st_mode)


def test_refuses_to_run_as_an_ordinary_user(tmp_path: Path, session_sshrec: Path) -> None:
    if os.geteuid() == 0:  # as nobody, with a copy of sshrec nobody can reach (tests/staging.py)
        result = subprocess.run([str(session_sshrec), "setup", "--home", str(tmp_path / "spool")],
                                capture_output=True, text=True, user=65534, group=65534, extra_groups=[],
                                timeout=60, cwd="/")
    else:
        result = setup(tmp_path)
    assert result.returncode == 1 and "must run as root" in result.stderr, result.stderr
    assert not (tmp_path / "spool").exists()


@needs_root
def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    result = setup(tmp_path, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] and any(c.startswith(f"create {tmp_path / 'spool'} ") for c in plan["changes"])
    assert not (tmp_path / "spool").exists() and not (tmp_path / "etc").exists()


@needs_root
def test_a_spool_from_before_setup_is_closed_and_the_second_run_is_a_no_op(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    day = spool / "recordings" / "2026" / "12" / "01"
    day.mkdir(parents=True)
    os.chown(day, 65534, 65534)  # the first user of that day made it, as sshrec did before
    (day / "X.cast").write_text("{}\n")
    (day / "X.cast").chmod(0o644)
    (spool / "index.db").write_text("")
    (spool / "index.db").chmod(0o644)
    spool.chmod(0o755)

    first = setup(tmp_path)
    assert first.returncode == 0, first.stderr
    assert mode_of(spool) == (0, 0o711)
    assert mode_of(spool / "users") == (0, 0o1733)
    assert mode_of(day) == (0, 0o700) and mode_of(day / "X.cast") == (0, 0o600)
    assert mode_of(spool / "index.db") == (0, 0o600)
    config = (tmp_path / "etc" / "sshrec.toml").read_text()
    assert f'home = "{spool}"' in config and "authorized_keys_file = " in config
    assert "ForceCommand" in first.stdout and "ExposeAuthInfo yes" in first.stdout

    second = setup(tmp_path)
    assert second.returncode == 0 and "already set up, nothing to change" in second.stdout, second.stdout


@needs_root
def test_an_existing_config_is_kept_and_a_different_home_is_pointed_out(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "sshrec.toml"
    config.parent.mkdir()
    config.write_text('home = "/somewhere/else"\n')
    result = setup(tmp_path)
    assert result.returncode == 0, result.stderr
    assert config.read_text() == 'home = "/somewhere/else"\n'
    assert "says home = '/somewhere/else'" in result.stderr


@needs_root
def test_a_spool_users_cannot_reach_is_pointed_out(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="sshrec-setup-"))  # pytest's own tmp_path is private
    try:
        base.chmod(0o755)
        closed = base / "closed"
        closed.mkdir(mode=0o700)
        result = subprocess.run([SSHREC, "setup", "--home", str(closed / "spool"), "--json"],
                                env={**os.environ, "SSHREC_CONFIG": str(tmp_path / "sshrec.toml")},
                                capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(base)
    warnings = json.loads(result.stdout)["warnings"]
    assert any(f"users cannot reach {closed / 'spool'}: {closed} (mode 0700)" in w for w in warnings), warnings


@needs_root
def test_a_symlink_in_place_of_the_users_folder_is_refused(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "users").symlink_to(tmp_path)
    result = setup(tmp_path)
    assert result.returncode == 1 and "is not a directory (a symlink or file)" in result.stderr


def test_the_collector_unit_sample_is_what_setup_writes() -> None:
    from sshrec.recorder.collector.unit import DEFAULTS, unit_text

    sample = Path(__file__).resolve().parent.parent / "samples" / "systemd" / "sshrec-collector.service"
    assert sample.read_text() == unit_text(**DEFAULTS)


@needs_root
def test_setup_collector_makes_the_service_user_spool_socket_folder_and_unit(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="sshrec-setup-collector-"))
    try:
        argv = ["setup", "--collector", "--service-user", "sshrec-coll-test", "--home", str(base / "spool"),
                "--collector-socket", str(base / "run" / "collector.sock"),
                "--systemd-dir", str(base / "units"), "--json"]
        env = {**os.environ, "SSHREC_CONFIG": str(base / "sshrec.toml")}
        first = subprocess.run([SSHREC, *argv], env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        import pwd

        account = pwd.getpwnam("sshrec-coll-test")
        assert mode_of(base / "spool") == (account.pw_uid, 0o700)
        assert mode_of(base / "run") == (account.pw_uid, 0o755)
        unit = (base / "units" / "sshrec-collector.service").read_text()
        assert "User=sshrec-coll-test\n" in unit and f"--socket {base / 'run' / 'collector.sock'}" in unit
        config = (base / "sshrec.toml").read_text()
        assert 'sink = "collector"' in config and 'on_failure = "deny"' in config
        assert "RestrictAddressFamilies=AF_UNIX\n" in unit  # no PostgreSQL, no object store: no TCP
        second = subprocess.run([SSHREC, *argv], env=env, capture_output=True, text=True, timeout=120)
        assert json.loads(second.stdout)["changes"] == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_root
def test_a_collector_that_ships_to_a_store_may_use_tcp(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="sshrec-setup-collector-"))
    try:
        (base / "sshrec.toml").write_text('sink = "collector"\nstorage = "s3://audit/gw1"\n')
        argv = ["setup", "--collector", "--service-user", "sshrec-coll-test", "--home", str(base / "spool"),
                "--collector-socket", str(base / "run" / "collector.sock"),
                "--systemd-dir", str(base / "units")]
        env = {**os.environ, "SSHREC_CONFIG": str(base / "sshrec.toml")}
        done = subprocess.run([SSHREC, *argv], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        unit = (base / "units" / "sshrec-collector.service").read_text()
        assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n" in unit
    finally:
        shutil.rmtree(base, ignore_errors=True)
