"""`prometheus.yml` for a podvisor stack: every metrics sidecar, the aggregator, the controller.

The pods job sets `honor_labels: true`: each target carries a `pod` label (so `up` says which pod's
sidecar is down), and the sidecar's samples carry the same `pod` label. With honor_labels=false
Prometheus would rename the sidecar's to `exported_pod` on every series; the sidecar is the
authority on its pod's labels, as a federation source is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .yamltext import dump

RULES_FILENAME = "podvisor.rules.yml"
CONFIG_FILENAME = "prometheus.yml"
PODS_JOB = "podvisor-pods"
AGGREGATOR_JOB = "podvisor-aggregator"
CONTROLLER_JOB = "podvisor-controller"

_DURATION = re.compile(r"((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})")


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as `15s` or `1m30s`; ValueError naming a bad one."""
    m = _DURATION.fullmatch(text) if text else None
    if m is None or not any(m.groups()):
        raise ValueError(f"not a Prometheus duration: {text!r} (e.g. '15s', '1m')")
    numbers = m.groups()[1::2]
    return sum(int(n) * unit for n, unit in zip(numbers, _UNIT_SECONDS, strict=True) if n)


def check_address(address: str) -> str:
    """Return `host:port` unchanged, or raise ValueError naming it."""
    m = _ADDRESS.fullmatch(address)
    if m is None or not 0 < int(m["port"]) < 65536:
        raise ValueError(f"not a host:port address: {address!r} (e.g. '127.0.0.1:9101')")
    return address


def _job(name: str, static_configs: list[dict], honor_labels: bool = False) -> dict:
    job: dict = {"job_name": name}
    if honor_labels:
        job["honor_labels"] = True
    job["metrics_path"] = "/metrics"
    job["static_configs"] = static_configs
    return job


def render_config(
    targets: Mapping[str, str],
    *,
    aggregator: str | None = None,
    controller: str | None = None,
    scrape_interval: str = "15s",
    scrape_timeout: str = "10s",
    evaluation_interval: str = "15s",
    rule_files: Sequence[str] = (RULES_FILENAME,),
) -> str:
    """Render prometheus.yml. `targets` maps pod name to its metrics sidecar's `host:port`.

    Rule file paths are relative to the directory prometheus.yml is written to.
    """
    for name, value in (
        ("scrape_interval", scrape_interval),
        ("scrape_timeout", scrape_timeout),
        ("evaluation_interval", evaluation_interval),
    ):
        if duration_seconds(value) <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if duration_seconds(scrape_timeout) > duration_seconds(scrape_interval):
        raise ValueError(
            f"scrape_timeout {scrape_timeout!r} is longer than scrape_interval {scrape_interval!r}"
        )
    jobs = []
    if targets:
        jobs.append(
            _job(
                PODS_JOB,
                [
                    {"targets": [check_address(address)], "labels": {"pod": pod}}
                    for pod, address in sorted(targets.items())
                ],
                honor_labels=True,
            )
        )
    if aggregator:
        jobs.append(_job(AGGREGATOR_JOB, [{"targets": [check_address(aggregator)]}]))
    if controller:
        jobs.append(_job(CONTROLLER_JOB, [{"targets": [check_address(controller)]}]))
    document = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_timeout,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": list(rule_files),
        "scrape_configs": jobs,
    }
    return dump(
        document,
        header=(
            "Prometheus configuration for podvisor, rendered by `podvisor-render --prometheus DIR`\n"
            "(or `python -m podvisor.supervisord.prometheus`); re-render rather than edit.\n"
            f"Job {PODS_JOB} scrapes every pod's metrics sidecar; honor_labels keeps the sidecar's\n"
            "pod labels (the target's `pod` label is the same value)."
        ),
    )
