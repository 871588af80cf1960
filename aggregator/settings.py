"""The aggregator's settings: one frozen dataclass built once from the environment in main()."""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MIB = 1024 * 1024
READ_AUTH_MODES = ("auto", "always", "never")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting."""

    def __init__(self, name: str, value: str, reason: str) -> None:
        super().__init__(f"bad setting {name}={value!r}: {reason}")
        self.name = name


@dataclass(frozen=True)
class Settings:
    """Everything the aggregator process reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8080
    db_path: str = "./var/aggregator/logs.db"
    token_file: str = "./var/aggregator/token"
    read_auth: str = "auto"
    max_body_bytes: int = 8 * MIB
    max_entry_bytes: int = 256 * 1024
    retention_days: float = 7.0
    retention_bytes: int = 1024 * MIB
    retention_interval: float = 60.0
    query_timeout_ms: int = 2000
    threads: int = 16
    tail_max_streams: int = 8
    tail_heartbeat: float = 15.0
    controller_url: str | None = None
    metrics_urls: tuple[tuple[str, str], ...] = field(default=())
    pods_interval: float = 5.0
    log_level: str = "INFO"

    @property
    def reads_need_token(self) -> bool:
        """Whether GET endpoints need the token: `auto` means only when not bound to loopback."""
        if self.read_auth == "always":
            return True
        if self.read_auth == "never":
            return False
        return not is_loopback(self.host)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the AGGREGATOR_* variables; raise SettingsError naming the bad one."""
        env = os.environ if environ is None else environ
        r = _Reader(env)
        db_path = r.text("AGGREGATOR_DB", cls.db_path)
        token_default = os.path.join(os.path.dirname(db_path) or ".", "token")
        threads = r.integer("AGGREGATOR_THREADS", cls.threads, minimum=2, maximum=512)
        tail_default = min(cls.tail_max_streams, threads // 2)
        settings = cls(
            host=r.text("AGGREGATOR_HOST", cls.host),
            port=r.integer("AGGREGATOR_PORT", cls.port, minimum=0, maximum=65535),
            db_path=db_path,
            token_file=r.text("AGGREGATOR_TOKEN_FILE", token_default),
            read_auth=r.choice("AGGREGATOR_READ_AUTH", cls.read_auth, READ_AUTH_MODES),
            max_body_bytes=r.size("AGGREGATOR_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            max_entry_bytes=r.size("AGGREGATOR_MAX_ENTRY_BYTES", cls.max_entry_bytes, minimum=256),
            retention_days=r.number("AGGREGATOR_RETENTION_DAYS", cls.retention_days, minimum=0),
            retention_bytes=r.size("AGGREGATOR_RETENTION_BYTES", cls.retention_bytes,
                                   minimum=64 * 1024, zero_disables=True),
            retention_interval=r.number("AGGREGATOR_RETENTION_INTERVAL", cls.retention_interval,
                                        minimum=0.1),
            query_timeout_ms=r.integer("AGGREGATOR_QUERY_TIMEOUT_MS", cls.query_timeout_ms,
                                       minimum=1, maximum=600_000),
            threads=threads,
            tail_max_streams=r.integer("AGGREGATOR_TAIL_MAX_STREAMS", tail_default, minimum=0,
                                       maximum=threads - 1),
            tail_heartbeat=r.number("AGGREGATOR_TAIL_HEARTBEAT", cls.tail_heartbeat, minimum=0.05),
            controller_url=r.url("AGGREGATOR_CONTROLLER_URL"),
            metrics_urls=r.pod_urls("AGGREGATOR_METRICS_URLS"),
            pods_interval=r.number("AGGREGATOR_PODS_INTERVAL", cls.pods_interval, minimum=0.1),
            log_level=r.choice("AGGREGATOR_LOG_LEVEL", cls.log_level,
                               ("DEBUG", "INFO", "WARNING", "ERROR")),
        )
        if settings.max_entry_bytes > settings.max_body_bytes:
            raise SettingsError("AGGREGATOR_MAX_ENTRY_BYTES", str(settings.max_entry_bytes),
                                "must not exceed AGGREGATOR_MAX_BODY_BYTES")
        if not settings.host:
            raise SettingsError("AGGREGATOR_HOST", "", "must not be empty")
        return settings


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_size(text: str) -> int:
    """Parse `8388608`, `8MiB`, `512k`, `1G` into bytes (binary units); raise ValueError."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


class _Reader:
    """Small pure converters over one environment mapping; each error names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        for option in choices:
            if raw.lower() == option.lower():
                return option
        raise SettingsError(name, raw, f"must be one of {', '.join(choices)}")

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, raw, "must be an integer") from None
        if not minimum <= value <= maximum:
            raise SettingsError(name, raw, f"must be between {minimum} and {maximum}")
        return value

    def number(self, name: str, default: float, minimum: float) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, raw, "must be a number") from None
        if not value >= minimum or value == float("inf"):
            raise SettingsError(name, raw, f"must be a finite number >= {minimum:g}")
        return value

    def size(self, name: str, default: int, minimum: int, zero_disables: bool = False) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = parse_size(raw)
        except ValueError:
            raise SettingsError(name, raw, "must be a byte count such as 8388608 or 8MiB") from None
        if value < minimum and not (zero_disables and value == 0):
            raise SettingsError(name, raw, f"must be at least {minimum} bytes")
        return value

    def url(self, name: str) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        if not _is_http_url(raw):
            raise SettingsError(name, raw, "must be an http:// or https:// URL")
        return raw.rstrip("/")

    def pod_urls(self, name: str) -> tuple[tuple[str, str], ...]:
        raw = self._raw(name)
        if raw is None:
            return ()
        pairs = []
        for item in raw.split(","):
            pod, sep, url = item.strip().partition("=")
            if not sep or not pod.strip() or not _is_http_url(url.strip()):
                raise SettingsError(name, raw, f"item {item.strip()!r} is not pod=http://host:port/path")
            pairs.append((pod.strip(), url.strip()))
        return tuple(pairs)


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
