"""promtool unit tests for the default alert rules, generated from the rule definitions.

Each alert has a case where it fires for one pod and stays silent for another, and an evaluation
before its `for:` duration has passed where it has not fired yet. Expected annotations are the
rules' templates expanded with the expected labels, so the tests follow the rules' wording.
`rules_test.yml` beside this module is this output, committed; a test keeps them equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import CONTROLLER_JOB, PODS_JOB, RULES_FILENAME
from .rules import Alert, Thresholds, alerts
from .yamltext import dump

TESTS_FILENAME = "rules_test.yml"
_TEMPLATE = re.compile(r"\{\{ \$labels\.([a-zA-Z_][a-zA-Z0-9_]*) \}\}")

USER = {
    "job": PODS_JOB,
    "instance": "127.0.0.1:9101",
    "pod": "user",
    "service_name": "user-service",
    "environment": "production",
}
PRODUCT = {**USER, "instance": "127.0.0.1:9102", "pod": "product", "service_name": "product-service"}
ORDER = {**USER, "instance": "127.0.0.1:9103", "pod": "order", "service_name": "order-service"}
# The gateway: nginx has no request metrics; its logger counts its access log per route.
GATEWAY = {**USER, "instance": "127.0.0.1:9104", "pod": "gateway", "service_name": "gateway"}
CONTROLLER = {"job": CONTROLLER_JOB, "instance": "127.0.0.1:9100", "environment": "production"}


@dataclass(frozen=True)
class Check:
    """At `eval_time`, alert `alertname` fires exactly for `firing` [(rule key, alert labels)]."""

    eval_time: str
    alertname: str
    firing: tuple[tuple[str, dict[str, str]], ...] = ()


@dataclass(frozen=True)
class Case:
    series: tuple[tuple[str, dict[str, str], str], ...]  # (metric, labels, promtool values)
    checks: tuple[Check, ...]


def _target(labels: dict[str, str]) -> dict[str, str]:
    return {"job": labels["job"], "instance": labels["instance"], "pod": labels["pod"]}


def _pod(labels: dict[str, str]) -> dict[str, str]:
    return {"service_name": labels["service_name"], "pod": labels["pod"]}


def _status(labels: dict[str, str]) -> dict[str, str]:
    """A pod series as the controller exposes it, for the pod of a sidecar's `labels`."""
    return {**CONTROLLER, **_pod(labels)}


