"""Keep what draws, drop what acts on the auditor's machine: a streaming filter for replayed output.

A recording is text a user controlled, replayed on an auditor's terminal. Most of it draws
(text, colours, cursor moves, screen switches); a few sequences instead make the terminal do
something on the auditor's side:

- answer back (the answer arrives as *typed input*): DA ``ESC [ c``/``ESC [ > c``, DSR/CPR
  ``ESC [ 6 n``, DECRQM ``ESC [ ? 1 $ p``, DECRQSS ``ESC P $ q``, XTGETTCAP, XTVERSION, window
  reports ``ESC [ 21 t`` (the title, a classic injection), colour queries ``ESC ] 11 ; ?``,
  ENQ (answerback), DECID ``ESC Z``;
- act on the desktop: OSC 52 (clipboard), OSC 0/1/2 (window and icon titles), OSC 7/9/777/1337
  (working directory, notifications, iTerm2 file transfer), OSC 46 (xterm log file), window
  moves and resizes ``ESC [ 3 ; x ; y t``, DECCOLM/DECSCPP (132 columns), printer ``ESC [ 5 i``;
- change what the keyboard or mouse send afterwards: mouse and focus reporting, bracketed
  paste, keyboard-lock/local-echo modes, xterm modifyKeys, the kitty keyboard protocol;
- hyperlinks whose target is a ``file://`` URL (OSC 8), which open files on the auditor's host.

Policy is an allow-list where a family mixes both kinds: OSC is kept only for colours (4, 5,
10-19, 104, 105, 110-119, when they set rather than query) and OSC 8 to non-file targets; DCS
only for sixel/ReGIS graphics; SOS/PM/APC never (the kitty graphics protocol can read files).
Private modes (``ESC [ ? ... h``) are filtered one number at a time, so ``ESC [ ? 1049 ; 1000 h``
keeps the screen switch and loses the mouse.

The filter keeps state across events: an escape sequence split between two reads is held back
until it is complete (an unterminated string is dropped past :data:`CARRY_LIMIT`), and a kept
sixel image streams through without being buffered. C1 forms (U+009B for CSI, ...) are treated
like their ``ESC`` spellings, and C0 controls inside a CSI are seen through, as xterm does.
"""

from __future__ import annotations

import re

CARRY_LIMIT = 64 * 1024  # longest sequence held back waiting for its end

# Anything that needs a decision: ENQ, ESC, the C1 controls.
_SPECIAL = re.compile("[\x05\x1b\x80-\x9f]")
# A stretch that is certainly safe: plain text and the common drawing sequences. Skipping it in
# one regex match keeps the filter near C speed on ordinary coloured output.
_SAFE_RUN = re.compile(
    "(?:[^\x05\x1b\x80-\x9f]+"
    "|\x1b\\[[0-9;:]*[@A-HJ-MPSTX`abdefgjkmrsu]"
    "|\x1b[()*+][0-9A-Za-z<>=%\"]"
    "|\x1b[78=>DEHMNOc]"
    ")+"
)
_C0_INSIDE = "\x00-\x17\x19\x1c-\x1f"  # executed inside a sequence by a terminal, not aborting it
_CSI_BODY = re.compile(f"([0-?{_C0_INSIDE}]*)([ -/{_C0_INSIDE}]*)([@-~])")
_CSI_PREFIX = re.compile(f"[0-?{_C0_INSIDE}]*[ -/{_C0_INSIDE}]*")
_C0_STRIP = re.compile(f"[{_C0_INSIDE}]")
_ESC_BODY = re.compile("([ -/]*)([0-~])")
_ESC_PARTIAL = re.compile("[ -/]*\\Z")
_DCS_HEAD = re.compile("([0-9;:]*)([ -/]*)([@-~])")
_DCS_HEAD_PARTIAL = re.compile("[0-9;:]*[ -/]*\\Z")
_OSC_END = re.compile("[\x07\x18\x1a\x1b\x9c]")
_STRING_END = re.compile("[\x18\x1a\x1b\x9c]")

# Private modes (ESC [ ? n h/l) that make the terminal send input or reshape its window.
DROPPED_PRIVATE_MODES = frozenset({
    3, 40,  # 132-column switch: resizes the window
    9, 1000, 1001, 1002, 1003, 1005, 1006, 1015, 1016,  # mouse reporting
    1004,  # focus in/out reports
    2004,  # bracketed paste
    1034, 1035, 1036, 1037, 1039,  # meta/alt key encodings
    2048,  # in-band resize reports
    996, 2031,  # colour scheme change reports
})
DROPPED_ANSI_MODES = frozenset({2, 12})  # keyboard lock; local echo (SRM)
KEPT_OSC = frozenset({4, 5, 104, 105} | set(range(10, 20)) | set(range(110, 120)))
COLOR_RESET = "\x1b]104\x07\x1b]110\x07\x1b]111\x07\x1b]112\x07"  # undoes every kept colour OSC

