"""authorized_keys lines: OpenSSH's syntax, and the options of the key a user logged in with.

sshd drops a key's ``command="..."`` when sshd_config has a ForceCommand: a key meant to run
one command only would be unrestricted behind ``ForceCommand sshrec``. sshd's ExposeAuthInfo
says which key logged in; :func:`key_options` finds its line in the user's key files so the
recorder can run that command as sshd would have. Standard library only (the login path);
``sshrec serve`` builds its stricter parser on the same syntax functions.
"""

from __future__ import annotations

import os
import time

# Key types OpenSSH writes at the start of a line without options (sshd(8)).
KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-sha2-")


class KeyOptions:
    """Options of the authorized_keys line that let the user in (plain class: login path)."""

    __slots__ = ("path", "line", "command", "pty", "names")

    def __init__(self, path: str, line: int, command: str | None, pty: bool, names: list[str]) -> None:
        self.path = path
        self.line = line
        self.command = command
        self.pty = pty
        self.names = names  # every option on the line, lower case, in order

    def where(self) -> str:
        return f"{self.path} line {self.line}"


class KeyLookup:
    """What the recorder learned about the key's options: the line, or why it is unknown."""

    __slots__ = ("options", "unknown")

    def __init__(self, options: KeyOptions | None, unknown: str | None) -> None:
        self.options = options
        self.unknown = unknown


def expand_key_files(setting: str, user: str, uid: int, home: str) -> list[str]:
    """sshd_config's AuthorizedKeysFile: %h, %u, %U, %%; relative names are in the home."""
    paths = []
    for word in setting.split():
        if word.lower() == "none":
            continue
        text = word.replace("%%", "\0").replace("%h", home).replace("%u", user).replace("%U", str(uid))
        text = text.replace("\0", "%")
        if text.startswith("~/"):
            text = os.path.join(home, text[2:])
        paths.append(text if os.path.isabs(text) else os.path.join(home, text))
    return paths


def split_key_line(line: str) -> tuple[list[tuple[str, str | None]], str, str] | None:
    """(options, key type, base64 blob) of one non-comment line, or None if it is not a key."""
    words = line.split()
    if not words:
        return None
    if words[0].startswith(KEY_TYPE_PREFIXES) and len(words) >= 2:
        return [], words[0], words[1]
    try:
        options, rest = split_options(line)
    except ValueError:
        return None
    words = rest.split()
    if len(words) < 2:
        return None
    return options, words[0], words[1]


def key_options(files: list[str], blob: str, client_addr: str | None) -> KeyLookup:
    """The first line in ``files`` for the key ``blob`` that sshd would accept from
    ``client_addr`` (from= and expiry-time checked as sshd does with UseDNS no)."""
    unreadable = []
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            unreadable.append(f"{path} ({exc.strerror})")
            continue
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parsed = split_key_line(line)
            if parsed is None or parsed[2] != blob:
                continue
            options = _accepted(parsed[0], client_addr)
            if options is not None:
                return KeyLookup(_key_options(path, number, options), None)
    where = ", ".join(files) or "(no AuthorizedKeysFile)"
    reason = f"the key that logged in is not in {where}"
    if unreadable:
        reason = f"cannot read {', '.join(unreadable)}"
    return KeyLookup(None, f"{reason} (an AuthorizedKeysCommand or a certificate?): its options, such as "
                     "command=, are unknown and not enforced by sshrec")


Options = list[tuple[str, str | None]]


def _accepted(options: Options, client_addr: str | None) -> Options | None:
    for name, value in options:
        lowered = name.lower()
        if lowered == "from" and value is not None and client_addr:
            try:
                if not address_matches(client_addr, value):
                    return None
            except ValueError:
                return None
        elif lowered == "expiry-time" and value is not None:
            try:
                if time.time() >= parse_expiry(value):
                    return None
            except ValueError:
                return None
    return options


def _key_options(path: str, line: int, options: Options) -> KeyOptions:
    command = None
    pty = True
    names = []
    for name, value in options:
        lowered = name.lower()
        names.append(lowered)
        if lowered == "command":
            command = value
        elif lowered in ("no-pty", "restrict"):
            pty = False
        elif lowered == "pty":
            pty = True
    return KeyOptions(path, line, command, pty, names)


def split_options(line: str) -> tuple[list[tuple[str, str | None]], str]:
    """OpenSSH's option syntax: comma-separated, values in double quotes where ``\\"`` is a quote.

    Returns the options and the rest of the line (the key).
    """
    options: list[tuple[str, str | None]] = []
    i = 0
    while True:
        start = i
        while i < len(line) and line[i] not in "=, \t":
            i += 1
        name = line[start:i]
        if not name:
            raise ValueError(f"empty option name at column {i + 1}")
        value: str | None = None
        if i < len(line) and line[i] == "=":
            i += 1
            if i >= len(line) or line[i] != '"':
                raise ValueError(f"option {name!r}: value must be in double quotes")
            i += 1
            chars = []
            while True:
                if i >= len(line):
                    raise ValueError(f"option {name!r}: missing closing quote")
                if line.startswith('\\"', i):
                    chars.append('"')
                    i += 2
                    continue
                if line[i] == '"':
                    i += 1
                    break
                chars.append(line[i])
                i += 1
            value = "".join(chars)
        options.append((name, value))
        if i >= len(line) or line[i] in " \t":
            return options, line[i:].strip()
        if line[i] != ",":
            raise ValueError(f"unexpected {line[i]!r} after option {name!r}")
        i += 1


def parse_expiry(value: str) -> float:
    """``YYYYMMDD[HHMM[SS]]``, local time, or UTC with a trailing ``Z`` (as sshd reads it)."""
    utc = value.endswith(("Z", "z"))
    digits = value[:-1] if utc else value
    if not digits.isdigit() or len(digits) not in (8, 12, 14):
        raise ValueError(f"expiry-time=\"{value}\" is not YYYYMMDD[HHMM[SS]][Z]")
    digits = digits.ljust(14, "0")
    try:
        parsed = time.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"expiry-time=\"{value}\" is not a valid date") from None
    import calendar

    return float(calendar.timegm(parsed) if utc else time.mktime(parsed))


def check_host_pattern(pattern: str) -> None:
    import ipaddress

    body = pattern[1:] if pattern.startswith("!") else pattern
    if not body:
        raise ValueError("empty pattern in from=")
    if "/" in body:
        try:
            ipaddress.ip_network(body, strict=False)
        except ValueError:
            raise ValueError(f"from= pattern {pattern!r} is not a valid address/masklen") from None


def address_matches(addr: str, patterns: str) -> bool:
    """sshd's from= with UseDNS no: the client address against ``*``/``?`` wildcards and CIDR
    blocks; ``!`` negates. The address is the only thing matched (no reverse DNS, so a host-name
    pattern never matches, exactly like sshd without UseDNS). No imports unless a CIDR block is
    there: this runs on every login with a from= key."""
    text = addr.lower()
    if text.startswith("::ffff:") and "." in text:  # an IPv4 client on an IPv6 socket
        text = text[7:]
    matched = False
    for pattern in patterns.split(","):
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        hit = _in_block(text, body) if "/" in body else wildcard_match(text, body.lower())
        if hit and negate:
            return False
        matched = matched or hit
    return matched


def _in_block(address: str, block: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False


def wildcard_match(text: str, pattern: str) -> bool:
    """sshd's match_pattern: ``*`` any run of characters, ``?`` one; no other specials."""
    t = p = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] in ("?", text[t]):
            t, p = t + 1, p + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    return pattern[p:].strip("*") == ""
