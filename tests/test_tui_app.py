# ruff: noqa: F811  (pytest fixtures imported from tui_support)
"""The Textual app driven by its pilot, on a spool made by the real recorder."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from index_support import BASE_TIME, cast_text, make_session
from ptydriver import PtyProcess
from recorder_helpers import SSHREC, record_env
from sshrec.player.tui.app import SshrecApp
from sshrec.player.tui.jobs import JobScreen
from sshrec.player.tui.replay_screen import ReplayScreen
from sshrec.player.tui.results import ResultsTable
from sshrec.player.tui.screenview import ScreenView
from sshrec.player.tui.seekbar import SeekBar
from sshrec.schema.db import open_index
from sshrec.schema.index import sync
from sshrec.schema.settings import load_settings
from textual.widgets import Input, Label, Static
from tui_support import FixtureSpool, app, private_cache, spool  # noqa: F401

pytestmark = pytest.mark.usefixtures("private_cache")
SIZE = (100, 30)


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (no pytest plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def table_lines(app: SshrecApp) -> list[str]:
    """The table's lines as drawn (not those a scrollbar covers)."""
    table = app.part("#results", ResultsTable)
    return [table.render_line(y).text.rstrip() for y in range(table.scrollable_content_region.height)]


def users(app: SshrecApp) -> list[str]:
    table = app.query_one(ResultsTable)
    pages = table.pages
    assert pages is not None
    return [pages.row(n)["user"] for n in range(pages.known_rows)]  # type: ignore[index]


