"""The `sshrec` command: picks a subcommand and imports only what that subcommand needs.

Recording (no subcommand) runs on every SSH login, so this module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import os
import sys

# name -> (module under sshrec.commands, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "setup": ("setup", "root: prepare a spool that records every user of this host"),
    "doctor": ("doctor", "the ways around recording on this host, and how to close them"),
    "serve": ("serve", "one-shot audited SSH server for a single session"),
    "collector": ("collector", "daemon that owns the spool and receives recordings"),
    "ls": ("ls", "list recorded sessions"),
    "search": ("search", "find sessions by text that appeared on screen"),
    "play": ("play", "replay a session in this terminal"),
    "tui": ("tui", "search and replay sessions in a terminal app"),
    "cat": ("cat", "print a session's recorded output"),
    "import": ("import_", "copy asciicast files made elsewhere into the spool"),
    "export": ("export", "write sessions as asciicast files with a manifest"),
    "verify": ("verify", "check recordings or an export against their digests"),
    "index": ("index", "bring the SQL index up to date with the spool"),
    "ship": ("ship", "send finished recordings to object storage (storage = \"s3://...\")"),
    "retention": ("retention", "delete recordings older than the policy, except those on hold"),
    "hold": ("hold", "place, list and release legal holds"),
}
# Options every subcommand takes, accepted before its name too: sshrec --home DIR ls
COMMON_OPTIONS = ("--home", "--db")

USAGE = """\
usage: sshrec [OPTIONS] [-- COMMAND [ARG...]]   record a session (see: sshrec --help)
       sshrec SUBCOMMAND [ARGS...]              (see: sshrec SUBCOMMAND --help)

subcommands:
{table}
"""


def usage() -> str:
    table = "\n".join(f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items())
    return USAGE.format(table=table)


def split_common(args: list[str]) -> tuple[list[str], list[str]]:
    """Leading common options, and the rest: ``--home D --db U ls -x`` -> (those four, [ls, -x])."""
    i = 0
    while i < len(args):
        name = args[i].partition("=")[0]
        if name not in COMMON_OPTIONS:
            break
        i += 1 if "=" in args[i] else 2
    return args[:i], args[i:]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    common, rest = split_common(args)
    if rest and rest[0] in COMMANDS:
        module_name, _ = COMMANDS[rest[0]]
        module = importlib.import_module(f"sshrec.commands.{module_name}")
        return int(module.main([*common, *rest[1:]]) or 0)
    if rest and not rest[0].startswith("-") and rest[0] != "help":
        print(f"sshrec: {rest[0]!r} is not a subcommand (see: sshrec help); "
              f"to record a command, put it after --: sshrec -- {rest[0]} ...", file=sys.stderr)
        return 2
    if args and args[0] == "help":
        print(usage(), end="")
        return 0
    from sshrec.commands import record

    status = record.main(args)
    # The session is over and every file is closed and synced: skip the interpreter's
    # teardown (module cleanup, GC), a few ms on every logout.
    sys.stdout.flush()
    sys.stderr.flush()
    if status < 0:
        from sshrec.recorder.session import die_by

        die_by(-status)
    os._exit(status)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
