"""Two real users on one host, one spool made by `sshrec setup`: both recorded, neither can see
the other's sessions, root indexes all of them (real sshd, real ssh, real accounts)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd_harness import Sshd, SshdFactory, TestUser, read_json, show, wait_until

pytestmark = pytest.mark.sshd



@dataclass
class Gateway:
    sshd: Sshd
    home: Path
    config: Path
    sshrec: Path
    alice: TestUser
    bob: TestUser

    def ssh(self, user: TestUser, command: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return self.sshd.client(user=user).run(command, **kwargs)  # type: ignore[arg-type]

    def sshrec_as(self, user: TestUser, *args: str) -> subprocess.CompletedProcess[bytes]:
        """An sshrec command run by ``user`` in a (recorded) session of theirs."""
        return self.ssh(user, shlex.join([str(self.sshrec), *args]))

    def root(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSHREC")}
        env.update(SSHREC_HOME=str(self.home), SSHREC_CONFIG=str(self.config))
        return subprocess.run([str(self.sshrec), *args], env=env, capture_output=True, text=True, timeout=120)

    def records_of(self, user: TestUser) -> list[dict[str, object]]:
        folder = self.home / "users" / user.name / "recordings"
        return [read_json(p) for p in sorted(folder.glob("*/*/*/*.json")) if ".tmp." not in p.name]

    def finished(self, user: TestUser, count: int) -> list[dict[str, object]]:
        def ready() -> list[dict[str, object]] | None:
            records = self.records_of(user)
            done = [r for r in records if r.get("status") != "recording"]
            return done if len(done) >= count else None

        return wait_until(ready, 20, lambda: f"{count} records of {user.name}: {self.records_of(user)}")


@pytest.fixture
def gateway(sshd_factory: SshdFactory, ssh_test_user: TestUser, second_test_user: TestUser,
            session_sshrec: Path) -> Iterator[Gateway]:
    """`sshrec setup` on a fresh home, then an sshd whose ForceCommand records into it. The
    recorders run with --no-index, so what `ls` shows it found by catching up itself."""
    base = Path(tempfile.mkdtemp(prefix="sshrec-gateway-"))
    base.chmod(0o755)
    home, config = base / "spool", base / "sshrec.toml"
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSHREC")}
        env["SSHREC_CONFIG"] = str(config)
        setup = subprocess.run([str(session_sshrec), "setup", "--home", str(home)], env=env,
                               capture_output=True, text=True, timeout=120)
        assert setup.returncode == 0, setup.stderr
        sshd = sshd_factory(force_command=f"{shlex.quote(str(session_sshrec))} --no-index",
                            set_env={"SSHREC_HOME": str(home)}, other_users=[second_test_user])
        yield Gateway(sshd, home, config, session_sshrec, ssh_test_user, second_test_user)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_setup_makes_the_layout_and_a_second_run_changes_nothing(gateway: Gateway) -> None:
    home = gateway.home
    assert (home.stat().st_uid, stat.S_IMODE(home.stat().st_mode)) == (0, 0o711)
    users = (home / "users").stat()
    assert (users.st_uid, stat.S_IMODE(users.st_mode)) == (0, 0o1733)
    assert gateway.config.read_text().count(f'home = "{home}"') == 1
    again = gateway.root("setup", "--home", str(home), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changes"] == []


def test_every_user_is_recorded_and_nobody_reads_another(gateway: Gateway) -> None:
    alice, bob = gateway.alice, gateway.bob
    for user in (alice, bob):
        result = gateway.ssh(user, f"echo secret-of-{user.name}")
        expected = (0, f"secret-of-{user.name}\n".encode(), b"")
        assert (result.returncode, result.stdout, result.stderr) == expected, show(result)
    [a_record] = gateway.finished(alice, 1)
    [b_record] = gateway.finished(bob, 1)
    for user, record in ((alice, a_record), (bob, b_record)):
        cast = Path(str(record["path"]))
        assert cast.parent.is_relative_to(gateway.home / "users" / user.name)
        assert (cast.stat().st_uid, stat.S_IMODE(cast.stat().st_mode)) == (user.uid, 0o600)
        assert (cast.parent.stat().st_uid, stat.S_IMODE(cast.parent.stat().st_mode)) == (user.uid, 0o700)
        assert record["user"] == user.name and record["status"] == "complete", record

    b_cast = str(b_record["path"])
    peek = gateway.ssh(alice, f"cat {shlex.quote(b_cast)}; ls {gateway.home / 'users'}; "
                              f"ls {gateway.home / 'users' / bob.name}; echo done")
    assert peek.stdout == b"done\n", show(peek)
    assert peek.stderr.count(b"Permission denied") == 3, show(peek)
    tamper = gateway.ssh(alice, f"rm -f {shlex.quote(b_cast)}; mv {gateway.home / 'users' / bob.name} /tmp/x")
    assert tamper.returncode != 0 and Path(b_cast).exists(), show(tamper)


def test_root_indexes_every_user_and_the_index_is_private(gateway: Gateway) -> None:
    alice, bob = gateway.alice, gateway.bob
    for user in (alice, bob, bob):
        assert gateway.ssh(user, "true").returncode == 0
    gateway.finished(alice, 1)
    gateway.finished(bob, 2)
    result = gateway.root("index", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["new_by_user"] == {alice.name: 1, bob.name: 2}
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    index_db = gateway.home / "index.db"
    assert (index_db.stat().st_uid, stat.S_IMODE(index_db.stat().st_mode)) == (0, 0o600)
    listed = gateway.root("ls", "--json")
    assert sorted(r["user"] for r in json.loads(listed.stdout)) == [alice.name, bob.name, bob.name]

    peek = gateway.sshrec_as(alice, "ls", "--db", f"sqlite:///{index_db}")
    assert peek.returncode == 1 and b"not permitted" in peek.stderr and b"root" in peek.stderr, show(peek)


def test_a_user_lists_and_replays_only_their_own(gateway: Gateway) -> None:
    alice, bob = gateway.alice, gateway.bob
    assert gateway.ssh(alice, "echo alpha-words-here").returncode == 0
    assert gateway.ssh(bob, "echo bravo-words-here").returncode == 0
    [a_record] = gateway.finished(alice, 1)
    [b_record] = gateway.finished(bob, 1)

    # Right after the session: ls catches up with the new file (the recorders do not index).
    mine = gateway.sshrec_as(alice, "ls", "--json")
    assert mine.returncode == 0, show(mine)
    rows = json.loads(mine.stdout)
    assert a_record["id"] in [r["id"] for r in rows] and {r["user"] for r in rows} == {alice.name}, rows
    personal_index = gateway.home / "users" / alice.name / "index.db"
    assert (personal_index.stat().st_uid, stat.S_IMODE(personal_index.stat().st_mode)) == (alice.uid, 0o600)

    theirs = gateway.sshrec_as(alice, "ls", "--user", bob.name)
    assert theirs.returncode == 1 and b"not permitted" in theirs.stderr, show(theirs)
    found = gateway.sshrec_as(alice, "search", "alpha", "words")
    assert found.returncode == 0 and str(a_record["id"]).encode() in found.stdout, show(found)
    hidden = gateway.sshrec_as(alice, "search", "bravo")
    assert hidden.returncode == 1 and b"no session matches" in hidden.stderr, show(hidden)
    replay = gateway.sshrec_as(alice, "cat", str(b_record["id"]))
    assert replay.returncode == 1 and b"not among your recordings" in replay.stderr, show(replay)
    by_path = gateway.sshrec_as(alice, "cat", str(b_record["path"]))
    assert by_path.returncode == 1 and b"not permitted" in by_path.stderr, show(by_path)
    own = gateway.sshrec_as(alice, "cat", str(a_record["id"]))
    assert own.returncode == 0 and b"alpha-words-here" in own.stdout, show(own)


def test_a_taken_folder_name_neither_blocks_nor_exposes_its_user(gateway: Gateway) -> None:
    alice, bob = gateway.alice, gateway.bob
    trap = gateway.home / "users" / alice.name
    squat = gateway.ssh(bob, f"mkdir -m 777 {trap}")  # bob takes alice's name first
    assert squat.returncode == 0, show(squat)
    result = gateway.ssh(alice, "echo still-recorded")
    assert result.returncode == 0 and result.stdout == b"still-recorded\n", show(result)
    assert b"is not a folder of this user's" in result.stderr, show(result)
    assert not list(trap.iterdir()), "alice's recording went into bob's folder"
    [folder] = [p for p in (gateway.home / "users").iterdir() if p.name.startswith(f"{alice.name}~")]
    assert (folder.stat().st_uid, stat.S_IMODE(folder.stat().st_mode)) == (alice.uid, 0o700)

    listing = gateway.sshrec_as(alice, "ls")  # no index of hers in bob's folder
    assert listing.returncode == 1 and b"is not your folder" in listing.stderr, show(listing)
    assert not (trap / "index.db").exists()
    indexed = gateway.root("index", "--json")
    assert json.loads(indexed.stdout)["new_by_user"] == {alice.name: 2, bob.name: 1}, indexed.stdout
    repaired = gateway.root("setup", "--home", str(gateway.home), "--json")
    changes = json.loads(repaired.stdout)["changes"]
    assert any(f"belongs to {bob.name}, not {alice.name}" in c for c in changes), changes
    assert trap.stat().st_uid == alice.uid and stat.S_IMODE(trap.stat().st_mode) == 0o700


def test_a_record_cannot_name_another_user(gateway: Gateway) -> None:
    alice, bob = gateway.alice, gateway.bob
    assert gateway.ssh(bob, "true").returncode == 0
    [record] = gateway.finished(bob, 1)
    json_path = Path(str(record["path"])).with_suffix(".json")
    forged = gateway.ssh(bob, f"sed -i 's/\"user\": \"{bob.name}\"/\"user\": \"{alice.name}\"/; "
                              f"s/\"uid\": {bob.uid}/\"uid\": {alice.uid}/' {json_path}")
    assert forged.returncode == 0 and read_json(json_path)["user"] == alice.name, show(forged)
    gateway.root("index")
    [row] = [r for r in json.loads(gateway.root("ls", "--json").stdout) if r["id"] == record["id"]]
    assert (row["user"], row["uid"]) == (bob.name, bob.uid), row
    assert any(f"names user '{alice.name}'" in note for note in row["notes"]), row["notes"]
