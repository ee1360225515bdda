"""``sshrec ship``: this host's finished recordings to object storage (storage = "s3://...")."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import CommandError, add_location_options, index_from, parser, run, store_from

EXAMPLES = """\
  sshrec ship                          # every finished session not in the store yet
  sshrec ship --json | jq .shipped     # a summary for scripts
  sshrec ship --id 01JD0Q3X9M7ZK6V3W2T1R8S4YB

Config (/etc/sshrec/sshrec.toml):  storage = "s3://BUCKET/PREFIX"
                                   s3_endpoint_url = "https://s3.example.org"   # not AWS
                                   keep_local = 30     # days; 0: remove once shipped; unset: keep
Credentials: the standard AWS ones (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and
~/.aws/credentials, or an instance role). Each session goes up as PREFIX/HOST/YYYY/MM/DD/ID.cast,
.chain, .seek.json and .json (last), each verified (size and SHA-256) before the index marks it
shipped. Safe to run again at any time (a systemd timer: samples/systemd/sshrec-ship.timer): what
is already stored is not sent twice; with the store down nothing changes and the next run goes on.
Exit status 1 when something could not be shipped.
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser("ship", "Upload finished recordings to the object store and mark them shipped in the index.",
               EXAMPLES)
    p.add_argument("--id", dest="ids", action="append", metavar="ID", help="only this session (repeatable)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing unless something fails")
    out.add_argument("--json", action="store_true", help="print a JSON summary")
    add_location_options(p)
    return p


def seek_writer(cast: str, out: str) -> None:
    """The player's seek index, shipped beside each cast (seeks in the store read little)."""
    from sshrec.player.seekindex import write_for_shipping

    write_for_shipping(cast, out)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.schema.ship import ship
        from sshrec.schema.storage import StorageError

        with index_from(args, fresh=True) as (settings, engine):
            store = store_from(settings)
            try:
                report = ship(engine, store, settings.keep_local, seek_writer,
                              [i.upper() for i in args.ids] if args.ids else None)
            except StorageError as exc:
                raise CommandError(str(exc)) from None
        if args.json:
            print(json.dumps({"store": store.url, "shipped": report.shipped, "already": report.already,
                              "bytes": report.bytes, "objects": report.objects,
                              "verified_by": report.verified_by,
                              "removed_local": report.removed_local, "pending": report.pending,
                              "failed": report.failed, "warnings": report.warnings,
                              "seconds": round(report.seconds, 3)}, indent=1))
        else:
            for warning in report.warnings:
                print(f"sshrec ship: warning: {warning}", file=sys.stderr)
            for failure in report.failed:
                print(f"sshrec ship: {failure}", file=sys.stderr)
            if not args.quiet:
                print(f"{store.url}: {report.summary()}")
        return 1 if report.failed else 0

    return run("ship", body)
