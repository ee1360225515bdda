"""The `sshrec` command: picks a subcommand and imports only what that subcommand needs.

Recording (no subcommand) runs on every SSH login, so this module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import os
import sys

# name -> (module under sshrec.commands, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "one-shot audited SSH server for a single session"),
    "collector": ("collector", "daemon that owns the spool and receives recordings"),
    "ls": ("ls", "list recorded sessions"),
    "search": ("search", "find sessions by text that appeared on screen"),
    "play": ("play", "replay a session in this terminal"),
    "cat": ("cat", "print a session's recorded output"),
    "import": ("import_", "copy asciicast files made elsewhere into the spool"),
    "export": ("export", "write sessions as asciicast files with a manifest"),
    "verify": ("verify", "check recordings or an export against their digests"),
    "index": ("index", "bring the SQL index up to date with the spool"),
    "tui": ("tui", "search and replay sessions in a terminal app"),
}

USAGE = """\
usage: sshrec [OPTIONS] [-- COMMAND [ARG...]]   record a session (see: sshrec --help)
       sshrec SUBCOMMAND [ARGS...]              (see: sshrec SUBCOMMAND --help)

subcommands:
{table}
"""


def usage() -> str:
    table = "\n".join(f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items())
    return USAGE.format(table=table)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in COMMANDS:
        module_name, _ = COMMANDS[args[0]]
        try:
            module = importlib.import_module(f"sshrec.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sshrec.commands.{module_name}":
                raise
            print(f"sshrec: '{args[0]}' is not available in this version", file=sys.stderr)
            return 2
        return int(module.main(args[1:]) or 0)
    if args and args[0] == "help":
        print(usage(), end="")
        return 0
    from sshrec.commands import record

    status = record.main(args)
    # The session is over and every file is closed and synced: skip the interpreter's
    # teardown (module cleanup, GC), a few ms on every logout.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
