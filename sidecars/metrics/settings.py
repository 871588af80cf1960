"""The metrics sidecar's settings, read once from the environment in main()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from podvisor.core.settings import Env, SettingsError
from podvisor.core.supervisor import SupervisorConfig

from .enricher import ADAPTERS

DEFAULT_PORT = 9101
DEFAULT_SCRAPE_TIMEOUT = 5.0
T = TypeVar("T")


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
    # A pod with several app programs (replicas on a socket podvisor holds): one program and one URL
    # (its slot's own port) per slot; app_program and target_url are then None.
    replica_programs: tuple[str, ...] = ()
    replica_urls: tuple[str | None, ...] = ()

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build Settings; raise SettingsError on the first bad value."""
        limit = env.raw("METRICS_MEMORY_LIMIT_BYTES")
        programs = _items(env, "METRICS_APP_PROGRAM", Env.name)
        urls = _items(env, "METRICS_TARGET_URL", Env.url)
        if urls and (len(urls) > 1 or len(programs) > 1) and len(urls) != len(programs):
            raise SettingsError("METRICS_TARGET_URL", env.raw("METRICS_TARGET_URL"),
                                f"must hold one URL per METRICS_APP_PROGRAM ({len(programs)}), got {len(urls)}")
        several = len(programs) > 1
        return cls(
            pod=env.name("POD_NAME"),
            service_name=env.required("SERVICE_NAME"),
            environment=env.text("ENVIRONMENT", "production"),
            host=env.host("METRICS_HOST"),
            port=env.port("METRICS_PORT", DEFAULT_PORT),
            target_url=None if several or not urls else urls[0],
            adapter=env.choice("METRICS_ADAPTER", "prometheus", ADAPTERS),
            logger_url=env.url("METRICS_LOGGER_URL"),
            app_program=None if several or not programs else programs[0],
            replica_programs=programs if several else (),
            replica_urls=(urls or (None,) * len(programs)) if several else (),
            app_pidfile=env.optional("METRICS_APP_PIDFILE"),
            scrape_timeout=env.seconds("METRICS_SCRAPE_TIMEOUT", DEFAULT_SCRAPE_TIMEOUT, above=True),
            memory_limit_bytes=None if limit is None else env.size("METRICS_MEMORY_LIMIT_BYTES", 0, 1),
            supervisor=SupervisorConfig.from_env(env),
        )



def _items(env: Env, key: str, parse: Callable[[Env, str], T]) -> tuple[T, ...]:
    """A comma-separated list, each item checked as `parse` checks one value; () when unset."""
    raw = env.raw(key)
    if raw is None:
        return ()
    items = []
    for item in raw.split(","):
        try:
            items.append(parse(Env({key: item.strip()}), key))
        except SettingsError as exc:
            raise SettingsError(key, raw, f"item {item.strip()!r}: {exc.problem}") from None
    return tuple(items)
