"""The replay screen: the recorded terminal, a seek bar, the session record beside it.

The clock is a Textual timer: each tick advances the replay by the wall time since the last
one times the speed (idle stretches capped like the terminal player's). The seek index is
loaded, then keyframes are built, in a worker thread; until they exist a seek uses the
index's plan (marked ``~`` when approximate).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sshrec.schema.storage import Blob
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer

from ..play import MAX_SPEED, MIN_SPEED, SEEK_STEP, recording_finished
from ..query import SearchText
from ..replay import Replay
from .record_panel import RecordPanel
from .screenview import ScreenView
from .seekbar import SeekBar

FPS = 30
HIT_SLACK = 0.001  # screen text times are whole milliseconds: seek just past the hit's
LIVE_CHECK = 0.5  # seconds between looks at whether a live session ended
HitsSource = Any  # callable(session_id, SearchText) -> list[float], may read the index


class ReplayScreen(Screen[None]):
    BINDINGS = [
        Binding("space", "toggle_play", "play", key_display="␣"),
        Binding("left", "seek(-1)", "5s", group=Binding.Group("5s")),
        Binding("right", "seek(1)", "5s", group=Binding.Group("5s")),
        Binding("home", "start", "ends", group=Binding.Group("ends")),
        Binding("end", "end", "ends", group=Binding.Group("ends")),
        Binding("full_stop", "step", "step"),
        Binding("left_square_bracket", "marker(-1)", "mark", group=Binding.Group("marker")),
        Binding("right_square_bracket", "marker(1)", "mark", group=Binding.Group("marker")),
        Binding("n", "hit(1)", "hit", group=Binding.Group("hit")),
        Binding("N", "hit(-1)", "hit", group=Binding.Group("hit")),
        Binding("minus", "speed(0.5)", "speed", group=Binding.Group("speed")),
        Binding("plus,equals_sign", "speed(2)", "speed", group=Binding.Group("speed"), key_display="+"),
        Binding("f", "follow", "follow"),
        Binding("i", "record", "info"),
        Binding("escape,q", "back", "back"),
        Binding("ctrl+q", "app.quit", "quit", show=False),  # the app's; its room in the footer goes to these
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that cannot do anything here are left out of the footer."""
        if action == "follow":
            return self.live
        if action == "hit":
            return self.text is not None
        if action == "marker":
            return bool(self.replay.markers)
        return True

    playing = reactive(True)
    speed = reactive(1.0)
    following = reactive(False)

    def __init__(self, record: dict[str, Any], path: str | Blob, text: SearchText | None = None,
                 hits: HitsSource | None = None) -> None:
        super().__init__()
        self.record = record
        self.replay = Replay(path)
        self.text = text
        self.hits_source = hits
        self.hits: list[float] = []
        self.live = record.get("status") == "recording"
        self.following = self.live
        limit = self.replay.header.extra.get("idle_time_limit")
        self.idle = float(limit) if isinstance(limit, (int, float)) and limit > 0 else None
        self._stop = threading.Event()
        self._wall = time.monotonic()
        self._live_checked = 0.0

    def compose(self) -> ComposeResult:
        with Horizontal(id="replay-main"):
            yield ScreenView(self.replay, id="screen")
            panel = RecordPanel(id="replay-record")
            panel.display = False
            yield panel
        yield SeekBar(id="seekbar")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(RecordPanel).show(self.record)
        if self.following:
            self.replay.follow()
        else:
            self.replay.step()  # the first frame at once, then play on from there
        self._wall = time.monotonic()
        self._changed()
        self.query_one(ScreenView).focus()
        self.set_interval(1 / FPS, self._tick)
        self.call_after_refresh(self._index)  # after the first frame: its scans would delay it
        if self.text is not None and self.hits_source is not None:
            self._find_hits(self.text)

    def on_unmount(self) -> None:
        self._stop.set()
        self.replay.close()

    # -- background work ---------------------------------------------------------------------

    @work(thread=True, group="index")
    def _index(self) -> None:
        self.replay.load_index()
        self.app.call_from_thread(self._changed)
        self.app.call_from_thread(self.refresh_bindings)
        if not self.live:
            self.replay.build_keyframes(self._stop)

    @work(thread=True, group="hits")
    def _find_hits(self, text: SearchText) -> None:
        hits = self.hits_source(str(self.record["id"]), text)  # type: ignore[misc]
        self.app.call_from_thread(self._set_hits, hits)

    def _set_hits(self, hits: list[float]) -> None:
        self.hits = hits
        self._changed()

    # -- the clock -----------------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        elapsed, self._wall = now - self._wall, now
        before = (self.playing, self.following, self.live)
        if self.following:
            self.replay.follow()
            if now - self._live_checked >= LIVE_CHECK:
                self._live_checked = now
                if recording_finished(self.replay.path):
                    self.live = self.following = False
                    self.playing = False
                    self.refresh_bindings()
        elif self.playing and not self.replay.play(elapsed * self.speed, self.idle):
            self.playing = False
        moved = self.playing or self.following or before != (self.playing, self.following, self.live)
        if moved or self.replay.dirty or self.replay.resized:
            self._changed()

    def _changed(self, exact: bool | None = None) -> None:
        self.query_one(ScreenView).changed()
        bar = self.query_one(SeekBar)
        bar.duration = self.replay.duration
        bar.position = min(self.replay.position, bar.duration)
        bar.playing = self.playing
        bar.speed = self.speed
        bar.live = self.live
        bar.following = self.following
        if exact is not None:
            bar.exact = exact
        bar.set_marks([t for t, _ in self.replay.markers], self.hits)

    def watch_playing(self) -> None:
        self._wall = time.monotonic()

    # -- actions -------------------------------------------------------------------------------

    def seek_to(self, target: float) -> None:
        self.following = False
        exact = self.replay.seek(target)
        self._wall = time.monotonic()
        self._changed(exact)

    def on_seek_bar_seek(self, message: SeekBar.Seek) -> None:
        self.seek_to(message.target)

    def action_toggle_play(self) -> None:
        self.following = False
        self.playing = not self.playing
        self._changed()

    def action_seek(self, direction: int) -> None:
        self.seek_to(self.replay.position + direction * SEEK_STEP)

    def action_start(self) -> None:
        self.seek_to(0.0)

    def action_end(self) -> None:
        self.playing = False
        if self.replay.index is None:
            self.replay.load_index()
        self.seek_to(self.replay.duration)

    def action_step(self) -> None:
        self.playing = self.following = False
        self.replay.step()
        self._changed()

    def action_marker(self, direction: int) -> None:
        self._jump([t for t, _ in self.replay.markers], direction)

    def action_hit(self, direction: int) -> None:
        if not self.hits:
            self.notify("no search hits: search for text on screen first" if self.text is None
                        else "the search text is not in this session's screen text", severity="warning")
            return
        self._jump(self.hits, direction, HIT_SLACK)

    def _jump(self, times: list[float], direction: int, slack: float = 0.0) -> None:
        here = self.replay.position - slack
        if direction > 0:
            later = [t for t in times if t > here + 1e-6]
            if later:
                self.seek_to(later[0] + slack)
        else:
            earlier = [t for t in times if t < here - 0.5]
            if earlier:
                self.seek_to(earlier[-1] + slack)

    def action_speed(self, factor: float) -> None:
        self.speed = min(max(self.speed * factor, MIN_SPEED), MAX_SPEED)
        self._changed()

    def action_follow(self) -> None:
        if not self.live:
            self.notify("this session is not being recorded any more: nothing to follow", severity="warning")
            return
        self.following = not self.following
        self._changed()

    def action_record(self) -> None:
        panel = self.query_one(RecordPanel)
        panel.display = not panel.display

    def action_back(self) -> None:
        self.dismiss()
