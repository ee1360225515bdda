"""The session context read from sshd's environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sshrec.recorder.command import resolve_command
from sshrec.recorder.context import (
    detect_destination,
    parse_auth_info,
    parse_ssh_connection,
    read_auth_info,
)


@pytest.mark.parametrize("key_type", ["ed25519", "rsa", "ecdsa"])
def test_fingerprint_equals_ssh_keygen(tmp_path: Path, key_type: str) -> None:
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "id.pub").read_text().split()
    listed = subprocess.run(["ssh-keygen", "-lf", str(key) + ".pub"], check=True,
                            capture_output=True, text=True).stdout.split()
    auth_file = tmp_path / "auth"
    auth_file.write_text(f"publickey {public[0]} {public[1]}\n")
    info = read_auth_info({"SSH_USER_AUTH": str(auth_file)})
    assert info.key_fingerprint == listed[1]
    assert info.key_type == public[0]
    assert info.method == "publickey"


def test_several_methods_and_garbage() -> None:
    info = parse_auth_info("publickey ssh-ed25519 !!notbase64!!\npassword\n\n")
    assert info.method == "publickey,password"
    assert info.key_fingerprint is None


def test_missing_auth_file_is_not_fatal(tmp_path: Path) -> None:
    info = read_auth_info({"SSH_USER_AUTH": str(tmp_path / "gone")})
    assert (info.method, info.key_fingerprint) == (None, None)


def test_ssh_connection() -> None:
    conn = parse_ssh_connection("127.0.0.1 50522 127.0.0.1 2222")
    assert (conn.client_addr, conn.client_port, conn.server_addr, conn.server_port) == (
        "127.0.0.1", 50522, "127.0.0.1", 2222)
    assert parse_ssh_connection("::1 1 ::1").client_addr is None
    assert parse_ssh_connection(None).server_port is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["ssh", "node1"], "node1"),
        (["/usr/bin/ssh", "-tt", "-p", "2222", "-o", "BatchMode=yes", "alice@node2", "ls"],
         "alice@node2:2222"),
        (["ssh", "-l", "bob", "-i", "/k", "node3", "uptime"], "bob@node3"),
        (["ssh", "-W", "target:22", "jump"], "target:22"),
        (["ssh", "-Wtarget:22", "jump"], "target:22"),
        (["ssh", "-4A", "-J", "hop", "ssh://node4"], "node4"),
        (["nc", "-w", "5", "db1", "5432"], "db1:5432"),
        (["nc", "host"], "host"),
        (["/usr/sbin/sshproxy"], None),
        (["ssh"], None),
        ([], None),
    ],
)
def test_destination_detection(argv: list[str], expected: str | None) -> None:
    assert detect_destination(argv) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("nc 127.0.0.1 2222", "127.0.0.1:2222"),  # a ProxyCommand hop
        ("ssh -p 2200 node5", "node5:2200"),
        ("nc $HOST 22", None),  # shell syntax: left to the process watch
        ("cd /tmp && nc db1 5432", None),
        ("", None),  # no command: a login shell
    ],
)
def test_a_shell_line_that_is_one_command_names_its_destination(line: str, expected: str | None) -> None:
    command = resolve_command([], {"SHELL": "/bin/sh", "SSH_ORIGINAL_COMMAND": line})
    assert detect_destination(command.runs) == expected
