"""`sshrec index`: bring the SQL index up to date with the spool.

``--add`` is what a recorder runs, detached, when a session ends: it reads one record and
its cast, then holds the database write lock only for the few inserts.
"""

from __future__ import annotations

import argparse
import sys

from ._common import CommandError, add_location_options, parser, run, settings_from

EXAMPLES = """\
  sshrec index                      # new, changed and interrupted recordings
  sshrec index --rebuild            # drop the index and recreate it from the files
  sshrec index --add /var/lib/sshrec/recordings/2024/05/01/01HX....json --quiet
  SSHREC_DB=postgresql+psycopg://sshrec@db/sshrec sshrec index
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser("index", "Bring the SQL index up to date with the recordings in the spool.", EXAMPLES)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--rebuild", action="store_true", help="drop every index table and reindex all files")
    what.add_argument("--add", nargs="+", metavar="JSON", help="index just these session record files")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing unless it fails")
    add_location_options(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.schema import index
        from sshrec.schema.db import IndexUnusable, describe, open_engine

        settings = settings_from(args)
        engine = None
        try:
            engine = open_engine(settings.db_url)
            if args.add:
                report = index.add_records(engine, args.add)
            elif args.rebuild:
                report = index.rebuild(engine, settings.home)
            else:
                report = index.sync(engine, settings.home)
        except IndexUnusable as exc:
            raise CommandError(str(exc)) from None
        finally:
            if engine is not None:
                engine.dispose()
        for warning in report.warnings:
            if not args.quiet:
                print(f"sshrec index: warning: {warning}", file=sys.stderr)
        for failure in report.failed:
            print(f"sshrec index: {failure}", file=sys.stderr)
        if not args.quiet:
            print(f"{describe(settings.db_url)}: {report.summary()}")
        if report.failed:
            raise CommandError(f"{len(report.failed)} record(s) could not be indexed (see above)")
        return 0

    return run("index", body)
