"""``sshrec serve``: the one-shot audited SSH server (asyncssh + the recorder).

server.py is the controller, session.py the asyncssh callbacks, child.py the recorder
process on a pty or pipes, launch.py its argv and environment, authorized_keys.py the key
file, loader.py the asyncssh import. Nothing here is imported on the login path.
"""

from .server import DEFAULT_PORT, DEFAULT_TIMEOUT, ServeError, ServeOptions, run

__all__ = ["DEFAULT_PORT", "DEFAULT_TIMEOUT", "ServeError", "ServeOptions", "run"]
