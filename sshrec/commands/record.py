"""``sshrec [OPTIONS] [-- COMMAND [ARG...]]``: record one session (the ForceCommand entry point)."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from sshrec.recorder.session import VERSION, RecordOptions, record_session
from sshrec.schema.settings import ConfigError, load_settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

EPILOG = """\
what runs:
  with COMMAND     that argv, exec'd directly (never through a shell)
  without COMMAND  the logged-in key's command= (from authorized_keys; sshd drops it under a
                   ForceCommand), else $SSH_ORIGINAL_COMMAND via "$SHELL -c", else a login shell

examples (sshd_config):
  ForceCommand /usr/local/bin/sshrec -- /usr/sbin/sshproxy
  ForceCommand /usr/local/bin/sshrec --on-failure deny

files: $SSHREC_HOME/recordings/YYYY/MM/DD/<id>.cast (asciicast) and <id>.json (session
record), directories 0700 and files 0600; on a spool made by 'sshrec setup', each user's
under $SSHREC_HOME/users/NAME/. SSHREC_HOME defaults to /var/lib/sshrec for root, else
$XDG_DATA_HOME/sshrec; /etc/sshrec/sshrec.toml (or $SSHREC_CONFIG) sets defaults.
subcommands: sshrec help
"""


def parser() -> argparse.ArgumentParser:
    import argparse

    p = argparse.ArgumentParser(
        prog="sshrec",
        usage="sshrec [OPTIONS] [-- COMMAND [ARG...]]",
        description="Record an SSH session (PTY when the client has a terminal, byte-exact pipes "
        "when not) as an asciicast file plus a session record.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--home", metavar="DIR", help="spool root (default: $SSHREC_HOME)")
    p.add_argument("--db", metavar="URL", help="SQLAlchemy URL of the index (default: $SSHREC_DB)")
    p.add_argument("--format", choices=("v2", "v3"), help="asciicast version (default v2)")
    p.add_argument("--record-input", action="store_true", default=None,
                   help="also record what the client types (typed passwords end up in the file)")
    p.add_argument("--destination", metavar="HOST",
                   help="where the session goes (default: detected from ssh/nc command lines)")
    p.add_argument("--on-failure", choices=("allow", "deny"),
                   help="when the spool cannot be written: run unrecorded (allow, default) or "
                   "refuse the session (deny)")
    p.add_argument("--transcript-fd", type=int, metavar="FD",
                   help="also write every cast line to this open file descriptor (used by serve --log)")
    p.add_argument("--note", action="append", default=[], metavar="TEXT",
                   help="add a remark to the session record (repeatable)")
    p.add_argument("--authorized-keys-file", metavar="PATHS",
                   help="sshd's AuthorizedKeysFile (default: config, else .ssh/authorized_keys "
                   ".ssh/authorized_keys2), to honour a key's command= that sshd drops under ForceCommand")
    p.add_argument("--deny-interactive", action="store_true", default=None,
                   help="a command-only gateway: refuse sessions that ask for no command (recorded as refused)")
    p.add_argument("--mosh", choices=("deny", "allow"),
                   help="mosh-server: deny (default) or allow, noting that its UDP session is not recorded")
    p.add_argument("--transfer-contents", action="store_true", default=None,
                   help="keep the bytes of sftp/scp/rsync transfers too (default: file operations and sizes)")
    p.add_argument("--sink", choices=("spool", "collector"),
                   help="write the spool directly (default), or stream to the collector (sink = \"collector\")")
    p.add_argument("--collector-socket", metavar="PATH", help="the collector's socket (default "
                   "/run/sshrec/collector.sock, or collector_socket in the config)")
    p.add_argument("--no-watch", action="store_true",
                   help="do not follow the session's processes for destinations (benchmarks; hidepid hosts)")
    p.add_argument("--no-index", action="store_true",
                   help="do not start the background indexer at the end of the session")
    p.add_argument("--version", action="version", version=f"sshrec {VERSION}")
    return p


# The login path parses its options by hand: building an ArgumentParser costs ~9 ms (it
# imports shutil and searches for gettext catalogues). Anything unusual (--help, a typo, a
# bad value) goes to argparse, which says what is wrong.
CHOICES = {"--format": ("v2", "v3"), "--on-failure": ("allow", "deny"), "--mosh": ("deny", "allow"),
           "--sink": ("spool", "collector")}
VALUED = {"--home", "--db", "--format", "--destination", "--on-failure", "--transcript-fd", "--note",
          "--authorized-keys-file", "--mosh", "--sink", "--collector-socket"}
FLAGS = {"--record-input", "--no-index", "--deny-interactive", "--transfer-contents", "--no-watch"}


def parse_quickly(options: list[str]) -> SimpleNamespace | None:
    values: dict[str, object] = {"record_input": None, "no_index": False, "note": [], "home": None,
                                 "deny_interactive": None, "transfer_contents": None, "mosh": None,
                                 "no_watch": False, "sink": None, "collector_socket": None,
                                 "db": None, "format": None, "destination": None, "on_failure": None,
                                 "transcript_fd": None, "authorized_keys_file": None}
    words = iter(options)
    for word in words:
        name, _, inline = word.partition("=")
        if name in FLAGS and not inline:
            values[name[2:].replace("-", "_")] = True
            continue
        if name not in VALUED:
            return None
        value = inline if "=" in word else next(words, None)
        if value is None or value not in CHOICES.get(name, (value,)):
            return None
        key = name[2:].replace("-", "_")
        if key == "note":
            values["note"].append(value)  # type: ignore[union-attr]
        elif key == "transcript_fd":
            if not value.isdigit():
                return None
            values[key] = int(value)
        else:
            values[key] = value
    return SimpleNamespace(**values)


def main(argv: list[str]) -> int:
    if "--" in argv:
        split = argv.index("--")
        options, command = argv[:split], argv[split + 1 :]
    else:
        options, command = argv, []
    args = parse_quickly(options) or parser().parse_args(options)
    if args.transcript_fd is not None:
        try:
            os.set_inheritable(args.transcript_fd, False)  # the session must not write to it
        except OSError as exc:
            print(f"sshrec: --transcript-fd {args.transcript_fd}: {exc.strerror}", file=sys.stderr)
            return 2
    try:
        settings = load_settings(home=args.home, db_url=args.db)
    except ConfigError as exc:
        print(f"sshrec: {exc}", file=sys.stderr)
        return 1
    opts = RecordOptions(
        command=command,
        home=settings.home,
        format=args.format or settings.format,
        record_input=settings.record_input if args.record_input is None else True,
        destination=args.destination,
        on_failure=args.on_failure or settings.on_failure_for(args.sink or settings.sink),
        index=not args.no_index,
        db_url=args.db,
        transcript_fd=args.transcript_fd,
        notes=args.note,
        personal=settings.shared and not settings.admin,
        authorized_keys_file=args.authorized_keys_file or settings.authorized_keys_file,
        deny_interactive=bool(args.deny_interactive or settings.deny_interactive),
        mosh=args.mosh or settings.mosh,
        transfer_contents=bool(args.transfer_contents or settings.transfer_contents),
        watch=not args.no_watch,
        shell=settings.shell,
        sink=args.sink or settings.sink,
        collector_socket=args.collector_socket or settings.collector_socket,
        collector_buffer=settings.collector_buffer,
        collector_timeout=settings.collector_timeout,
    )
    return record_session(opts)
