"""OpenSSH authorized_keys for ``sshrec serve``: parsed once at start, every line checked.

asyncssh's own parser skips lines it cannot read and keeps options it does not enforce, so
a typo would silently lock a user out or, worse, an option meant to restrict a key would be
ignored. Here every line either becomes a key with options serve knows how to honour, or is
an error naming the file and the line.

Options (sshd(8) "AUTHORIZED_KEYS FILE FORMAT"), case-insensitive as in OpenSSH:

* honoured: ``from=``, ``command=``, ``environment=``, ``expiry-time=``, ``no-pty``, ``pty``,
  ``restrict``;
* accepted, nothing to do because serve never offers the feature they govern (forwarding of
  any kind, ~/.ssh/rc): ``no-port-forwarding``, ``port-forwarding``, ``no-agent-forwarding``,
  ``agent-forwarding``, ``no-X11-forwarding``, ``X11-forwarding``, ``no-user-rc``,
  ``user-rc``, ``permitopen=``, ``permitlisten=``, ``tunnel=``;
* rejected (the line is an error): ``cert-authority`` and ``principals=`` (no certificate
  authentication), ``no-touch-required`` and ``verify-required`` (FIDO flags not checked),
  and anything unknown.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from asyncssh import KeyImportError, SSHKey, import_public_key

from ..authkeys import address_matches, check_host_pattern, parse_expiry, split_options

FLAGS_WITHOUT_EFFECT = {
    "no-port-forwarding", "port-forwarding", "no-agent-forwarding", "agent-forwarding",
    "no-x11-forwarding", "x11-forwarding", "no-user-rc", "user-rc",
}
VALUES_WITHOUT_EFFECT = {"permitopen", "permitlisten", "tunnel"}
REJECTED = {
    "cert-authority": "certificate authorities are not supported by sshrec serve",
    "principals": "certificate principals are not supported by sshrec serve",
    "no-touch-required": "FIDO touch policy is not supported by sshrec serve",
    "verify-required": "FIDO user verification is not supported by sshrec serve",
}


class AuthorizedKeysError(Exception):
    """The authorized keys cannot be used; the message is one line naming the file and the fix."""


@dataclass
class KeyEntry:
    """One authorized key and what its options allow."""

    key: SSHKey
    line: int
    comment: str
    command: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    from_patterns: list[str] = field(default_factory=list)
    expires: float | None = None  # epoch seconds
    pty: bool = True

    @property
    def fingerprint(self) -> str:
        return str(self.key.get_fingerprint("sha256"))

    @property
    def algorithm(self) -> str:
        return self.key.get_algorithm()

    def public_line(self) -> str:
        """``ssh-ed25519 AAAA...`` without the comment (the form sshd's ExposeAuthInfo uses)."""
        words = self.key.export_public_key("openssh").decode().split()
        return f"{words[0]} {words[1]}"

    def describe(self) -> str:
        comment = f" ({self.comment})" if self.comment else ""
        return f"{self.algorithm} {self.fingerprint}{comment}"

    def refusal(self, client_addr: str, now: float | None = None) -> str | None:
        """Why this key may not log in from ``client_addr`` now, or None when it may."""
        if self.expires is not None and (time.time() if now is None else now) >= self.expires:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.expires))
            return f"key expired at {when} (expiry-time on line {self.line})"
        for patterns in self.from_patterns:
            if not address_matches(client_addr, patterns):
                return f"{client_addr} does not match from=\"{patterns}\" on line {self.line}"
        return None


@dataclass
class AuthorizedKeys:
    entries: list[KeyEntry]
    source: str  # the file name, or "standard input"

    def find(self, key: SSHKey) -> list[KeyEntry]:
        """Every entry for this key, in file order (OpenSSH uses the first that allows the login)."""
        return [entry for entry in self.entries if entry.key == key]


def read_source(path: str) -> tuple[str, str]:
    """(text, name) of ``path``, ``-`` being standard input; errors say which of the usual problems it is."""
    if path == "-":
        try:
            data = sys.stdin.buffer.read()
        except (OSError, ValueError, AttributeError) as exc:
            raise AuthorizedKeysError(
                f"invalid authorized keys: standard input is not readable ({exc})") from None
        name = "standard input"
    else:
        name = path
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise AuthorizedKeysError(f"invalid authorized keys: {path} does not exist") from None
        except IsADirectoryError:
            raise AuthorizedKeysError(f"invalid authorized keys: {path} is a directory, not a file") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise AuthorizedKeysError(f"invalid authorized keys: {path} is not readable ({reason})") from None
    try:
        return data.decode("utf-8"), name
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AuthorizedKeysError(
            f"invalid authorized keys: {name} line {line} contains unparseable data (not UTF-8 text)"
        ) from None


def load_authorized_keys(path: str) -> AuthorizedKeys:
    """Read and check every line of an authorized_keys file (``-``: standard input)."""
    text, name = read_source(path)
    keys = parse_authorized_keys(text, name)
    if not keys.entries:
        raise AuthorizedKeysError(f"invalid authorized keys: {name} contained no keys")
    return keys


def parse_authorized_keys(text: str, name: str) -> AuthorizedKeys:
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(parse_line(line, number))
        except ValueError as exc:
            raise AuthorizedKeysError(
                f"invalid authorized keys: {name} line {number} contains unparseable data ({exc})"
            ) from None
    return AuthorizedKeys(entries, name)


def parse_line(line: str, number: int) -> KeyEntry:
    """One non-comment line: ``[options] keytype base64 [comment]``."""
    try:
        return _entry(import_public_key(line), number, [])
    except KeyImportError:
        pass
    options, rest = split_options(line)
    if not rest:
        raise ValueError("options but no key")
    try:
        key = import_public_key(rest)
    except KeyImportError as exc:
        raise ValueError(f"not a public key: {exc}") from None
    return _entry(key, number, options)


def _entry(key: SSHKey, number: int, options: Sequence[tuple[str, str | None]]) -> KeyEntry:
    entry = KeyEntry(key=key, line=number, comment=key.get_comment() or "")
    for name, value in options:
        apply_option(entry, name, value)
    return entry


def apply_option(entry: KeyEntry, name: str, value: str | None) -> None:
    """Record what one option means for serve, or reject it with the reason."""
    lowered = name.lower()
    if lowered in REJECTED:
        raise ValueError(f"option {name!r}: {REJECTED[lowered]}")
    if value is None:
        if lowered == "no-pty":
            entry.pty = False
        elif lowered == "restrict":
            entry.pty = False  # everything else restrict turns off, serve never offers
        elif lowered == "pty":
            entry.pty = True
        elif lowered not in FLAGS_WITHOUT_EFFECT:
            raise ValueError(f"unknown option {name!r}")
        return
    if lowered == "command":
        entry.command = value
    elif lowered == "environment":
        var, sep, val = value.partition("=")
        if not sep or not var or not all(c.isalnum() or c == "_" for c in var):
            raise ValueError(f"environment=\"{value}\" is not NAME=value")
        entry.environment[var] = val
    elif lowered == "from":
        for pattern in value.split(","):
            check_host_pattern(pattern)
        entry.from_patterns.append(value)
    elif lowered == "expiry-time":
        expires = parse_expiry(value)
        entry.expires = expires if entry.expires is None else min(entry.expires, expires)
    elif lowered not in VALUES_WITHOUT_EFFECT:
        raise ValueError(f"unknown option {name!r}")


def auth_info_line(entry: KeyEntry) -> str:
    """The line sshd's ExposeAuthInfo writes; the recorder reads the key fingerprint from it."""
    return f"publickey {entry.public_line()}{os.linesep}"
