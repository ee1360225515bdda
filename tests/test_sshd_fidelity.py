"""The same session through a plain sshd and through ``ForceCommand sshrec``: the client must
not tell them apart (exit status or signal, output, key restrictions, terminal, jobs)."""

from __future__ import annotations

import secrets
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd_harness import (
    ClientKey,
    ProcInfo,
    Sshd,
    SshdFactory,
    processes_matching,
    show,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.sshd

Run = Callable[[Sshd], subprocess.CompletedProcess[bytes]]



@dataclass
class Pair:
    plain: Sshd
    recorded: Sshd

    def both(self, run: Run) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
        return run(self.plain), run(self.recorded)

    def same(self, run: Run) -> subprocess.CompletedProcess[bytes]:
        """Run on both; exit status, stdout and stderr must be identical. Returns the result."""
        plain, recorded = self.both(run)
        assert (recorded.returncode, recorded.stdout, recorded.stderr) == \
            (plain.returncode, plain.stdout, plain.stderr), f"plain:\n{show(plain)}\nsshrec:\n{show(recorded)}"
        return recorded

    def record(self, count: int = 1) -> dict[str, object]:
        """The last of ``count`` finished sessions of the recorded sshd."""
        records = wait_for_records(self.recorded.spool, count, describe=self.recorded.diagnostics)
        return max(records, key=lambda r: str(r["id"]))


@pytest.fixture
def pair_of(sshd_factory: SshdFactory, session_sshrec: Path) -> Callable[..., Pair]:
    def start(wrapped: str | None = None, **kwargs: object) -> Pair:
        """A plain sshd (``ForceCommand wrapped`` when given) and one with sshrec in front."""
        recorder = shlex.quote(str(session_sshrec)) + " --no-index"
        if wrapped is not None:
            recorder += f" -- {wrapped}"
        plain = sshd_factory(force_command=wrapped, **kwargs)
        return Pair(plain, sshd_factory(force_command=recorder, **kwargs))

    return start


def line(key: ClientKey, options: str) -> str:
    return f"{options} {key.public_line}"


def test_a_keys_command_is_honoured(pair_of: Callable[..., Pair], ssh_client_key: ClientKey) -> None:
    forced = "echo forced:$SSH_ORIGINAL_COMMAND; exit 4"
    pair = pair_of(authorized_keys=[line(ssh_client_key, f'command="{forced}"')])
    result = pair.same(lambda s: s.client().run("cat /etc/shadow"))
    assert (result.returncode, result.stdout) == (4, b"forced:cat /etc/shadow\n"), show(result)
    record = pair.record()
    assert record["original_command"] == "cat /etc/shadow", record
    assert record["command"][1:] == ["-c", forced], record  # type: ignore[index]
    assert any("ran the key's command=" in str(n) for n in record["notes"]), record  # type: ignore[union-attr]


def test_a_wrapped_command_overrides_the_keys_as_forcecommand_does(
        pair_of: Callable[..., Pair], ssh_client_key: ClientKey) -> None:
    pair = pair_of(wrapped="/bin/echo wrapped", authorized_keys=[line(ssh_client_key, 'command="echo key"')])
    result = pair.same(lambda s: s.client().run("ls"))
    assert result.stdout == b"wrapped\n", show(result)
    notes = pair.record()["notes"]
    assert any("overridden by the wrapped command" in str(n) for n in notes), notes  # type: ignore[union-attr]


@pytest.mark.parametrize("option", ["no-pty", "restrict"])
def test_a_key_without_pty_gets_none(pair_of: Callable[..., Pair], ssh_client_key: ClientKey,
                                     option: str) -> None:
    """sshd itself refuses the terminal under a ForceCommand too (ssh -tt then runs the command
    without one and exits 255); the record names the key's options."""
    pair = pair_of(authorized_keys=[line(ssh_client_key, option)])
    refused = pair.same(lambda s: s.client().run("tty", tty=True))
    assert refused.returncode == 255 and b"PTY allocation request failed" in refused.stderr, show(refused)
    result = pair.same(lambda s: s.client().run('tty; echo "tty=$SSH_TTY"'))
    assert result.stdout == b"not a tty\ntty=\n", show(result)
    record = pair.record(count=2)
    assert record["mode"] == "pipe", record
    assert any(f": {option}" in str(n) for n in record["notes"]), record  # type: ignore[union-attr]


def test_unknown_key_options_are_said_so(pair_of: Callable[..., Pair]) -> None:
    pair = pair_of(options={"ExposeAuthInfo": "no"})
    pair.same(lambda s: s.client().run("echo hi"))
    notes = pair.record()["notes"]
    assert any("ExposeAuthInfo is off" in str(n) for n in notes), notes  # type: ignore[union-attr]


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "pty"])
def test_death_by_signal_is_reported_as_sshd_reports_it(pair_of: Callable[..., Pair], tty: bool) -> None:
    pair = pair_of()
    plain, recorded = pair.both(lambda s: s.client().run("kill -TERM $$", tty=tty))
    assert plain.returncode == recorded.returncode == 255, f"{show(plain)}\n{show(recorded)}"
    assert recorded.stderr == plain.stderr, f"{show(plain)}\n{show(recorded)}"
    record = pair.record()
    assert (record["exit_status"], record["exit_signal"]) == (143, "SIGTERM"), record


