"""Shared pieces of the index commands: --home/--db, the filter options, tables, errors.

Kept free of SQLAlchemy so that argument errors and --help cost no more than argparse.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sshrec.schema.safe_text import visible


class CommandError(Exception):
    """Ends a command with one line on stderr and a non-zero exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def parser(name: str, description: str, examples: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=f"sshrec {name}",
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_location_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", metavar="DIR", help="spool directory (default: $SSHREC_HOME, config, or standard)")
    p.add_argument(
        "--db",
        metavar="URL",
        help="index database URL (default: $SSHREC_DB, or SQLite index.db in the home)",
    )


def add_filter_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters (combined with AND; times are UTC)")
    g.add_argument("--user", help="user name; a trailing * matches a prefix")
    g.add_argument("--key", metavar="FINGERPRINT", help="key fingerprint or its prefix (SHA256:...)")
    g.add_argument("--command", metavar="TEXT", help="text anywhere in the command (any case)")
    g.add_argument("--dest", "--destination", dest="destination", metavar="DEST",
                   help="any host the session reached (host:port or address); a trailing * matches a prefix")
    g.add_argument("--file", metavar="PATTERN", help="a path a transfer read or wrote; * and ? as in the shell")
    g.add_argument("--client", metavar="ADDR", help="client address; a trailing * matches a prefix")
    g.add_argument("--since", metavar="WHEN", help="started at or after: 2h, 3d, 1w, or ISO date/time")
    g.add_argument("--until", metavar="WHEN", help="started before: age or ISO (a date includes the day)")
    g.add_argument("--status", help="recording, complete, interrupted, failed, refused (comma-separated)")
    g.add_argument("--exit", metavar="N", help="exit status N, or 'nonzero'")
    g.add_argument("--mode", help="pty, pipe, sftp, scp, rsync, import (comma-separated)")
    g.add_argument("--connection", metavar="ID", help="sessions of one SSH connection (ControlMaster)")
    g.add_argument("--typed", metavar="TEXT", help="a command run in the session contains TEXT (any case); "
                   "--json gives when (typed_match)")
    g.add_argument("--host", metavar="HOST",
                   help="recorded on this gateway (a fleet's shared index); a trailing * matches a prefix")
    g.add_argument("--limit", type=int, default=50, metavar="N", help="at most N sessions (default 50; 0: all)")


def filters_from(args: argparse.Namespace) -> Any:
    """The options as Filters, through the one parser of the query language (player.query)."""
    from sshrec.player.query import FILTER_OPTIONS, QueryError, build_filters

    try:
        return build_filters({name: getattr(args, name, None) for name in FILTER_OPTIONS},
                             max(args.limit, 0))
    except QueryError as exc:
        raise CommandError(str(exc), 2) from None


def parsed_query(text: str) -> Any:
    """The Query of a ``--query``: the one parser of the TUI's search bar; limit defaults to all."""
    from sshrec.player.query import QueryError, parse_query

    try:
        query = parse_query(text, limit=0)
    except QueryError as exc:
        raise CommandError(f"--query: {exc}", 2) from None
    if query.empty:
        raise CommandError("--query is empty: give at least one filter or word, e.g. user:alice", 2)
    return query


def query_rows(connection: Any, query: Any) -> list[dict[str, Any]]:
    """The sessions a query selects, newest first; words match the screen or the command, as in the TUI."""
    from itertools import islice

    from sshrec.player.query import all_matching, list_sessions

    if query.text is None:
        return list(list_sessions(connection, query.filters).items)
    return list(islice(all_matching(connection, query), query.filters.limit or None))


def store_from(settings: Any) -> Any:
    """The configured object store; a CommandError saying how to configure one when none is."""
    if not settings.storage:
        from sshrec.schema.settings import DEFAULT_CONFIG

        where = os.environ.get("SSHREC_CONFIG") or DEFAULT_CONFIG
        raise CommandError(f"no object storage configured: add storage = \"s3://BUCKET/PREFIX\" (and, for a "
                           f"server other than AWS, s3_endpoint_url = \"https://...\") to {where}")
    from sshrec.schema.storage import StorageError, open_store

    try:
        return open_store(settings.storage, settings.s3_endpoint_url)
    except StorageError as exc:
        raise CommandError(str(exc)) from None


def settings_from(args: argparse.Namespace) -> Any:
    from sshrec.schema.settings import ConfigError, load_settings

    try:
        settings = load_settings(home=args.home, db_url=args.db)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    if settings.shared and not settings.admin:
        check_own_folder(settings.spool)
    return settings


def check_own_folder(path: str) -> None:
    """A user's folder of a shared spool that someone else made (squatting) is not theirs to
    read or to keep an index in."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return  # made on first use, by this user
    import stat

    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise CommandError(f"not permitted: {path} is not your folder (it belongs to uid {info.st_uid}); "
                           "your recordings are kept safe elsewhere until root runs: sshrec setup")


def caller_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def only_own_sessions(filters: Any, settings: Any) -> None:
    """On a shared spool a user reads their own sessions only: asking for another user's is
    refused outright rather than answered with an empty list."""
    if not settings.shared or settings.admin:
        return
    me = caller_name()
    if filters.user and filters.user != me:
        raise CommandError(f"not permitted: as {me} you can see only your own sessions, not those of "
                           f"{visible(filters.user)}; other users' recordings are readable by root only")
    filters.user = me


def catch_up(settings: Any, engine: Any) -> None:
    """Index what finished since the last run before answering (cheap: one stat per day
    folder); when the index is not ours to write, say how much it is missing."""
    import sqlalchemy as sa

    from sshrec.schema.index import freshen

    spools = settings.read_spools()
    try:
        freshen(engine, spools)
        return
    except sa.exc.DBAPIError:
        report = freshen(engine, spools, dry_run=True)
    missing = report.new + report.changed
    if missing:
        print(f"note: {missing} recording(s) in the spool are not in this index yet "
              "(the index is read-only here; its owner runs: sshrec index)", file=sys.stderr)


@contextmanager
def index_from(args: argparse.Namespace, fresh: bool = False) -> Iterator[tuple[Any, Any]]:
    """(settings, engine) with the schema at head, brought up to date with the spool first when
    ``fresh``; errors become CommandError. The engine's connections are closed at the end
    (tests and long-lived callers run many commands)."""
    from sshrec.schema.db import IndexUnusable, open_index

    settings = settings_from(args)
    try:
        engine = open_index(settings.db_url)
    except IndexUnusable as exc:
        raise CommandError(str(exc)) from None
    try:
        if fresh:
            catch_up(settings, engine)
        yield settings, engine
    finally:
        engine.dispose()


def run(name: str, body: Callable[[], int]) -> int:
    """Run a command body; expected failures print one line and set the exit status."""
    try:
        return body()
    except CommandError as exc:
        print(f"sshrec {name}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"sshrec {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # `sshrec ls | head` is not an error
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            print(f"sshrec {name}: database error: {detail}", file=sys.stderr)
            return 1
        raise


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def when_text(timestamp: str | None) -> str:
    """``2024-05-01 10:00:03`` from the record's RFC 3339 UTC time."""
    return timestamp[:19].replace("T", " ") if timestamp else "-"


def status_text(record: dict[str, Any]) -> str:
    status = str(record.get("status") or "-")
    if record.get("exit_signal"):
        return f"{status} {record['exit_signal']}"
    if record.get("exit_status") is not None:
        return f"{status} {record['exit_status']}"
    return status


def command_text(record: dict[str, Any]) -> str:
    if record.get("original_command"):
        return str(record["original_command"])
    command = record.get("command") or []
    return " ".join(str(a) for a in command) if command else "(login shell)"


def cell(value: Any) -> str:
    """A table cell: user-originated text is escaped, never passed through raw."""
    if value is None or value == "":
        return "-"
    return visible(str(value))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to fit; on a terminal the last column is cut to the window width."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, value in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(value))
    limit = shutil.get_terminal_size((10_000, 24)).columns if sys.stdout.isatty() else 0
    lines = [list(headers), *[list(r) for r in rows]]
    out = sys.stdout
    for line in lines:
        text = "  ".join(v.ljust(widths[i]) for i, v in enumerate(line[:-1]))
        text = f"{text}  {line[-1]}" if text else line[-1]
        if limit and len(text) > limit:
            text = text[: max(limit - 1, 0)] + "…"
        out.write(text.rstrip() + "\n")