def cases() -> list[Case]:
    """Input series and expectations, for the default Thresholds."""
    target = {"target": "app"}
    user_req = {**USER, "method": "GET", "path": "/users/<id>"}
    product_req = {**PRODUCT, "method": "GET", "path": "/products/<id>"}
    order_req = {**ORDER, "method": "GET", "path": "/orders"}
    gateway_route = {**GATEWAY, "route": "/user/"}
    order_route = {**ORDER, "route": "other"}  # an app with metrics of its own whose access log is counted too
    return [
        Case(  # a sidecar that cannot be scraped (up has only target labels); order's pod was stopped
            series=(
                ("up", _target(USER), "1 0 0 0 0 0"),
                ("up", _target(PRODUCT), "1 1 1 1 1 1"),
                ("up", _target(ORDER), "1 0 0 0 0 0"),
                ("podvisor_pod_phase", {**_status(ORDER), "phase": "Stopped"}, "0 1 1 1 1 1"),
                ("podvisor_pod_phase", {**_status(USER), "phase": "Stopped"}, "0x5"),
                ("up", {"job": "podvisor-aggregator", "instance": "127.0.0.1:8080"}, "1 1 1 1 1 1"),
            ),
            checks=(
                Check("1m", "PodvisorServiceDown"),
                Check("3m", "PodvisorServiceDown", (("service-down-scrape", _target(USER)),)),
            ),
        ),
        Case(  # the app behind a working sidecar is down; a down logger is not this alert, nor an
            # app stopped on purpose (order) or a completed one (product, its sidecar still draining)
            series=(
                ("podvisor_target_up", {**USER, **target}, "0x5"),
                ("podvisor_target_up", {**USER, "target": "logger"}, "0x5"),
                ("podvisor_pod_phase", {**_status(USER), "phase": "Running"}, "1x5"),
                ("podvisor_target_up", {**PRODUCT, **target}, "1 0 0 0 0 0"),
                ("podvisor_pod_phase", {**_status(PRODUCT), "phase": "Succeeded"}, "0 1 1 1 1 1"),
                ("podvisor_target_up", {**ORDER, **target}, "1 0 0 0 0 0"),
                ("podvisor_pod_phase", {**_status(ORDER), "phase": "Stopped"}, "0 1 1 1 1 1"),
            ),
            checks=(
                Check("30s", "PodvisorServiceDown"),
                Check("3m", "PodvisorServiceDown", (("service-down-app", {**USER, **target}),)),
            ),
        ),
        Case(  # user answers 10 of 110 requests with 500 (9%), product 1 of 101 (1%); the gateway, read
            # from its access log, 20 of 120 (17%); order's own metrics have no 5xx, and its access-log
            # counts (all 5xx) do not count next to them
            series=(
                ("http_requests_total", {**user_req, "status": "200"}, "0+100x15"),
                ("http_requests_total", {**user_req, "status": "500"}, "0+10x15"),
                ("http_requests_total", {**product_req, "status": "200"}, "0+100x15"),
                ("http_requests_total", {**product_req, "status": "503"}, "0+1x15"),
                ("podvisor_logger_http_requests_total", {**gateway_route, "status_class": "2xx"}, "0+100x15"),
                ("podvisor_logger_http_requests_total", {**gateway_route, "status_class": "5xx"}, "0+20x15"),
                ("http_requests_total", {**order_req, "status": "200"}, "0+100x15"),
                ("podvisor_logger_http_requests_total", {**order_route, "status_class": "5xx"}, "0+100x15"),
            ),
            checks=(
                Check("4m", "PodvisorHighErrorRatio"),
                Check("12m", "PodvisorHighErrorRatio", (("high-error-ratio", _pod(USER)),
                                                        ("high-error-ratio", _pod(GATEWAY)))),
            ),
        ),
        Case(  # user's p95 is between 0.5 s and 1 s, product's under 0.1 s
            series=tuple(
                ("http_request_duration_seconds_bucket", {**user_req, "le": le}, f"0+{n}x15")
                for le, n in (("0.1", 1), ("0.5", 2), ("1", 10), ("+Inf", 10))
            )
            + tuple(
                ("http_request_duration_seconds_bucket", {**product_req, "le": le}, "0+10x15")
                for le in ("0.1", "0.5", "1", "+Inf")
            )
            + tuple(  # the gateway's access log: as slow as user; order's too, but it has metrics of its own
                ("podvisor_logger_http_request_duration_seconds_bucket", {**route, "le": le}, f"0+{n}x15")
                for route in (gateway_route, order_route)
                for le, n in (("0.1", 1), ("0.5", 2), ("1", 10), ("+Inf", 10))
            )
            + (("http_requests_total", {**order_req, "status": "200"}, "0+100x15"),),
            checks=(
                Check("4m", "PodvisorHighLatencyP95"),
                Check("12m", "PodvisorHighLatencyP95", (("high-latency-p95", _pod(USER)),
                                                        ("high-latency-p95", _pod(GATEWAY)))),
            ),
        ),
        Case(  # user over its 256 MiB limit, product well under
            series=(
                ("podvisor_pod_resident_memory_bytes", USER, "300000000x5"),
                ("podvisor_pod_memory_limit_bytes", USER, "268435456x5"),
                ("podvisor_pod_resident_memory_bytes", PRODUCT, "100000000x5"),
                ("podvisor_pod_memory_limit_bytes", PRODUCT, "268435456x5"),
            ),
            checks=(
                Check("30s", "PodvisorMemoryOverLimit"),
                Check("3m", "PodvisorMemoryOverLimit", (("memory-over-limit", USER),)),
            ),
        ),
        Case(  # user restarts every minute, product restarted once (the controller counts them)
            series=(
                ("podvisor_pod_restarts_total", _status(USER), "0+1x12"),
                ("podvisor_pod_restarts_total", _status(PRODUCT), "0 0 0 1x9"),
            ),
            checks=(
                Check("2m", "PodvisorCrashLooping"),
                Check("10m", "PodvisorCrashLooping", (("crash-looping", _pod(USER)),)),
            ),
        ),
        Case(  # user's logger falls behind by 30 s more every minute, product's stays at 1 s
            series=(
                ("podvisor_logger_lag_seconds", USER, "0+30x10"),
                ("podvisor_logger_lag_seconds", PRODUCT, "1x10"),
            ),
            checks=(
                Check("3m", "PodvisorLogShippingLag"),
                Check("6m", "PodvisorLogShippingLag", (("log-shipping-lag", USER),)),
            ),
        ),
        Case(  # user's logger stalls after a minute; product's stays healthy
            series=(
                ("podvisor_pod_condition", {**_status(USER), "condition": "ShippingStalled"}, "0 1 1 1 1"),
                ("podvisor_pod_condition", {**_status(PRODUCT), "condition": "ShippingStalled"}, "0x4"),
            ),
            checks=(
                Check("1m30s", "PodvisorLogShippingStalled"),
                Check("3m", "PodvisorLogShippingStalled",
                      (("log-shipping-stalled", {**_status(USER), "condition": "ShippingStalled"}),)),
            ),
        ),
    ]


def expand(template: str, labels: dict[str, str]) -> str:
    """Expand `{{ $labels.x }}` the way Prometheus does for present labels."""
    text = _TEMPLATE.sub(lambda m: labels[m.group(1)], template)
    if "{{" in text:
        raise ValueError(f"template needs more than $labels: {template!r}")
    return text


def _series(metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"


def _expected(rule: Alert, labels: dict[str, str]) -> dict:
    alert_labels = {**labels, "severity": rule.severity, **rule.labels}
    return {
        "exp_labels": alert_labels,
        "exp_annotations": {
            "summary": expand(rule.summary, alert_labels),
            "description": expand(rule.description, alert_labels),
        },
    }


def render_rules_test(rules_file: str = RULES_FILENAME) -> str:
    """The promtool test file for the default rules (`rules_file` relative to the test file)."""
    by_key = {a.key: a for a in alerts(Thresholds())}
    tests = []
    for case in cases():
        tests.append(
            {
                "interval": "1m",
                "input_series": [
                    {"series": _series(m, labels), "values": values} for m, labels, values in case.series
                ],
                "alert_rule_test": [
                    {
                        "eval_time": check.eval_time,
                        "alertname": check.alertname,
                        "exp_alerts": [_expected(by_key[key], labels) for key, labels in check.firing],
                    }
                    for check in case.checks
                ],
            }
        )
    document = {"rule_files": [rules_file], "evaluation_interval": "30s", "tests": tests}
    return dump(
        document,
        header=(
            "promtool unit tests for podvisor.rules.yml, generated by supervisord/prometheus/ruletests.py.\n"
            f"Run: promtool test rules {TESTS_FILENAME}\n"
            "Regenerate: python -m podvisor.supervisord.prometheus --commit"
        ),
    )
