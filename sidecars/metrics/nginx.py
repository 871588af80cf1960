"""The `nginx` adapter: nginx's stub_status page as typed Prometheus families with the pod labels.

stub_status answers plain text, not Prometheus::

    Active connections: 2
    server accepts handled requests
     8 8 8
    Reading: 0 Writing: 1 Waiting: 1

It becomes gauges `nginx_connections_active`, `_reading`, `_writing`, `_waiting` and counters
`nginx_connections_accepted_total`, `nginx_connections_handled_total`, `nginx_http_requests_total`
(the names nginx-prometheus-exporter uses, so its dashboards work). Anything else in the body is a
parse error: the sidecar then shows the app down (`podvisor_target_up{target="app"} 0`, reason
`parse`) and no nginx series, rather than numbers it is not sure of.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .labels import PodLabels

_STUB_STATUS = re.compile(
    r"\s*Active connections:\s*(\d+)\s*\n"
    r"\s*server accepts handled requests\s*\n"
    r"\s*(\d+)\s+(\d+)\s+(\d+)\s*\n"
    r"\s*Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)\s*"
)


@dataclass(frozen=True)
class StubStatus:
    """One reading of nginx's stub_status."""

    active: int
    accepted: int
    handled: int
    requests: int
    reading: int
    writing: int
    waiting: int


def parse_stub_status(text: str) -> StubStatus:
    """Parse stub_status' body; ValueError naming what was there when it is not that page."""
    match = _STUB_STATUS.fullmatch(text)
    if match is None:
        raise ValueError(f"not an nginx stub_status page: {text[:120]!r}")
    active, accepted, handled, requests, reading, writing, waiting = (int(g) for g in match.groups())
    return StubStatus(active, accepted, handled, requests, reading, writing, waiting)


def families(status: StubStatus, labels: PodLabels) -> list[Metric]:
    """The nginx families of one reading, every sample with the pod labels."""
    names, values = labels.names(), labels.values()
    out: list[Metric] = []
    for name, doc, value in (
        ("active", "Client connections open now, waiting ones included.", status.active),
        ("reading", "Connections where nginx is reading the request header.", status.reading),
        ("writing", "Connections where nginx is writing the response.", status.writing),
        ("waiting", "Idle keep-alive connections.", status.waiting),
    ):
        gauge = GaugeMetricFamily(f"nginx_connections_{name}", doc, labels=names)
        gauge.add_metric(values, value)
        out.append(gauge)
    for name, doc, value in (
        ("nginx_connections_accepted", "Client connections accepted since nginx started.", status.accepted),
        ("nginx_connections_handled", "Client connections handled (accepted unless a limit was hit).",
         status.handled),
        ("nginx_http_requests", "Client requests since nginx started.", status.requests),
    ):
        counter = CounterMetricFamily(name, doc, labels=names)
        counter.add_metric(values, value)
        out.append(counter)
    return out
