"""``sshrec setup``: prepare a spool on a multi-user host (root only)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from ._common import CommandError, parser, run

EXAMPLES = """\
  sudo sshrec setup                          # /var/lib/sshrec (or the configured home)
  sudo sshrec setup --home /srv/sshrec --dry-run
  sudo sshrec setup --json | jq .changes

What it makes: HOME owned by root (0711); HOME/users root-owned, sticky, 1733 (each user's
recorder makes and owns HOME/users/NAME, 0700; nobody can list the folder or open another
user's); a folder for every login account now (uid >= UID_MIN), so no one can take another's
name first; the index and any recordings made before setup readable by root only; the config
file (/etc/sshrec/sshrec.toml, or $SSHREC_CONFIG) when there is none. Running it again changes
nothing. Root's 'sshrec index' then indexes every user's sessions; each user's 'sshrec ls'
shows their own.

With --collector, the secure deployment: a system user (sshrec) owns the spool, 0700, and runs
'sshrec collector' (the systemd unit is written to --systemd-dir); recorders stream to its
socket (sink = "collector" in the config), so no recorded user can read, change or delete a
recording, their own included.
"""


def build_parser() -> argparse.ArgumentParser:
    p = parser("setup", "Make SSHREC_HOME a spool that records every user and lets no user read "
               "another's recordings or the index.", EXAMPLES)
    p.add_argument("--home", metavar="DIR",
                   help="spool to prepare (default: $SSHREC_HOME, the config file, /var/lib/sshrec)")
    p.add_argument("--db", metavar="URL", help=argparse.SUPPRESS)  # accepted like every subcommand
    p.add_argument("--user", action="append", default=[], metavar="NAME",
                   help="also make the folder of this account now (repeatable; only accounts with "
                   "uid >= UID_MIN are made by default)")
    p.add_argument("--collector", action="store_true",
                   help="the secure deployment instead: a service user and its collector own the spool")
    p.add_argument("--service-user", default="sshrec", metavar="NAME", help="with --collector (default sshrec)")
    p.add_argument("--collector-socket", default="/run/sshrec/collector.sock", metavar="PATH",
                   help="with --collector: where the collector listens")
    p.add_argument("--systemd-dir", default="/etc/systemd/system", metavar="DIR",
                   help="with --collector: where the unit goes")
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    p.add_argument("--json", action="store_true", help="print what was done as JSON")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.recorder.setup import SetupError, login_users, make_collector_plan, make_plan, uid_min
        from sshrec.schema.settings import DEFAULT_CONFIG, ConfigError, load_settings

        try:
            home = args.home or load_settings().home
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        executable = shutil.which("sshrec") or os.path.abspath(sys.argv[0])
        config = os.environ.get("SSHREC_CONFIG") or DEFAULT_CONFIG
        try:
            if args.collector:
                plan = make_collector_plan(home, config, executable, args.service_user, args.collector_socket,
                                           args.systemd_dir)
            else:
                names = [u.pw_name for u in login_users(uid_min())] + args.user
                plan = make_plan(home, config, executable, names)
            if not args.dry_run:
                plan.apply()
        except SetupError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"{exc.filename or home}: {exc.strerror}") from None
        if args.json:
            print(json.dumps({"home": plan.home, "dry_run": args.dry_run,
                              "changes": [c.what for c in plan.changes], "warnings": plan.warnings,
                              "sshd_config": plan.sshd_lines}, indent=1))
            return 0
        verb = "would change" if args.dry_run else "changed"
        if plan.changes:
            print(f"sshrec setup: {plan.home}: {len(plan.changes)} {verb}:")
            for change in plan.changes:
                print(f"  {change.what}")
        else:
            print(f"sshrec setup: {plan.home}: already set up, nothing to change")
        for warning in plan.warnings:
            print(f"sshrec setup: warning: {warning}", file=sys.stderr)
        print("\nAdd to sshd's configuration (if not there yet):")
        for line in plan.sshd_lines:
            print(f"  {line}")
        return 0

    return run("setup", body)
