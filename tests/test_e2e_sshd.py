"""End to end through a real OpenSSH sshd and a real ssh client (tests/sshd_harness.py).

The first group checks the harness itself on a plain sshd (no ForceCommand); the rest run
every session through ``ForceCommand <venv>/bin/sshrec`` and check what the client sees and
what lands in the spool (``SSHREC_HOME``, set per daemon with sshd's ``SetEnv``).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shlex
import subprocess
from pathlib import Path

import pytest
from sshd_harness import (
    SHELL_PROMPT,
    ClientKey,
    ProcInfo,
    Sshd,
    SshdFactory,
    TestUser,
    cast_events,
    cast_output,
    find_sftp_server,
    processes_matching,
    show,
    wait_for_records,
    wait_until,
)
from sshrec.schema import spool as spool_layout
from sshrec.schema.record import FIELD_NAMES, is_session_id

pytestmark = pytest.mark.sshd

Record = dict[str, object]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



# -- the harness on a plain sshd ------------------------------------------------------------


def test_plain_sshd_runs_a_command(sshd_factory: SshdFactory, ssh_test_user: TestUser) -> None:
    sshd = sshd_factory(force_command=None)
    result = sshd.client().run(
        'id -un; printf "%s\\n" "$SSHREC_HOME"; cat "$SSH_USER_AUTH"; echo err >&2; exit 3'
    )
    assert result.returncode == 3, show(result)
    lines = result.stdout.decode().splitlines()
    assert lines[0] == ssh_test_user.name, show(result)
    assert lines[1] == str(sshd.spool), show(result)
    # ExposeAuthInfo: "publickey ssh-ed25519 AAAA..." for the key that logged in
    key_type, blob = sshd.client_key.public_line.split()[:2]
    assert lines[2] == f"publickey {key_type} {blob}", show(result)
    assert result.stderr == b"err\n", show(result)


def require_pty(sshd: Sshd) -> None:
    reason = sshd.pty_problem()
    if reason:
        pytest.skip(reason)


def test_plain_sshd_interactive_pty(sshd_factory: SshdFactory) -> None:
    sshd = sshd_factory(force_command=None)
    require_pty(sshd)
    with sshd.client().spawn_pty(cols=100, rows=30) as term:
        term.sendline("stty size; tty; echo ready-$((6*7))")
        term.expect(r"30 100")
        term.expect(r"/dev/pts/\d+")
        term.expect(r"ready-42")
        term.resize(120, 40)
        term.sendline("stty size")
        term.expect(r"40 120")
        term.sendline("exit 7")
        assert term.wait(timeout=20) == 7, term.describe("ssh exit status")


def test_stop_kills_what_sessions_left(sshd_factory: SshdFactory) -> None:
    sshd = sshd_factory(force_command=None)
    marker = f"{secrets.randbelow(10**6) + 10**6}"
    ssh = sshd.client().popen(f"sleep {marker} & sleep {marker}", stdin=subprocess.PIPE)
    try:
        wait_until(lambda: len(_sleeps(marker)) == 2, 20, sshd.diagnostics)
    finally:
        sshd.stop()
        ssh.kill()
        ssh.wait(timeout=10)
    assert not _running(marker, ssh.pid)
    assert not sshd.daemon_processes()
    assert any(marker in p.cmdline for p in sshd.leftovers)


def _sleeps(marker: str) -> list[ProcInfo]:
    return processes_matching(lambda p: p.cmdline == ("sleep", marker))


def _running(marker: str, exclude_pid: int) -> list[ProcInfo]:
    return processes_matching(lambda p: p.pid != exclude_pid and marker in " ".join(p.cmdline))


# -- through the recorder -------------------------------------------------------------------


@pytest.fixture
def recorded_sshd(sshd_factory: SshdFactory, session_sshrec: Path) -> Sshd:
    """sshd with ``ForceCommand sshrec`` (no COMMAND: runs the original command with $SHELL -c,
    or a login shell)."""
    return sshd_factory(force_command=shlex.quote(str(session_sshrec)))


def finished_records(sshd: Sshd, count: int, timeout: float = 20.0) -> list[Record]:
    """The spool's records once all ``count`` are final, each checked against the layout."""
    records = wait_for_records(sshd.spool, count, timeout=timeout, describe=sshd.diagnostics)
    for record in records:
        session_id = str(record.get("id"))
        assert is_session_id(session_id), f"bad id {session_id!r}"
        assert Path(spool_layout.record_path(str(sshd.spool), session_id)).is_file()
        assert Path(spool_layout.cast_path(str(sshd.spool), session_id)).is_file()
        missing = set(FIELD_NAMES) - set(record)
        assert not missing, f"record lacks {sorted(missing)}: {record}"
    return sorted(records, key=lambda r: str(r["id"]))


