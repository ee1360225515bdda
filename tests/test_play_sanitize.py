"""The safe-by-default filter: each sequence that acts on the auditor's machine is dropped,
everything that draws is kept, and a sequence split across events is still recognised."""

from __future__ import annotations

import pytest
from sshrec.player.sanitize import Sanitizer, sanitize

ESC = "\x1b"
# name -> a sequence that must never reach the auditor's terminal
DANGEROUS = {
    "OSC 52 clipboard write (BEL)": f"{ESC}]52;c;cm0gLXJmIH4K\x07",
    "OSC 52 clipboard write (ST)": f"{ESC}]52;c;cm0gLXJmIH4K{ESC}\\",
    "OSC 52 clipboard query": f"{ESC}]52;c;?\x07",
    "OSC 0 window and icon title": f"{ESC}]0;innocent title\x07",
    "OSC 1 icon title": f"{ESC}]1;icon\x07",
    "OSC 2 window title": f"{ESC}]2;window{ESC}\\",
    "OSC 8 hyperlink to file://": f"{ESC}]8;;file:///etc/shadow{ESC}\\",
    "OSC 8 hyperlink to FILE: (any case)": f"{ESC}]8;id=1;FILE:///home/auditor/.ssh/id_ed25519\x07",
    "OSC 10 foreground colour query": f"{ESC}]10;?\x07",
    "OSC 11 background colour query": f"{ESC}]11;?{ESC}\\",
    "OSC 4 palette query": f"{ESC}]4;1;?\x07",
    "OSC 7 working directory": f"{ESC}]7;file://host/tmp\x07",
    "OSC 9 notification": f"{ESC}]9;you have been pwned\x07",
    "OSC 777 notification": f"{ESC}]777;notify;title;body\x07",
    "OSC 1337 iTerm2 file transfer": f"{ESC}]1337;File=name=eA==;inline=0:eA==\x07",
    "OSC 46 xterm log file": f"{ESC}]46;/tmp/log\x07",
    "OSC 50 font query": f"{ESC}]50;?\x07",
    "DA1 primary device attributes": f"{ESC}[c",
    "DA1 with 0": f"{ESC}[0c",
    "DA2 secondary device attributes": f"{ESC}[>c",
    "DA3 tertiary device attributes": f"{ESC}[=c",
    "DSR status report": f"{ESC}[5n",
    "DSR/CPR cursor position report": f"{ESC}[6n",
    "DECXCPR": f"{ESC}[?6n",
    "DECRQM mode query": f"{ESC}[?2004$p",
    "DECRQSS setting query": f"{ESC}P$qm{ESC}\\",
    "XTGETTCAP": f"{ESC}P+q544e{ESC}\\",
    "XTVERSION": f"{ESC}[>0q",
    "XTWINOPS title report": f"{ESC}[21t",
    "XTWINOPS window move": f"{ESC}[3;0;0t",
    "XTWINOPS window resize": f"{ESC}[8;100;300t",
    "DECREQTPARM": f"{ESC}[x",
    "DECID": f"{ESC}Z",
    "ENQ answerback": "\x05",
    "8-bit CSI DSR": "\x9b6n",
    "8-bit OSC title": "\x9d0;title\x07",
    "C0 inside CSI DSR": f"{ESC}[6\x00n",
    "media copy (printer)": f"{ESC}[5i",
    "mouse tracking on": f"{ESC}[?1000h",
    "SGR mouse on": f"{ESC}[?1006h",
    "focus reports on": f"{ESC}[?1004h",
    "bracketed paste on": f"{ESC}[?2004h",
    "132-column switch": f"{ESC}[?3h",
    "keyboard lock (KAM)": f"{ESC}[2h",
    "local echo (SRM off)": f"{ESC}[12l",
    "modifyOtherKeys": f"{ESC}[>4;2m",
    "kitty keyboard push": f"{ESC}[>1u",
    "kitty keyboard query": f"{ESC}[?u",
    "APC kitty graphics (can read files)": f"{ESC}_Gt=f;L2V0Yy9wYXNzd2Q={ESC}\\",
    "PM": f"{ESC}^privacy{ESC}\\",
    "SOS": f"{ESC}Xstring{ESC}\\",
    "DECUDK user defined keys": f"{ESC}P0;1|17/6C73{ESC}\\",
    "tmux passthrough": f"{ESC}Ptmux;{ESC}{ESC}]52;c;eA==\x07{ESC}\\",
    "DECRQCRA checksum": f"{ESC}[1;1;1;1;1;1*y",
    "XTSAVE private modes": f"{ESC}[?1000s",
    "XTRESTORE private modes": f"{ESC}[?1000r",
}