def test_output_of_a_background_job_reaches_the_client(pair_of: Callable[..., Pair]) -> None:
    pair = pair_of()
    result = pair.same(lambda s: s.client().run("(sleep 1; echo late; echo late-err >&2) & echo early"))
    assert (result.stdout, result.stderr) == (b"early\nlate\n", b"late-err\n"), show(result)
    record = pair.record()
    assert record["exit_status"] == 0 and record["status"] == "complete", record


def _sleeping(marker: str) -> list[ProcInfo]:
    return processes_matching(lambda p: p.cmdline == ("sleep", marker))


def test_a_detached_job_outlives_the_session(pair_of: Callable[..., Pair]) -> None:
    pair = pair_of()
    markers = {}
    for name, sshd in (("plain", pair.plain), ("recorded", pair.recorded)):
        markers[name] = f"{secrets.randbelow(10**6) + 9 * 10**6}"
        result = sshd.client().run(f"sleep {markers[name]} >/dev/null 2>&1 </dev/null & echo started")
        assert result.stdout == b"started\n", show(result)
    pair.record()  # the recorder is done with the session
    for name, marker in markers.items():
        assert _sleeping(marker), f"the {name} sshd's detached job was killed at session end"
    # (the sshd fixtures stop whatever the sessions left behind)


def test_ssh_tty_names_the_terminal_the_program_runs_on(pair_of: Callable[..., Pair]) -> None:
    pair = pair_of()
    for sshd in (pair.plain, pair.recorded):
        result = sshd.client().run('echo "$SSH_TTY"; tty', tty=True)
        lines = result.stdout.decode().split("\r\n")
        assert lines[0].startswith("/dev/pts/") and lines[0] == lines[1], show(result)


def test_warnings_on_a_terminal_end_lines_as_a_terminal_does(sshd_factory: SshdFactory,
                                                             session_sshrec: Path) -> None:
    sshd = sshd_factory(force_command=shlex.quote(str(session_sshrec)), set_env={"SSHREC_HOME": "/proc/sshrec"})
    on_tty = sshd.client().run("echo hi", tty=True)
    assert b"this session is NOT recorded" in on_tty.stdout and b"\r\r\n" not in on_tty.stdout, show(on_tty)
    assert on_tty.stdout.endswith(b"\r\nhi\r\n"), show(on_tty)
    on_pipe = sshd.client().run("echo hi")
    assert b"NOT recorded" in on_pipe.stderr and b"\r" not in on_pipe.stderr, show(on_pipe)
    wait_until(lambda: not sshd.session_processes(), 10, sshd.diagnostics)
