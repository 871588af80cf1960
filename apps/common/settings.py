"""The settings of one app process, read once from the environment in ``main()``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from podvisor.core.budget import DEFAULT_BUDGET
from podvisor.core.settings import Env

DEFAULT_PORTS = {"user": 3000, "product": 3002, "order": 3003}
DEFAULT_USER_SERVICE_URL = "http://127.0.0.1:3000"
DEFAULT_PRODUCT_SERVICE_URL = "http://127.0.0.1:3002"


@dataclass(frozen=True)
class Settings:
    """Everything an app process needs; built by :func:`load_settings` or directly in tests."""

    db_path: Path
    log_file: Path
    host: str = "127.0.0.1"
    port: int = 0
    threads: int = 8
    drain_seconds: float = DEFAULT_BUDGET.app_drain_seconds
    user_service_url: str = DEFAULT_USER_SERVICE_URL
    product_service_url: str = DEFAULT_PRODUCT_SERVICE_URL
    upstream_timeout: float = 5.0


def load_settings(pod: str, env: Env) -> Settings:
    """Build the settings of ``pod`` (user, product, order); SettingsError names a bad variable.

    Unset or empty variables take their defaults, so ``podvisor-user`` runs alone from a checkout
    with its state under ``./var/pods/<pod>/``.
    """
    if pod not in DEFAULT_PORTS:
        raise ValueError(f"unknown pod {pod!r}")
    base = Path("var") / "pods" / pod
    return Settings(
        host=env.host("APP_HOST"),
        port=env.port("APP_PORT", DEFAULT_PORTS[pod]),
        db_path=env.file("APP_DB", base / "data" / f"{pod}.db"),
        log_file=env.file("APP_LOG_FILE", base / "logs" / "app.log"),
        threads=env.integer("APP_THREADS", 8, 1, 1024),
        drain_seconds=env.seconds("APP_DRAIN_SECONDS", DEFAULT_BUDGET.app_drain_seconds),
        user_service_url=env.url("USER_SERVICE_URL", DEFAULT_USER_SERVICE_URL),
        product_service_url=env.url("PRODUCT_SERVICE_URL", DEFAULT_PRODUCT_SERVICE_URL),
        upstream_timeout=env.seconds("APP_UPSTREAM_TIMEOUT", 5.0, above=True),
    )

