"""The metrics sidecar's settings, read once from the environment in main()."""

from __future__ import annotations

from dataclasses import dataclass, field

from podvisor.core.settings import Env
from podvisor.core.supervisor import SupervisorConfig

from .enricher import ADAPTERS

DEFAULT_PORT = 9101
DEFAULT_SCRAPE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Settings:
    pod: str
    service_name: str
    target_url: str | None = None  # None: the app serves no metrics; process and logger series only
    adapter: str = "prometheus"  # what target_url answers: Prometheus exposition, or nginx's stub_status
    environment: str = "production"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    logger_url: str | None = None
    app_program: str | None = None
    app_pidfile: str | None = None
    scrape_timeout: float = DEFAULT_SCRAPE_TIMEOUT
    memory_limit_bytes: int | None = None
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    threads: int = 4

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build Settings; raise SettingsError on the first bad value."""
        limit = env.raw("METRICS_MEMORY_LIMIT_BYTES")
        return cls(
            pod=env.name("POD_NAME"),
            service_name=env.required("SERVICE_NAME"),
            environment=env.text("ENVIRONMENT", "production"),
            host=env.host("METRICS_HOST"),
            port=env.port("METRICS_PORT", DEFAULT_PORT),
            target_url=env.url("METRICS_TARGET_URL"),
            adapter=env.choice("METRICS_ADAPTER", "prometheus", ADAPTERS),
            logger_url=env.url("METRICS_LOGGER_URL"),
            app_program=env.optional("METRICS_APP_PROGRAM"),
            app_pidfile=env.optional("METRICS_APP_PIDFILE"),
            scrape_timeout=env.seconds("METRICS_SCRAPE_TIMEOUT", DEFAULT_SCRAPE_TIMEOUT, above=True),
            memory_limit_bytes=None if limit is None else env.size("METRICS_MEMORY_LIMIT_BYTES", 0, 1),
            supervisor=SupervisorConfig.from_env(env),
        )

