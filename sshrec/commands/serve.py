"""``sshrec serve``: a one-shot audited SSH server for a single session (see recorder/serve.py)."""

from __future__ import annotations

import argparse

EPILOG = """\
what happens, in order:
  1. the authorized keys are loaded (every line checked)  2. the environment is copied
  3. a new ed25519 host key is generated; its public line is the FIRST LINE OF STDOUT
  4. the port is opened; stderr says "sshrec serve: listening on ADDRESS port PORT"
  5. the announce command runs: CMD "ssh-ed25519 AAAA..." (its output goes to stderr;
     SSHREC_SERVE_ADDRESS and SSHREC_SERVE_PORT are in its environment)
  6. connections are accepted; each is authenticated by public key against the loaded keys
     only; a failure ends that connection and serve keeps waiting
  7. the first authenticated connection closes the port for good; its session runs the
     recorder (sshrec --record-input) with a login shell ($SHELL, copied environment),
     or "$SHELL -c COMMAND" for an exec request, on a pty when the client asked for one
  8. serve exits with the session's exit status

output:
  stdout  the host key line, then the transcript (asciicast, input included) unless --log
  stderr  serve's log: listening port, connections, refused keys, the session, errors
  spool   the session is recorded in $SSHREC_HOME like any other (sshrec ls, sshrec play)

exit status: the session's (a shell killed by signal N: 128+N, the client gets exit-signal);
0 after --timeout with no session; 1 when serve cannot start (keys, --log, announce, port);
255 when the client went away mid-session (the recording is still closed and indexed).

refused: port/agent/X11 forwarding, subsystems (sftp, so scp/sftp do not work), passwords.
authorized_keys options honoured: from=, command=, environment=, expiry-time=, no-pty,
pty, restrict; forwarding options are accepted (nothing is ever forwarded);
cert-authority, principals=, no-touch-required, verify-required and unknown options are
errors (the line is named).

examples:
  sshrec serve --authorized-keys ~/.ssh/authorized_keys
  sshrec serve --authorized-keys - --port 0 --log /var/log/session.cast < keys.pub
  sshrec serve --authorized-keys keys.pub --announce "logger -t sshrec-serve" --timeout 300
"""


def build_parser() -> argparse.ArgumentParser:
    from sshrec.recorder.serve import DEFAULT_PORT, DEFAULT_TIMEOUT

    p = argparse.ArgumentParser(
        prog="sshrec serve",
        description="One-shot audited SSH server: a new host key, one authorised session, recorded; "
        "then exit with the session's status.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--authorized-keys", required=True, metavar="FILE",
                   help="OpenSSH authorized_keys file of who may log in; - reads standard input")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one, printed on stderr)")
    p.add_argument("--listen", default="0.0.0.0", metavar="ADDRESS",
                   help="address to listen on (default 0.0.0.0; :: for IPv6 and IPv4)")
    p.add_argument("--log", metavar="FILE",
                   help="write the transcript (asciicast, input included) here instead of stdout")
    p.add_argument("--announce", metavar="CMD",
                   help="run CMD with the host public key as its one extra argument once the port is open")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=f"exit (status 0) if no session began within this time (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--home", metavar="DIR", help="spool root for the recording (default: $SSHREC_HOME)")
    p.add_argument("--format", choices=("v2", "v3"), help="asciicast version of the recording (default v2)")
    p.add_argument("--no-index", action="store_true", help="do not index the session in SQL at the end")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="log only the listening line and errors on stderr")
    p.add_argument("--debug", action="store_true", help="asyncssh's protocol log on stderr")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from sshrec.recorder.serve import ServeOptions, run

    return run(ServeOptions(
        authorized_keys=args.authorized_keys,
        port=args.port,
        address=args.listen,
        log=args.log,
        announce=args.announce,
        timeout=args.timeout,
        home=args.home,
        format=args.format,
        index=not args.no_index,
        quiet=args.quiet,
        debug=args.debug,
    ))
