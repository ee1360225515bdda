"""``sshrec doctor``: how a user could get past the recorder on this host, and how to stop it."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._common import CommandError, add_location_options, caller_name, parser, run, settings_from

EXAMPLES = """\
  sudo sshrec doctor --user alice
  sudo sshrec doctor --sshd-config /etc/ssh/sshd_config --user alice --json | jq '.[] | select(.status=="open")'

Each finding is open (a way around recording, with its fix), ok, or unknown (sshrec cannot
tell). sshd's settings are its effective ones for that user (sshd -T -C user=USER, so Match
blocks count), which needs root. Exit status 1 when anything is open.
"""

MARKS = {"open": "OPEN", "ok": "ok", "unknown": "??"}


def build_parser() -> argparse.ArgumentParser:
    p = parser("doctor", "Check this host for ways around recording: forwarding, ~/.ssh/rc, shells that "
               "read user files first, missing ExposeAuthInfo, spool and index permissions.", EXAMPLES)
    p.add_argument("--sshd-config", metavar="FILE", help="sshd's config file (default: sshd's own)")
    p.add_argument("--user", metavar="USER", help="check for this user (default: you)")
    p.add_argument("--json", action="store_true", help="a JSON list of {check, status, detail, fix}")
    add_location_options(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        from sshrec.recorder.doctor import diagnose
        from sshrec.schema.safe_text import visible

        settings = settings_from(args)
        if args.sshd_config and not os.path.isfile(args.sshd_config):
            raise CommandError(f"--sshd-config {args.sshd_config}: no such file", 2)
        try:
            findings = diagnose(settings, args.user or caller_name(), args.sshd_config)
        except RuntimeError as exc:
            raise CommandError(str(exc), 2) from None
        if args.json:
            print(json.dumps([f.to_dict() for f in findings], indent=1))
        else:
            for finding in findings:
                print(f"{MARKS[finding.status]:<4}  {finding.check:<24} {visible(finding.detail)}")
                if finding.status != "ok" and finding.fix:
                    print(f"{'':<30} fix: {visible(finding.fix)}")
        opened = sum(f.status == "open" for f in findings)
        if not args.json:
            print(f"\n{opened} way(s) around recording open" if opened else "\nnothing open", file=sys.stderr)
        return 1 if opened else 0

    return run("doctor", body)
