"""`sshrec doctor` on sshd configurations written here (sshd -T -f FILE -C user=...), and its
checks of login shells, the spool and the recorder's path."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import subprocess
from pathlib import Path

import pytest
from recorder_helpers import SSHREC
from sshd_harness import Sshd, SshdFactory, TestUser
from sshrec.recorder import doctor

pytestmark = pytest.mark.sshd


def run_doctor(sshd: Sshd, user: TestUser, home: Path) -> tuple[int, dict[str, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSHREC")}
    env.update(SSHREC_HOME=str(home), SSHREC_CONFIG=str(sshd.workdir / "sshrec.toml"))
    result = subprocess.run([SSHREC, "doctor", "--sshd-config", str(sshd.config_path), "--user", user.name,
                             "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, {f["check"]: f for f in json.loads(result.stdout)}


@pytest.fixture
def set_up_home(tmp_path: Path) -> Path:
    home = tmp_path / "spool"
    env = {**os.environ, "SSHREC_CONFIG": str(tmp_path / "unused.toml")}
    subprocess.run([SSHREC, "setup", "--home", str(home)], env=env, check=True, capture_output=True, timeout=60)
    return home


def test_a_closed_configuration(sshd_factory: SshdFactory, ssh_test_user: TestUser, session_sshrec: Path,
                                set_up_home: Path) -> None:
    if not ssh_test_user.privileged:
        pytest.skip("sshd -T needs root")
    sshd = sshd_factory(force_command=shlex.quote(str(session_sshrec)),
                        options={"DisableForwarding": "yes", "PermitUserRC": "no"})
    _, found = run_doctor(sshd, ssh_test_user, set_up_home)
    for check in ("force-command", "forwarding", "expose-auth-info", "user-settings", "spool"):
        assert found[check]["status"] == "ok", found[check]
    assert "authorized-keys-file" not in found  # the harness's sshrec.toml names sshd's key file
    # the test user logs in with Debian's bash, which reads ~/.bashrc first
    assert found["login-shell"]["status"] == ("open" if doctor.bash_reads_bashrc() else "ok")


def test_every_hole_is_named_with_its_fix(sshd_factory: SshdFactory, ssh_test_user: TestUser,
                                         tmp_path: Path) -> None:
    if not ssh_test_user.privileged:
        pytest.skip("sshd -T needs root")
    sshd = sshd_factory(force_command="/bin/bash", options={
        "AllowTcpForwarding": "yes", "PermitUserRC": "yes", "ExposeAuthInfo": "no",
        "AcceptEnv": "LANG LD_*", "PermitUserEnvironment": "yes"})
    status, found = run_doctor(sshd, ssh_test_user, tmp_path / "nowhere")
    assert status == 1
    expected = {"force-command": "ForceCommand /usr/local/bin/sshrec -- /bin/bash",
                "forwarding": "DisableForwarding yes", "user-rc": "PermitUserRC no",
                "expose-auth-info": "ExposeAuthInfo yes", "accept-env": "AcceptEnv LANG LC_*",
                "user-environment": "PermitUserEnvironment no", "spool": "sshrec setup --home"}
    for check, fix in expected.items():
        assert found[check]["status"] == "open" and fix in found[check]["fix"], found[check]
    assert "LD_PRELOAD" in found["accept-env"]["detail"]


def test_a_match_block_counts_for_its_user(sshd_factory: SshdFactory, ssh_test_user: TestUser,
                                           session_sshrec: Path, set_up_home: Path) -> None:
    if not ssh_test_user.privileged:
        pytest.skip("sshd -T needs root")
    sshd = sshd_factory(force_command=None, options={"AllowTcpForwarding": "no"},
                        extra_config=[f"Match User {ssh_test_user.name}",
                                      f"    ForceCommand {session_sshrec}", "    AllowTcpForwarding yes"])
    _, found = run_doctor(sshd, ssh_test_user, set_up_home)
    assert found["force-command"]["status"] == "ok"
    assert found["forwarding"]["status"] == "open" and "AllowTcpForwarding" in found["forwarding"]["detail"]


def test_an_unreadable_configuration_is_unknown_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "sshd_config"
    bad.write_text("NoSuchKeyword yes\n")
    result = subprocess.run([SSHREC, "doctor", "--sshd-config", str(bad), "--json", "--home", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    findings = {f["check"]: f for f in json.loads(result.stdout)}
    assert findings["sshd-config"]["status"] == "unknown"
    assert "sshd -T failed" in findings["sshd-config"]["detail"]
    missing = subprocess.run([SSHREC, "doctor", "--sshd-config", str(tmp_path / "none")], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def account(shell: str, home: Path, uid: int) -> pwd.struct_passwd:
    return pwd.struct_passwd(("someone", "x", uid, uid, "", str(home), shell))


@pytest.mark.parametrize(("shell", "reads_rc", "status"), [
    ("/bin/sh", True, "ok"), ("/bin/bash", True, "open"), ("/bin/bash", False, "ok"),
    ("/usr/bin/zsh", False, "open"), ("/usr/sbin/nologin", False, "unknown"),
])
def test_login_shells(tmp_path: Path, shell: str, reads_rc: bool, status: str) -> None:
    user = account(shell, tmp_path, os.geteuid())  # the home is ours: every file in it is "writable"
    [finding] = doctor.check_shell(user, None, lambda: reads_rc)
    assert finding.status == status, finding
    if status == "open":
        assert "chsh -s /bin/sh someone" in finding.fix and "shell = " in finding.fix


def test_a_root_owned_startup_file_in_a_root_owned_home_is_safe(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs files owned by root and a user who is not")
    (tmp_path / ".bashrc").write_text("")
    user = account("/bin/bash", tmp_path, 65534)
    assert doctor.check_shell(user, None, lambda: True)[0].status == "ok"


def test_a_recorder_others_can_replace_is_open(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "sshrec").write_text("#!/bin/sh\n")
    assert doctor.not_root_only(str(folder / "sshrec")) is None or os.geteuid() != 0
    folder.chmod(0o777)
    assert doctor.not_root_only(str(folder / "sshrec")) == f"{folder} is writable by others (mode 0777)"
    assert doctor.not_root_only("/usr/bin/env") is None
