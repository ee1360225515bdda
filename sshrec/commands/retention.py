"""``sshrec retention --older-than AGE``: delete recordings past the policy (not those on hold)."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import CommandError, add_location_options, caller_name, index_from, parser, run, store_from

EXAMPLES = """\
  sshrec retention --older-than 365d --dry-run    # what would go, and what a hold keeps
  sshrec retention --older-than 1y                # delete from the store, the spool and the index
  sshrec retention --older-than 2y --json

Sessions that started before the age are deleted: their objects in the store (every version)
and their local files on this host, then their rows. A session under legal hold (sshrec hold)
is kept; one whose local copy is on another host is left for that host's own run. Each deletion
is logged first, in the index (table deletions) and in the store (PREFIX/_sshrec/deletions/).
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser("retention", "Delete recordings older than the policy, except those under legal hold.", EXAMPLES)
    p.add_argument("--older-than", required=True, metavar="AGE", help="365d, 52w, 1y, 1y30d, 36h")
    p.add_argument("--dry-run", "-n", action="store_true", help="list what would be deleted; change nothing")
    p.add_argument("--json", action="store_true", help="print what was done as JSON")
    add_location_options(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.schema.retention import RetentionError, apply, parse_age

        try:
            age = parse_age(args.older_than)
        except RetentionError as exc:
            raise CommandError(str(exc), 2) from None
        with index_from(args, fresh=True) as (settings, engine):
            store = store_from(settings) if settings.storage else None
            report = apply(engine, age, f"retention: older than {args.older_than}", caller_name(), store,
                           args.dry_run)
        if args.json:
            print(json.dumps(report.to_dict(), indent=1))
        else:
            verb = "would delete" if args.dry_run else "deleted"
            for session_id in report.deleted:
                print(f"{verb} {session_id}")
            for note in report.elsewhere:
                print(f"sshrec retention: left: {note}", file=sys.stderr)
            for failure in report.failed:
                print(f"sshrec retention: {failure}", file=sys.stderr)
            print(f"{len(report.deleted)} {verb}, {len(report.held)} kept by a legal hold, "
                  f"{len(report.elsewhere)} left for their own host", file=sys.stderr)
        return 1 if report.failed else 0

    return run("retention", body)
