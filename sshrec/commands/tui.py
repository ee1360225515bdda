"""`sshrec tui`: the Textual app that searches the index and replays sessions.

Textual is imported only here (inside main), never on the record path.
"""

from __future__ import annotations

import argparse

from ._common import CommandError, add_location_options, caller_name, index_from, parser, run

EXAMPLES = """\
  sshrec tui
  sshrec tui --query 'user:alice since:2d'
  SSHREC_DB=postgresql+psycopg://sshrec@db/sshrec sshrec tui

In the search bar: words that appeared on screen, and filters user: key: cmd: dest: from:
since: until: exit: status: mode: file: conn: typed: (the same as sshrec ls); ? shows the
syntax and the keys.
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser("tui", "Search the index and replay sessions in a terminal app.", EXAMPLES)
    p.add_argument("--query", "-q", metavar="Q", default="", help="start with this search")
    add_location_options(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        import sys

        if not sys.stdout.isatty() or not sys.stdin.isatty():
            raise CommandError("needs a terminal (for scripts: sshrec ls / sshrec search --json)", 2)
        from sshrec.player.tui.app import SshrecApp

        with index_from(args, fresh=True) as (settings, engine):
            owner = caller_name() if settings.shared and not settings.admin else None
            SshrecApp(engine, settings, args.query, owner).run()
        return 0

    return run("tui", body)