def cast_of(sshd: Sshd, record: Record) -> Path:
    return Path(spool_layout.cast_path(str(sshd.spool), str(record["id"])))


def test_interactive_login_shell(recorded_sshd: Sshd, ssh_test_user: TestUser) -> None:
    require_pty(recorded_sshd)
    with recorded_sshd.client().spawn_pty(cols=100, rows=30) as term:
        term.expect(SHELL_PROMPT, timeout=20)  # as a person would, wait for the prompt
        term.sendline("echo hello-$((6*7))")
        term.expect(r"hello-42", timeout=20)
        term.sendline("exit 7")
        status = term.wait(timeout=20)
    assert status == 7, term.describe(f"ssh exited {status}, expected 7")

    [record] = finished_records(recorded_sshd, 1)
    assert record["status"] == "complete", record
    assert record["mode"] == "pty", record
    assert record["exit_status"] == 7, record
    assert record["user"] == ssh_test_user.name, record
    assert (record["cols"], record["rows"]) == (100, 30), record
    assert record["term"] == "xterm-256color", record
    assert record["original_command"] in (None, ""), record
    assert "hello-42" in cast_output(cast_of(recorded_sshd, record))


def test_interactive_resize_reaches_the_session(recorded_sshd: Sshd) -> None:
    require_pty(recorded_sshd)
    with recorded_sshd.client().spawn_pty(cols=100, rows=30) as term:
        term.expect(SHELL_PROMPT, timeout=20)
        term.sendline("stty size")
        term.expect(r"30 100", timeout=20)
        term.expect(SHELL_PROMPT)
        term.resize(132, 43)
        term.sendline("stty size")
        term.expect(r"43 132", timeout=20)
        term.sendline("exit")
        assert term.wait(timeout=20) == 0, term.describe()

    [record] = finished_records(recorded_sshd, 1)
    header, events = cast_events(cast_of(recorded_sshd, record))
    resizes = [e[2] for e in events if e[1] == "r"]
    assert "132x43" in resizes, f"resize events {resizes}; header {header}"


def test_keys_typed_before_the_prompt_are_kept(recorded_sshd: Sshd) -> None:
    """Typeahead (a fast typist, or a script driving ssh -tt) reaches the shell: the recorder
    must not flush the terminal's input queue when it switches it to raw mode."""
    require_pty(recorded_sshd)
    with recorded_sshd.client().spawn_pty() as term:
        term.sendline("echo early-$((6*7))")
        term.expect(r"early-42", timeout=10)
        term.sendline("exit")
        assert term.wait(timeout=20) == 0, term.describe()


def test_killed_tty_client_ends_the_session(recorded_sshd: Sshd) -> None:
    """The client vanishing hangs up the pty: the recorder passes SIGHUP on and closes."""
    require_pty(recorded_sshd)
    marker = f"987655.{secrets.randbelow(10**6):06d}"
    term = recorded_sshd.client().spawn_pty()
    try:
        term.expect(SHELL_PROMPT, timeout=20)
        term.sendline(f"sleep {marker}")
        wait_until(lambda: _sleeps(marker), 20, lambda: term.describe("sleep to start"))
    finally:
        term.close()  # SIGHUP, then SIGKILL, to the ssh client
    wait_until(
        lambda: not recorded_sshd.session_processes(),
        20,
        lambda: f"the session's processes to end\n{recorded_sshd.diagnostics()}",
    )
    [record] = finished_records(recorded_sshd, 1)
    assert record["status"] == "complete", record  # the recorder closed it (only the index says interrupted)
    reasons = ("received SIGHUP", "the client's terminal closed")
    assert any(reason in str(note) for note in record["notes"] for reason in reasons), record["notes"]
    assert record["mode"] == "pty", record


