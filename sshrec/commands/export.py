"""``sshrec export ID...|--query Q --out DIR``: asciicast files anyone can play, and a manifest.

Ids and files need no index; ``--query`` asks the index in the query language of the TUI's
search bar (one parser, :func:`sshrec.player.query.parse_query`): ``name:value`` or
``name=value`` filters and screen text: ``--query "user:alice since:2d status=complete"``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from ._common import CommandError, add_location_options, parser, run

EXAMPLES = """\
  sshrec export 01JD0Q3X9M7ZK6V3W2T1R8S4YB 01JD0Q6P2C4T3Y8H5N1R9W7ZQX --out case-4711
  sshrec export --query "user=alice since=2024-05-01 until=2024-05-02" --out alice-may-1
  sshrec export --query "command='rm -rf' exit=nonzero" --format txt --out deletions
  sshrec ls --key SHA256:nThbg6kX --json | jq -r '.[].id' | sshrec export --ids-from - --out key-audit

query (the search bar of sshrec tui): user: key: cmd: dest: from: since: until: status: exit: mode:
  limit: (name=value works too; values with spaces in quotes; limit defaults to all), and words
  that must appear on screen: --query "user:alice since:2d 'permission denied'"
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser("export", "Write sessions as asciicast (or text) files with a manifest.json of their "
               "SHA-256 digests and session records. The output directory appears only when complete.",
               EXAMPLES)
    p.add_argument("targets", metavar="ID|FILE", nargs="*", help="session ids or .cast files")
    p.add_argument("--query", "-q", metavar="Q", help="select sessions from the index (see below)")
    p.add_argument("--ids-from", metavar="FILE", help="read ids (one per line) from FILE, - for stdin")
    p.add_argument("--out", "-o", metavar="DIR", required=True, help="new directory to create")
    p.add_argument("--format", "-f", choices=("v2", "v3", "txt"), default="v2",
                   help="asciicast v2 (default; plays everywhere), v3, or txt (timestamped screen text)")
    p.add_argument("--include-altered", action="store_true",
                   help="export recordings that no longer match their SHA-256 (flagged in the manifest)")
    p.add_argument("--no-sync", action="store_true", help="skip fsync (faster; not crash-safe)")
    add_location_options(p)
    return p


def sources_from_query(args: argparse.Namespace) -> tuple[list[object], dict[str, object]]:
    from sshrec.player.export import sources_for
    from sshrec.player.locate import NotFound
    from sshrec.schema.db import reading
    from sshrec.schema.record import iso_utc

    from ._common import index_from, only_own_sessions, parsed_query, query_rows

    query = parsed_query(args.query)
    import time

    ran_at = iso_utc(time.time())
    with index_from(args, fresh=True) as (settings, engine), reading(engine) as connection:
        only_own_sessions(query.filters, settings)
        rows = query_rows(connection, query)
    try:
        sources = sources_for(reversed(rows), settings)  # oldest first, as a case file reads
    except NotFound as exc:
        raise CommandError(str(exc)) from None
    filters = query.filters
    resolved = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in vars(filters).items()}
    if query.text is not None:
        resolved["text"] = {"words": list(query.text.words), "phrase": query.text.phrase}
    selection = {"query": args.query, "filters": resolved, "ran_at": ran_at, "matched": len(sources)}
    return sources, selection


def sources_from_targets(targets: list[str], home_arg: str | None) -> list[object]:
    from sshrec.player.export import Source, record_for
    from sshrec.player.locate import NotFound, locate_cast
    from sshrec.schema.settings import ConfigError, load_settings

    try:
        settings = load_settings(home=home_arg)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    sources = []
    for target in targets:
        try:
            path = locate_cast(target, settings)
        except NotFound as exc:
            raise CommandError(str(exc)) from None
        sources.append(Source(record_for(path), path))
    return sources


def read_ids(name: str) -> list[str]:
    try:
        handle = sys.stdin if name == "-" else open(name, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise CommandError(f"--ids-from {name}: {exc.strerror}") from None
    with handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.player.export import ExportError, export
        from sshrec.schema.asciicast import CastError

        targets = list(args.targets) + (read_ids(args.ids_from) if args.ids_from else [])
        if args.query and targets:
            raise CommandError("give ids/files or --query, not both", 2)
        if not args.query and not targets:
            raise CommandError("nothing to export: give session ids, --ids-from FILE, or --query Q", 2)
        try:
            if args.query:
                sources, selection = sources_from_query(args)
            else:
                sources = sources_from_targets(targets, args.home)
                selection = {"ids": [s.name for s in sources]}  # type: ignore[attr-defined]
            manifest = export(sources, args.out, args.format, selection,  # type: ignore[arg-type]
                              include_altered=args.include_altered, sync=not args.no_sync)
        except (ExportError, CastError) as exc:
            raise CommandError(str(exc)) from None
        files = manifest["files"]
        total = sum(int(f["size"]) for f in files)  # type: ignore[index]
        for entry in files:  # type: ignore[union-attr]
            check = entry["source"]["source_check"]  # type: ignore[index]
            if check != "ok":
                why = ("no SHA-256 recorded (still recording, or interrupted and not yet indexed)"
                       if check == "no digest" else "DOES NOT MATCH its recorded SHA-256")
                print(f"sshrec export: warning: {entry['name']}: {why}", file=sys.stderr)  # type: ignore[index]
        out = os.path.abspath(args.out)
        digest = _sha256(os.path.join(out, "manifest.json"))
        print(f"exported {len(files)} session(s), {total / 1e6:.1f} MB, to {out}")  # type: ignore[arg-type]
        print(f"manifest.json SHA-256 {digest} (keep it to prove the manifest unchanged; check: "
              f"sshrec verify {args.out})")
        return 0

    return run("export", body)


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
