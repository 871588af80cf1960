"""The metrics sidecar's settings, read once from the environment in main().

Bad values raise SettingsError naming the variable; main() prints that one line and exits 2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sidecars.settings import SettingsError

DEFAULT_PORT = 9101
DEFAULT_SCRAPE_TIMEOUT = 5.0
SUPERVISOR_ENV = ("SUPERVISOR_SERVER_URL", "SUPERVISOR_USERNAME", "SUPERVISOR_PASSWORD")


@dataclass(frozen=True)
class Settings:
    pod: str
    service_name: str
    target_url: str
    environment: str = "production"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    logger_url: str | None = None
    controller_url: str | None = None
    app_program: str | None = None
    app_pidfile: str | None = None
    scrape_timeout: float = DEFAULT_SCRAPE_TIMEOUT
    memory_limit_bytes: int | None = None
    # supervisord's own variables, passed to childutils.getRPCInterface (password kept out of repr)
    supervisor_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    threads: int = 4

    @property
    def supervisor_url(self) -> str | None:
        return self.supervisor_env.get("SUPERVISOR_SERVER_URL") or None


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; raise SettingsError on the first bad value."""
    return Settings(
        pod=_required(env, "POD_NAME"),
        service_name=_required(env, "SERVICE_NAME"),
        environment=_optional(env, "ENVIRONMENT") or "production",
        host=_optional(env, "METRICS_HOST") or "127.0.0.1",
        port=_port(env, "METRICS_PORT"),
        target_url=_url(env, "METRICS_TARGET_URL", required=True) or "",
        logger_url=_url(env, "METRICS_LOGGER_URL"),
        controller_url=_url(env, "METRICS_CONTROLLER_URL"),
        app_program=_optional(env, "METRICS_APP_PROGRAM"),
        app_pidfile=_optional(env, "METRICS_APP_PIDFILE"),
        scrape_timeout=_seconds(env, "METRICS_SCRAPE_TIMEOUT", DEFAULT_SCRAPE_TIMEOUT),
        memory_limit_bytes=_positive_int(env, "METRICS_MEMORY_LIMIT_BYTES"),
        supervisor_env={k: env[k] for k in SUPERVISOR_ENV if env.get(k)},
    )


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _required(env: Mapping[str, str], name: str) -> str:
    value = _optional(env, name)
    if value is None:
        raise SettingsError(name, "required, not set")
    return value


def _port(env: Mapping[str, str], name: str) -> int:
    raw = _optional(env, name)
    if raw is None:
        return DEFAULT_PORT
    if not (raw.isascii() and raw.isdigit()) or not 0 <= int(raw) <= 65535:
        raise SettingsError(name, f"expected a port 0-65535 (0: any free port), got {raw!r}")
    return int(raw)


def _url(env: Mapping[str, str], name: str, required: bool = False) -> str | None:
    raw = _required(env, name) if required else _optional(env, name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(name, f"expected an http:// or https:// URL, got {raw!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingsError(name, f"bad port in URL {raw!r}") from None
    return raw


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(name, f"expected a positive number of seconds, got {raw!r}")
    return value


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = _optional(env, name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
        raise SettingsError(name, f"expected a positive integer (bytes), got {raw!r}")
    return int(raw)
