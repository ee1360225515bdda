"""``sshrec play ID|FILE``: replay a recording in this terminal.

Imports only the player and the spool layout: a file path or an id never touches SQL, so
the first frame is on screen in tens of milliseconds even for a 200 MB recording.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLES = """\
  sshrec play 01JD0Q3X9M7ZK6V3W2T1R8S4YB
  sshrec play --speed 4 --idle-time-limit 2 /var/lib/sshrec/recordings/2024/05/01/01JD....cast
  sshrec play --at 12:30 ID        start 12 minutes 30 seconds in
  sshrec play --follow ID          watch a session that is still being recorded

keys: space pause/resume   . next frame (paused)   left/right -/+5 s   [ ] previous/next marker
      + - speed x2 / /2    q quit
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sshrec play",
        description="Replay a recorded session in this terminal, with its timing. Sequences that would act "
        "on this machine rather than draw (clipboard writes, window titles, terminal queries, file:// links) "
        "are dropped unless --raw.",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="ID|FILE", help="session id, or a .cast (or its .json) file")
    p.add_argument("-s", "--speed", type=float, default=1.0, metavar="X", help="playback speed (default 1)")
    p.add_argument("-i", "--idle-time-limit", type=float, metavar="S",
                   help="cap pauses at S seconds (default: the header's idle_time_limit, else none)")
    p.add_argument("--at", metavar="T", help="start at T: seconds, m:ss or h:mm:ss")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep playing as the recording grows, until its session ends (like tail -f)")
    p.add_argument("--raw", action="store_true", help="write every recorded byte, dangerous sequences too")
    p.add_argument("--home", metavar="DIR", help="spool root for ids (default: $SSHREC_HOME)")
    p.add_argument("--no-cache", action="store_true", help="do not keep the seek index in ~/.cache/sshrec")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from sshrec.player.locate import NotFound, locate_cast
    from sshrec.player.play import PlayOptions, parse_time, play
    from sshrec.schema.asciicast import CastError
    from sshrec.schema.settings import ConfigError, load_settings

    def fail(message: str, status: int = 1) -> int:
        print(f"sshrec play: {message}", file=sys.stderr)
        return status

    if args.speed <= 0:
        return fail("--speed must be more than 0 (e.g. 2 for twice as fast)", 2)
    if args.idle_time_limit is not None and args.idle_time_limit <= 0:
        return fail("--idle-time-limit must be more than 0 seconds", 2)
    try:
        at = parse_time(args.at) if args.at else None
    except ValueError as exc:
        return fail(f"--at: {exc}", 2)
    try:
        path = locate_cast(args.target, load_settings(home=args.home))
        options = PlayOptions(speed=args.speed, idle_time_limit=args.idle_time_limit, at=at,
                              follow=args.follow, raw=args.raw, use_cache=not args.no_cache)
        return play(path, options)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (NotFound, CastError, ConfigError) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{exc.filename or args.target}: {exc.strerror}")
