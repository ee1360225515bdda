"""`sshrec ls` filters and `sshrec search`, through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from index_support import BASE_TIME, make_session
from sshrec.player import query as query_module
from sshrec.player.query import QueryError, parse_when
from sshrec.schema.record import FIELD_NAMES, read_record
from sshrec.schema.spool import record_path

from sshrec.commands import index as index_command
from sshrec.commands import ls as ls_command
from sshrec.commands import search as search_command

FP_A = "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"
FP_B = "SHA256:nThbg6kXzzzzGl7E1IGOCspRomTxdCARLviKw6E5SY8"
FP_C = "SHA256:Qq0dJ2d7pXHY4hYt4aqmBsVYgg5zJvwFNCpe1vS3uaA"
EVIL = "echo \x1b]52;c;cm0gLXJmIC8=\x07\x1b[2Jdone"


@dataclass
class Spool:
    home: str
    url: str
    ids: dict[str, str]  # name -> session id

    def ls(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        status = ls_command.main([*args, "--home", self.home, "--db", self.url])
        out, err = capsys.readouterr()
        return status, out, err

    def ls_ids(self, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
        status, out, err = self.ls(capsys, *args, "--json")
        assert status == 0, err
        names = {v: k for k, v in self.ids.items()}
        return [names[r["id"]] for r in json.loads(out)]

    def search(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
        status = search_command.main([*args, "--json", "--home", self.home, "--db", self.url])
        out, err = capsys.readouterr()
        return status, json.loads(out), err

    def name(self, session_id: str) -> str:
        return {v: k for k, v in self.ids.items()}[session_id]


@pytest.fixture
def spool(db_url: str, home: str, capsys: pytest.CaptureFixture[str]) -> Spool:
    """Seven sessions spread over three days, then `sshrec index`."""
    day = 86400
    specs = {
        "deploy": dict(
            start=BASE_TIME - 2 * day,
            output=[
                (0.5, "Deploying \x1b[32mrelease\x1b[0m 1.2\r\n"),
                (12.25, "Permission denied (publickey)\r\n"),
            ],
            user="alice",
            key_fingerprint=FP_A,
            original_command="make DEPLOY=prod deploy",
            command=["/bin/sh", "-c", "make DEPLOY=prod deploy"],
            client_addr="10.1.2.3",
            destination="app1.example.com",
            exit_status=2,
        ),
        "shell": dict(
            start=BASE_TIME - day,
            output=[(1.0, "$ cat /etc/pass"), (1.1, "wd\r\nroot:x:0:0\r\n"), (3.5, "Caf\u00e9 cr\u00e8me\r\n")],
            user="bob",
            key_fingerprint=FP_B,
            command=["/bin/bash", "-l"],
            client_addr="10.1.9.9",
            destination="db1.example.com:5432",
        ),
        "sql": dict(
            start=BASE_TIME - 3600,
            output=[
                (0.2, "psql> DROP TABLE users;\r\n"),
                (0.9, "ERROR: permission denied for table users\r\n"),
            ],
            user="alice2",
            key_fingerprint=FP_C,
            original_command="psql -c 'DROP TABLE users'",
            command=["/bin/sh", "-c", "psql -c 'DROP TABLE users'"],
            client_addr="192.168.0.7",
            destination="db1.example.com:5432",
            exit_status=1,
        ),
        "killed": dict(
            start=BASE_TIME - 1800,
            output=[(0.1, "top - 10:00\r\n")],
            user="carol",
            command=["top"],
            status="failed",
            exit_status=None,
            exit_signal="SIGKILL",
        ),
        "evil": dict(
            start=BASE_TIME - 600,
            output=[(0.3, "done\r\n")],
            user="mallory",
            original_command=EVIL,
            command=["/bin/sh", "-c", EVIL],
            client_addr="10.66.6.6",
        ),
        "percent": dict(
            start=BASE_TIME - 300,
            output=[(0.3, "100% done_ok\r\n")],
            user="dave",
            original_command="printf '100%% done_ok'",
            command=["/bin/sh", "-c", "printf '100%% done_ok'"],
        ),
        "newest": dict(start=BASE_TIME, output=[(0.1, "hello\r\n")], user="alice", command=["/bin/zsh"]),
    }
    ids = {}
    for name, spec in specs.items():
        spec = dict(spec)
        output = spec.pop("output")
        ids[name] = make_session(home, output, **spec).id
    assert index_command.main(["--quiet", "--home", home, "--db", db_url]) == 0
    capsys.readouterr()
    return Spool(home, db_url, ids)


ALL_NEWEST_FIRST = ["newest", "percent", "evil", "killed", "sql", "shell", "deploy"]


def test_ls_lists_newest_first(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    assert spool.ls_ids(capsys) == ALL_NEWEST_FIRST


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--user", "alice"], ["newest", "deploy"]),
        (["--user", "alice*"], ["newest", "sql", "deploy"]),
        (["--key", FP_A], ["deploy"]),
        (["--key", "SHA256:nThbg6kX"], ["shell", "deploy"]),
        (["--key", "nThbg6kXUp"], ["deploy"]),  # the algorithm tag may be left out
        (["--key", "SHA256:nthbg6kx"], []),  # fingerprints are case-sensitive
        (["--command", "deploy"], ["deploy"]),
        (["--command", "DROP TABLE"], ["sql"]),  # any case, with a space, via trigrams
        (["--command", "bash"], ["shell"]),  # argv when there is no original command
        (["--command=-l"], ["shell"]),  # two characters: no trigram, still found
        (["--command", "100%"], ["percent"]),  # LIKE wildcards are literal
        (["--command", "_ok"], ["percent"]),
        (["--command", "%"], ["percent"]),
        (["--command", "nothing-like-this"], []),
        (["--destination", "db1.example.com:5432"], ["sql", "shell"]),
        (["--destination", "app1*"], ["deploy"]),
        (["--destination", "db1"], []),  # exact unless it ends in *
        (["--client", "10.1.2.3"], ["deploy"]),
        (["--client", "10.1.*"], ["shell", "deploy"]),
        (["--status", "failed"], ["killed"]),
        (["--status", "failed,complete", "--user", "carol"], ["killed"]),
        (["--exit", "2"], ["deploy"]),
        (["--exit", "0"], ["newest", "percent", "evil", "shell"]),
        (["--exit", "nonzero"], ["killed", "sql", "deploy"]),
        (["--since", "2024-04-30"], ["newest", "percent", "evil", "killed", "sql", "shell"]),
        (["--since", "2024-04-30T10:00:00Z", "--until", "2024-05-01T09:00Z"], ["shell"]),
        (["--until", "2024-04-29"], ["deploy"]),  # a bare date includes that whole day
        (["--since", "2024-05-01T11:45:00+02:00"], ["newest", "percent", "evil"]),
        (["--since", "2024-04-30T10:00:00Z", "--until", "2024-05-01T09:00:01Z"], ["sql", "shell"]),
        (["--user", "alice", "--exit", "2", "--client", "10.*"], ["deploy"]),
        (["--limit", "2"], ["newest", "percent"]),
        (["--limit", "0"], ALL_NEWEST_FIRST),
    ],
)
def test_ls_filters(
    spool: Spool, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]
) -> None:
    assert spool.ls_ids(capsys, *args) == expected


def test_relative_times(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.fromtimestamp(BASE_TIME, UTC) + timedelta(minutes=20)
    since = parse_when("40m", now=now)
    assert since == datetime.fromtimestamp(BASE_TIME, UTC) - timedelta(minutes=20)
    assert parse_when("1d2h", now=now) == now - timedelta(days=1, hours=2)
    assert parse_when("1w", now=now) == now - timedelta(weeks=1)
    with pytest.raises(QueryError, match="not a time"):
        parse_when("yesterday-ish")
    # relative to the real clock: every sample session is older than an hour
    assert spool.ls_ids(capsys, "--since", "1h") == []
    assert spool.ls_ids(capsys, "--until", "1h") == ALL_NEWEST_FIRST


def test_ls_json_is_the_session_record(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = spool.ls(capsys, "--json", "--user", "bob")
    [item] = json.loads(out)
    assert tuple(item) == FIELD_NAMES
    on_disk = read_record(record_path(spool.home, spool.ids["shell"])).to_dict()
    on_disk["path"] = item["path"]  # the index stores where the cast actually is
    assert item == on_disk
    status, out, _ = spool.ls(capsys, "--nl", "--limit", "0")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [spool.ids[n] for n in ALL_NEWEST_FIRST]


def test_ls_table(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = spool.ls(capsys, "--user", "alice*")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "STARTED", "(UTC)"]
    assert len(lines) == 4
    deploy = next(line for line in lines if spool.ids["deploy"] in line)
    for text in (
        "2024-04-29 10:00:00",
        "0:12",
        "alice",
        "10.1.2.3",
        "app1.example.com",
        "complete 2",
        "make DEPLOY=prod deploy",
    ):
        assert text in deploy


def test_ls_shows_escapes_instead_of_obeying_them(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = spool.ls(capsys, "--user", "mallory")
    assert "\x1b" not in out and "\x07" not in out
    assert "echo \\e]52;c;cm0gLXJmIC8=\\x07\\e[2Jdone" in out
    status, out, _ = spool.ls(capsys, "--user", "mallory", "--json")
    assert "\x1b" not in out
    assert json.loads(out)[0]["original_command"] == EVIL  # JSON keeps the exact value


def test_ls_limit_says_there_is_more(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = spool.ls(capsys, "--limit", "3")
    assert status == 0 and len(out.splitlines()) == 4
    assert "3 newest shown" in err
    status, out, err = spool.ls(capsys, "--limit", "7")
    assert err == ""


def test_ls_nothing_matches(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    assert spool.ls(capsys, "--user", "nobody") == (0, "", "no sessions match\n")


def test_ls_bad_filter_values(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in [
        (["--since", "soon"], "not a time"),
        (["--status", "done"], "unknown status 'done'"),
        (["--exit", "x"], "--exit wants a number"),
    ]:
        status, out, err = spool.ls(capsys, *args)
        assert status in (1, 2) and out == ""
        assert err.count("\n") == 1 and message in err


# search ------------------------------------------------------------------------------


def hits(spool: Spool, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    status, items, err = spool.search(capsys, *args)
    return [spool.name(item["id"]) for item in items]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["permission"], ["sql", "deploy"]),
        (["PERMISSION", "denied"], ["sql", "deploy"]),
        (["denied", "permission"], ["sql", "deploy"]),  # all words, any order
        (["--phrase", "permission denied"], ["sql", "deploy"]),
        (["--phrase", "denied permission"], []),
        (["passwd"], ["shell"]),  # split across two events
        (["release"], ["deploy"]),  # colour codes around it are not text
        (["32mrelease"], []),
        (["cafe", "creme"], ["shell"]),  # accents folded
        (["Caf\u00e9"], ["shell"]),
        (["permission", "--user", "alice"], ["deploy"]),
        (["permission", "--since", "2024-04-30"], ["sql"]),
        (["users", "--exit", "1"], ["sql"]),
        (["nonexistentword"], []),
    ],
)
def test_search(spool: Spool, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]) -> None:
    assert hits(spool, capsys, *args) == expected


def test_search_gives_time_of_first_match(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    status, items, _ = spool.search(capsys, "denied")
    by_name = {spool.name(i["id"]): i for i in items}
    assert by_name["deploy"]["match_time"] == pytest.approx(12.25)
    assert by_name["sql"]["match_time"] == pytest.approx(0.9)
    assert "Permission denied (publickey)" in by_name["deploy"]["match_text"]
    status, items, _ = spool.search(capsys, "passwd")
    assert items[0]["match_time"] == pytest.approx(1.0)  # "pass" was on screen at 1.0
    assert tuple(items[0])[: len(FIELD_NAMES)] == FIELD_NAMES


def test_search_table_and_exit_status(spool: Spool, capsys: pytest.CaptureFixture[str]) -> None:
    status = search_command.main(["denied", "--home", spool.home, "--db", spool.url])
    out, err = capsys.readouterr()
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "STARTED", "(UTC)", "AT"]
    assert any(spool.ids["deploy"] in line and "0:12.2" in line for line in lines)
    status = search_command.main(["zzzz", "--home", spool.home, "--db", spool.url])
    assert status == 1 and capsys.readouterr().err == "no session matches\n"
    status = search_command.main(["!!", "--home", spool.home, "--db", spool.url])
    assert status == 2 and "no words" in capsys.readouterr().err


def test_search_escapes_screen_text_in_table(
    db_url: str, home: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_session(home, [(0.1, "token \u202eevil\u202c here\r\n")])
    assert index_command.main(["--quiet", "--home", home, "--db", db_url]) == 0
    assert search_command.main(["token", "--home", home, "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "\u202e" not in out and "\\u202e" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["permission"], ["sql", "deploy"]),
        (["--phrase", "permission denied"], ["sql", "deploy"]),
        (["passwd"], ["shell"]),
        (["cafe", "creme"], ["shell"]),
        (["permission", "--user", "alice"], ["deploy"]),
        (["nonexistentword"], []),
    ],
)
def test_search_when_matches_are_many(
    spool: Spool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    expected: list[str],
) -> None:
    """SQLite walks sessions newest first when a word matches many: same answers."""
    monkeypatch.setattr(query_module, "FEW_MATCHES", 0)
    assert hits(spool, capsys, *args) == expected
    status, items, _ = spool.search(capsys, *args)
    if items:
        assert all(item["match_time"] is not None for item in items)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--command", "deploy"], ["deploy"]),
        (["--command", "DROP TABLE"], ["sql"]),
        (["--command", "100%"], ["percent"]),
        (["--command", "nothing-like-this"], []),
    ],
)
def test_command_filter_when_matches_are_many(
    spool: Spool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    expected: list[str],
) -> None:
    monkeypatch.setattr(query_module, "FEW_MATCHES", 0)
    assert spool.ls_ids(capsys, *args) == expected
