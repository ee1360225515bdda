"""Import asyncssh without its slowest start-up step.

``import asyncssh`` is most of serve's time to ready (measured: ~200 ms of which 20-50 ms,
depending on load, is asyncssh.crypto.pq calling ``ctypes.util.find_library`` twice to look
for liboqs, which runs ``ldconfig -p`` and, failing that, a compiler). The same question is answered
here by looking at the library directories directly: liboqs found there is still loaded
(sntrup761 key exchange stays available); the ML-KEM key exchange OpenSSH prefers comes
from the cryptography package either way.
"""

from __future__ import annotations

import glob
import os
import sys

LIBRARY_DIRS = ("/usr/local/lib", "/usr/local/lib64", "/usr/lib", "/usr/lib64", "/lib", "/lib64")
OQS_NAMES = ("oqs", "liboqs")


def find_oqs() -> str | None:
    """liboqs.so* in LD_LIBRARY_PATH or the usual directories (including the multiarch ones)."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for base in LIBRARY_DIRS:
        dirs.append(base)
        dirs.extend(sorted(glob.glob(os.path.join(base, "*-linux-gnu*"))))
    for directory in dirs:
        found = sorted(glob.glob(os.path.join(directory, "liboqs.so*")))
        if found:
            return found[0]
    return None


def load_asyncssh() -> None:
    """Import asyncssh (once) with ctypes.util.find_library answering the liboqs question quickly."""
    if "asyncssh" in sys.modules or not sys.platform.startswith("linux"):
        import asyncssh  # noqa: F401

        return
    import ctypes.util

    original = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        return find_oqs() if name in OQS_NAMES else original(name)

    ctypes.util.find_library = find_library
    try:
        import asyncssh  # noqa: F401
    finally:
        ctypes.util.find_library = original