def test_tty_without_a_client_terminal_gets_a_sane_size(recorded_sshd: Sshd) -> None:
    require_pty(recorded_sshd)
    result = recorded_sshd.client().run("stty size; exit 5", tty=True)  # ssh -tt, 0x0 window
    assert result.returncode == 5, show(result)
    assert b"24 80" in result.stdout, show(result)
    [record] = finished_records(recorded_sshd, 1)
    assert record["mode"] == "pty", record
    assert (record["cols"], record["rows"]) == (80, 24), record
    assert "client terminal reported 0x0 (ssh -tt without a local tty); used 80x24" in record["notes"], record


def test_command_without_tty(recorded_sshd: Sshd) -> None:
    command = "echo out; echo err >&2; exit 3"
    result = recorded_sshd.client().run(command)
    assert result.returncode == 3, show(result)
    assert result.stdout == b"out\n", show(result)
    assert result.stderr == b"err\n", show(result)

    [record] = finished_records(recorded_sshd, 1)
    assert record["mode"] == "pipe", record
    assert record["original_command"] == command, record
    assert record["exit_status"] == 3, record
    assert record["status"] == "complete", record
    assert "out" in cast_output(cast_of(recorded_sshd, record))


def test_record_identifies_user_key_and_connection(
    recorded_sshd: Sshd, ssh_client_key: ClientKey, ssh_test_user: TestUser
) -> None:
    result = recorded_sshd.client().run("true")
    assert result.returncode == 0, show(result)

    keygen = subprocess.run(
        ["ssh-keygen", "-lf", str(ssh_client_key.public)],
        capture_output=True,
        text=True,
        check=True,
    )
    [record] = finished_records(recorded_sshd, 1)
    assert record["key_fingerprint"] == keygen.stdout.split()[1], (keygen.stdout, record)
    assert record["key_type"] == "ssh-ed25519", record
    assert record["auth_method"] == "publickey", record
    assert record["client_addr"] == "127.0.0.1", record
    assert isinstance(record["client_port"], int) and record["client_port"] > 0, record
    assert record["server_addr"] == "127.0.0.1", record
    assert record["server_port"] == recorded_sshd.port, record
    assert record["user"] == ssh_test_user.name, record
    assert record["uid"] == ssh_test_user.uid, record
    assert record["original_command"] == "true", record


@pytest.mark.parametrize("workload", ["silent", "chatty"])
def test_killed_client_leaves_no_orphan(recorded_sshd: Sshd, workload: str) -> None:
    """Without a PTY sshd sends no signal when the client vanishes: the recorder must notice
    (parent gone, EPIPE) and end the child itself."""
    marker = f"987654.{secrets.randbelow(10**6):06d}"  # a unique argument to find it by
    command = f"sleep {marker}" if workload == "silent" else f"while :; do echo tick {marker}; sleep 0.05; done"
    ssh = recorded_sshd.client().popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(
            lambda: _running(marker, ssh.pid),
            20,
            lambda: f"the remote {command!r} to start\n{recorded_sshd.diagnostics()}",
        )
        wait_for_records(recorded_sshd.spool, 1, final=False, describe=recorded_sshd.diagnostics)
    finally:
        ssh.kill()
        ssh.wait(timeout=10)

    wait_until(
        lambda: not _running(marker, ssh.pid),
        20,
        lambda: f"the orphaned workload to end: {_running(marker, ssh.pid)}\n{recorded_sshd.diagnostics()}",
    )
    wait_until(
        lambda: not recorded_sshd.session_processes(),
        20,
        lambda: f"the session's processes to end\n{recorded_sshd.diagnostics()}",
    )
    [record] = finished_records(recorded_sshd, 1)
    assert record["status"] == "complete", record
    reasons = ("parent process) is gone", "writing to the client failed", "received SIGHUP")
    assert any(reason in str(note) for note in record["notes"] for reason in reasons), record


