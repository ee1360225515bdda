"""authorized_keys for ``sshrec serve``: the parser line by line, then each honoured option end to end."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from sshd_harness import ClientKey
from sshrec.recorder.serve.loader import load_asyncssh
from test_serve_e2e import ServeFactory, client_key, other_key, serve, show  # noqa: F401

load_asyncssh()
from sshrec.recorder.authkeys import address_matches, parse_expiry, split_options  # noqa: E402
from sshrec.recorder.serve.authorized_keys import (  # noqa: E402
    AuthorizedKeysError,
    auth_info_line,
    load_authorized_keys,
    parse_authorized_keys,
)

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHt0rz/3cJ/jD/VmQqK76i6ik98QIouZv08kyQ3vEcfn"


# -- the parser --------------------------------------------------------------------------------------


def test_plain_key_with_comment_and_comment_lines() -> None:
    keys = parse_authorized_keys(f"# admins\n\n   {ED} alice@laptop  \n", "keys")
    (entry,) = keys.entries
    assert (entry.line, entry.comment, entry.pty, entry.command) == (3, "alice@laptop", True, None)
    assert entry.fingerprint.startswith("SHA256:")
    assert entry.public_line() == ED
    assert auth_info_line(entry).split() == ["publickey", *ED.split()]


def test_options_are_parsed_like_sshd() -> None:
    line = (f'from="10.0.0.0/8,!10.0.0.1",command="echo \\"hi\\", there",environment="A=b c",'
            f'no-port-forwarding,NO-PTY,expiry-time="20991231Z" {ED} c')
    (entry,) = parse_authorized_keys(line, "keys").entries
    assert entry.from_patterns == ["10.0.0.0/8,!10.0.0.1"]
    assert entry.command == 'echo "hi", there'
    assert entry.environment == {"A": "b c"}
    assert entry.pty is False
    assert entry.expires == parse_expiry("20991231Z")


def test_restrict_then_pty_allows_a_pty() -> None:
    (entry,) = parse_authorized_keys(f"restrict,pty {ED}", "k").entries
    assert entry.pty is True
    (entry,) = parse_authorized_keys(f"restrict {ED}", "k").entries
    assert entry.pty is False


@pytest.mark.parametrize(("line", "reason"), [
    (f"cert-authority {ED}", "option 'cert-authority': certificate authorities are not supported"),
    (f'principals="a" {ED}', "option 'principals': certificate principals are not supported"),
    (f"no-touch-required {ED}", "FIDO touch policy is not supported"),
    (f"verify-required {ED}", "FIDO user verification is not supported"),
    (f"bogus {ED}", "unknown option 'bogus'"),
    (f'bogus="1" {ED}', "unknown option 'bogus'"),
    (f"command=echo {ED}", "option 'command': value must be in double quotes"),
    (f'command="echo {ED}', "option 'command': missing closing quote"),
    (f'environment="NOVALUE" {ED}', 'environment="NOVALUE" is not NAME=value'),
    (f'from="10.0.0.0/99" {ED}', "is not a valid address/masklen"),
    (f'expiry-time="2024" {ED}', "is not YYYYMMDD[HHMM[SS]][Z]"),
    (f'expiry-time="20241340" {ED}', "is not a valid date"),
    ("ssh-ed25519 AAAA", "not a public key"),
    ("no-pty", "options but no key"),
])
def test_bad_lines_name_file_line_and_reason(line: str, reason: str) -> None:
    with pytest.raises(AuthorizedKeysError) as info:
        parse_authorized_keys(f"{ED}\n# ok so far\n{line}\n", "the-file")
    message = str(info.value)
    assert message.startswith("invalid authorized keys: the-file line 3 contains unparseable data ("), message
    assert reason in message
    assert "\n" not in message


def test_split_options_returns_the_key_part() -> None:
    assert split_options(f'a,b="x y",c {ED} comment') == ([("a", None), ("b", "x y"), ("c", None)],
                                                           f"{ED} comment")


@pytest.mark.parametrize(("addr", "patterns", "expected"), [
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.*", True),
    ("127.0.0.1", "10.*,127.0.0.0/8", True),
    ("127.0.0.1", "127.0.0.0/8,!127.0.0.1", False),
    ("127.0.0.2", "127.0.0.0/8,!127.0.0.1", True),
    ("127.0.0.1", "localhost", False),  # no reverse DNS, like sshd with UseDNS no
    ("::ffff:127.0.0.1", "127.0.0.1", True),
    ("::1", "::1/128", True),
])
def test_from_patterns(addr: str, patterns: str, expected: bool) -> None:
    assert address_matches(addr, patterns) is expected


def test_expiry_is_checked_at_login(tmp_path: Path) -> None:
    (entry,) = parse_authorized_keys(f'expiry-time="200001011200Z" {ED}', "k").entries
    assert entry.expires == 946728000.0
    assert "key expired at" in str(entry.refusal("127.0.0.1"))
    (entry,) = parse_authorized_keys(f'expiry-time="20991231" {ED}', "k").entries
    assert entry.refusal("127.0.0.1", now=time.time()) is None


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(AuthorizedKeysError, match="does not exist"):
        load_authorized_keys(str(tmp_path / "missing"))
    with pytest.raises(AuthorizedKeysError, match="is a directory"):
        load_authorized_keys(str(tmp_path))
    binary = tmp_path / "binary"
    binary.write_bytes(f"{ED}\n\xff\xfe\n".encode("latin-1"))
    with pytest.raises(AuthorizedKeysError, match="line 2 contains unparseable data \\(not UTF-8 text\\)"):
        load_authorized_keys(str(binary))
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(AuthorizedKeysError, match="contained no keys"):
        load_authorized_keys(str(empty))


# -- options end to end, with the OpenSSH client -------------------------------------------------------


def test_forced_command_keeps_the_clients_request(serve: ServeFactory, client_key: ClientKey) -> None:  # noqa: F811
    forced = 'echo "forced:$SSH_ORIGINAL_COMMAND"; exit 4'
    keys = serve.keys_file(f'command="{forced.replace(chr(34), chr(92) + chr(34))}" {client_key.public_line}')
    srv = serve(keys=keys)
    result = srv.client(client_key).run("echo what-i-asked")
    assert (result.returncode, result.stdout) == (4, b"forced:echo what-i-asked\n"), show(result)
    assert srv.wait() == 4
    record = srv.only_record()
    assert record["original_command"] == "echo what-i-asked"
    assert record["command"] == ["/bin/sh", "-c", forced]


def test_from_and_expiry_refuse_and_say_why(serve: ServeFactory, client_key: ClientKey,  # noqa: F811
                                           other_key: ClientKey) -> None:  # noqa: F811
    keys = serve.keys_file(f'from="10.0.0.0/8" {client_key.public_line}',
                           f'expiry-time="20000101" {other_key.public_line}')
    srv = serve("--timeout", "30", keys=keys)
    for key in (client_key, other_key):
        result = srv.client(key).run("true")
        assert result.returncode == 255 and b"Permission denied" in result.stderr, show(result)
    srv.wait_for("stderr", re.compile(rb'127\.0\.0\.1 does not match from="10\.0\.0\.0/8" on line 1'))
    srv.wait_for("stderr", re.compile(rb"key expired at 2000-01-01 00:00:00 \(expiry-time on line 2\)"))
    assert srv.proc.poll() is None  # still waiting for someone allowed


def test_no_pty_refuses_the_terminal(serve: ServeFactory, client_key: ClientKey) -> None:  # noqa: F811
    srv = serve(keys=serve.keys_file(f"no-pty {client_key.public_line}"))
    result = srv.client(client_key).run("tty", tty=True)
    # OpenSSH's client treats a refused pty it was told to get (-tt) as fatal, as with sshd.
    assert result.returncode == 255 and b"PTY allocation request failed" in result.stderr, show(result)
    assert srv.wait() == 255
    assert "refused a pty: no-pty/restrict on line 1" in srv.stderr_text
    assert "the remote side terminated the connection unexpectedly" in srv.stderr_text.splitlines()[-1]


def test_environment_option_reaches_the_session(serve: ServeFactory, client_key: ClientKey) -> None:  # noqa: F811
    srv = serve(keys=serve.keys_file(f'environment="GREETING=hello from the key" {client_key.public_line}'))
    result = srv.client(client_key).run('echo "$GREETING"')
    assert (result.returncode, result.stdout) == (0, b"hello from the key\n"), show(result)
    assert srv.wait() == 0
