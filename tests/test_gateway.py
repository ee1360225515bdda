"""A gateway in front of other hosts, all real sshds on 127.0.0.1: where each session went
(sshproxy stand-in, nc and ssh hops, a jump-host shell), policies, transfers as file
operations, multiplexed connections."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd_harness import (
    SHELL_PROMPT,
    ClientKey,
    Sshd,
    SshdFactory,
    TestUser,
    cast_events,
    generate_key,
    show,
    wait_for_records,
)

pytestmark = pytest.mark.sshd

Record = dict[str, object]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Hop:
    """How a session on the gateway logs in to the backends: a key of the test user's."""

    key: Path

    def options(self) -> list[str]:
        return ["-F", "/dev/null", "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]

    def ssh(self, port: int, command: str) -> str:
        return shlex.join(["ssh", *self.options(), "-p", str(port), "127.0.0.1", command])


@dataclass
class Site:
    gateway: Sshd
    backends: list[Sshd]
    hop: Hop
    sshrec: Path

    def records(self, count: int) -> list[Record]:
        found = wait_for_records(self.gateway.spool, count, describe=self.gateway.diagnostics)
        return sorted(found, key=lambda r: str(r["id"]))

    def root(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSHREC")}
        env.update(SSHREC_HOME=str(self.gateway.spool), SSHREC_CONFIG="/dev/null")
        return subprocess.run([str(self.sshrec), *args], env=env, capture_output=True, text=True, timeout=120)


SiteFactory = Callable[..., Site]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder the test user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="sshrec-gateway-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def site_of(sshd_factory: SshdFactory, ssh_client_key: ClientKey, ssh_test_user: TestUser,
            session_sshrec: Path, public_dir: Path) -> Iterator[SiteFactory]:
    made: list[Site] = []
    hop_dir = public_dir / "hop"
    hop_dir.mkdir(mode=0o700)
    if ssh_test_user.privileged:
        os.chown(hop_dir, ssh_test_user.uid, ssh_test_user.gid)

    def make(recorder_args: str = "--no-index", backends: int = 2, **gateway_options: object) -> Site:
        key = hop_dir / f"hop-key-{len(made)}"
        generate_key(key, "sshrec-gateway-hop")
        if ssh_test_user.privileged:
            os.chown(key, ssh_test_user.uid, ssh_test_user.gid)
        keys = [ssh_client_key.public_line, key.with_suffix(".pub").read_text().strip()]
        hosts = [sshd_factory(force_command=None, authorized_keys=keys) for _ in range(backends)]
        gateway = sshd_factory(force_command=f"{shlex.quote(str(session_sshrec))} {recorder_args}",
                               **gateway_options)
        site = Site(gateway, hosts, Hop(key), session_sshrec)
        made.append(site)
        return site

    yield make


def sshproxy_site(site_of: SiteFactory, public_dir: Path, backends: int) -> Site:
    """A gateway whose ForceCommand is ``sshrec -- sshproxy``, with ``backends`` behind it."""
    base = site_of(backends=backends)
    folder = public_dir / "bin"
    folder.mkdir(mode=0o755)
    proxy = sshproxy_standin(folder, base)
    site = site_of(recorder_args=f"--no-index -- {proxy}", backends=0)
    site.backends, site.hop = base.backends, base.hop
    return site


def sshproxy_standin(folder: Path, site: Site) -> Path:
    """Behaves as CEA-HPC sshproxy does: picks a backend at random, runs ssh to it as a child
    (-tt when it got a terminal), and refuses to run once re-parented to init."""
    script = folder / "sshproxy"
    ports = [b.port for b in site.backends]
    script.write_text(f"""#!/usr/bin/python3
import os, random, subprocess, sys
if os.getppid() == 1:
    sys.exit("sshproxy stand-in: re-parented to init")
port = random.choice({ports!r})
command = os.environ.get("SSH_ORIGINAL_COMMAND", "")
argv = ["ssh", *{site.hop.options()!r}, "-tt" if sys.stdin.isatty() else "-T", "-p", str(port), "127.0.0.1"]
sys.exit(subprocess.call(argv + (["--", command] if command else [])))
""")
    script.chmod(0o755)
    return script


def test_sshproxy_sessions_record_the_backend_they_reached(site_of: SiteFactory, public_dir: Path) -> None:
    site = sshproxy_site(site_of, public_dir, backends=2)
    ports = []
    for _ in range(4):
        result = site.gateway.client().run('echo "$SSH_CONNECTION"')
        assert result.returncode == 0, show(result)
        ports.append(int(result.stdout.split()[3]))
    records = site.records(4)
    for port, record in zip(ports, records, strict=True):
        assert record["destination"] == f"127.0.0.1:{port}", record
        [hop] = [d for d in record["destinations"] if d["via"] == "ssh"]  # type: ignore[union-attr]
        assert hop["addr"] == f"127.0.0.1:{port}", record
        _, events = cast_events(Path(str(record["path"])))
        assert [e[2] for e in events if e[1] == "m"] == [f"destination 127.0.0.1:{port} via ssh"]
    listed = site.root("ls", "--dest", f"127.0.0.1:{ports[0]}", "--json")
    assert {r["id"] for r in json.loads(listed.stdout)} == {r["id"] for r, p in zip(records, ports, strict=True)
                                                            if p == ports[0]}, listed.stderr


def test_sshproxy_gets_a_terminal_only_when_sshd_gave_one(site_of: SiteFactory, public_dir: Path) -> None:
    site = sshproxy_site(site_of, public_dir, backends=1)
    with site.gateway.client().spawn_pty() as term:
        term.expect(SHELL_PROMPT, timeout=20)
        term.sendline("tty; exit 3")
        term.expect(r"/dev/pts/\d+")
        assert term.wait(timeout=20) == 3, term.describe()
    no_tty = site.gateway.client().run("tty")
    assert no_tty.stdout == b"not a tty\n", show(no_tty)
    first, second = site.records(2)
    assert (first["mode"], second["mode"]) == ("pty", "pipe")
    assert first["destination"] == second["destination"] == f"127.0.0.1:{site.backends[0].port}"


def test_a_proxycommand_nc_hop_names_its_target_and_ends_normally(site_of: SiteFactory) -> None:
    site = site_of(backends=1)
    target = site.backends[0]
    hop = shlex.join(site.gateway.client().ssh_argv("nc %h %p"))
    client = target.client()
    argv = client.ssh_argv("echo through-the-gateway", extra=["-o", f"ProxyCommand={hop}"])
    result = subprocess.run(argv, capture_output=True, timeout=60, env=client.env(), stdin=subprocess.DEVNULL)
    assert (result.returncode, result.stdout) == (0, b"through-the-gateway\n"), show(result)
    [record] = site.records(1)
    assert record["original_command"] == f"nc 127.0.0.1 {target.port}", record
    assert record["destination"] == f"127.0.0.1:{target.port}", record
    # nc ends when its connection closes, which races the client's going: either nc exits 0, or
    # the client has closed its input and left first, the session's normal end (no exit status)
    assert (record["exit_signal"], record["status"]) == (None, "complete"), record
    if record["exit_status"] is None:
        assert any("the client closed its input and left" in str(n) for n in record["notes"]), record  # type: ignore[union-attr]
    else:
        assert record["exit_status"] == 0, record
    assert json.loads(site.root("ls", "--exit", "nonzero", "--json").stdout) == []


def test_a_jump_host_shell_records_every_host_it_visits(site_of: SiteFactory) -> None:
    site = site_of(backends=2)
    first, second = (b.port for b in site.backends)
    command = "; ".join(site.hop.ssh(port, "echo visited") for port in (first, second, first))
    result = site.gateway.client().run(command)
    assert result.stdout == b"visited\n" * 3, show(result)
    [record] = site.records(1)
    visited = [(d["destination"], d["addr"]) for d in record["destinations"]]  # type: ignore[union-attr]
    assert visited == [(f"127.0.0.1:{p}", f"127.0.0.1:{p}") for p in (first, second, first)], record
    assert record["destination"] == f"127.0.0.1:{first}"
    _, events = cast_events(Path(str(record["path"])))
    assert len([e for e in events if e[1] == "m" and str(e[2]).startswith("destination ")]) == 3
    for port in (first, second):
        listed = json.loads(site.root("ls", "--dest", f"127.0.0.1:{port}", "--json").stdout)
        assert [r["id"] for r in listed] == [record["id"]]


def test_ssh_typed_in_a_terminal_session_is_a_destination(site_of: SiteFactory) -> None:
    """ssh -t gw ssh target: the hop runs on the gateway's terminal, the watch sees it there."""
    site = site_of(backends=1)
    port = site.backends[0].port
    inner = shlex.join(["ssh", *site.hop.options(), "-tt", "-p", str(port), "127.0.0.1", "tty; exit 4"])
    with site.gateway.client().spawn_pty(command=inner) as term:
        term.expect(r"/dev/pts/\d+")
        assert term.wait(timeout=20) == 4, term.describe()
    [record] = site.records(1)
    assert (record["mode"], record["destination"]) == ("pty", f"127.0.0.1:{port}"), record
    listed = site.root("ls")
    connection = str(record["connection_id"])[:8]
    assert connection and connection in listed.stdout.splitlines()[1], listed.stdout


def test_scp_to_a_third_host_is_a_destination(site_of: SiteFactory) -> None:
    site = site_of(backends=1)
    backend = site.backends[0]
    target = backend.scratch / "copied"
    copy = shlex.join(["scp", *site.hop.options(), "-P", str(backend.port), "/etc/hostname",
                       f"127.0.0.1:{target}"])
    result = site.gateway.client().run(copy)
    assert result.returncode == 0 and target.read_bytes() == Path("/etc/hostname").read_bytes(), show(result)
    [record] = site.records(1)
    assert any(d["via"] == "scp" and d["destination"] == f"127.0.0.1:{backend.port}"
               for d in record["destinations"]), record  # type: ignore[union-attr]


def test_deny_interactive_refuses_shells_and_records_the_attempt(site_of: SiteFactory) -> None:
    site = site_of(recorder_args="--no-index --deny-interactive", backends=0)
    with site.gateway.client().spawn_pty() as term:
        term.expect("interactive shells are not allowed here")
        assert term.wait(timeout=20) == 1, term.describe()
    allowed = site.gateway.client().run("echo a-command")
    assert (allowed.returncode, allowed.stdout) == (0, b"a-command\n"), show(allowed)
    refused, ran = site.records(2)
    assert refused["status"] == "refused" and refused["exit_status"] == 1, refused
    assert any("interactive shells are not allowed" in str(n) for n in refused["notes"]), refused  # type: ignore[union-attr]
    assert ran["status"] == "complete"
    listed = json.loads(site.root("ls", "--status", "refused", "--json").stdout)
    assert [r["id"] for r in listed] == [refused["id"]]


def test_mosh_is_refused_by_default_and_noted_when_allowed(site_of: SiteFactory, tmp_path: Path,
                                                           ssh_test_user: TestUser) -> None:
    site = site_of(backends=0)
    refused = site.gateway.client().run("mosh-server new -p 60001")
    assert refused.returncode == 1 and b"mosh is not allowed here" in refused.stderr, show(refused)
    fake = site.gateway.scratch / "mosh-server"
    fake.write_text("#!/bin/sh\necho 'MOSH CONNECT 60001 c2VjcmV0'\n")
    fake.chmod(0o755)
    allowing = site_of(recorder_args="--no-index --mosh allow", backends=0)
    allowed = allowing.gateway.client().run(f"{fake} new")
    assert allowed.stdout == b"MOSH CONNECT 60001 c2VjcmV0\n", show(allowed)
    assert site.records(1)[0]["status"] == "refused"
    [record] = allowing.records(1)
    assert any("mosh: only the start" in str(n) for n in record["notes"]), record  # type: ignore[union-attr]


def test_sessions_of_one_multiplexed_connection_share_an_id(site_of: SiteFactory, tmp_path: Path) -> None:
    site = site_of(backends=0)
    client = site.gateway.client()
    control = tmp_path / "cm"
    options, own = client.options(), []
    for name, value in zip(options[::2], options[1::2], strict=True):
        if value not in ("ControlMaster=no", "ControlPath=none"):
            own += [name, value]
    own += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}", "-o", "ControlPersist=60",
            "-p", str(client.port)]
    try:
        for _ in range(2):
            result = subprocess.run(["ssh", *own, "-T", client.target, "--", "true"], capture_output=True,
                                    timeout=60, env=client.env(), stdin=subprocess.DEVNULL)
            assert result.returncode == 0, show(result)
        assert control.exists(), "no control socket: the sessions were not multiplexed"
    finally:
        subprocess.run(["ssh", *own, "-O", "exit", client.target], capture_output=True, timeout=30,
                       env=client.env())
    assert client.run("true").returncode == 0  # a connection of its own
    first, second, third = site.records(3)
    assert first["connection_id"] and first["connection_id"] == second["connection_id"], (first, second)
    assert third["connection_id"] not in (None, first["connection_id"]), third
    listed = json.loads(site.root("ls", "--connection", str(first["connection_id"]), "--json").stdout)
    assert sorted(r["id"] for r in listed) == [first["id"], second["id"]]


