"""Settings of the logging sidecar: one frozen dataclass read from the environment in main().

Required: POD_NAME, SERVICE_NAME, LOGGER_LOG_DIR, LOGGER_STATE_DIR, LOGGER_CREDENTIAL_FILE (this
logger's own credential, which the aggregator writes at its start; an operator's logger may point it
at the aggregator's token file instead).
Optional, with defaults:
  ENVIRONMENT                 production
  LOGGER_AGGREGATOR_URL       http://127.0.0.1:8080 (https://... across hosts: a fleet's store host)
  LOGGER_CA_FILE              unset: the system's CAs verify an https aggregator; else only this CA
                              (PEM) does (podvisor-render --fleet writes the fleet's)
  LOGGER_HOST / LOGGER_PORT   127.0.0.1 / 0 (0 = any free port; the bound port is logged)
  LOGGER_APP_PROGRAM          unset: on SIGTERM do not wait for the app (see main.py)
  SUPERVISOR_SERVER_URL       set by supervisord: how the logger asks for its app's state
  LOGGER_GRACE_SECONDS        whole shutdown budget, app wait included (podvisor.core.budget: the
                              pod's grace plus the sidecar drain; 30 for the default grace of 20)
  LOGGER_LOG_LEVEL            INFO   DEBUG, INFO, WARNING or ERROR
  LOGGER_STDERR_LEVEL         WARNING  the level of a stderr line that does not carry its own
  LOGGER_PROBE_PATHS          unset  comma-separated paths whose GET lines are probes (marked "probe": true)
  LOGGER_ROUTE_PREFIXES       unset  comma-separated path prefixes (a gateway's routes): access-log lines
                                     are counted per prefix, other paths as route "other" (routes.py)
Tuning knobs:
  LOGGER_BATCH_LINES          4000   entries per POST at most
  LOGGER_BATCH_BYTES          4 MiB  uncompressed JSON bytes per POST at most (one bigger entry goes alone)
  LOGGER_FLUSH_INTERVAL       0.05   seconds an entry may wait for its batch to fill
  LOGGER_RESCAN_INTERVAL      2.0    with file events (inotify): seconds between rescans when no event came
  LOGGER_POLL_INTERVAL        0.1    without file events: seconds between directory scans (stat only)
  LOGGER_IDLE_POLL_INTERVAL   0.25   without file events: seconds between scans after a second with nothing new
  LOGGER_MAX_LINE_BYTES       64 KiB longer lines are stored truncated, with a marker
  LOGGER_MAX_ENTRY_BYTES      256 KiB largest entry (as the aggregator measures it: compact ASCII JSON);
                                     keep it <= AGGREGATOR_MAX_ENTRY_BYTES. A bigger entry has its
                                     message cut to fit, with the same marker, instead of being refused
  LOGGER_BACKOFF_INITIAL      0.2    seconds before the first retry of a failed POST (doubles each time)
  LOGGER_BACKOFF_MAX          10     seconds between retries at most; jitter spreads each delay over
                                     [50%, 100%]; there is no retry limit
  LOGGER_REQUEST_TIMEOUT      10     seconds to wait for the aggregator's answer; past it the batch is
                                     sent again (the store absorbs it if the first one was stored)
  LOGGER_SPOOL_MAX_BYTES      256 MiB disk kept alive for rotated-away unshipped data
  LOGGER_MAX_INFLIGHT_BYTES   16 MiB read-ahead bound: past it, reading pauses (the files are the buffer)
  LOGGER_MAX_INFLIGHT_BATCHES 3      batches shipped at once (one connection each); acknowledgements may
                                     come in any order, the checkpoint follows the acknowledged prefix
  LOGGER_ROTATED_IDLE_SECONDS 5      a rotated-away file quiet this long gets no more bytes: its
                                     partial last line is flushed; a vanished file's unshipped
                                     range is reported lost
  LOGGER_CHECKPOINT_INTERVAL  1.0    seconds between checkpoint writes while acks arrive (a crash in
                                     between only re-sends entries the store already has)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from podvisor.core.budget import DEFAULT_BUDGET
from podvisor.core.settings import Env, SettingsError
from podvisor.core.supervisor import SupervisorConfig

KIB = 1024
MIB = 1024 * KIB
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    """Everything the logger reads from its environment."""

    pod: str
    service_name: str
    environment: str
    log_dir: Path
    state_dir: Path
    aggregator_url: str
    credential_file: Path
    ca_file: Path | None = None  # the CA an https aggregator's certificate must chain to
    host: str = "127.0.0.1"
    port: int = 0
    app_program: str | None = None
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    grace_seconds: float = DEFAULT_BUDGET.logger_seconds
    log_level: str = "INFO"
    stderr_level: str = "WARNING"  # the level of a stderr line that does not say its own
    probe_paths: tuple[str, ...] = ()  # GETs of these paths are probes and scrapes: marked "probe": true
    route_prefixes: tuple[str, ...] = ()  # access-log lines are counted per prefix (a gateway's routes)
    batch_lines: int = 4000
    batch_bytes: int = 4 * MIB
    flush_interval: float = 0.05
    rescan_interval: float = 2.0
    poll_interval: float = 0.1
    idle_poll_interval: float = 0.25
    max_line_bytes: int = 64 * KIB
    max_entry_bytes: int = 256 * KIB
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    request_timeout: float = 10.0
    spool_max_bytes: int = 256 * MIB
    max_inflight_bytes: int = 16 * MIB
    max_inflight_batches: int = 3
    rotated_idle_seconds: float = 5.0
    checkpoint_interval: float = 1.0

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        """Build settings from the environment; raises SettingsError naming the bad setting."""
        state_dir = env.path("LOGGER_STATE_DIR", required=True)
        log_dir = env.path("LOGGER_LOG_DIR", required=True)
        if state_dir.resolve() == log_dir.resolve():
            raise SettingsError("LOGGER_STATE_DIR", str(state_dir), "must differ from LOGGER_LOG_DIR")
        settings = cls(
            pod=env.name("POD_NAME"),
            service_name=env.required("SERVICE_NAME"),
            environment=env.text("ENVIRONMENT", "production"),
            log_dir=log_dir,
            state_dir=state_dir,
            aggregator_url=env.url("LOGGER_AGGREGATOR_URL", "http://127.0.0.1:8080"),
            credential_file=env.path("LOGGER_CREDENTIAL_FILE", required=True),
            ca_file=env.path("LOGGER_CA_FILE"),
            host=env.host("LOGGER_HOST"),
            port=env.port("LOGGER_PORT", 0),
            app_program=env.optional("LOGGER_APP_PROGRAM"),
            supervisor=SupervisorConfig.from_env(env),
            grace_seconds=env.seconds("LOGGER_GRACE_SECONDS", DEFAULT_BUDGET.logger_seconds),
            log_level=env.choice("LOGGER_LOG_LEVEL", "INFO", LOG_LEVELS),
            stderr_level=env.choice("LOGGER_STDERR_LEVEL", "WARNING", (*LOG_LEVELS, "CRITICAL")),
            probe_paths=_paths(env, "LOGGER_PROBE_PATHS"),
            route_prefixes=_paths(env, "LOGGER_ROUTE_PREFIXES"),
            batch_lines=env.integer("LOGGER_BATCH_LINES", 4000, 1, 1_000_000),
            batch_bytes=env.integer("LOGGER_BATCH_BYTES", 4 * MIB, KIB, 1024 * MIB),
            flush_interval=env.seconds("LOGGER_FLUSH_INTERVAL", 0.05),
            rescan_interval=env.seconds("LOGGER_RESCAN_INTERVAL", 2.0, 0.01),
            poll_interval=env.seconds("LOGGER_POLL_INTERVAL", 0.1, 0.001),
            idle_poll_interval=env.seconds("LOGGER_IDLE_POLL_INTERVAL", 0.25, 0.001),
            max_line_bytes=env.integer("LOGGER_MAX_LINE_BYTES", 64 * KIB, 64, 64 * MIB),
            max_entry_bytes=env.integer("LOGGER_MAX_ENTRY_BYTES", 256 * KIB, 4 * KIB, 1024 * MIB),
            backoff_initial=env.seconds("LOGGER_BACKOFF_INITIAL", 0.2, 0.001),
            backoff_max=env.seconds("LOGGER_BACKOFF_MAX", 10.0, 0.001),
            request_timeout=env.seconds("LOGGER_REQUEST_TIMEOUT", 10.0, 0.1),
            spool_max_bytes=env.integer("LOGGER_SPOOL_MAX_BYTES", 256 * MIB, 0, 1 << 50),
            max_inflight_bytes=env.integer("LOGGER_MAX_INFLIGHT_BYTES", 16 * MIB, KIB, 1 << 40),
            max_inflight_batches=env.integer("LOGGER_MAX_INFLIGHT_BATCHES", 3, 1, 64),
            rotated_idle_seconds=env.seconds("LOGGER_ROTATED_IDLE_SECONDS", 5.0),
            checkpoint_interval=env.seconds("LOGGER_CHECKPOINT_INTERVAL", 1.0),
        )
        if settings.ca_file is not None:
            if not str(settings.aggregator_url).startswith("https://"):
                raise SettingsError("LOGGER_CA_FILE", str(settings.ca_file),
                                    "needs an https:// LOGGER_AGGREGATOR_URL")
            if not settings.ca_file.is_file():
                raise SettingsError("LOGGER_CA_FILE", str(settings.ca_file), "is not a readable file")
        if settings.backoff_max < settings.backoff_initial:
            raise SettingsError("LOGGER_BACKOFF_MAX", str(settings.backoff_max),
                                f"must be >= LOGGER_BACKOFF_INITIAL ({settings.backoff_initial})")
        return settings


def _paths(env: Env, name: str) -> tuple[str, ...]:
    """Comma-separated URL paths; each must start with '/'."""
    paths = tuple(p.strip() for p in env.text(name, "").split(",") if p.strip())
    for path in paths:
        if not path.startswith("/"):
            raise SettingsError(name, env.raw(name), f"{path!r} is not a path starting with '/'")
    return paths
