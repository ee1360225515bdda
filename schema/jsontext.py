"""JSON text for what the recorder writes (the session record, the cast header): the json
module costs 7 ms at import (it pulls in re), on every SSH login. Readers use json itself.

Output is what ``json.dumps(value, ensure_ascii=False)`` gives (``indent`` as json's), with
one difference that matters: lone surrogates (bytes that were not UTF-8, kept by
surrogateescape in paths) are escaped as ``\\udcXX``, so the text always encodes to UTF-8
and json reads them back unchanged.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
                 ord("\b"): "\\b", ord("\f"): "\\f"})
_ESCAPES.update({i: f"\\u{i:04x}" for i in range(0xD800, 0xE000)})


def string(text: str) -> str:
    """``text`` as a JSON string literal."""
    return '"' + text.translate(_ESCAPES) + '"'


def dumps(value: Any, indent: int | None = None) -> str:
    """``value`` (dict, list, str, int, float, bool, None, nested) as JSON text."""
    parts: list[str] = []
    _write(value, parts, indent, 0)
    return "".join(parts)


def _write(value: Any, out: list[str], indent: int | None, depth: int) -> None:
    if isinstance(value, str):
        out.append(string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not JSON")
        out.append(repr(value))
    elif isinstance(value, dict):
        _container(out, "{", "}", [(string(str(k)) + ": ", v) for k, v in value.items()], indent, depth)
    elif isinstance(value, (list, tuple)):
        _container(out, "[", "]", [("", v) for v in value], indent, depth)
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _container(out: list[str], opening: str, closing: str, items: list[tuple[str, Any]], indent: int | None,
               depth: int) -> None:
    if not items:
        out.append(opening + closing)
        return
    inner = "\n" + " " * (indent * (depth + 1)) if indent is not None else ""
    separator = "," + inner if indent is not None else ", "
    out.append(opening + inner)
    for number, (prefix, item) in enumerate(items):
        if number:
            out.append(separator)
        out.append(prefix)
        _write(item, out, indent, depth + 1)
    out.append(("\n" + " " * (indent * depth) if indent is not None else "") + closing)