_C1_TO_ESC = {"\x9b": "[", "\x9d": "]", "\x90": "P", "\x98": "X", "\x9e": "^", "\x9f": "_"}


def csi_verdict(params: str, inter: str, final: str) -> str | None:
    """The CSI to write (possibly with some modes removed), or None to drop it.

    ``params`` and ``inter`` are the parameter and intermediate bytes, C0 controls removed.
    """
    marker = params[:1] if params[:1] in ("<", "=", ">", "?") else ""
    if final in "cinx" and not inter:
        return None  # DA1/2/3, media copy (printer), DSR/CPR, DECREQTPARM
    if final == "t" and inter != "$":
        return None  # window manipulation and reports (DECRARA, "$t", draws)
    if final == "q" and (marker == ">" or not inter):
        return None  # XTVERSION, DECLL (keyboard LEDs)
    if final == "m" and marker:
        return None  # XTMODKEYS / XTQMODKEYS
    if final == "u" and (marker or inter == "$"):
        return None  # kitty keyboard protocol, DECRQTSR
    if (final, inter) in {("p", "$"), ("w", "$"), ("w", "'"), ("y", "*"), ("|", "#"), ("|", "'"),
                          ("|", "$"), ("|", "*"), ("{", "'"), ("z", "'"), ("t", " ")}:
        return None  # mode/state/checksum/SGR/locator reports, DECSCPP/DECSNLS resizes
    if final in "ST" and marker in ("?", ">"):
        return None  # XTSMGRAPHICS query, title-mode reset
    if final in "rs" and marker == "?":
        return None  # XTRESTORE/XTSAVE of private modes (could bring back mouse reporting)
    if final in "hl" and not inter:
        return _filter_modes(params, marker, final)
    return ""  # keep as it came


def _filter_modes(params: str, marker: str, final: str) -> str | None:
    dropped = DROPPED_PRIVATE_MODES if marker == "?" else DROPPED_ANSI_MODES
    if marker not in ("", "?"):
        return None
    body = params[len(marker):]
    numbers = body.split(";")
    kept = [n for n in numbers if not (n.isdigit() and int(n) in dropped)]
    if len(kept) == len(numbers):
        return ""
    if not kept:
        return None
    return f"\x1b[{marker}{';'.join(kept)}{final}"


def osc_keep(payload: str) -> bool:
    """Whether an OSC (payload between ``ESC ]`` and its terminator) draws rather than acts."""
    head, _, rest = payload.partition(";")
    if not head.isdigit():
        return False
    number = int(head)
    if number == 8:
        uri = rest.partition(";")[2].strip().lower()
        return not uri.startswith("file:")
    if number in KEPT_OSC:
        return "?" not in rest.split(";")
    return False


def dcs_keep(params: str, inter: str, final: str) -> bool:
    """Only graphics: sixel (``ESC P ... q``) and ReGIS (``ESC P ... p``)."""
    return not inter and final in "qp"


