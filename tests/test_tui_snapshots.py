# ruff: noqa: F811  (pytest fixtures imported from tui_support)
"""Pictures of the main screens (pytest-textual-snapshot) on a spool made by the real recorder.

A changed picture fails the test and writes snapshot_report.html; when the change is meant,
accept it with: pytest tests/test_tui_snapshots.py --snapshot-update (and look at the SVGs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sshrec.player.tui.app import SshrecApp
from textual.pilot import Pilot
from textual.widgets import Input
from tui_support import FixtureSpool, app, private_cache, spool  # noqa: F401

pytest.importorskip("pytest_textual_snapshot", reason="pytest-textual-snapshot is not installed (sshrec[test])")
pytestmark = pytest.mark.usefixtures("private_cache")


async def settled(pilot: Pilot[Any]) -> None:
    """Every page read, every seek index built: nothing left to change the picture."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        for screen in pilot.app.screen_stack:
            await screen.workers.wait_for_complete()
        await pilot.pause()


def keys_then_settle(*keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        for key in keys:
            await pilot.press(key)
            await settled(pilot)

    return run


def test_results_at_80x24(snap_compare: Any, app: SshrecApp) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys_then_settle("enter"))


def test_bad_syntax_message(snap_compare: Any, app: SshrecApp) -> None:
    """The message under the bar; the last good results stay (set at once: typed key by key, what
    the results show would depend on when the debounce fired)."""

    async def run(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        app.part("#search", Input).value = "since:soon"
        await pilot.press("enter")
        await settled(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run)


def test_help_panel(snap_compare: Any, app: SshrecApp) -> None:
    assert snap_compare(app, terminal_size=(100, 30), run_before=keys_then_settle("enter", "question_mark"))


def test_replay_at_the_end_with_colours(snap_compare: Any, app: SshrecApp) -> None:
    """The oldest session (alice's): colours, underline, wide characters; the alternate screen left."""
    keys = keys_then_settle("enter", "end", "enter", "end")
    assert snap_compare(app, terminal_size=(100, 30), run_before=keys)


def test_replay_at_80x24(snap_compare: Any, app: SshrecApp) -> None:
    """An 80x24 recording in a smaller pane: scrolled (the record panel is not pictured: ids,
    paths and digests differ on every run; test_tui_app checks its text)."""
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys_then_settle("enter", "enter", "end"))