async def until(pilot, app: SshrecApp, condition: Callable[[], bool], timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for what a timer of the app brings about (the search debounce, the row count)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the app did not get there in time"
        await pilot.pause(0.02)
        await settle(pilot, app)


async def settle(pilot, app: SshrecApp) -> None:  # type: ignore[no-untyped-def]
    """Wait until the pages the table asked for are read (workers finished)."""
    await app.workers.wait_for_complete()
    await pilot.pause()


@run_async
async def test_opens_on_the_newest_with_the_search_bar_focused(app: SshrecApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.focused is app.query_one("#search", Input)
        assert users(app) == ["mallory", "deploy", "alice"]
        lines = table_lines(app)
        assert lines[0].split()[:3] == ["STARTED", "(UTC)", "USER"]
        assert lines[1].startswith("05-01 10:02:00 mallory")  # the year goes when space is short
        assert "3 session(s)" in str(app.query_one("#status", Label).render())


@run_async
async def test_typing_narrows_and_bad_syntax_is_a_message(app: SshrecApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(*"user:deploy")
        await until(pilot, app, lambda: users(app) == ["deploy"])  # the debounce: no Enter needed
        app.query_one("#search", Input).value = ""
        await pilot.press(*"exit:3 deploying")  # screen text and a filter together
        await pilot.press("enter")
        await settle(pilot, app)
        assert users(app) == ["deploy"]
        record = app.query_one(ResultsTable).selected
        assert record is not None and "deploying" in record["match_text"]
        for bad, message in [("since:soon", "not a time"), ("mode:tape", "unknown mode 'tape'"),
                             ("colour:red", "unknown filter 'colour'")]:
            await pilot.press("slash")  # from the results back to the bar
            app.query_one("#search", Input).value = bad
            await pilot.press("enter")
            assert message in str(app.query_one("#message", Label).render())
            assert app.focused is app.query_one("#search", Input)  # stays in the bar to fix it
        assert users(app) == ["deploy"]  # the last good results stay


@run_async
async def test_user_text_is_escaped_in_the_table_and_the_record(app: SshrecApp) -> None:
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot, app)
        line = table_lines(app)[1]
        assert "\x1b" not in line and "\\e]52;c;cm0gLXJm\\x07" in line and "[bold]markup[/]" in line
        app.query_one(ResultsTable).focus()
        await pilot.press("i")
        panel = app.query_one("#record-text", Static).render()
        text = str(panel)
        shown = "printf 'harmless\\\\n' # \\e]52;c;cm0gLXJm\\x07 \\e[2J [bold]markup[/]"
        assert f"original_command: {shown}" in text
        assert "\x1b" not in text


@run_async
async def test_enter_enter_end_home(app: SshrecApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(*"user:alice", "enter")
        await settle(pilot, app)
        assert app.focused is app.query_one(ResultsTable)
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        table = app.part("#results", ResultsTable)
        table._arrived(table.pages, 0)  # type: ignore[arg-type]  # rows arriving under the replay
        await pilot.pause()
        if screen.playing:
            await pilot.press("space")
        await pilot.press("home")
        assert "the end of it" not in "\n".join(screen.replay.screen.text())
        await pilot.press("end")
        await pilot.pause()
        text = screen.replay.screen.text()
        assert "the end of it" in text and "needle on screen" in text
        assert "red alert underlined green 日本語 wide" in text[0]
        assert not any("alternate" in line for line in text)  # it was left again
        assert "kept out" in "\n".join(text) and "\x1b" not in "".join(text)
        assert screen.query_one(SeekBar).position == pytest.approx(screen.replay.duration)
        await pilot.press("home")
        await pilot.pause()
        assert screen.replay.position == 0.0 and "the end of it" not in screen.replay.screen.text()
        await pilot.press("escape")
        assert not isinstance(app.screen, ReplayScreen)


@run_async
async def test_playback_controls(app: SshrecApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        app.query_one(ResultsTable).focus()
        await pilot.press("end", "enter")  # the oldest: alice's colourful session
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        bar = screen.query_one(SeekBar)
        await pilot.press(*["minus"] * 6)  # 1/64: the short recording cannot end under the test
        assert screen.speed == 1 / 64 and bar.speed == 1 / 64
        await pilot.press("home")
        if not screen.playing:  # it may have ended before the keys arrived
            await pilot.press("space")
        assert screen.playing and bar.playing
        await pilot.press("space")
        assert screen.playing is False and bar.playing is False
        await pilot.press(*["plus"] * 8)
        assert screen.speed == 4.0 and bar.speed == 4.0
        await pilot.press("home")
        await pilot.press("full_stop")
        first = screen.replay.position
        await pilot.press("full_stop")
        assert screen.replay.position >= first
        await pilot.press("right")
        assert screen.replay.position == pytest.approx(min(first + 5, screen.replay.duration), abs=5)
        await pilot.press("end", "left")
        assert screen.replay.position == pytest.approx(max(screen.replay.duration - 5, 0))
        await pilot.press("i")
        assert screen.query_one("#replay-record").display
        await pilot.press("x", "slash")  # the results' keys do nothing over a replay
        assert app.screen is screen
        view = screen.query_one(ScreenView)
        assert view.virtual_size.width == 80  # drawn at the recorded size


@run_async
async def test_next_search_hit(app: SshrecApp, spool: FixtureSpool) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press(*"needle", "enter")
        await settle(pilot, app)
        assert users(app) == ["alice"]
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        await screen.workers.wait_for_complete()
        await pilot.pause()
        assert screen.hits  # found by a query on the session's screen text
        if screen.playing:
            await pilot.press("space")  # paused: the clock does not move the position on
        await pilot.press("home", "n")
        assert screen.replay.position == pytest.approx(screen.hits[0], abs=0.002)
        assert "needle on screen" in "\n".join(screen.replay.screen.text())


@run_async
async def test_export_and_verify_from_keys(app: SshrecApp, tmp_path: Path) -> None:
    out = tmp_path / "case"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("tab")  # out of the search bar, to the table
        app.query_one(ResultsTable).focus()
        await pilot.press("X")
        job = app.screen
        assert isinstance(job, JobScreen)
        job.query_one("#job-out", Input).value = str(out)
        await pilot.press("enter")
        await job.workers.wait_for_complete()
        await pilot.pause()
        assert job.finished and "exported 3 session(s)" in str(job.query_one("#job-result").render())
        manifest = json.loads((out / "manifest.json").read_text())
        assert len(manifest["files"]) == 3 and manifest["selection"] == {"query": ""}
        await pilot.press("escape")
        await pilot.press("x")  # the selected one only
        job = app.screen
        assert isinstance(job, JobScreen)
        job.query_one("#job-out", Input).value = str(tmp_path / "one")
        await pilot.press("enter")
        await job.workers.wait_for_complete()
        await pilot.pause()
        one = json.loads((tmp_path / "one" / "manifest.json").read_text())
        assert [f["record"]["user"] for f in one["files"]] == ["mallory"] and one["selection"]["ids"]
        await pilot.press("escape")
        await pilot.press("v")
        job = app.screen
        assert isinstance(job, JobScreen)
        await job.workers.wait_for_complete()
        await pilot.pause()
        assert "1 of 1 recording(s) match their SHA-256" in str(job.query_one("#job-result").render())


@run_async
async def test_help_panel(app: SshrecApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        app.query_one(ResultsTable).focus()
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]


@run_async
async def test_follow_a_live_session(tmp_path: Path) -> None:
    """A recorder still running: the app follows its output as it is written."""
    home = str(tmp_path / "spool")
    os.makedirs(home)
    script = "echo first-line; read answer; echo second-$answer; read again"
    with PtyProcess([SSHREC, "--no-index", "--", "sh", "-c", script], env=record_env(home), cols=80, rows=12
                    ) as term:
        term.expect_exact("first-line")
        db_url = f"sqlite:///{home}/index.db"
        engine = open_index(db_url)
        sync(engine, home)
        app = SshrecApp(engine, load_settings(home=home))
        try:
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot, app)
                assert "● live" in table_lines(app)[1]
                app.query_one(ResultsTable).focus()
                await pilot.press("enter")
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, ReplayScreen) and screen.following
                assert "first-line" in "\n".join(screen.replay.screen.text())
                term.sendline("yes")
                term.expect_exact("second-yes")
                for _ in range(200):  # the app's clock picks it up within a few ticks
                    if "second-yes" in "\n".join(screen.replay.screen.text()):
                        break
                    await pilot.pause(0.02)
                assert "second-yes" in "\n".join(screen.replay.screen.text())
                assert screen.query_one(SeekBar).following
                term.sendline("done")
                assert term.wait() == 0
                for _ in range(200):  # the record says complete: following stops
                    if not screen.following:
                        break
                    await pilot.pause(0.02)
                assert not screen.following and not screen.live
        finally:
            engine.dispose()


@run_async
async def test_marker_keys_on_an_imported_recording(tmp_path: Path) -> None:
    """Markers come from recordings made elsewhere (asciinema's own), brought in by `sshrec import`."""
    home = tmp_path / "spool"
    cast = tmp_path / "made-elsewhere.cast"
    events = [(0.5, "o", "start\r\n"), (3.0, "m", "deploy begins"), (3.5, "o", "deploying\r\n"),
              (9.0, "m", "deploy done"), (9.5, "o", "done\r\n")]
    cast.write_text(cast_text(events))
    done = subprocess.run([SSHREC, "import", "--quiet", "--home", str(home), str(cast)], env=record_env(home),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    engine = open_index(f"sqlite:///{home}/index.db")
    app = SshrecApp(engine, load_settings(home=str(home)))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            app.query_one(ResultsTable).focus()
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, ReplayScreen)
            await screen.workers.wait_for_complete()
            await pilot.press("space", "home", "right_square_bracket")
            assert screen.replay.position == 3.0 and not screen.playing
            assert "deploying" not in "\n".join(screen.replay.screen.text())  # it comes at 3.5 s
            await pilot.press("right_square_bracket")
            assert screen.replay.position == 9.0 and "deploying" in "\n".join(screen.replay.screen.text())
            await pilot.press("left_square_bracket")
            assert screen.replay.position == 3.0
            assert screen.query_one(SeekBar).markers == [3.0, 9.0]
    finally:
        engine.dispose()


@run_async
async def test_end_and_page_keys_reach_every_row(tmp_path: Path) -> None:
    """More rows than the screen: End shows the oldest, Home the newest, pages move by a screen."""
    home = str(tmp_path / "spool")
    os.makedirs(home)
    for n in range(700):  # more than one anchor interval (500 rows)
        make_session(home, [(0.1, f"n{n}\r\n")], start=BASE_TIME + 60 * n, user=f"u{n:03d}")
    engine = open_index(f"sqlite:///{home}/index.db")
    sync(engine, home)
    app = SshrecApp(engine, load_settings(home=home))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot, app)
            table = app.part("#results", ResultsTable)
            # the count starts once the query has stood still
            await until(pilot, app, lambda: table.pages is not None and table.pages.total == 700)
            table.focus()
            await pilot.press("end")
            await settle(pilot, app)
            lines = table_lines(app)
            assert " u000 " in [line for line in lines if line.strip()][-1]  # the oldest, on the screen
            assert table.cursor == 699
            await pilot.press("home", "pagedown")
            await settle(pilot, app)
            assert 0 < table.cursor < 30 and f" u{699 - table.cursor:03d} " in "\n".join(table_lines(app))
    finally:
        engine.dispose()


@run_async
async def test_a_user_of_a_shared_spool_sees_only_their_own_sessions(spool: FixtureSpool,
                                                                     private_cache: None) -> None:
    """What `sshrec tui` does for a user who is not root on a shared spool (owner set): every
    query is theirs only, and asking for someone else's sessions is "not permitted"."""
    engine = open_index(spool.db_url)
    app = SshrecApp(engine, load_settings(home=spool.home), owner="deploy")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            assert users(app) == ["deploy"]
            app.query_one("#search", Input).value = "user:alice"
            await pilot.press("enter")
            await settle(pilot, app)
            assert "not permitted" in str(app.query_one("#message", Label).render())
            assert users(app) == ["deploy"]
            app.query_one("#search", Input).value = "deploying"
            await pilot.press("enter")
            await settle(pilot, app)
            assert users(app) == ["deploy"]
    finally:
        engine.dispose()
