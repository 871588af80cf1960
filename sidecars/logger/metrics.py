"""The logger's own metrics, on a registry the caller owns (no import-time globals)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "podvisor_logger_"
# Request time buckets in seconds (routes.py): a gateway's answers span sub-millisecond to its read timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class LoggerMetrics:
    """Counters and gauges of the logging sidecar; each instance registers on its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(PREFIX + name, doc, labels, registry=r)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(PREFIX + name, doc, registry=r)

        self.lines_read = counter("lines_read", "Lines read from log files and turned into entries.")
        self.lines_truncated = counter("lines_truncated", "Lines longer than the limit, stored truncated.")
        self.bytes_read = counter("bytes_read", "Bytes read from log files.")
        self.lines_shipped = counter("lines_shipped", "Entries acknowledged by the aggregator as stored.")
        self.bytes_shipped = counter("bytes_shipped", "JSON bytes of entries acknowledged by the aggregator.")
        self.lines_duplicate = counter("lines_duplicate",
                                       "Entries the aggregator already had (re-delivery absorbed by id).")
        self.lines_rejected = counter("lines_rejected", "Entries the aggregator refused individually.")
        self.lines_dead_lettered = counter("lines_dead_lettered",
                                           "Entries written to the dead-letter file, any reason.")
        self.lost_bytes = counter("lost_bytes", "Bytes of log files that vanished before being shipped.")
        self.losses = counter("losses", "Byte ranges recorded as lost in the dead-letter file, by kind "
                              "(spool_full, truncated, deleted).", ("kind",))
        self.retries = counter("retries", "Shipping attempts retried, by reason.", ("reason",))
        self.batches = counter("batches", "Batches fully handled (shipped or dead-lettered).")
        self.spool_refused = counter("spool_refused", "Rotated files not spooled because the spool was full.")
        self.symlinks_refused = counter("symlinks_refused", "Log files found to be symbolic links, not "
                                        "followed (each time a name becomes a link).")
        self.checkpoint_saves = counter("checkpoint_saves", "Checkpoint writes.")
        self.checkpoint_recoveries = counter("checkpoint_recoveries",
                                             "Starts without a usable checkpoint, by cause.", ("cause",))
        self.spool_bytes = gauge("spool_bytes", "Bytes kept in the spool (hard links counted in full).")
        self.lag_bytes = gauge("lag_bytes", "Bytes in tailed files not yet acknowledged by the aggregator.")
        self.lag_seconds = gauge("lag_seconds", "Age of the oldest line read but not yet acknowledged.")
        self.inflight_bytes = gauge("inflight_bytes", "Entry bytes held in memory awaiting acknowledgement.")
        self.files = gauge("files", "Files currently open for tailing.")
        self.last_ship = gauge("last_ship_timestamp_seconds",
                               "Unix time of the last batch the aggregator acknowledged.")
        self.aggregator_up = gauge("aggregator_up", "1 if the last attempt reached the aggregator.")
        # From the pod's access log (routes.py): the traffic of an app without metrics of its own.
        self.http_requests = counter("http_requests", "Requests in the pod's access log, by route prefix and "
                                     "status class.", ("route", "status_class"))
        self.http_request_duration = Histogram(PREFIX + "http_request_duration_seconds", "Request time in the "
                                               "pod's access log (request_time), by route prefix.", ("route",),
                                               buckets=DURATION_BUCKETS, registry=r)
