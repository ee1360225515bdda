"""Gateway policies and settings from the config file, on the recorder alone (the same through
sshd: tests/test_gateway.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from recorder_helpers import SSHREC, cast_events, only_record, record_env


def run(tmp_path: Path, config: str, *args: str, stdin: str = "",
        **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "sshrec.toml"
    path.write_text(config)
    env = record_env(tmp_path / "spool", SSHREC_CONFIG=str(path), **env)
    return subprocess.run([SSHREC, "--no-index", *args], env=env, capture_output=True, text=True, timeout=60,
                          input=stdin)


def test_deny_interactive_from_the_config_file(tmp_path: Path) -> None:
    result = run(tmp_path, "deny_interactive = true\n", SSH_CONNECTION="127.0.0.1 5 127.0.0.1 22")
    assert result.returncode == 1 and "interactive shells are not allowed here" in result.stderr
    record = only_record(tmp_path / "spool")
    assert (record["status"], record["exit_status"]) == ("refused", 1)
    events = cast_events(record["path"])
    assert "session refused: interactive shells" in "".join(e[2] for e in events if e[1] == "o")


def test_a_command_still_runs_on_a_command_only_gateway(tmp_path: Path) -> None:
    result = run(tmp_path, "deny_interactive = true\n", SSH_ORIGINAL_COMMAND="echo allowed")
    assert (result.returncode, result.stdout) == (0, "allowed\n")


def test_the_configured_shell_replaces_the_passwd_one(tmp_path: Path) -> None:
    """With a passwd shell that reads nothing (/bin/sh) and shell = bash, users still get bash."""
    result = run(tmp_path, 'shell = "/bin/bash"\n', SHELL="/bin/sh",
                 SSH_ORIGINAL_COMMAND='echo "$BASH_VERSION" "$SHELL"')
    version, shell = result.stdout.split()
    assert version[0].isdigit() and shell == "/bin/bash", result
    assert only_record(tmp_path / "spool")["command"][0] == "/bin/bash"


@pytest.mark.parametrize(("config", "message"), [
    ("mosh = \"sometimes\"\n", "mosh must be 'deny' or 'allow', not 'sometimes'"),
    ("deny_interactive = \"yes\"\n", "deny_interactive must be true or false, not 'yes'"),
    ("shell = \"bash\"\n", "shell must be an absolute path"),
    ("colour = 1\n", "unknown setting(s) colour"),
    ("home = [\n", "invalid TOML"),
])
def test_bad_settings_name_the_file_and_the_fix(tmp_path: Path, config: str, message: str) -> None:
    result = run(tmp_path, config, "--", "true")
    assert result.returncode == 1
    assert str(tmp_path / "sshrec.toml") in result.stderr and message in result.stderr, result.stderr


def test_transfer_contents_keeps_the_bytes_when_asked(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"payload-bytes")
    result = run(tmp_path, "transfer_contents = true\n", stdin="\0\0\0",  # the receiving side's acks
                 SSH_ORIGINAL_COMMAND=f"scp -f {tmp_path / 'file'}")
    assert result.stdout == "C0644 13 file\npayload-bytes\0", result
    record = only_record(tmp_path / "spool")
    assert record["mode"] == "scp" and record["files"][0]["bytes"] == 13
    events = cast_events(record["path"])
    assert "payload-bytes" in "".join(e[2] for e in events if e[1] == "o")


@pytest.mark.parametrize("text", [
    'home = "/srv/sshrec"  # where\n# a comment\non_failure = \'deny\'\nrecord_input = true\nformat="v3"\n',
    (Path(__file__).resolve().parent.parent / "samples" / "sshrec.toml").read_text(),
    'home = "/a#b"\n',
    'home = "/with \\\\ backslash"\n',  # escapes: tomllib reads it
    'home = """multi\nline"""\n',
    "[section]\nhome = '/x'\n",
    "home = 0755\n",
])
def test_the_fast_config_reader_agrees_with_tomllib(text: str) -> None:
    import tomllib

    from sshrec.schema.settings import simple_toml

    fast = simple_toml(text.encode())
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        expected = None
    assert fast is None or fast == expected
    if fast is None:
        assert any(mark in text for mark in ("\\\\", '"""', "[", "0755"))