def test_five_megabytes_byte_exact(recorded_sshd: Sshd) -> None:
    data = os.urandom(5 * 1024 * 1024)
    client = recorded_sshd.client()

    echoed = client.run("cat", input=data, timeout=120)
    assert echoed.returncode == 0, show(echoed)
    assert len(echoed.stdout) == len(data), show(echoed)
    assert sha256(echoed.stdout) == sha256(data)

    target = shlex.quote(str(recorded_sshd.scratch / "upload.bin"))
    stored = client.run(f"cat > {target}; sha256sum {target}", input=data, timeout=120)
    assert stored.returncode == 0, show(stored)
    assert stored.stdout.split()[0].decode() == sha256(data), show(stored)

    cat_record, _ = finished_records(recorded_sshd, 2)
    assert cat_record["original_command"] == "cat", cat_record
    assert cat_record["status"] == "complete", cat_record
    assert cat_record["exit_status"] == 0, cat_record
    assert cat_record["bytes_in"] == len(data), cat_record
    assert cat_record["bytes_out"] == len(data), cat_record
    assert int(str(cat_record["invalid_bytes"])) > 0, cat_record  # random bytes aren't UTF-8


def _run_tool(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, timeout=120, env=env, stdin=subprocess.DEVNULL)


def test_sftp_put_and_get(recorded_sshd: Sshd, tmp_path: Path) -> None:
    sftp_server = find_sftp_server()
    if sftp_server is None:
        pytest.skip("no sftp-server binary found")
    data = os.urandom(1024 * 1024 + 17)
    local, back = tmp_path / "local.bin", tmp_path / "back.bin"
    local.write_bytes(data)
    remote = recorded_sshd.scratch / "sftp.bin"
    batch = tmp_path / "batch"
    batch.write_text(f'put "{local}" "{remote}"\nget "{remote}" "{back}"\n')
    client = recorded_sshd.client()

    result = _run_tool(client.sftp_argv(batch), client.env())
    assert result.returncode == 0, show(result)
    assert sha256(remote.read_bytes()) == sha256(data)
    assert sha256(back.read_bytes()) == sha256(data)

    [record] = finished_records(recorded_sshd, 1)
    assert record["original_command"] == sftp_server, record
    assert record["mode"] == "sftp", record
    assert record["status"] == "complete", record
    assert record["exit_status"] == 0, record


@pytest.mark.parametrize("legacy", [True, False], ids=["scp-O", "scp-sftp"])
def test_scp_upload_and_download(recorded_sshd: Sshd, tmp_path: Path, legacy: bool) -> None:
    data = os.urandom(1024 * 1024 + 5)
    local, back = tmp_path / "local.bin", tmp_path / "back.bin"
    local.write_bytes(data)
    remote = recorded_sshd.scratch / "scp.bin"
    client = recorded_sshd.client()

    up = _run_tool(client.scp_argv(str(local), client.remote(remote), legacy=legacy), client.env())
    assert up.returncode == 0, show(up)
    assert sha256(remote.read_bytes()) == sha256(data)
    down = _run_tool(client.scp_argv(client.remote(remote), str(back), legacy=legacy), client.env())
    assert down.returncode == 0, show(down)
    assert sha256(back.read_bytes()) == sha256(data)

    records = finished_records(recorded_sshd, 2)
    commands = [str(r["original_command"]) for r in records]
    if legacy:
        assert re.match(r"scp .*-t", commands[0]) and re.match(r"scp .*-f", commands[1]), commands
    else:
        assert commands == [find_sftp_server()] * 2, commands
    for record in records:
        assert record["status"] == "complete", record
        assert record["exit_status"] == 0, record
