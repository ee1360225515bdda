"""Make user-supplied text safe to print on an auditor's terminal.

A user controls ``SSH_ORIGINAL_COMMAND``, file names and window titles. Printed raw, an
``ESC ] 52`` sequence can rewrite the auditor's clipboard and ``ESC [ 2 J`` can wipe the
evidence off the screen, so every such string goes through :func:`visible` first: control
and invisible characters become backslash escapes that can be read but not obeyed.
Backslash itself is doubled so that a literal ``\\e`` typed by the user cannot pass for a
real escape character.
"""

from __future__ import annotations

import json
from typing import Any

_NAMED = {"\x1b": "\\e", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape_char(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str | None) -> str:
    """``text`` with every non-printable character (C0, C1, DEL, bidi and other format
    characters, unassigned or private code points) shown as a backslash escape."""
    if not text:
        return ""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escape_char(c) for c in text)


def _json_unsafe(char: str) -> bool:
    return not char.isprintable() and char not in "\n\r\t "


def safe_json(value: Any, indent: int | None = None) -> str:
    """JSON for a terminal or a pipe: non-ASCII text stays readable, but characters a
    terminal could act on (C1 controls such as U+009B CSI, bidi overrides) are written as
    ``\\uXXXX`` escapes, which every JSON parser reads back to the same string."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    if text.isascii() or all(c.isprintable() or c in "\n " for c in text):
        return text
    out = []
    for char in text:
        if _json_unsafe(char):
            code = ord(char)
            if code >= 0x10000:  # JSON spells astral characters as a surrogate pair
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)
