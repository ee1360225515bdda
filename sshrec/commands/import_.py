"""`sshrec import FILE.cast...`: copy asciicast files made elsewhere into the spool.

Every file is checked before any is copied: if one is malformed, the command names it (file,
line, problem) and imports nothing, so it can be fixed and the same command run again.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ._common import CommandError, add_location_options, index_from, parser, run, settings_from

EXAMPLES = """\
  sshrec import demo.cast
  asciinema rec -c 'make deploy' deploy.cast && sshrec import deploy.cast
  sshrec import --home /srv/sshrec old/*.cast
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser(
        "import",
        "Copy asciicast v2/v3 files (asciinema 2 and 3 write them) into the spool,\n"
        "each with a session record (mode 'import') built from its header, and index them.",
        EXAMPLES,
    )
    p.add_argument("files", nargs="+", metavar="FILE.cast")
    p.add_argument("--no-index", action="store_true", help="only copy; `sshrec index` adds them later")
    p.add_argument("--again", action="store_true", help="import files whose exact bytes were imported before")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing unless it fails")
    add_location_options(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.schema.asciicast import CastError
        from sshrec.schema.importer import check_cast
        from sshrec.schema.safe_text import visible

        checked, problems = [], []
        for path in args.files:
            try:
                checked.append(check_cast(path))
            except CastError as exc:
                where = f"{visible(exc.path)}:{exc.line}" if exc.line else visible(exc.path)
                problems.append(f"{where}: {visible(exc.problem)}")
        if problems:
            for problem in problems:
                print(f"sshrec import: {problem}", file=sys.stderr)
            bad = f"{len(problems)} of {len(args.files)} file(s)"
            raise CommandError(f"nothing imported: {bad} are not valid asciicast")

        if args.no_index:
            write_all(settings_from(args), None, checked, args)
        else:
            with index_from(args) as (settings, engine):
                write_all(settings, engine, checked, args)
        return 0

    return run("import", body)


def write_all(settings: Any, engine: Any, checked: list[Any], args: argparse.Namespace) -> None:
    """Copy the checked casts into the spool (skipping earlier imports) and index them."""
    from sshrec.schema.importer import build_record, write_import
    from sshrec.schema.safe_text import visible

    known = _already_imported(engine, [c.sha256 for c in checked]) if engine and not args.again else {}
    paths, now = [], time.time()
    for cast in checked:
        if cast.sha256 in known:
            if not args.quiet:
                again = known[cast.sha256]
                print(f"{visible(cast.source)}: already imported as {again} (--again to repeat)")
            continue
        record = build_record(cast, now)
        paths.append(write_import(settings.home, cast, record))
        known[cast.sha256] = record.id
        if not args.quiet:
            print(f"{visible(cast.source)}: imported as {record.id}")
    if engine is not None and paths:
        from sshrec.schema.index import add_records

        report = add_records(engine, paths)
        for failure in report.failed:
            print(f"sshrec import: {failure}", file=sys.stderr)


def _already_imported(engine: object, digests: list[str]) -> dict[str, str]:
    import sqlalchemy as sa

    from sshrec.schema.db import reading
    from sshrec.schema.tables import sessions

    query = sa.select(sessions.c.sha256, sessions.c.id).where(
        sessions.c.sha256.in_(digests), sessions.c.mode == "import"
    )
    with reading(engine) as connection:  # type: ignore[arg-type]
        return {sha: session_id for sha, session_id in connection.execute(query)}
