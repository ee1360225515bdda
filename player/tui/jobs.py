"""Export and verify from the TUI: the existing export (manifest, digests) and verify, run in a
worker thread with a progress bar, in a panel over the results."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, ProgressBar, Static

from ..export import ExportError, export, sources_for
from ..locate import NotFound, cast_of
from ..verify import verify_recording
from .cells import escaped

Rows = Callable[[], Iterable[dict[str, Any]]]  # called in the worker: may read the index


def default_out_dir() -> str:
    return os.path.abspath(time.strftime("sshrec-export-%Y%m%d-%H%M%S"))


class JobScreen(ModalScreen[None]):
    """``kind`` is "export" or "verify"; ``rows`` gives the sessions (may read the index)."""

    BINDINGS = [Binding("escape", "close", "close")]

    def __init__(self, kind: str, title: str, rows: Rows, settings: Any, selection: dict[str, object]) -> None:
        super().__init__()
        self.kind = kind
        self.title_text = title
        self.rows = rows
        self.settings = settings
        self.selection = selection
        self.finished = False

    def compose(self) -> ComposeResult:
        with Vertical(id="job"):
            yield Label(Text(self.title_text), id="job-title")
            if self.kind == "export":
                yield Label("Output directory (new; Enter to start, Esc to cancel):")
                yield Input(default_out_dir(), id="job-out")
            yield ProgressBar(id="job-progress", show_eta=False)
            with VerticalScroll(id="job-log"):
                yield Static("", id="job-result")

    def on_mount(self) -> None:
        if self.kind == "verify":
            self._verify()
        else:
            self.query_one("#job-out", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        event.input.disabled = True
        self._export(event.value.strip())

    def _progress(self, done: int, total: int) -> None:
        self.app.call_from_thread(self.query_one(ProgressBar).update, total=total, progress=done)

    def _say(self, text: Text) -> None:
        def show() -> None:
            self.query_one("#job-result", Static).update(text)
            self.finished = True

        self.app.call_from_thread(show)

    @work(thread=True, exclusive=True)
    def _export(self, out_dir: str) -> None:
        try:
            sources = sources_for(self.rows(), self.settings)
            sources.reverse()  # oldest first, as a case file reads
            manifest = export(sources, out_dir, "v2", self.selection, progress=self._progress)
        except (ExportError, NotFound, OSError) as exc:
            self._say(Text(f"export failed: {escaped(str(exc))}", style="bold red"))
            return
        files = manifest["files"]
        size = sum(int(f["size"]) for f in files)  # type: ignore[index, union-attr]
        text = Text(f"exported {len(files)} session(s), {size / 1e6:.1f} MB, to {escaped(out_dir)}\n",  # type: ignore[arg-type]
                    style="bold green")
        text.append(f"check it with: sshrec verify {escaped(out_dir)}")
        self._say(text)

    @work(thread=True, exclusive=True)
    def _verify(self) -> None:
        rows = list(self.rows())
        text = Text()
        failed = 0
        for number, record in enumerate(rows, 1):
            try:
                finding = verify_recording(cast_of(record, self.settings))
                ok, message = finding.ok, f"{escaped(record['id'])}: {escaped(finding.message)}"
            except NotFound as exc:
                ok, message = False, escaped(str(exc))
            failed += not ok
            text.append("ok    " if ok else "FAIL  ", style="green" if ok else "bold red")
            text.append(message + "\n")
            self._progress(number, len(rows))
        summary = Text(f"{len(rows) - failed} of {len(rows)} recording(s) match their SHA-256\n",
                       style="bold green" if not failed else "bold red")
        self._progress(len(rows), len(rows))
        self._say(summary + text)

    def action_close(self) -> None:
        self.workers.cancel_node(self)
        self.dismiss()
