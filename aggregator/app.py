"""create_app(settings): the Flask app, its state and its blueprints."""
from __future__ import annotations

from collections.abc import Iterable

from flask import Blueprint, Flask

from podvisor.aggregator import security
from podvisor.aggregator.auth import Authenticator, derive, load_or_create_token
from podvisor.aggregator.errors import register_error_handlers
from podvisor.aggregator.metrics import Metrics, StoreCollector
from podvisor.aggregator.podactions import PodActions
from podvisor.aggregator.pods import PodsMonitor
from podvisor.aggregator.query import CursorCodec
from podvisor.aggregator.settings import Settings
from podvisor.aggregator.state import EXTENSION_KEY, AggregatorState
from podvisor.aggregator.store.base import LogStore
from podvisor.aggregator.store.open import open_store
from podvisor.aggregator.store.retention import RetentionWorker
from podvisor.aggregator.streams import TailLimiter
from podvisor.aggregator.views import bulk, histogram, ingest, logs, ops, otlp, session, tail
from podvisor.aggregator.views import pods as pods_view
from podvisor.core.hosts import HostCheck
from podvisor.core.webapp import PodvisorFlask

API_BLUEPRINTS = (ingest.bp, bulk.bp, otlp.bp, logs.bp, tail.bp, histogram.bp, session.bp, ops.bp, pods_view.bp)


def create_app(settings: Settings, *, store: LogStore | None = None, token: str | None = None,
               metrics: Metrics | None = None, pods: PodsMonitor | None = None,
               actions: PodActions | None = None, start_background: bool = True,
               blueprints: Iterable[Blueprint] = ()) -> Flask:
    """Build the app. Opens the store and token file from `settings` unless given; pass more
    `blueprints` (the web UI) to mount them beside the API; `actions` sends pod actions (through
    supervisord, from `settings`, unless given). `start_background` starts retention and the pods
    poller. Call get_state().close() to stop."""
    if token is None:
        token = load_or_create_token(settings.token_file)
    owns_store = store is None
    if store is None:
        store = open_store(settings)
    metrics = metrics or Metrics()
    tails = TailLimiter(settings.tail_max_streams, wake=store.wake, max_per_client=settings.tail_max_per_client)
    retention = store.retention(max_age_days=settings.retention_days, max_bytes=settings.retention_bytes,
                                metrics=metrics)
    metrics.registry.register(StoreCollector(store, lambda: tails.active,
                                             lambda: retention.last_used_bytes))
    worker = None
    if start_background and (settings.retention_days > 0 or settings.retention_bytes > 0):
        worker = RetentionWorker(retention, settings.retention_interval, metrics)
        worker.start()
    if pods is None:
        pods = PodsMonitor(settings.controller_url, settings.metrics_urls,
                           interval=settings.pods_interval)
    if start_background:
        pods.start()
    state = AggregatorState(
        settings=settings,
        store=store,
        auth=Authenticator(token, settings.reads_need_token),
        metrics=metrics,
        cursors=CursorCodec(derive(token, "podvisor-cursor")),
        tails=tails,
        pods=pods,
        actions=actions or PodActions(settings.supervisor),
        retention=worker,
        owns_store=owns_store,
    )
    app = PodvisorFlask(__name__, static_folder=None)  # the web UI blueprint serves its own files
    app.json.sort_keys = False  # replies keep the documented field order
    app.extensions[EXTENSION_KEY] = state
    register_error_handlers(app)
    security.install(app, HostCheck(settings.host, settings.allowed_hosts, "AGGREGATOR_ALLOWED_HOSTS"))
    for blueprint in (*API_BLUEPRINTS, *blueprints):
        app.register_blueprint(blueprint)
    return app
