"""The settings of one app process, read once from the environment in ``main()``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORTS = {"user": 3000, "product": 3002, "order": 3003}
DEFAULT_USER_SERVICE_URL = "http://127.0.0.1:3000"
DEFAULT_PRODUCT_SERVICE_URL = "http://127.0.0.1:3002"


class ConfigError(ValueError):
    """A setting has a value the process cannot run with; the message starts with its name."""


@dataclass(frozen=True)
class Settings:
    """Everything an app process needs; built by :func:`load_settings` or directly in tests."""

    db_path: Path
    log_file: Path
    host: str = "127.0.0.1"
    port: int = 0
    threads: int = 8
    user_service_url: str = DEFAULT_USER_SERVICE_URL
    product_service_url: str = DEFAULT_PRODUCT_SERVICE_URL
    upstream_timeout: float = 5.0


def load_settings(pod: str, environ: Mapping[str, str]) -> Settings:
    """Build the settings of ``pod`` (user, product, order); raise ConfigError naming a bad variable.

    Unset or empty variables take their defaults, so ``podvisor-user`` runs alone from a checkout
    with its state under ``./var/pods/<pod>/``.
    """
    if pod not in DEFAULT_PORTS:
        raise ConfigError(f"pod: unknown pod {pod!r}")
    base = Path("var") / "pods" / pod
    return Settings(
        host=_host(environ, "APP_HOST", "127.0.0.1"),
        port=_int(environ, "APP_PORT", DEFAULT_PORTS[pod], minimum=0, maximum=65535),
        db_path=_path(environ, "APP_DB", base / "data" / f"{pod}.db"),
        log_file=_path(environ, "APP_LOG_FILE", base / "logs" / "app.log"),
        threads=_int(environ, "APP_THREADS", 8, minimum=1, maximum=1024),
        user_service_url=_url(environ, "USER_SERVICE_URL", DEFAULT_USER_SERVICE_URL),
        product_service_url=_url(environ, "PRODUCT_SERVICE_URL", DEFAULT_PRODUCT_SERVICE_URL),
        upstream_timeout=_seconds(environ, "APP_UPSTREAM_TIMEOUT", 5.0),
    )


def _raw(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _host(environ: Mapping[str, str], name: str, default: str) -> str:
    value = _raw(environ, name)
    if value is None:
        return default
    if any(ch.isspace() or ch in "/?#" for ch in value):
        raise ConfigError(f"{name}: not a host name or address: {value!r}")
    return value


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise ConfigError(f"{name}: must be an integer, got {value!r}") from None
    if not minimum <= number <= maximum:
        raise ConfigError(f"{name}: must be between {minimum} and {maximum}, got {number}")
    return number


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}: must be a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name}: must be a positive number of seconds, got {value!r}")
    return number


def _path(environ: Mapping[str, str], name: str, default: Path) -> Path:
    value = _raw(environ, name)
    path = default if value is None else Path(value)
    if path.name in ("", ".", ".."):
        raise ConfigError(f"{name}: must name a file, got {str(path)!r}")
    return path


def _url(environ: Mapping[str, str], name: str, default: str) -> str:
    value = _raw(environ, name)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: must be an http(s) URL like http://127.0.0.1:3000, got {value!r}")
    return value.rstrip("/")
