"""Where sshrec keeps things: command line over environment over config file over defaults."""

from __future__ import annotations

import os

DEFAULT_CONFIG = "/etc/sshrec/sshrec.toml"
ROOT_HOME = "/var/lib/sshrec"


class ConfigError(Exception):
    """The configuration file cannot be used; the message names the file and the fix."""


# What sshd reads when sshd_config has no AuthorizedKeysFile (sshd_config(5)).
DEFAULT_AUTHORIZED_KEYS = ".ssh/authorized_keys .ssh/authorized_keys2"
KNOWN = ("home", "db", "on_failure", "format", "record_input", "authorized_keys_file", "deny_interactive",
         "mosh", "transfer_contents", "shell", "sink", "collector_socket", "collector_buffer",
         "collector_timeout", "storage", "s3_endpoint_url", "keep_local")
DEFAULT_COLLECTOR_SOCKET = "/run/sshrec/collector.sock"


class Settings:
    """Resolved settings (a plain class: this module is on the login path).

    ``home`` is SSHREC_HOME; ``spool`` is where this caller's own recordings go: ``home``
    itself, or on a shared spool (see :mod:`.spool`) the caller's folder in it, unless the
    caller owns ``home`` (``admin``: root, or whoever made the spool), who reads it all.
    """

    __slots__ = ("home", "db_url", "on_failure", "format", "record_input", "spool", "shared",
                 "admin", "authorized_keys_file", "deny_interactive", "mosh", "transfer_contents", "shell",
                 "sink", "collector_socket", "collector_buffer", "collector_timeout", "storage",
                 "s3_endpoint_url", "keep_local")

    def __init__(self, home: str, db_url: str, on_failure: str | None = None, format: str = "v2",
                 record_input: bool = False, spool: str | None = None, shared: bool = False,
                 admin: bool = True, authorized_keys_file: str = DEFAULT_AUTHORIZED_KEYS,
                 deny_interactive: bool = False, mosh: str = "deny", transfer_contents: bool = False,
                 shell: str | None = None, sink: str = "spool",
                 collector_socket: str = DEFAULT_COLLECTOR_SOCKET, collector_buffer: int = 8 << 20,
                 collector_timeout: float = 10.0, storage: str | None = None,
                 s3_endpoint_url: str | None = None, keep_local: int | None = None) -> None:
        self.home = home
        self.db_url = db_url
        self.on_failure = on_failure
        self.format = format
        self.record_input = record_input
        self.spool = spool or home
        self.shared = shared
        self.admin = admin
        self.authorized_keys_file = authorized_keys_file
        self.deny_interactive = deny_interactive
        self.mosh = mosh
        self.transfer_contents = transfer_contents
        self.shell = shell  # the shell sessions run, in place of the passwd one (see sshrec doctor)
        self.sink = sink  # "spool": recorders write files; "collector": they stream to the collector
        self.collector_socket = collector_socket
        self.collector_buffer = collector_buffer
        self.collector_timeout = collector_timeout
        self.storage = storage  # "s3://BUCKET/PREFIX" (or "file:///DIR"): where `sshrec ship` sends recordings
        self.s3_endpoint_url = s3_endpoint_url  # an S3-compatible server; None: AWS
        self.keep_local = keep_local  # days a shipped recording stays in the spool; None: for ever

    def on_failure_for(self, sink: str) -> str:
        """What happens when a session cannot be recorded, for the sink it would go to."""
        return self.on_failure or ("deny" if sink == "collector" else "allow")

    def read_spools(self) -> list[str]:
        """The spools this caller reads and indexes: all of them for the admin of a shared one."""
        if self.shared and self.admin:
            from .spool import spools_under

            return spools_under(self.home)
        return [self.spool]


def default_home() -> str:
    if os.geteuid() == 0:
        return ROOT_HOME
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "sshrec")


def read_config(path: str, required: bool) -> dict[str, object]:
    if not required and not os.path.exists(path):
        return {}  # no config file: nothing to parse
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: config file not found (SSHREC_CONFIG names it)") from None
        return {}
    except PermissionError:
        if required:
            raise ConfigError(f"{path}: config file is not readable") from None
        return {}
    data = simple_toml(raw)
    if data is None:  # anything beyond flat key = value lines: the real parser (and its errors)
        import tomllib

        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - set(KNOWN))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}")
    return data


