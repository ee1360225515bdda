"""``sshrec serve`` driven by an asyncssh client: what OpenSSH's command line cannot do precisely.

Window changes mid-session, terminal modes, client environment variables, and every kind
of forwarding and subsystem the server must refuse, each checked by the protocol's answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sshd_harness import ClientKey, cast_events
from sshrec.recorder.serve.loader import load_asyncssh
from test_serve_e2e import PROMPT, ServeFactory, ServeProcess, client_key, serve  # noqa: F401

load_asyncssh()
import asyncssh  # noqa: E402

T = TypeVar("T")
STEP = 15.0  # seconds any one protocol step may take


def connect(srv: ServeProcess, key: ClientKey, **kwargs: object) -> asyncssh.connection._ClientConnManager:
    """A client that trusts exactly the host key serve printed, with the test's key only."""
    host_key = asyncssh.import_public_key(srv.host_key_line)
    return asyncssh.connect("127.0.0.1", srv.port, username="auditor", client_keys=[str(key.private)],
                            known_hosts=([host_key], [], []), config=None, agent_path=None,
                            **kwargs)  # type: ignore[arg-type]


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(coro_fn(), 60))  # type: ignore[arg-type]


async def read_until(proc: asyncssh.SSHClientProcess, text: str) -> str:
    try:
        return await asyncio.wait_for(proc.stdout.readuntil(text), STEP)
    except asyncio.IncompleteReadError as exc:
        raise AssertionError(f"EOF before {text!r}; got {exc.partial!r}") from None


def test_window_change_mid_session(serve: ServeFactory, client_key: ClientKey) -> None:  # noqa: F811
    srv = serve()

    async def session() -> int | None:
        async with connect(srv, client_key) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await read_until(proc, PROMPT)
            proc.stdin.write("stty size\n")
            await read_until(proc, "24 80\r\n")
            await read_until(proc, PROMPT)
            proc.change_terminal_size(132, 43)
            proc.stdin.write("stty size\n")
            await read_until(proc, "43 132\r\n")
            await read_until(proc, PROMPT)
            proc.stdin.write("exit 4\n")
            await asyncio.wait_for(proc.wait_closed(), STEP)
            return proc.exit_status

    assert run(session) == 4
    assert srv.wait() == 4, srv.describe()
    record = srv.only_record()
    assert (record["cols"], record["rows"], record["term"]) == (80, 24, "xterm")
    _, events = cast_events(Path(str(record["path"])))
    assert [e[2] for e in events if e[1] == "r"] == ["132x43"]
    transcript_resizes = [line for line in srv.transcript_lines() if '"r"' in line]
    assert len(transcript_resizes) == 1 and "132x43" in transcript_resizes[0]


def test_terminal_modes_and_client_env(serve: ServeFactory, client_key: ClientKey) -> None:  # noqa: F811
    srv = serve()

    async def session() -> str:
        async with connect(srv, client_key) as conn:
            proc = await conn.create_process(
                term_type="vt100", term_size=(90, 20),
                term_modes={asyncssh.PTY_VERASE: 8, asyncssh.PTY_VINTR: 7},
                env={"LANG": "C.UTF-8", "LC_MESSAGES": "C", "SSHREC_HOME": "/tmp/evil", "LD_PRELOAD": "x.so"},
            )
            await read_until(proc, PROMPT)
            proc.stdin.write("stty -a | tr ';' '\\n' | grep -E '^ *(erase|intr) ='; "
                             "echo \"env:$LANG:$LC_MESSAGES:${LD_PRELOAD-unset}:$SSHREC_HOME:$TERM\"; exit\n")
            output = await asyncio.wait_for(proc.stdout.read(), STEP)
            await proc.wait_closed()
            return output

    output = run(session)
    assert re.search(r"intr = \^G", output) and re.search(r"erase = \^H", output), output
    assert f"env:C.UTF-8:C:unset:{srv.spool}:vt100" in output, output
    assert srv.wait() == 0


def test_forwarding_and_subsystems_are_refused(serve: ServeFactory, client_key: ClientKey,  # noqa: F811
                                              tmp_path: Path) -> None:
    srv = serve()

    async def session() -> tuple[list[str], str, int | None]:
        refused = []
        async with connect(srv, client_key, agent_forwarding=str(tmp_path / "agent.sock")) as conn:
            attempts: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("direct-tcpip", lambda: conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", srv.port)),
                ("tcpip-forward", lambda: conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 9)),
                ("unix", lambda: conn.create_unix_connection(asyncssh.SSHUNIXSession, "/run/anything.sock")),
                ("sftp", lambda: conn.start_sftp_client()),
                ("subsystem", lambda: conn.create_process(subsystem="netconf")),
                ("x11", lambda: conn.create_process("true", x11_forwarding=True, x11_display=":99",
                                                    x11_auth_path=str(tmp_path / "no-xauth"))),
            ]
            for name, attempt in attempts:
                try:
                    await asyncio.wait_for(attempt(), STEP)
                except (asyncssh.ChannelOpenError, asyncssh.ChannelListenError, asyncssh.SFTPError):
                    refused.append(name)
            # After all that, the same connection still gets its one session; the agent
            # forwarding it asked for (auth-agent-req on that session) is not there.
            result = await asyncio.wait_for(conn.run("echo agent=${SSH_AUTH_SOCK:-none}; exit 6"), STEP)
            return refused, str(result.stdout), result.exit_status

    refused, stdout, status = run(session)
    assert refused == ["direct-tcpip", "tcpip-forward", "unix", "sftp", "subsystem", "x11"]
    assert (stdout, status) == ("agent=none\n", 6)
    assert srv.wait() == 6, srv.describe()
    log = srv.stderr_text
    assert "refused the 'sftp' subsystem" in log and "refused the 'netconf' subsystem" in log
    assert "refused direct-tcpip to 127.0.0.1" in log and "refused tcpip-forward on 127.0.0.1" in log
    assert len(srv.records()) == 1


def test_idle_connection_does_not_block_a_legitimate_one(serve: ServeFactory, client_key: ClientKey) -> None:  # noqa: F811
    srv = serve()

    async def session() -> int | None:
        # A TCP connection that never speaks SSH must not hold up the one that does.
        _, idle_writer = await asyncio.open_connection("127.0.0.1", srv.port)
        async with connect(srv, client_key) as conn:
            result = await asyncio.wait_for(conn.run("exit 9"), STEP)
        idle_writer.close()
        return result.exit_status

    assert run(session) == 9
    assert srv.wait() == 9


def test_second_session_on_the_same_connection_is_refused(serve: ServeFactory, client_key: ClientKey) -> None:  # noqa: F811
    srv = serve()

    async def session() -> tuple[bool, int | None]:
        async with connect(srv, client_key) as conn:
            first = await conn.create_process("read line; echo got-$line")
            try:
                await asyncio.wait_for(conn.create_process("echo second"), STEP)
                second_refused = False
            except asyncssh.ChannelOpenError:
                second_refused = True
            first.stdin.write("x\n")
            first.stdin.write_eof()
            await asyncio.wait_for(first.wait_closed(), STEP)
            assert await first.stdout.read() == "got-x\n"
            return second_refused, first.exit_status

    assert run(session) == (True, 0)
    assert srv.wait() == 0
    assert len(srv.records()) == 1
