"""The Prometheus files for one podvisor stack, read from its pods spec.

Targets: every pod's metrics sidecar (which also carries the pod's logger self-metrics and the
controller's pod status), the aggregator and the controller's `/metrics`. Used by
`podvisor-render --prometheus DIR`, `python -m podvisor.supervisord.prometheus --spec FILE` and the test
harness (`StackHandle.prometheus_config()`), so all three write the same files for the same spec.
"""

from __future__ import annotations

import os
from pathlib import Path

from podvisor.supervisord.spec.model import Stack

from .config import CONFIG_FILENAME, RULES_FILENAME, duration_seconds, render_config
from .rules import render_rules
from .ruletests import TESTS_FILENAME, render_rules_test

DEFAULT_SCRAPE_INTERVAL = "15s"
MAX_SCRAPE_TIMEOUT = "10s"


def stack_targets(stack: Stack) -> tuple[dict[str, str], str, str]:
    """(pod -> metrics sidecar host:port, aggregator host:port, controller host:port)."""
    host = stack.host
    pods = {pod.name: f"{host}:{pod.metrics_port}" for pod in stack.pods}
    return pods, f"{host}:{stack.aggregator_port}", f"{host}:{stack.controller_port}"


def default_timeout(scrape_interval: str) -> str:
    """Prometheus' 10 s default timeout, or the interval itself when that is shorter."""
    if duration_seconds(scrape_interval) < duration_seconds(MAX_SCRAPE_TIMEOUT):
        return scrape_interval
    return MAX_SCRAPE_TIMEOUT


def render_stack(
    stack: Stack,
    scrape_interval: str = DEFAULT_SCRAPE_INTERVAL,
    scrape_timeout: str | None = None,
    evaluation_interval: str | None = None,
) -> dict[str, str]:
    """File name -> text: prometheus.yml, the rules and their promtool tests. Raises ValueError."""
    pods, aggregator, controller = stack_targets(stack)
    config = render_config(
        pods,
        aggregator=aggregator,
        controller=controller,
        scrape_interval=scrape_interval,
        scrape_timeout=scrape_timeout or default_timeout(scrape_interval),
        evaluation_interval=evaluation_interval or scrape_interval,
    )
    return {CONFIG_FILENAME: config, RULES_FILENAME: render_rules(), TESTS_FILENAME: render_rules_test()}


def write_stack(
    directory: str | os.PathLike[str],
    stack: Stack,
    scrape_interval: str = DEFAULT_SCRAPE_INTERVAL,
    scrape_timeout: str | None = None,
    evaluation_interval: str | None = None,
) -> list[Path]:
    """Write render_stack()'s files into `directory` (created if missing); return their paths."""
    files = render_stack(stack, scrape_interval, scrape_timeout, evaluation_interval)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
