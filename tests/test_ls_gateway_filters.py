"""`ls --dest` (any destination), `--file` (any transferred path), `--mode` and `--connection`,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from index_support import BASE_TIME, make_session

from sshrec.commands import ls as ls_command

JUMP = [{"destination": "db1:22", "addr": "10.0.0.5:22", "via": "ssh", "at": 1.0},
        {"destination": "db2:22", "addr": "10.0.0.6:22", "via": "ssh", "at": 9.0}]
FILES = [{"op": "write", "path": "/srv/releases/app-1.2.tar.gz", "bytes": 5_000_000, "at": 0.4},
         {"op": "rename", "path": "/srv/tmp/x", "to": "/srv/releases/current", "at": 0.9}]


@pytest.fixture
def ids(db_url: str, home: str) -> dict[str, str]:
    sessions = {
        "jump": make_session(home, start=BASE_TIME, mode="pipe", destination="db1:22", destinations=JUMP,
                             connection_id="c0ffee0000000001"),
        "upload": make_session(home, start=BASE_TIME + 60, mode="sftp", files=FILES,
                               connection_id="c0ffee0000000001"),
        "plain": make_session(home, start=BASE_TIME + 120, mode="pty", connection_id="beef000000000002"),
    }
    return {name: record.id for name, record in sessions.items()}


def listed(capsys: pytest.CaptureFixture[str], db_url: str, home: str, ids: dict[str, str],
           *args: str) -> list[str]:
    status = ls_command.main([*args, "--json", "--home", home, "--db", db_url])
    out, err = capsys.readouterr()
    assert status == 0, err
    names = {v: k for k, v in ids.items()}
    return [names[r["id"]] for r in json.loads(out)]


@pytest.mark.parametrize(("args", "expected"), [
    (("--dest", "db2:22"), ["jump"]),  # not the first destination: any of them matches
    (("--dest", "10.0.0.6*"), ["jump"]),
    (("--dest", "db3*"), []),
    (("--file", "/srv/releases/*.tar.gz"), ["upload"]),
    (("--file", "/srv/releases/current"), ["upload"]),  # a rename's target
    (("--file", "*app-1.?.tar.gz"), ["upload"]),
    (("--file", "/srv/releases/app"), []),
    (("--mode", "sftp,pty"), ["plain", "upload"]),
    (("--connection", "c0ffee0000000001"), ["upload", "jump"]),
    (("--connection", "c0ffee*"), ["upload", "jump"]),
])
def test_gateway_filters(capsys: pytest.CaptureFixture[str], db_url: str, home: str, ids: dict[str, str],
                         args: tuple[str, ...], expected: list[str]) -> None:
    assert listed(capsys, db_url, home, ids, *args) == expected


def test_an_unknown_mode_is_refused(capsys: pytest.CaptureFixture[str], home: str) -> None:
    assert ls_command.main(["--mode", "telnet", "--home", home]) == 2
    assert "unknown mode 'telnet'; one of: pty, pipe, sftp, scp, rsync, import" in capsys.readouterr().err
