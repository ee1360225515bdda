"""`sshrec search TEXT`: sessions whose screen output contains TEXT, newest first.

Each hit names the session and the time of the first match, so a player can start there.
"""

from __future__ import annotations

import argparse
import sys

from ._common import (
    CommandError,
    add_filter_options,
    add_location_options,
    cell,
    command_text,
    filters_from,
    index_from,
    only_own_sessions,
    parser,
    print_table,
    run,
    when_text,
)
from .ls import note_more, print_records

EXAMPLES = """\
  sshrec search passwd
  sshrec search --phrase 'permission denied' --user alice --since 1w
  sshrec search DROP TABLE --json | jq -r '.[] | "\\(.id) \\(.match_time)"'

Words match whole words, ignoring case and accents; all must appear (within the same
64 KB of output). Exit status 1 when nothing matches.
"""

HEADERS = ("ID", "STARTED (UTC)", "AT", "USER", "COMMAND", "MATCH")


def build_parser() -> argparse.ArgumentParser:
    p = parser(
        "search",
        "Find sessions by text that appeared on screen (escape sequences removed).",
        EXAMPLES,
    )
    p.add_argument("text", nargs="+", metavar="TEXT", help="words to look for")
    p.add_argument("--phrase", action="store_true", help="the words next to each other, in order")
    add_filter_options(p)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="session records plus match_time and match_text")
    out.add_argument("--nl", action="store_true", help="with --json: one record per line")
    add_location_options(p)
    return p


def offset_text(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.player.query import QueryError, SearchText, search_sessions
        from sshrec.schema.db import reading

        try:
            query = SearchText.parse(" ".join(args.text), args.phrase)
        except QueryError as exc:
            raise CommandError(str(exc), 2) from None
        filters = filters_from(args)
        with index_from(args, fresh=True) as (settings, engine), reading(engine) as connection:
            only_own_sessions(filters, settings)
            page = search_sessions(connection, query, filters)
        if args.json or args.nl:
            print_records(page.items, args.json, args.nl)
        elif page.items:
            rows = [
                [
                    cell(r["id"]),
                    when_text(r["started_at"]),
                    offset_text(r["match_time"]),
                    cell(r["user"]),
                    cell(command_text(r))[:40],
                    cell(r["match_text"]),
                ]
                for r in page.items
            ]
            print_table(HEADERS, rows)
        else:
            print("no session matches", file=sys.stderr)
        if page.more:
            note_more(len(page.items))
        return 0 if page.items else 1

    return run("search", body)
