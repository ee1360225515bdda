"""``sshrec collector``: the daemon that owns the spool in the secure deployment."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import CommandError, add_location_options, parser, run, settings_from

EXAMPLES = """\
  sshrec collector                              # as the service user (sshrec setup --collector)
  sshrec collector --socket /run/sshrec/collector.sock --home /var/lib/sshrec

With storage = "s3://..." in the config, each session is also shipped to the store as soon as
it is indexed (sshrec ship's timer catches up whatever that could not send).
Recorders stream to it when the config says sink = "collector". It takes each one's user from
the kernel (SO_PEERCRED), writes the spool only it can read, chains a digest over every
commit point (sshrec verify checks it), and acknowledges only what is on disk. SIGTERM ends
it after the last commit; recorders then reconnect and resume when it is back.
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser("collector", "Receive recordings from recorders over a Unix socket and keep them.", EXAMPLES)
    p.add_argument("--socket", metavar="PATH", help="where to listen (default: collector_socket in the config, "
                   "/run/sshrec/collector.sock)")
    p.add_argument("--no-index", action="store_true",
                   help="do not index (or ship) finished sessions; `sshrec index` (and `sshrec ship`) "
                   "on a timer catch up")
    add_location_options(p)
    return p


def shipper(settings: object) -> object:
    """With storage configured, each finished session is shipped right after it is indexed
    (in the collector's indexing thread; boto3 is imported then, never by recorders)."""
    if not getattr(settings, "storage", None):
        return None

    stores: list[object] = []  # one client for the collector's life (making one costs 200 ms)

    def ship_one(engine: object, session_id: str) -> None:
        from sshrec.schema.ship import ship
        from sshrec.schema.storage import open_store

        from .ship import seek_writer

        if not stores:
            stores.append(open_store(settings.storage, settings.s3_endpoint_url))  # type: ignore[attr-defined]
        report = ship(engine, stores[0], settings.keep_local, seek_writer, [session_id])  # type: ignore[arg-type]
        for failure in report.failed:
            print(f"sshrec collector: shipping {session_id}: {failure}", file=sys.stderr)

    return ship_one


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        import asyncio
        import signal

        from sshrec.recorder.collector.server import Collector

        settings = settings_from(args)
        socket_path = args.socket or settings.collector_socket
        if not os.path.isdir(os.path.dirname(socket_path) or "."):
            raise CommandError(f"{os.path.dirname(socket_path)}: no such folder for the socket "
                               "(sshrec setup --collector makes it)")
        os.makedirs(settings.home, mode=0o700, exist_ok=True)
        collector = Collector(settings.home, socket_path, args.db, ship=shipper(settings),
                              index=not args.no_index)

        async def serve() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.add_signal_handler(signum, collector.stopping.set)
            ready = asyncio.Event()
            task = asyncio.create_task(collector.run(ready))
            await ready.wait()
            print(f"sshrec collector: listening on {socket_path} (spool {settings.home})", flush=True)
            await task

        try:
            asyncio.run(serve())
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"{exc.filename or socket_path}: {exc.strerror}") from None
        print("sshrec collector: stopped", file=sys.stderr)
        return 0

    return run("collector", body)
