"""``sshrec verify ID|FILE|DIR``: check recordings and exports against their digests."""

from __future__ import annotations

import argparse
import json
import os
import sys

EXAMPLES = """\
  sshrec verify 01JD0Q3X9M7ZK6V3W2T1R8S4YB        a spool recording against its session record
  sshrec verify case-4711/                         an export against its manifest.json
  sshrec verify case-4711/01JD0Q3X9M7ZK6V3W2T1R8S4YB.cast   one exported file on its own
  sshrec verify /var/lib/sshrec/recordings/2024/05  every recording under a spool directory
  sshrec verify s3://audit/sshrec/gw1/2024/05/01/01JD0Q3X9M7ZK6V3W2T1R8S4YB.cast   a shipped one, in the store

An id not in the spool is looked for in the store (storage = "s3://..." in the config): its
cast is read from there and checked against the SHA-256 in its stored record (and its chain).

exit status: 0 all good, 1 something failed (each failure is one FAIL line naming file and line)
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sshrec verify",
        description="Check recordings against the SHA-256 in their session records, and export "
        "directories against their manifest.json.",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("targets", metavar="ID|FILE|DIR", nargs="+")
    p.add_argument("--home", metavar="DIR", help="spool root for ids (default: $SSHREC_HOME)")
    p.add_argument("--quiet", action="store_true", help="print failures only")
    p.add_argument("--json", action="store_true", help="one JSON object per checked file")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from sshrec.player.locate import NotFound, locate_cast
    from sshrec.player.verify import Finding, verify_path
    from sshrec.schema.record import is_session_id
    from sshrec.schema.safe_text import visible
    from sshrec.schema.settings import ConfigError, load_settings
    from sshrec.schema.storage import StorageError

    failed = False
    for target in args.targets:
        try:
            source = target
            if not os.path.exists(target) and (is_session_id(target) or target.startswith(("s3://", "file://"))):
                source = locate_cast(target, load_settings(home=args.home))
            findings = verify_path(source)
        except (NotFound, ConfigError, StorageError) as exc:
            findings = [Finding(False, target, str(exc))]
        except OSError as exc:
            findings = [Finding(False, exc.filename or target, exc.strerror or str(exc))]
        for finding in findings:
            failed = failed or not finding.ok
            if args.json:
                print(json.dumps({"ok": finding.ok, "path": finding.path, "line": finding.line,
                                  "message": finding.message}))
            elif not (finding.ok and args.quiet):
                print(visible(str(finding)), file=sys.stdout if finding.ok else sys.stderr)
    return 1 if failed else 0