_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def simple_toml(raw: bytes) -> dict[str, object] | None:
    """The TOML every sshrec config is: ``key = "string" | 'string' | true | false | 123`` lines
    and comments. tomllib costs 9 ms at import, on every login of a configured host; None
    for anything else, which tomllib then reads (or explains)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    data: dict[str, object] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, rest = line.partition("=")
        key, rest = key.strip(), rest.strip()
        if not equals or not key or not set(key) <= _BARE_KEY or key in data:
            return None
        value, after = _simple_value(rest)
        if value is None or (after and not after.startswith("#")):
            return None
        data[key] = value
    return data


def _simple_value(text: str) -> tuple[object, str]:
    """(value, what follows it) for a string without escapes, a boolean or an integer."""
    if text[:1] in ('"', "'"):
        end = text.find(text[0], 1)
        if end < 0 or (text[0] == '"' and "\\" in text[1:end]):
            return None, ""
        return text[1:end], text[end + 1 :].strip()
    word, _, after = text.partition(" ")
    word = word.split("#", 1)[0]
    after = text[len(word) :].strip()
    if word in ("true", "false"):
        return word == "true", after
    digits = word[1:] if word[:1] in "+-" else word
    if digits.isdigit() and (digits == "0" or not digits.startswith("0")):
        return int(word), after
    return None, ""


def _caller_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _owns(home: str, uid: int) -> bool:
    """Whether ``uid`` administers the spool at ``home`` (root does; so does its owner)."""
    if uid == 0:
        return True
    try:
        return os.stat(home).st_uid == uid
    except OSError:
        return True  # not made yet: it will be the caller's own


def _choice(config: dict[str, object], name: str, allowed: tuple[str, ...], where: str) -> str:
    """A setting with a few allowed values, the first being the default."""
    value = config.get(name, allowed[0])
    if value not in allowed:
        raise ConfigError(f"{where}: {name} must be {' or '.join(map(repr, allowed))}, not {value!r}")
    return str(value)


def _positive(config: dict[str, object], name: str, default: int, where: str) -> int | float:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}: {name} must be a positive number, not {value!r}")
    return value


def _flag(config: dict[str, object], name: str, where: str) -> bool:
    value = config.get(name, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {name} must be true or false, not {value!r}")
    return value


def load_settings(home: str | None = None, db_url: str | None = None) -> Settings:
    """Resolve settings; explicit arguments (from the command line) win."""
    config_path = os.environ.get("SSHREC_CONFIG")
    config = read_config(config_path or DEFAULT_CONFIG, required=bool(config_path))
    home = home or os.environ.get("SSHREC_HOME") or str(config.get("home") or "") or default_home()
    home = os.path.abspath(home)
    uid = os.geteuid()
    shared = os.path.isdir(os.path.join(home, "users"))
    admin = _owns(home, uid)
    spool = home if admin or not shared else os.path.join(home, "users", _caller_name(uid))
    # On a shared spool the configured index is the owner's: users get one of their own.
    configured = str(config.get("db") or "") if admin or not shared else ""
    db_url = (
        db_url
        or os.environ.get("SSHREC_DB")
        or configured
        or "sqlite:///" + os.path.join(spool, "index.db")
    )
    where = config_path or DEFAULT_CONFIG
    sink = _choice(config, "sink", ("spool", "collector"), where)
    # None when not set: through the collector it then means deny (nothing goes unrecorded),
    # writing the spool directly allow (see on_failure_for).
    on_failure = _choice(config, "on_failure", ("allow", "deny"), where) if "on_failure" in config else None
    collector_buffer = _positive(config, "collector_buffer", 8 << 20, where)
    collector_timeout = float(_positive(config, "collector_timeout", 10, where))
    fmt = _choice(config, "format", ("v2", "v3"), where)
    mosh = _choice(config, "mosh", ("deny", "allow"), where)
    flags = {name: _flag(config, name, where)
             for name in ("record_input", "deny_interactive", "transfer_contents")}
    shell = config.get("shell")
    if shell is not None and (not isinstance(shell, str) or not os.path.isabs(shell)):
        raise ConfigError(f"{where}: shell must be an absolute path such as \"/bin/bash\", not {shell!r}")
    storage, endpoint, keep_local = _storage_settings(config, where)
    keys_file = config.get("authorized_keys_file", DEFAULT_AUTHORIZED_KEYS)
    if not isinstance(keys_file, str) or not keys_file.split():
        raise ConfigError(f"{where}: authorized_keys_file must be a string of paths as in "
                          f"sshd_config's AuthorizedKeysFile, e.g. {DEFAULT_AUTHORIZED_KEYS!r}")
    return Settings(
        home=home,
        db_url=db_url,
        on_failure=on_failure,
        format=fmt,
        record_input=flags["record_input"],
        spool=spool,
        shared=shared,
        admin=admin,
        authorized_keys_file=keys_file,
        deny_interactive=flags["deny_interactive"],
        mosh=mosh,
        transfer_contents=flags["transfer_contents"],
        shell=shell,
        sink=sink,
        collector_socket=str(config.get("collector_socket") or DEFAULT_COLLECTOR_SOCKET),
        collector_buffer=int(collector_buffer),
        collector_timeout=collector_timeout,
        storage=storage,
        s3_endpoint_url=endpoint,
        keep_local=keep_local,
    )


def _storage_settings(config: dict[str, object], where: str) -> tuple[str | None, str | None, int | None]:
    """storage, s3_endpoint_url and keep_local, checked (the fleet settings, see README "Fleet")."""
    storage = config.get("storage")
    if storage is not None and (not isinstance(storage, str) or not storage.startswith(("s3://", "file:///"))
                                or storage.rstrip("/") in ("s3:", "s3:/")):
        raise ConfigError(f"{where}: storage must be \"s3://BUCKET/PREFIX\" (or \"file:///DIR\"), "
                          f"not {storage!r}")
    endpoint = config.get("s3_endpoint_url")
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}: s3_endpoint_url must be a URL such as \"https://s3.example.org\", "
                          f"not {endpoint!r}")
    keep = config.get("keep_local")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
        raise ConfigError(f"{where}: keep_local must be a number of days (0: remove once shipped), "
                          f"not {keep!r}")
    return storage, endpoint, keep  # type: ignore[return-value]
