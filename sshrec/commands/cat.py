"""``sshrec cat ID|FILE``: print a recording's output, as ``asciinema cat`` would."""

from __future__ import annotations

import argparse
import sys

from sshrec.player.locate import NotFound, locate_cast
from sshrec.schema.asciicast import CastError, open_cast
from sshrec.schema.settings import ConfigError, load_settings
from sshrec.schema.storage import StorageError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sshrec cat",
        description="Write a recording's output events to stdout, all at once (no timing).",
        epilog="examples:\n  sshrec cat 01JD0Q3X9M7ZK6V3W2T1R8S4YB | less -R\n"
        "  sshrec cat s3://audit/sshrec/gw1/2024/05/01/01JD0Q3X9M7ZK6V3W2T1R8S4YB.cast\n"
        "A session shipped to the store (storage = \"s3://...\") is read from there when the spool lacks it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="ID|FILE", nargs="+", help="session id or .cast/.json file")
    p.add_argument("--home", metavar="DIR", help="spool root (default: $SSHREC_HOME)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(home=args.home)
        out = sys.stdout.buffer
        for target in args.target:
            handle, reader = open_cast(locate_cast(target, settings))
            with handle:
                for event in reader.events():
                    if event.code == "o":
                        out.write(event.data.encode("utf-8", "surrogatepass"))
            out.flush()
    except BrokenPipeError:
        return 0
    except (NotFound, CastError, ConfigError, OSError, StorageError) as exc:
        print(f"sshrec cat: {exc}", file=sys.stderr)
        return 1
    return 0
