"""The aggregator's settings: one frozen dataclass built once from the environment in main()."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from podvisor.aggregator.store.chconfig import parse_url
from podvisor.core.settings import Env, SettingsError, is_loopback
from podvisor.core.supervisor import SupervisorConfig

MIB = 1024 * 1024
READ_AUTH_MODES = ("auto", "always", "never")


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
    tail_max_per_client: int = 2
    tail_heartbeat: float = 15.0
    controller_url: str | None = None
    metrics_urls: tuple[tuple[str, str], ...] = field(default=())
    pods_interval: float = 5.0
    log_level: str = "INFO"
    allowed_hosts: tuple[str, ...] = field(default=())
    logger_credentials: tuple[tuple[str, str, str], ...] = field(default=())  # (pod, service, file)
    # supervisord, for the pods page's start/stop/restart (it sets these in every child's environment)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    store_url: str | None = None  # clickhouse+http://...: the ClickHouse store instead of SQLite at db_path
    store_wait: float = 30.0  # at start, how long an unreachable store is waited for before exiting

    @property
    def reads_need_token(self) -> bool:
        """Whether GET endpoints need the token: `auto` means only when not bound to loopback."""
        if self.read_auth == "always":
            return True
        if self.read_auth == "never":
            return False
        return not is_loopback(self.host)

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build settings from the AGGREGATOR_* variables; raise SettingsError naming the bad one."""
        db_path = env.text("AGGREGATOR_DB", cls.db_path)
        token_default = os.path.join(os.path.dirname(db_path) or ".", "token")
        threads = env.integer("AGGREGATOR_THREADS", cls.threads, 2, 512)
        settings = cls(
            host=env.host("AGGREGATOR_HOST", cls.host),
            port=env.port("AGGREGATOR_PORT", cls.port),
            db_path=db_path,
            token_file=env.text("AGGREGATOR_TOKEN_FILE", token_default),
            read_auth=env.choice("AGGREGATOR_READ_AUTH", cls.read_auth, READ_AUTH_MODES),
            max_body_bytes=env.size("AGGREGATOR_MAX_BODY_BYTES", cls.max_body_bytes, 1024),
            max_entry_bytes=env.size("AGGREGATOR_MAX_ENTRY_BYTES", cls.max_entry_bytes, 256),
            retention_days=env.number("AGGREGATOR_RETENTION_DAYS", cls.retention_days),
            retention_bytes=env.size("AGGREGATOR_RETENTION_BYTES", cls.retention_bytes, 64 * 1024,
                                     zero_disables=True),
            retention_interval=env.seconds("AGGREGATOR_RETENTION_INTERVAL", cls.retention_interval, 0.1),
            query_timeout_ms=env.integer("AGGREGATOR_QUERY_TIMEOUT_MS", cls.query_timeout_ms, 1, 600_000),
            threads=threads,
            tail_max_streams=env.integer("AGGREGATOR_TAIL_MAX_STREAMS", min(cls.tail_max_streams, threads // 2),
                                         0, threads - 1),
            tail_max_per_client=env.integer("AGGREGATOR_TAIL_MAX_PER_CLIENT", cls.tail_max_per_client, 1, 512),
            tail_heartbeat=env.seconds("AGGREGATOR_TAIL_HEARTBEAT", cls.tail_heartbeat, 0.05),
            controller_url=env.url("AGGREGATOR_CONTROLLER_URL"),
            metrics_urls=env.pairs("AGGREGATOR_METRICS_URLS"),
            pods_interval=env.seconds("AGGREGATOR_PODS_INTERVAL", cls.pods_interval, 0.1),
            log_level=env.choice("AGGREGATOR_LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            allowed_hosts=env.hosts("AGGREGATOR_ALLOWED_HOSTS"),
            logger_credentials=logger_credentials(env, "AGGREGATOR_LOGGER_CREDENTIALS"),
            supervisor=SupervisorConfig.from_env(env),
            store_url=store_url(env, "AGGREGATOR_STORE"),
            store_wait=env.seconds("AGGREGATOR_STORE_WAIT", cls.store_wait),
        )
        if settings.max_entry_bytes > settings.max_body_bytes:
            raise SettingsError("AGGREGATOR_MAX_ENTRY_BYTES", str(settings.max_entry_bytes),
                                "must not exceed AGGREGATOR_MAX_BODY_BYTES")
        return settings


def store_url(env: Env, name: str) -> str | None:
    """The ClickHouse store's URL (chconfig.py), checked; None (unset or `sqlite`) for SQLite."""
    raw = env.raw(name)
    if raw is None or raw.lower() == "sqlite":
        return None
    try:
        parse_url(raw)
    except ValueError as exc:
        raise SettingsError(name, raw, f"{exc} (clickhouse+http://HOST:8123[,HOST:8123...]/DATABASE?cluster=NAME)"
                            ) from None
    return raw


def logger_credentials(env: Env, name: str) -> tuple[tuple[str, str, str], ...]:
    """'user:user-service=/abs/var/pods/user/logger/credential,...' -> ((pod, service, path), ...):
    the credential files the aggregator writes at its start (a service name holds no ',' or '=/')."""
    raw = env.raw(name)
    if raw is None:
        return ()
    items = []
    for item in raw.split(","):
        pod, colon, rest = item.strip().partition(":")
        service, sep, path = rest.partition("=/")
        if not colon or not sep or not pod or not service or any(c in pod for c in "/= "):
            raise SettingsError(name, raw, f"item {item.strip()!r} is not POD:SERVICE=/absolute/path")
        items.append((pod, service, "/" + path))
    return tuple(items)