@pytest.mark.parametrize("subsystem", ["external", "internal-sftp"])
def test_sftp_is_byte_exact_and_recorded_as_file_operations(site_of: SiteFactory, sshd_factory: SshdFactory,
                                                            tmp_path: Path, subsystem: str) -> None:
    options = {"Subsystem": "sftp internal-sftp"} if subsystem == "internal-sftp" else {}
    site = site_of(backends=0, options=options)
    plain = sshd_factory(force_command=None, options=options)
    data = os.urandom(1024 * 1024 + 17)
    local = tmp_path / "local.bin"
    local.write_bytes(data)
    for sshd in (plain, site.gateway):
        remote, back = sshd.scratch / "up.bin", tmp_path / f"back-{sshd.port}.bin"
        batch = tmp_path / f"batch-{sshd.port}"
        batch.write_text(f'put "{local}" "{remote}"\nget "{remote}" "{back}"\nrename "{remote}" "{remote}.2"\n')
        result = subprocess.run(sshd.client().sftp_argv(batch), capture_output=True, timeout=120,
                                env=sshd.client().env(), stdin=subprocess.DEVNULL)
        assert result.returncode == 0, show(result)
        assert digest(back) == digest(local) == digest(Path(f"{remote}.2"))
    [record] = site.records(1)
    remote = str(site.gateway.scratch / "up.bin")
    ops = [(f["op"], f["path"], f.get("bytes")) for f in record["files"]]  # type: ignore[union-attr]
    assert ops == [("write", remote, len(data)), ("read", remote, len(data)), ("rename", remote, None)], ops
    assert record["mode"] == "sftp" and record["bytes_in"] > len(data), record
    assert Path(str(record["path"])).stat().st_size < 20_000  # no file contents in the cast
    listed = json.loads(site.root("ls", "--file", "*/up.bin", "--mode", "sftp", "--json").stdout)
    assert [r["id"] for r in listed] == [record["id"]]