# must pass unchanged
DRAWING = {
    "text and UTF-8": "hello, café 日本 ✓\r\n",
    "SGR colours": f"{ESC}[1;31mred{ESC}[0m {ESC}[38;5;208mx{ESC}[38:2:1:2:3my",
    "cursor moves and erase": f"{ESC}[H{ESC}[2J{ESC}[3;5H{ESC}[K{ESC}[2A{ESC}[10G",
    "alternate screen and cursor visibility": f"{ESC}[?1049h{ESC}[?25l{ESC}[?25h{ESC}[?1049l",
    "scroll region": f"{ESC}[5;20r{ESC}M{ESC}D",
    "charset and keypad": f"{ESC}(0qqq{ESC}(B{ESC}={ESC}>",
    "save/restore cursor": f"{ESC}7{ESC}8{ESC}[s{ESC}[u",
    "full reset": f"{ESC}c",
    "cursor shape": f"{ESC}[2 q",
    "soft reset": f"{ESC}[!p",
    "application cursor keys": f"{ESC}[?1h",
    "synchronized output": f"{ESC}[?2026h{ESC}[?2026l",
    "OSC 8 https hyperlink": f"{ESC}]8;;https://example.com/{ESC}\\link{ESC}]8;;{ESC}\\",
    "OSC 11 set background": f"{ESC}]11;#102030\x07",
    "OSC 4 set palette": f"{ESC}]4;1;rgb:ff/00/00{ESC}\\",
    "OSC 104 reset palette": f"{ESC}]104\x07",
    "sixel image": f"{ESC}Pq#0;2;0;0;0#1;2;100;100;0#1~~@@vv@@~~@@~~$-{ESC}\\",
    "NEL (8-bit)": "a\x85b",
}


@pytest.mark.parametrize("name", list(DANGEROUS))
def test_dangerous_sequence_is_dropped(name: str) -> None:
    sequence = DANGEROUS[name]
    assert sanitize(f"before{sequence}after") == "beforeafter"


@pytest.mark.parametrize("name", list(DANGEROUS))
def test_dangerous_sequence_split_at_every_point_is_dropped(name: str) -> None:
    text = f"A{DANGEROUS[name]}B"
    for cut in range(len(text) + 1):
        for second in range(cut, len(text) + 1):
            sanitizer = Sanitizer()
            out = sanitizer.feed(text[:cut]) + sanitizer.feed(text[cut:second]) + sanitizer.feed(text[second:])
            assert out + sanitizer.flush() == "AB", (cut, second)


@pytest.mark.parametrize("name", list(DRAWING))
def test_drawing_sequence_is_kept(name: str) -> None:
    text = DRAWING[name]
    assert sanitize(text) == text
    for cut in range(len(text) + 1):
        sanitizer = Sanitizer()
        assert sanitizer.feed(text[:cut]) + sanitizer.feed(text[cut:]) == text, cut


def test_mixed_private_modes_keep_the_drawing_ones() -> None:
    assert sanitize(f"{ESC}[?1049;1000;25h") == f"{ESC}[?1049;25h"
    assert sanitize(f"{ESC}[?1000;1006h") == ""


def test_a_large_sixel_streams_through_without_waiting_for_its_end() -> None:
    sanitizer = Sanitizer()
    start = sanitizer.feed(f"x{ESC}Pq#0;2;0;0;0")
    assert start == f"x{ESC}Pq#0;2;0;0;0"
    body = "~" * 200_000
    assert sanitizer.feed(body) == body
    assert sanitizer.feed(f"{ESC}\\y") == f"{ESC}\\y"


def test_an_unterminated_osc_longer_than_the_limit_is_dropped_to_its_end() -> None:
    sanitizer = Sanitizer()
    out = sanitizer.feed(f"a{ESC}]52;c;" + "A" * 70_000) + sanitizer.feed("B" * 1000) + sanitizer.feed("\x07z")
    assert out == "az"


def test_colour_changes_are_noted_for_the_reset_on_exit() -> None:
    sanitizer = Sanitizer()
    sanitizer.feed(f"{ESC}]8;;https://x{ESC}\\")
    assert not sanitizer.colors_changed
    sanitizer.feed(f"{ESC}]11;#000000\x07")
    assert sanitizer.colors_changed


def test_plain_text_is_returned_as_is() -> None:
    text = "x" * 10_000
    assert Sanitizer().feed(text) is text
