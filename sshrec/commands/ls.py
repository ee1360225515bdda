"""`sshrec ls`: list recorded sessions from the index, newest first.

Start-up matters (auditors run it in loops and scripts): this imports SQLAlchemy Core and
the query module only, never the ORM, Alembic or the indexer.
"""

from __future__ import annotations

import argparse
import sys

from ._common import (
    add_filter_options,
    add_location_options,
    cell,
    command_text,
    duration_text,
    filters_from,
    index_from,
    only_own_sessions,
    parser,
    print_table,
    run,
    status_text,
    when_text,
)

EXAMPLES = """\
  sshrec ls --user alice --since 2d
  sshrec ls --key SHA256:nThbg6kX --status interrupted,failed
  sshrec ls --command 'rm -rf' --exit nonzero --json | jq -r '.[].id'
"""

HEADERS = ("ID", "STARTED (UTC)", "TIME", "USER", "CLIENT", "CONN", "DESTINATION", "STATUS", "COMMAND")
CONN_CHARS = 8  # of the connection id: enough to see which sessions share one (ls --connection takes a prefix*)


def build_parser() -> argparse.ArgumentParser:
    p = parser("ls", "List recorded sessions, newest first.", EXAMPLES)
    add_filter_options(p)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="a JSON array of session records")
    out.add_argument("--nl", action="store_true", help="with --json: one record per line")
    add_location_options(p)
    return p


def table_row(record: dict[str, object]) -> list[str]:
    return [
        cell(record["id"]),
        when_text(record["started_at"]),  # type: ignore[arg-type]
        duration_text(record["duration"]),  # type: ignore[arg-type]
        cell(record["user"]),
        cell(record["client_addr"]),
        cell(str(record.get("connection_id") or "")[:CONN_CHARS]),
        cell(record["destination"]),
        cell(status_text(record)),
        cell(command_text(record)),
    ]


def print_records(records: list[dict[str, object]], as_json: bool, lines: bool) -> None:
    from sshrec.schema.safe_text import safe_json

    if lines:
        sys.stdout.write("".join(safe_json(r) + "\n" for r in records))
    elif as_json:
        sys.stdout.write(safe_json(records, indent=1) + "\n")


def note_more(count: int) -> None:
    print(
        f"(the {count} newest shown; more match: use --limit N, or --limit 0 for all)",
        file=sys.stderr,
    )


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.player.query import list_sessions
        from sshrec.schema.db import reading

        filters = filters_from(args)
        with index_from(args, fresh=True) as (settings, engine), reading(engine) as connection:
            only_own_sessions(filters, settings)
            page = list_sessions(connection, filters)
        if args.json or args.nl:
            print_records(page.items, args.json, args.nl)
        elif page.items:
            print_table(HEADERS, [table_row(r) for r in page.items])
        else:
            print(no_results(args), file=sys.stderr)
        if page.more:
            note_more(len(page.items))
        return 0

    return run("ls", body)


def no_results(args: argparse.Namespace) -> str:
    names = ("user", "key", "command", "destination", "client", "since", "until", "status", "exit", "mode",
             "connection", "file", "typed", "host")
    if any(getattr(args, n, None) for n in names):
        return "no sessions match"
    return "the index has no sessions yet (recordings are added by: sshrec index)"
