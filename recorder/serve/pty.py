"""The terminal serve gives the recorder: a pty pair set up as the client asked (RFC 4254 section 8).

The client's pty request carries its window size and terminal modes (erase character, echo,
CR/NL handling...). sshd applies them to the session's terminal; serve does the same to the
pty the recorder runs on, and the recorder copies those settings to the shell's own pty,
so the user's ^H-vs-^? and friends survive both layers.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
from collections.abc import Mapping

# opcode -> termios control character index
_CHARS = {1: "VINTR", 2: "VQUIT", 3: "VERASE", 4: "VKILL", 5: "VEOF", 6: "VEOL", 7: "VEOL2",
          8: "VSTART", 9: "VSTOP", 10: "VSUSP", 12: "VREPRINT", 13: "VWERASE", 14: "VLNEXT",
          18: "VDISCARD"}
# opcode -> (index in the tcgetattr list, flag name)
_FLAGS = {
    30: (0, "IGNPAR"), 31: (0, "PARMRK"), 32: (0, "INPCK"), 33: (0, "ISTRIP"), 34: (0, "INLCR"),
    35: (0, "IGNCR"), 36: (0, "ICRNL"), 37: (0, "IUCLC"), 38: (0, "IXON"), 39: (0, "IXANY"),
    40: (0, "IXOFF"), 41: (0, "IMAXBEL"), 42: (0, "IUTF8"),
    50: (3, "ISIG"), 51: (3, "ICANON"), 52: (3, "XCASE"), 53: (3, "ECHO"), 54: (3, "ECHOE"),
    55: (3, "ECHOK"), 56: (3, "ECHONL"), 57: (3, "NOFLSH"), 58: (3, "TOSTOP"), 59: (3, "IEXTEN"),
    60: (3, "ECHOCTL"), 61: (3, "ECHOKE"), 62: (3, "PENDIN"),
    70: (1, "OPOST"), 71: (1, "OLCUC"), 72: (1, "ONLCR"), 73: (1, "OCRNL"), 74: (1, "ONOCR"),
    75: (1, "ONLRET"),
    92: (2, "PARENB"), 93: (2, "PARODD"),
}
_CS7, _CS8, _ISPEED, _OSPEED = 90, 91, 128, 129
_DISABLED = 255  # "this control character is off" on the wire; 0 (_POSIX_VDISABLE) on Linux


def apply_modes(attrs: list, modes: Mapping[int, int]) -> list:
    """A copy of tcgetattr() ``attrs`` with the client's terminal modes applied; unknown ones are skipped."""
    new = [attrs[0], attrs[1], attrs[2], attrs[3], attrs[4], attrs[5], list(attrs[6])]
    for opcode, value in modes.items():
        if opcode in _CHARS:
            index = getattr(termios, _CHARS[opcode], None)
            if index is not None:
                new[6][index] = bytes([0 if value == _DISABLED else value & 0xFF])
        elif opcode in _FLAGS:
            slot, flag_name = _FLAGS[opcode]
            flag = getattr(termios, flag_name, None)
            if flag is not None:
                new[slot] = new[slot] | flag if value else new[slot] & ~flag
        elif opcode in (_CS7, _CS8) and value:
            new[2] = (new[2] & ~termios.CSIZE) | (termios.CS7 if opcode == _CS7 else termios.CS8)
        elif opcode in (_ISPEED, _OSPEED):
            speed = getattr(termios, f"B{value}", None)
            if speed is not None:
                new[4 if opcode == _ISPEED else 5] = speed
    return new


def set_window_size(fd: int, cols: int, rows: int, xpixels: int = 0, ypixels: int = 0) -> None:
    """TIOCSWINSZ: on the master, the kernel then sends SIGWINCH to the terminal's foreground group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows & 0xFFFF, cols & 0xFFFF,
                                                    xpixels & 0xFFFF, ypixels & 0xFFFF))


def open_pty(cols: int, rows: int, modes: Mapping[int, int]) -> tuple[int, int]:
    """(master, slave), the slave sized and moded as requested; both close-on-exec."""
    master, slave = os.openpty()
    try:
        set_window_size(slave, cols, rows)
        if modes:
            termios.tcsetattr(slave, termios.TCSANOW, apply_modes(termios.tcgetattr(slave), modes))
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return master, slave
