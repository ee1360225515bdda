"""Where sshrec keeps things: command line over environment over config file over defaults."""

from __future__ import annotations

import os

DEFAULT_CONFIG = "/etc/sshrec/sshrec.toml"
ROOT_HOME = "/var/lib/sshrec"


class ConfigError(Exception):
    """The configuration file cannot be used; the message names the file and the fix."""


class Settings:
    """Resolved settings (a plain class: this module is on the login path)."""

    __slots__ = ("home", "db_url", "on_failure", "format", "record_input")

    def __init__(self, home: str, db_url: str, on_failure: str = "allow", format: str = "v2",
                 record_input: bool = False) -> None:
        self.home = home
        self.db_url = db_url
        self.on_failure = on_failure
        self.format = format
        self.record_input = record_input


def default_home() -> str:
    if os.geteuid() == 0:
        return ROOT_HOME
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "sshrec")


def _read_config(path: str, required: bool) -> dict[str, object]:
    if not required and not os.path.exists(path):
        return {}  # the common case, and tomllib costs milliseconds on every login
    import tomllib

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: config file not found (SSHREC_CONFIG names it)") from None
        return {}
    except PermissionError:
        if required:
            raise ConfigError(f"{path}: config file is not readable") from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    known = {"home", "db", "on_failure", "format", "record_input"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {sorted(known)}")
    return data


def load_settings(home: str | None = None, db_url: str | None = None) -> Settings:
    """Resolve settings; explicit arguments (from the command line) win."""
    config_path = os.environ.get("SSHREC_CONFIG")
    config = _read_config(config_path or DEFAULT_CONFIG, required=bool(config_path))
    home = home or os.environ.get("SSHREC_HOME") or str(config.get("home") or "") or default_home()
    home = os.path.abspath(home)
    db_url = (
        db_url
        or os.environ.get("SSHREC_DB")
        or str(config.get("db") or "")
        or "sqlite:///" + os.path.join(home, "index.db")
    )
    on_failure = str(config.get("on_failure", "allow"))
    if on_failure not in ("allow", "deny"):
        raise ConfigError(f"on_failure must be 'allow' or 'deny', not {on_failure!r}")
    fmt = str(config.get("format", "v2"))
    if fmt not in ("v2", "v3"):
        raise ConfigError(f"format must be 'v2' or 'v3', not {fmt!r}")
    return Settings(
        home=home,
        db_url=db_url,
        on_failure=on_failure,
        format=fmt,
        record_input=bool(config.get("record_input", False)),
    )
