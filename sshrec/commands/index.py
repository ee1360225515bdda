"""`sshrec index`: bring the SQL index up to date with the spool.

``--add`` is what a recorder runs, detached, when a session ends: it reads one record and
its cast, then holds the database write lock only for the few inserts. Run by the owner of
a shared spool (root), a plain ``sshrec index`` covers every user's folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ._common import CommandError, add_location_options, parser, run, settings_from, store_from

EXAMPLES = """\
  sshrec index                      # new, changed and interrupted recordings
  sshrec index --rebuild            # drop the index and recreate it from the files (with storage
                                    # = "s3://..." configured: every session in the bucket first,
                                    # then the local spool; holds and the deletion log survive)
  sshrec index --json | jq .new     # a summary for scripts (no progress bar)
  sshrec index --add /var/lib/sshrec/recordings/2024/05/01/01HX....json --quiet
  SSHREC_DB=postgresql+psycopg://sshrec@db/sshrec sshrec index

On a terminal a progress bar shows the day folders done; in scripts nothing is printed but
the summary (--quiet: not even that).
"""

BAR_WIDTH = 30
REDRAW_EVERY = 0.1  # seconds


def build_parser() -> argparse.ArgumentParser:
    p = parser("index", "Bring the SQL index up to date with the recordings in the spool.", EXAMPLES)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--rebuild", action="store_true", help="drop every index table and reindex all files")
    what.add_argument("--add", nargs="+", metavar="JSON", help="index just these session record files")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing unless it fails")
    out.add_argument("--json", action="store_true", help="print a JSON summary of what was done")
    add_location_options(p)
    return p


class ProgressBar:
    """One line on a terminal's stderr, redrawn at most every REDRAW_EVERY seconds."""

    def __init__(self) -> None:
        self.shown = False
        self.next_draw = 0.0

    def __call__(self, done: int, total: int, report: Any) -> None:
        now = time.monotonic()
        if now < self.next_draw and done < total:
            return
        self.next_draw = now + REDRAW_EVERY
        filled = BAR_WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        sys.stderr.write(f"\rindexing [{bar}] {done}/{total} days, {report.new} new, "
                         f"{report.changed} changed\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def summary_json(report: Any, db: str, spools: list[str]) -> str:
    return json.dumps({
        "db": db,
        "spools": spools,
        "new": report.new,
        "changed": report.changed,
        "interrupted": report.interrupted,
        "removed": report.removed,
        "unchanged": report.unchanged,
        "new_by_user": dict(sorted(report.new_by_user.items())),
        "text_bytes": report.text_bytes,
        "failed": report.failed,
        "warnings": report.warnings,
        "seconds": round(report.seconds, 3),
    }, indent=1)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.schema import index
        from sshrec.schema.db import IndexUnusable, describe, open_engine
        from sshrec.schema.storage import StorageError

        settings = settings_from(args)
        spools = settings.read_spools()
        bar = ProgressBar() if sys.stderr.isatty() and not (args.quiet or args.json or args.add) else None
        engine = None
        try:
            engine = open_engine(settings.db_url)
            if args.add:
                report = index.add_records(engine, args.add)
            elif args.rebuild:
                store = store_from(settings) if settings.storage else None
                report = index.rebuild(engine, spools, bar, store)
            else:
                report = index.sync(engine, spools, bar)
        except (IndexUnusable, StorageError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.clear()
            if engine is not None:
                engine.dispose()
        if args.json:
            print(summary_json(report, describe(settings.db_url), spools))
        else:
            for warning in report.warnings:
                if not args.quiet:
                    print(f"sshrec index: warning: {warning}", file=sys.stderr)
            for failure in report.failed:
                print(f"sshrec index: {failure}", file=sys.stderr)
            if not args.quiet:
                print(f"{describe(settings.db_url)}: {report.summary()}")
        if report.failed:
            raise CommandError(f"{len(report.failed)} record(s) could not be indexed"
                               + ("" if args.json else " (see above)"))
        return 0

    return run("index", body)
