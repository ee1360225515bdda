"""Finding the authorized_keys line of the key that logged in (recorder/authkeys.py), and the
recorder honouring its command= (the sshd side-by-side checks: tests/test_sshd_fidelity.py)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from recorder_helpers import SSHREC, only_record, record_env
from sshrec.recorder.authkeys import expand_key_files, key_options, split_key_line

BLOB = "AAAAC3NzaC1lZDI1NTE5AAAAIHt0rz/3cJ/jD/VmQqK76i6ik98QIouZv08kyQ3vEcfn"
OTHER = "AAAAC3NzaC1lZDI1NTE5AAAAIJb9mS0bIbQeQp6vVbtJzEkbFQ5Wl7y6cnOOfTKhTr/v"


def test_key_files_expand_as_sshd_expands_them() -> None:
    assert expand_key_files(".ssh/authorized_keys /etc/keys/%u %%h/x ~/k none", "ann", 1001, "/home/ann") == [
        "/home/ann/.ssh/authorized_keys", "/etc/keys/ann", "/home/ann/%h/x", "/home/ann/k"]
    assert expand_key_files("/srv/%U/%h.keys", "ann", 1001, "/home/ann") == ["/srv/1001//home/ann.keys"]


@pytest.mark.parametrize(("line", "expected"), [
    (f"ssh-ed25519 {BLOB} me@laptop", ([], "ssh-ed25519", BLOB)),
    (f'command="echo a, b",no-pty ssh-ed25519 {BLOB}', ([("command", "echo a, b"), ("no-pty", None)],
                                                        "ssh-ed25519", BLOB)),
    (f"sk-ssh-ed25519@openssh.com {BLOB}", ([], "sk-ssh-ed25519@openssh.com", BLOB)),
    ('command="unterminated ssh-ed25519 AAAA', None),
    ("restrict", None),
])
def test_key_lines(line: str, expected: object) -> None:
    assert split_key_line(line) == expected


def test_the_first_line_sshd_would_accept_wins(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    past = time.strftime("%Y%m%d", time.gmtime(time.time() - 86400 * 2))
    keys.write_text("\n".join([
        "# comment",
        f'command="other" ssh-ed25519 {OTHER}',
        f'from="10.0.0.0/8",command="lan only" ssh-ed25519 {BLOB}',
        f'expiry-time="{past}Z",command="expired" ssh-ed25519 {BLOB}',
        f'restrict,command="backup --daily" ssh-ed25519 {BLOB} ops',
        f"ssh-ed25519 {BLOB}",
    ]) + "\n")
    found = key_options([str(tmp_path / "missing"), str(keys)], BLOB, "127.0.0.1").options
    assert found is not None
    assert (found.line, found.command, found.pty, found.names) == (5, "backup --daily", False,
                                                                   ["restrict", "command"])
    lan = key_options([str(keys)], BLOB, "10.1.2.3").options
    assert lan is not None and (lan.line, lan.command) == (3, "lan only")


def test_a_key_in_no_file_is_unknown(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text(f"ssh-ed25519 {OTHER}\n")
    lookup = key_options([str(keys)], BLOB, None)
    assert lookup.options is None and f"not in {keys}" in str(lookup.unknown)


def recorded(tmp_path: Path, keys_line: str, *wrapped: str, original: str = "ls -l") -> dict[str, object]:
    """Run the recorder as sshd would for a key ``keys_line`` logging in."""
    keys = tmp_path / "authorized_keys"
    keys.write_text(keys_line + "\n")
    auth = tmp_path / "auth"
    auth.write_text(f"publickey ssh-ed25519 {BLOB}\n")
    env = record_env(tmp_path / "spool", SSH_USER_AUTH=str(auth), SSH_ORIGINAL_COMMAND=original,
                     SSH_CONNECTION="127.0.0.1 50000 127.0.0.1 22", SHELL="/bin/sh")
    argv = [SSHREC, "--no-index", "--authorized-keys-file", str(keys), *(["--", *wrapped] if wrapped else [])]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    record = only_record(tmp_path / "spool")
    record["stdout"] = result.stdout
    return record


def test_the_keys_command_runs_with_the_original_command_kept(tmp_path: Path) -> None:
    record = recorded(tmp_path, f'command="echo key:$SSH_ORIGINAL_COMMAND" ssh-ed25519 {BLOB}')
    assert record["stdout"] == "key:ls -l\n"
    assert record["command"] == ["/bin/sh", "-c", "echo key:$SSH_ORIGINAL_COMMAND"]
    assert record["original_command"] == "ls -l"
    assert f"key options ({tmp_path / 'authorized_keys'} line 1): command" in record["notes"]


def test_a_wrapped_command_wins_over_the_keys(tmp_path: Path) -> None:
    record = recorded(tmp_path, f'command="echo key" ssh-ed25519 {BLOB}', "echo", "wrapped")
    assert record["stdout"] == "wrapped\n" and record["command"] == ["echo", "wrapped"]
    assert any("overridden by the wrapped command" in n for n in record["notes"])  # type: ignore[union-attr]