def test_legacy_scp_and_rsync_are_byte_exact_with_their_paths(site_of: SiteFactory, tmp_path: Path) -> None:
    site = site_of(backends=0)
    client = site.gateway.client()
    data = os.urandom(300_000)
    local = tmp_path / "payload.bin"
    local.write_bytes(data)
    remote = site.gateway.scratch / "scp.bin"
    up = subprocess.run(client.scp_argv(str(local), client.remote(remote), legacy=True), capture_output=True,
                        timeout=120, env=client.env(), stdin=subprocess.DEVNULL)
    assert up.returncode == 0 and digest(remote) == digest(local), show(up)
    back = tmp_path / "back.bin"
    down = subprocess.run(client.scp_argv(client.remote(remote), str(back), legacy=True), capture_output=True,
                          timeout=120, env=client.env(), stdin=subprocess.DEVNULL)
    assert down.returncode == 0 and digest(back) == digest(local), show(down)
    rsync_target = site.gateway.scratch / "rsync.bin"
    ssh = shlex.join(["ssh", *client.options(), "-p", str(client.port)])
    synced = subprocess.run(["rsync", "-e", ssh, str(local), client.remote(rsync_target)], capture_output=True,
                            timeout=120, env=client.env(), stdin=subprocess.DEVNULL)
    assert synced.returncode == 0 and digest(rsync_target) == digest(local), show(synced)
    uploaded, downloaded, rsynced = site.records(3)
    assert (uploaded["mode"], uploaded["files"]) == ("scp", [
        {"op": "upload", "path": str(remote), "bytes": len(data), "at": uploaded["files"][0]["at"]}])  # type: ignore[index]
    assert [(f["op"], f["path"], f["bytes"]) for f in downloaded["files"]] == [  # type: ignore[union-attr]
        ("download", str(remote), len(data))]
    assert rsynced["mode"] == "rsync" and [(f["op"], f["path"]) for f in rsynced["files"]] == [  # type: ignore[union-attr]
        ("upload", str(rsync_target))]
    for record in (uploaded, downloaded, rsynced):
        assert record["status"] == "complete" and record["exit_status"] == 0, record
        assert Path(str(record["path"])).stat().st_size < 20_000, record


def test_shell_syntax_around_a_transfer_is_a_shell_session(site_of: SiteFactory) -> None:
    site = site_of(backends=0)
    result = site.gateway.client().run("scp -t /tmp/sshrec-nothing; echo the-shell-ran")
    assert b"the-shell-ran" in result.stdout, show(result)
    [record] = site.records(1)
    assert record["mode"] == "pipe" and record["files"] == [], record
    _, events = cast_events(Path(str(record["path"])))
    assert "the-shell-ran" in "".join(str(e[2]) for e in events if e[1] == "o")
