"""The podvisor alert rules, as data, and their rendering to a Prometheus rules file.

Annotations use only `{{ $labels.<name> }}` so the promtool unit tests can be generated from the
same definitions (see `ruletests.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podvisor.supervisord.controller.states import QUIET

from .config import PODS_JOB
from .yamltext import dump

GROUP = "podvisor"
# Phases of a pod that is down on purpose: no "service down" alert for them.
QUIET_PHASES = tuple(phase.value for phase in QUIET)


@dataclass(frozen=True)
class Alert:
    """One alerting rule. `key` tells apart rules that share an alert name."""

    key: str
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_rule(self) -> dict:
        rule: dict = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


@dataclass(frozen=True)
class Thresholds:
    """What the alerts compare against, and the metric names they read."""

    error_ratio: float = 0.05
    latency_p95_seconds: float = 0.5
    restarts_in_10m: int = 3
    log_lag_seconds: float = 60
    requests_metric: str = "http_requests_total"
    status_label: str = "status"
    latency_metric: str = "http_request_duration_seconds"
    # A pod whose app has no request metrics (nginx): its logger's counts from the access log.
    logger_requests_metric: str = "podvisor_logger_http_requests_total"
    logger_latency_metric: str = "podvisor_logger_http_request_duration_seconds"
    logger_lag_metric: str = "podvisor_logger_lag_seconds"


def _num(value: float) -> str:
    return f"{value:g}"


def alerts(t: Thresholds = Thresholds()) -> list[Alert]:
    """The alert definitions for thresholds `t`."""
    pod = "{{ $labels.pod }}"
    svc = "{{ $labels.service_name }}"
    by = "sum by (service_name, pod)"
    # A pod stopped on purpose (podctl stop, supervisorctl stop <pod>-app) or completed is not down.
    on_purpose = f'unless on (pod) (podvisor_pod_phase{{phase=~"{"|".join(QUIET_PHASES)}"}} == 1)'
    # The logger's access-log figures count only for pods without the app's own (no double counting).
    no_app = f"unless on (service_name, pod) {by} (rate({t.requests_metric}[5m]))"
    error_ratio = (
        f'{by} (rate({t.requests_metric}{{{t.status_label}=~"5.."}}[5m])) / {by} (rate({t.requests_metric}[5m]))'
    )
    logger_error_ratio = (
        f'{by} (rate({t.logger_requests_metric}{{status_class="5xx"}}[5m])) / '
        f"{by} (rate({t.logger_requests_metric}[5m]))"
    )
    p95 = f"histogram_quantile(0.95, sum by (service_name, pod, le) (rate({t.latency_metric}_bucket[5m])))"
    logger_p95 = (
        f"histogram_quantile(0.95, sum by (service_name, pod, le) (rate({t.logger_latency_metric}_bucket[5m])))"
    )
    return [
        Alert(
            # Two rules share this alert name; `kind` tells them apart (and promtool requires it).
            key="service-down-scrape",
            name="PodvisorServiceDown",
            expr=f"up == 0 {on_purpose}",
            for_="1m",
            severity="critical",
            labels={"kind": "scrape"},
            summary="Prometheus cannot scrape {{ $labels.job }} at {{ $labels.instance }}",
            description=(
                "Every scrape of {{ $labels.instance }} (job {{ $labels.job }}) has failed for 1 minute. "
                f"For job {PODS_JOB} that is a pod's metrics sidecar: the pod may still serve, but is "
                "unobserved. Check the process with `supervisorctl status` and `podctl status`, and read "
                "its log under var/ (pods/<pod>/logs/sidecars/ for sidecars). Pods stopped on purpose "
                "or completed (phase Stopped or Succeeded) do not raise it."
            ),
        ),
        Alert(
            key="service-down-app",
            name="PodvisorServiceDown",
            expr=f'podvisor_target_up{{target="app"}} == 0 {on_purpose}',
            for_="1m",
            severity="critical",
            labels={"kind": "app"},
            summary=f"{svc} in pod {pod} is down",
            description=(
                f"The metrics sidecar of pod {pod} has not been able to scrape the app for 1 minute: the "
                "app is not running, hung, or not answering /metrics (podvisor_target_scrape_errors_total "
                f"says why). Run `podctl status {pod}` and read var/pods/{pod}/logs/app.stderr.log. "
                "An app stopped on purpose (`podctl stop`, `supervisorctl stop`) does not raise it."
            ),
        ),
        Alert(
            key="high-error-ratio",
            name="PodvisorHighErrorRatio",
            expr=f"({error_ratio} or ({logger_error_ratio} {no_app})) > {_num(t.error_ratio)}",
            for_="5m",
            severity="critical",
            summary=f"{svc} in pod {pod} fails more than {_num(t.error_ratio * 100)}% of requests",
            description=(
                f"More than {_num(t.error_ratio * 100)}% of HTTP requests to {svc} (pod {pod}) have been "
                "answered with a 5xx status for 5 minutes (its http_requests_total, or for an app without "
                "request metrics such as the gateway, its access log as the logger counts it). Search the "
                "aggregator for the service's "
                "error lines, follow a failing X-Request-ID across pods, and check its upstreams."
            ),
        ),
        Alert(
            key="high-latency-p95",
            name="PodvisorHighLatencyP95",
            expr=f"({p95} or ({logger_p95} {no_app})) > {_num(t.latency_p95_seconds)}",
            for_="5m",
            severity="warning",
            summary=f"{svc} in pod {pod} answers slowly (p95 over {_num(t.latency_p95_seconds)}s)",
            description=(
                f"The 95th percentile of HTTP request duration of {svc} (pod {pod}) has been above "
                f"{_num(t.latency_p95_seconds)} seconds for 5 minutes. Check its CPU "
                "(podvisor_pod_cpu_seconds_total), slow upstreams, and the slowest requests' logs."
            ),
        ),
        Alert(
            key="memory-over-limit",
            name="PodvisorMemoryOverLimit",
            expr="podvisor_pod_resident_memory_bytes > podvisor_pod_memory_limit_bytes",
            for_="1m",
            severity="warning",
            summary=f"Pod {pod} uses more memory than its limit",
            description=(
                f"The resident memory of the app's process tree in pod {pod} has been above the pod's "
                "memory_limit for 1 minute. The controller restarts an app over its limit (reason "
                "OOMKilled), so a lasting alert means the limit is not enforced. Look for a leak, or "
                "raise memory_limit in supervisord/pods.toml and re-render."
            ),
        ),
        Alert(
            key="crash-looping",
            name="PodvisorCrashLooping",
            expr=f"sum by (pod, service_name) (increase(podvisor_pod_restarts_total[10m])) > {t.restarts_in_10m}",
            for_="",
            severity="critical",
            summary=f"The app of pod {pod} is crash looping",
            description=(
                f"The app of pod {pod} restarted more than {t.restarts_in_10m} times in 10 minutes. "
                f"`podctl status {pod}` shows the last reason (exit code, failed probe, OOMKilled); "
                f"var/pods/{pod}/logs/app.stderr.log shows why it died."
            ),
        ),
        Alert(
            key="log-shipping-lag",
            name="PodvisorLogShippingLag",
            expr=f"{t.logger_lag_metric} > {_num(t.log_lag_seconds)}",
            for_="2m",
            severity="warning",
            summary=f"Logs of pod {pod} reach the aggregator late",
            description=(
                f"The logging sidecar of pod {pod} has held lines not yet acknowledged by the aggregator "
                f"for more than {_num(t.log_lag_seconds)} seconds, for 2 minutes. Nothing is lost (the "
                "checkpoint moves only on acknowledgement), but recent logs are not searchable. Check the "
                "aggregator's health and the podvisor_logger_* error counters."
            ),
        ),
        Alert(
            key="log-shipping-stalled",
            name="PodvisorLogShippingStalled",
            expr='podvisor_pod_condition{condition="ShippingStalled"} == 1',
            for_="1m",
            severity="warning",
            summary=f"The logger of pod {pod} has stopped shipping",
            description=(
                f"The logging sidecar of pod {pod} has had no line acknowledged by the aggregator for longer "
                "than the pod's shipping_stall_seconds while lines wait, for 1 minute (the controller shows "
                f"the pod Degraded). Nothing is lost: the lines wait in the files. `podctl describe {pod}` "
                f"shows the condition; the logger's /health and var/pods/{pod}/logs/sidecars/logger.log say "
                "why (aggregator down or refusing, a poison batch, the disk)."
            ),
        ),
    ]


def render_rules(thresholds: Thresholds = Thresholds()) -> str:
    """Render the alert rules file for `thresholds`."""
    document = {"groups": [{"name": GROUP, "rules": [a.to_rule() for a in alerts(thresholds)]}]}
    return dump(
        document,
        header=(
            "podvisor alert rules, rendered by `python -m podvisor.supervisord.prometheus`; do not edit by hand.\n"
            "Unit tests for promtool: rules_test.yml beside the committed copy."
        ),
    )
