"""``sshrec hold ID|--query Q --reason TEXT``: legal holds; ``--list``, ``--release``."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import (
    CommandError,
    add_location_options,
    caller_name,
    cell,
    index_from,
    parsed_query,
    parser,
    print_table,
    query_rows,
    run,
    store_from,
)

EXAMPLES = """\
  sshrec hold 01JD0Q3X9M7ZK6V3W2T1R8S4YB --reason "case 4711"
  sshrec hold --query "user=alice since=2024-05-01 until=2024-05-31" --reason "HR request 12"
  sshrec hold --list                   # active holds; --all includes released ones; --json
  sshrec hold --release 3 --reason "case closed"     # hold number 3 (from --list)
  sshrec hold --release 01JD0Q3X9M7ZK6V3W2T1R8S4YB   # every hold of that session

A held session is never deleted by sshrec retention. In a store with object lock (an S3 bucket
created with it) each of its objects also gets the store's legal hold, so nothing else can
delete it either; without one, sshrec says so and the hold lives in the index (and a marker
object in the store, so an index rebuilt from the bucket keeps it).
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser("hold", "Place, list and release legal holds on recordings.", EXAMPLES)
    p.add_argument("ids", metavar="ID", nargs="*", help="session ids to hold")
    p.add_argument("--query", "-q", metavar="Q", help="hold the sessions a query selects (as sshrec export)")
    p.add_argument("--reason", metavar="TEXT", help="why (required to hold)")
    p.add_argument("--list", action="store_true", help="list active holds")
    p.add_argument("--all", action="store_true", help="with --list: released holds too")
    p.add_argument("--release", nargs="+", metavar="HOLD|ID", help="release holds by number or session id")
    p.add_argument("--json", action="store_true", help="JSON output")
    add_location_options(p)
    return p


def show(items: list[object], as_json: bool) -> None:
    if as_json:
        print(json.dumps([h.to_dict() for h in items], indent=1))  # type: ignore[attr-defined]
        return
    rows = [[str(h.id), cell(h.session_id), cell(h.held_at[:19]), cell(h.held_by),  # type: ignore[attr-defined]
             "store" if h.store_lock else "index",  # type: ignore[attr-defined]
             cell(f"released {h.released_at[:19]}" if h.released_at else "active"),  # type: ignore[attr-defined]
             cell(h.reason)] for h in items]  # type: ignore[attr-defined]
    if rows:
        print_table(("HOLD", "SESSION", "SINCE (UTC)", "BY", "LOCK", "STATE", "REASON"), rows)
    else:
        print("no holds", file=sys.stderr)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.schema import holds
        from sshrec.schema.storage import StorageError

        chosen = sum(bool(x) for x in (args.list, args.release, args.ids or args.query))
        if chosen != 1:
            raise CommandError("give session ids or --query (with --reason), or --list, or --release", 2)
        query = parsed_query(args.query) if args.query else None
        with index_from(args, fresh=True) as (settings, engine):
            store = store_from(settings) if settings.storage else None
            try:
                if args.list:
                    show(holds.list_holds(engine, include_released=args.all), args.json)
                    return 0
                if args.release:
                    released = holds.release(engine, args.release, caller_name(), args.reason or "", store)
                    show(released, args.json)
                    return 0
                if not args.reason:
                    raise CommandError("a hold needs --reason TEXT (it is kept with the hold)", 2)
                ids = [i.upper() for i in args.ids]
                if query is not None:
                    from sshrec.schema.db import reading

                    with reading(engine) as connection:
                        ids = [str(r["id"]) for r in query_rows(connection, query)]
                    if not ids:
                        raise CommandError(f"--query {args.query!r} selects no session: nothing held")
                placed, notes = holds.place(engine, ids, args.reason, caller_name(), store)
            except (holds.HoldError, StorageError) as exc:
                raise CommandError(str(exc)) from None
        for note in notes:
            print(f"sshrec hold: note: {note}", file=sys.stderr)
        show(placed, args.json)
        return 0

    return run("hold", body)
