"""The per-app state every view reaches through `get_state()` (no module globals)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from podvisor.aggregator.auth import Authenticator
    from podvisor.aggregator.metrics import Metrics
    from podvisor.aggregator.podactions import PodActions
    from podvisor.aggregator.pods import PodsMonitor
    from podvisor.aggregator.query import CursorCodec
    from podvisor.aggregator.settings import Settings
    from podvisor.aggregator.store.base import LogStore
    from podvisor.aggregator.store.retention import RetentionWorker
    from podvisor.aggregator.streams import TailLimiter

EXTENSION_KEY = "podvisor_aggregator"


@dataclass
class AggregatorState:
    """What create_app() built: settings, store, auth, metrics and background workers."""

    settings: Settings
    store: LogStore
    auth: Authenticator
    metrics: Metrics
    cursors: CursorCodec
    tails: TailLimiter
    pods: PodsMonitor
    actions: PodActions
    retention: RetentionWorker | None = None
    owns_store: bool = True
    stopping: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        """Stop tails, the pods poller and retention, then drain and close the store (if
        create_app opened it)."""
        self.stopping.set()
        self.tails.close()
        self.pods.stop()
        if self.retention is not None:
            self.retention.stop()
        if self.owns_store:
            self.store.close()


def get_state() -> AggregatorState:
    """The state of the current Flask app."""
    return current_app.extensions[EXTENSION_KEY]
