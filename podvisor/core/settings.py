"""Settings from the environment: one reader with typed fields for every podvisor process.

Each process builds one frozen dataclass from an `Env` in its `main()`. A bad value raises
`SettingsError`, whose text names the variable and the value (``LOGGER_PORT='x': must be an
integer``); `exit_bad_setting` prints that one line and gives the exit status 2. An `Env` records
every name it was asked for, set or not, which is how docs/interfaces.md is checked against the code.
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

EXIT_BAD_SETTING = 2
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class SettingsError(ValueError):
    """A setting is missing or unusable; str() is the one line an operator sees."""

    def __init__(self, name: str, value: str | None, problem: str) -> None:
        super().__init__(f"{name}: {problem}" if value is None else f"{name}={value!r}: {problem}")
        self.name, self.value, self.problem = name, value, problem


def exit_bad_setting(prog: str, exc: SettingsError) -> int:
    """Print `prog: bad setting NAME='value': problem` on stderr; return the exit status (2)."""
    sys.stderr.write(f"{prog}: bad setting {exc}\n")
    sys.stderr.flush()
    return EXIT_BAD_SETTING


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_size(text: str) -> int:
    """'8388608', '8MiB', '512k', '1.5G', '256MB' -> bytes (binary units); ValueError otherwise."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class Env:
    """Typed reads of one environment mapping; blank counts as unset and takes the default."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = os.environ if env is None else env
        self.names: list[str] = []  # every name asked for, in order

    def raw(self, name: str) -> str | None:
        if name not in self.names:
            self.names.append(name)
        value = self.env.get(name)
        return None if value is None or not value.strip() else value.strip()

    def required(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise SettingsError(name, None, "is required but not set")
        return value

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def optional(self, name: str) -> str | None:
        return self.raw(name)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.raw(name)
        if raw is None:
            return default
        for option in choices:
            if raw.lower() == option.lower():
                return option
        raise SettingsError(name, raw, f"must be one of {', '.join(choices)}")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw, 10)
        except ValueError:
            raise SettingsError(name, raw, "must be an integer") from None
        if not low <= value <= high:
            raise SettingsError(name, raw, f"must be between {low} and {high}")
        return value

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        return None if self.raw(name) is None else self.integer(name, 0, low, high)

    def port(self, name: str, default: int) -> int:
        """0 means any free port (the bound one is logged)."""
        return self.integer(name, default, 0, 65535)

    def number(self, name: str, default: float, low: float = 0.0, *, above: bool = False) -> float:
        """A finite number >= low (> low with `above`); nan and inf are refused."""
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, raw, "must be a number") from None
        if not math.isfinite(value) or value < low or (above and value == low):
            raise SettingsError(name, raw, f"must be a finite number {'>' if above else '>='} {low:g}")
        return value

    def seconds(self, name: str, default: float, low: float = 0.0, *, above: bool = False) -> float:
        return self.number(name, default, low, above=above)

    def size(self, name: str, default: int, low: int, *, zero_disables: bool = False) -> int:
        """Bytes: '8388608', '8MiB', '512k'; 0 allowed with `zero_disables`."""
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = parse_size(raw)
        except ValueError:
            raise SettingsError(name, raw, "must be a byte count such as 8388608 or 8MiB") from None
        if value < low and not (zero_disables and value == 0):
            raise SettingsError(name, raw, f"must be at least {low} bytes" + (" (or 0: off)" if zero_disables
                                                                             else ""))
        return value

    def url(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        """An http(s) URL without its trailing '/'."""
        raw = self.required(name) if required else self.raw(name)
        if raw is None:
            return default
        parts = urlsplit(raw)
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise SettingsError(name, raw, "has a bad port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(name, raw, "must be an http:// or https:// URL such as http://127.0.0.1:8080")
        return raw.rstrip("/")

    def host(self, name: str, default: str = "127.0.0.1") -> str:
        raw = self.raw(name)
        if raw is None:
            return default
        if any(ch.isspace() or ch in "/?#" for ch in raw):
            raise SettingsError(name, raw, "must be a host name or address")
        return raw

    def path(self, name: str, default: Path | str | None = None, *, required: bool = False) -> Path | None:
        raw = self.required(name) if required else self.raw(name)
        if raw is None:
            return None if default is None else Path(default)
        return Path(raw)

    def file(self, name: str, default: Path | str | None = None, *, required: bool = False) -> Path | None:
        """A path that names a file (not '', '.', '..' or a folder ending in '/')."""
        raw = self.raw(name)
        path = self.path(name, default, required=required)
        if path is not None and (path.name in ("", ".", "..") or (raw or "").endswith("/")):
            raise SettingsError(name, raw if raw is not None else str(path), "must name a file")
        return path

    def name(self, name: str, default: str | None = None) -> str:
        """A short identifier: no ':', '/' or white space (pod names, program names)."""
        raw = self.raw(name)
        if raw is None:
            if default is None:
                raise SettingsError(name, None, "is required but not set")
            return default
        if len(raw) > 100 or any(c in raw for c in ":/") or any(c.isspace() for c in raw):
            raise SettingsError(name, raw, "must be a short name without ':', '/' or spaces")
        return raw

    def hosts(self, name: str) -> tuple[str, ...]:
        """'logs.example.com, 10.0.0.5' -> ('logs.example.com', '10.0.0.5'); empty when unset."""
        raw = self.raw(name)
        if raw is None:
            return ()
        names = tuple(item.strip() for item in raw.split(",") if item.strip())
        for item in names:
            if any(ch.isspace() or ch in "/?#@" for ch in item):
                raise SettingsError(name, raw, f"item {item!r} is not a host name or address")
        return names

    def pairs(self, name: str) -> tuple[tuple[str, str], ...]:
        """'a=http://x:1,b=http://y:2' -> (('a', 'http://x:1'), ('b', 'http://y:2'))."""
        raw = self.raw(name)
        if raw is None:
            return ()
        pairs = []
        for item in raw.split(","):
            key, sep, url = item.strip().partition("=")
            parts = urlsplit(url.strip())
            if not sep or not key.strip() or parts.scheme not in ("http", "https") or not parts.netloc:
                raise SettingsError(name, raw, f"item {item.strip()!r} is not NAME=http://host:port/path")
            pairs.append((key.strip(), url.strip()))
        return tuple(pairs)
