"""Settings of the logging sidecar: one frozen dataclass read from the environment in main().

Required: POD_NAME, SERVICE_NAME, LOGGER_LOG_DIR, LOGGER_STATE_DIR, LOGGER_TOKEN_FILE.
Optional, with defaults:
  ENVIRONMENT                 production
  LOGGER_AGGREGATOR_URL       http://127.0.0.1:8080
  LOGGER_HOST / LOGGER_PORT   127.0.0.1 / 0 (0 = any free port; the bound port is logged)
  LOGGER_APP_PROGRAM          unset: on SIGTERM do not wait for the app (see main.py)
  LOGGER_GRACE_SECONDS        25     whole shutdown budget, app wait included
Tuning knobs:
  LOGGER_BATCH_LINES          1000   entries per POST at most
  LOGGER_BATCH_BYTES          1 MiB  uncompressed JSON bytes per POST at most (one bigger entry goes alone)
  LOGGER_FLUSH_INTERVAL       0.2    seconds an entry may wait for its batch to fill
  LOGGER_POLL_INTERVAL        0.1    seconds between directory scans when idle (stat only)
  LOGGER_IDLE_POLL_INTERVAL   0.25   seconds between scans after a second with nothing new
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
  LOGGER_ROTATED_IDLE_SECONDS 5      a rotated-away file quiet this long gets no more bytes: its
                                     partial last line is flushed; a vanished file's unshipped
                                     range is reported lost
  LOGGER_CHECKPOINT_INTERVAL  1.0    seconds between checkpoint writes while acks arrive (a crash in
                                     between only re-sends entries the store already has)
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sidecars.settings import SettingsError

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Settings:
    """Everything the logger reads from its environment."""

    pod: str
    service_name: str
    environment: str
    log_dir: Path
    state_dir: Path
    aggregator_url: str
    token_file: Path
    host: str = "127.0.0.1"
    port: int = 0
    app_program: str | None = None
    grace_seconds: float = 25.0
    batch_lines: int = 1000
    batch_bytes: int = MIB
    flush_interval: float = 0.2
    poll_interval: float = 0.1
    idle_poll_interval: float = 0.25
    max_line_bytes: int = 64 * KIB
    max_entry_bytes: int = 256 * KIB
    backoff_initial: float = 0.2
    backoff_max: float = 10.0
    request_timeout: float = 10.0
    spool_max_bytes: int = 256 * MIB
    max_inflight_bytes: int = 16 * MIB
    rotated_idle_seconds: float = 5.0
    checkpoint_interval: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raises SettingsError naming the bad setting."""
        pod = _required(env, "POD_NAME")
        if len(pod) > 100 or any(c in pod for c in ":/ \t\n"):
            raise SettingsError("POD_NAME", f"must be a short name without ':', '/' or spaces, got {pod!r}")
        url = env.get("LOGGER_AGGREGATOR_URL", "http://127.0.0.1:8080").strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError("LOGGER_AGGREGATOR_URL", f"must be an http(s) URL, got {url!r}")
        state_dir = Path(_required(env, "LOGGER_STATE_DIR"))
        log_dir = Path(_required(env, "LOGGER_LOG_DIR"))
        if state_dir.resolve() == log_dir.resolve():
            raise SettingsError("LOGGER_STATE_DIR", "must differ from LOGGER_LOG_DIR")
        settings = cls(
            pod=pod,
            service_name=_required(env, "SERVICE_NAME"),
            environment=env.get("ENVIRONMENT", "").strip() or "production",
            log_dir=log_dir,
            state_dir=state_dir,
            aggregator_url=url,
            token_file=Path(_required(env, "LOGGER_TOKEN_FILE")),
            host=env.get("LOGGER_HOST", "").strip() or "127.0.0.1",
            port=_int(env, "LOGGER_PORT", 0, 0, 65535),
            app_program=env.get("LOGGER_APP_PROGRAM", "").strip() or None,
            grace_seconds=_float(env, "LOGGER_GRACE_SECONDS", 25.0, 0.0),
            batch_lines=_int(env, "LOGGER_BATCH_LINES", 1000, 1, 1_000_000),
            batch_bytes=_int(env, "LOGGER_BATCH_BYTES", MIB, KIB, 1024 * MIB),
            flush_interval=_float(env, "LOGGER_FLUSH_INTERVAL", 0.2, 0.0),
            poll_interval=_float(env, "LOGGER_POLL_INTERVAL", 0.1, 0.001),
            idle_poll_interval=_float(env, "LOGGER_IDLE_POLL_INTERVAL", 0.25, 0.001),
            max_line_bytes=_int(env, "LOGGER_MAX_LINE_BYTES", 64 * KIB, 64, 64 * MIB),
            max_entry_bytes=_int(env, "LOGGER_MAX_ENTRY_BYTES", 256 * KIB, 4 * KIB, 1024 * MIB),
            backoff_initial=_float(env, "LOGGER_BACKOFF_INITIAL", 0.2, 0.001),
            backoff_max=_float(env, "LOGGER_BACKOFF_MAX", 10.0, 0.001),
            request_timeout=_float(env, "LOGGER_REQUEST_TIMEOUT", 10.0, 0.1),
            spool_max_bytes=_int(env, "LOGGER_SPOOL_MAX_BYTES", 256 * MIB, 0, 1 << 50),
            max_inflight_bytes=_int(env, "LOGGER_MAX_INFLIGHT_BYTES", 16 * MIB, KIB, 1 << 40),
            rotated_idle_seconds=_float(env, "LOGGER_ROTATED_IDLE_SECONDS", 5.0, 0.0),
            checkpoint_interval=_float(env, "LOGGER_CHECKPOINT_INTERVAL", 1.0, 0.0),
        )
        if settings.backoff_max < settings.backoff_initial:
            raise SettingsError("LOGGER_BACKOFF_MAX", f"must be >= LOGGER_BACKOFF_INITIAL "
                                f"({settings.backoff_initial}), got {settings.backoff_max}")
        return settings


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(name, "is required but not set")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(name, f"must be a number of seconds, got {raw!r}") from None
    if not value >= low or value == float("inf"):  # also rejects nan
        raise SettingsError(name, f"must be a finite number >= {low}, got {raw!r}")
    return value