class Sanitizer:
    """Feed output text in order; get back the same text without the sequences listed above.

    ``colors_changed`` tells the player to reset the palette when it exits.
    """

    def __init__(self) -> None:
        self._carry = ""
        # inside a string sequence: "pass"/"drop" (DCS, SOS, PM, APC) or "drop-osc" (an overlong
        # OSC, which BEL also ends) until its terminator
        self._string: str | None = None
        self.colors_changed = False
        self.dropped = 0

    def reset(self) -> None:
        """Forget a pending sequence (after a seek, the stream restarts elsewhere)."""
        self._carry = ""
        self._string = None

    def feed(self, text: str) -> str:
        if self._carry:
            text = self._carry + text
            self._carry = ""
        out: list[str] = []
        pos = 0
        if self._string is not None:
            pos = self._continue_string(text, 0, out)
            if pos < 0:
                return "".join(out)
        elif not _SPECIAL.search(text):
            return text
        size = len(text)
        while pos < size:
            safe = _SAFE_RUN.match(text, pos)
            if safe:
                out.append(safe.group())
                pos = safe.end()
                if pos >= size:
                    break
            pos = self._special(text, pos, out)
            if pos < 0:
                break
        return "".join(out)

    def flush(self) -> str:
        """End of the recording: an incomplete sequence is dropped, never half-written."""
        self.reset()
        return ""

    # -- one sequence --------------------------------------------------------------------------

    def _special(self, text: str, pos: int, out: list[str]) -> int:
        """Handle the special character at ``pos``; return where to go on, or -1 when the rest
        of ``text`` was carried over (or consumed by a string sequence)."""
        char = text[pos]
        if char == "\x05":
            self.dropped += 1
            return pos + 1
        if char == "\x1b":
            if pos + 1 >= len(text):
                return self._hold(text, pos)
            kind = text[pos + 1]
            body = pos + 2
        elif char in _C1_TO_ESC:
            kind = _C1_TO_ESC[char]
            body = pos + 1
        else:
            if char in "\x9a\x9c":  # SCI/DECID in 8 bits; a stray ST
                self.dropped += 1
                return pos + 1
            out.append(char)  # other C1 controls (NEL, IND, RI, ...) draw
            return pos + 1
        if kind == "[":
            return self._csi(text, pos, body, out)
        if kind == "]":
            return self._osc(text, pos, body, out)
        if kind in "PX^_":
            return self._dcs(text, pos, body, out, graphics=kind == "P")
        return self._esc(text, pos, out)

    def _hold(self, text: str, start: int) -> int:
        """Carry ``text[start:]`` to the next event (dropped when absurdly long)."""
        if len(text) - start <= CARRY_LIMIT:
            self._carry = text[start:]
        else:
            self.dropped += 1
        return -1

    def _esc(self, text: str, pos: int, out: list[str]) -> int:
        match = _ESC_BODY.match(text, pos + 1)
        if match is None:
            if _ESC_PARTIAL.match(text, pos + 1):
                return self._hold(text, pos)
            if text[pos + 1] != "\x1b":  # ESC ESC: the first one does nothing
                out.append("\x1b")  # ESC before a control: the terminal runs the control
            return pos + 1
        if match.group(2) in "Z\\" and not match.group(1):
            self.dropped += 1  # DECID (same answer as DA); a stray ST (does nothing)
        else:
            out.append(text[pos:match.end()])
        return match.end()

    def _csi(self, text: str, pos: int, body: int, out: list[str]) -> int:
        match = _CSI_BODY.match(text, body)
        if match is None:
            end = _CSI_PREFIX.match(text, body).end()  # type: ignore[union-attr]
            if end >= len(text):
                return self._hold(text, pos)
            # aborted by CAN/SUB (consumed), ESC or C1 (which start something new), or junk
            self.dropped += 1
            return end + 1 if text[end] in "\x18\x1a\x7f" else end
        params, inter, final = match.groups()
        if _C0_STRIP.search(match.group()):
            params, inter = _C0_STRIP.sub("", params), _C0_STRIP.sub("", inter)
        verdict = csi_verdict(params, inter, final)
        if verdict is None:
            self.dropped += 1
        elif verdict:
            out.append(verdict)
        else:
            out.append(text[pos:match.end()])
        return match.end()

    def _osc(self, text: str, pos: int, body: int, out: list[str]) -> int:
        end = _OSC_END.search(text, body)
        if end is None:
            if len(text) - pos > CARRY_LIMIT:
                self._string = "drop-osc"  # nothing we keep is that long
                self.dropped += 1
                return -1
            return self._hold(text, pos)
        stop = end.start()
        terminator = text[stop]
        if terminator == "\x1b":
            if stop + 1 >= len(text):
                return self._hold(text, pos)
            after = stop + 2 if text[stop + 1] == "\\" else stop  # ST, or an ESC that aborts
        else:
            after = stop + 1
        payload = text[body:stop]
        if terminator not in "\x18\x1a" and osc_keep(payload):
            out.append(text[pos:after])
            if not payload.startswith("8;"):
                self.colors_changed = True
        else:
            self.dropped += 1
        return after

    def _dcs(self, text: str, pos: int, body: int, out: list[str], graphics: bool) -> int:
        keep = False
        if graphics:
            head = _DCS_HEAD.match(text, body)
            if head is None:
                if _DCS_HEAD_PARTIAL.match(text, body):
                    return self._hold(text, pos)
            else:
                keep = dcs_keep(*head.groups())
        if keep:
            self._string = "pass"
        else:
            self._string = "drop"
            self.dropped += 1
        if keep:
            out.append(text[pos:body])
        return self._continue_string(text, body, out)

    def _continue_string(self, text: str, pos: int, out: list[str]) -> int:
        """Inside a DCS/SOS/PM/APC string: pass or drop up to and including its terminator."""
        passing = self._string == "pass"
        end = (_OSC_END if self._string == "drop-osc" else _STRING_END).search(text, pos)
        if end is None:
            if passing:
                out.append(text[pos:])
            return -1
        stop = end.start()
        if text[stop] == "\x1b":
            if stop + 1 >= len(text):
                if passing:
                    out.append(text[pos:stop])
                self._carry = "\x1b"  # maybe the first half of ST
                return -1
            after = stop + 2 if text[stop + 1] == "\\" else stop
        else:
            after = stop + 1
        if passing:
            out.append(text[pos:after])
        self._string = None
        return after


def sanitize(text: str) -> str:
    """``text`` filtered as one complete piece (tests, exports)."""
    sanitizer = Sanitizer()
    return sanitizer.feed(text) + sanitizer.flush()
