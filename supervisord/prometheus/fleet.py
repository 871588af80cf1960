"""Metrics across hosts: every host's Prometheus in agent mode remote-writes to one central Prometheus.

Why agent remote-write rather than the central server scraping every host through TLS: the
sidecars, aggregator and controller keep listening on 127.0.0.1 only (the agent on the same host
scrapes them); a host opens no port for metrics, it connects out, so adding a host touches nothing
but its own files; and the agent's write-ahead log keeps samples through a central outage. The
link is TLS both ways: the central Prometheus serves with the fleet's certificate and requires a
client certificate from the fleet's CA (its --web.config.file), the agents verify the CA.

Every series carries `host` (the agent's external label). A host that stops sending is found by
silence, not by `up == 0` (nobody is left to write that): PodvisorHostDown fires for a host of
the fleet (a recording rule per host, rendered from the fleet) with no fresh sample. The fleet rules
and their promtool tests are rendered here; the per-pod rules (rules.py) apply as they are.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .config import AGGREGATOR_JOB, CONTROLLER_JOB, PODS_JOB, RULES_FILENAME, _job, check_address
from .yamltext import dump

FLEET_RULES_FILENAME = "fleet.rules.yml"
FLEET_TESTS_FILENAME = "fleet_rules_test.yml"
EXPECTED = "podvisor_fleet_host_expected"
CENTRAL_PORT = 9090


@dataclass(frozen=True)
class FleetThresholds:
    host_silence_seconds: int = 60  # no sample from a host for this long: it is down
    host_down_for: str = "1m"
    lag_seconds: int = 60  # a host's loggers hold lines this long unacknowledged
    lag_for: str = "2m"


def render_agent(host: str, pods: dict[str, str], aggregator: str | None, controller: str, *,
                 central: str, ca_file: str, cert_file: str, key_file: str, scrape_interval: str = "15s") -> str:
    """prometheus-agent.yml for `host`: scrape its own targets, remote-write to `central` (host:port)."""
    jobs = [_job(PODS_JOB, [{"targets": [check_address(a)], "labels": {"pod": p}} for p, a in sorted(pods.items())],
                 honor_labels=True)]
    if aggregator:
        jobs.append(_job(AGGREGATOR_JOB, [{"targets": [check_address(aggregator)]}]))
    jobs.append(_job(CONTROLLER_JOB, [{"targets": [check_address(controller)]}]))
    document = {
        "global": {"scrape_interval": scrape_interval, "external_labels": {"host": host}},
        "scrape_configs": jobs,
        "remote_write": [{"url": f"https://{check_address(central)}/api/v1/write",
                          "tls_config": {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file},
                          "queue_config": {"batch_send_deadline": "1s"}}],
    }
    return dump(document, header=(f"Prometheus in agent mode on host {host} (prometheus --enable-feature=agent), "
                                  "rendered by podvisor-render --fleet:\nscrapes this host's podvisor targets on "
                                  "loopback, remote-writes to the central Prometheus over TLS."))


def render_central(scrape_interval: str = "15s") -> str:
    """prometheus.yml of the central Prometheus (run with --web.enable-remote-write-receiver)."""
    document = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [RULES_FILENAME, FLEET_RULES_FILENAME],
    }
    return dump(document, header=("The fleet's central Prometheus, rendered by podvisor-render --fleet: every host's "
                                  "agent remote-writes here\n(prometheus --web.enable-remote-write-receiver "
                                  "--web.config.file web.yml)."))


def render_web_config(cert_file: str, key_file: str, ca_file: str) -> str:
    """web.yml: TLS with the fleet's certificate, and a client certificate from the fleet's CA required."""
    return dump({"tls_server_config": {"cert_file": cert_file, "key_file": key_file,
                                       "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": ca_file}},
                header="TLS of the central Prometheus: only holders of a fleet certificate may write or read.")


def rules(hosts: Sequence[str], t: FleetThresholds = FleetThresholds()) -> list[dict]:
    host = "{{ $labels.host }}"
    recording = [{"record": EXPECTED, "expr": "vector(1)", "labels": {"host": name}} for name in hosts]
    alerts = [
        {"alert": "PodvisorHostDown",
         "expr": f"{EXPECTED} unless on (host) (time() - max by (host) (timestamp(up)) < {t.host_silence_seconds})",
         "for": t.host_down_for, "labels": {"severity": "critical"},
         "annotations": {"summary": f"Host {host} sends no metrics",
                         "description": f"No sample from host {host} for over {t.host_silence_seconds} seconds: the "
                                        "host, its network or its Prometheus agent is down. Its pods may still run; "
                                        "check the host, then its agent (prometheus-agent under its supervisord)."}},
        {"alert": "PodvisorHostShippingLagging",
         "expr": f"max by (host) (podvisor_logger_lag_seconds) > {t.lag_seconds}",
         "for": t.lag_for, "labels": {"severity": "warning"},
         "annotations": {"summary": f"Logs of host {host} reach the store late",
                         "description": f"A logger on host {host} has held lines unacknowledged for over "
                                        f"{t.lag_seconds} seconds. Nothing is lost, but the host's recent logs are "
                                        "not searchable: check its way to the store host (TLS, the ingest endpoint) "
                                        "and the store's health."}},
    ]
    return [{"name": "podvisor-fleet-hosts", "rules": recording}, {"name": "podvisor-fleet", "rules": alerts}]


def render_rules(hosts: Sequence[str], t: FleetThresholds = FleetThresholds()) -> str:
    return dump({"groups": rules(hosts, t)},
                header="podvisor's fleet alert rules, rendered by podvisor-render --fleet from the fleet's hosts.")


def render_rules_test(t: FleetThresholds = FleetThresholds()) -> str:
    """promtool tests: hosts a and b; b falls silent after a minute; a's loggers lag, b's do not."""
    def up(host: str, values: str) -> dict:
        return {"series": f'up{{host="{host}",job="{PODS_JOB}",instance="127.0.0.1:9101",pod="user"}}',
                "values": values}

    def lag(host: str, values: str) -> dict:
        return {"series": f'podvisor_logger_lag_seconds{{host="{host}",pod="user"}}', "values": values}

    down = {"exp_labels": {"host": "b", "severity": "critical"},
            "exp_annotations": {"summary": "Host b sends no metrics",
                                "description": f"No sample from host b for over {t.host_silence_seconds} seconds: the "
                                               "host, its network or its Prometheus agent is down. Its pods may still "
                                               "run; check the host, then its agent (prometheus-agent under its "
                                               "supervisord)."}}
    lagging = {"exp_labels": {"host": "a", "severity": "warning"},
               "exp_annotations": {"summary": "Logs of host a reach the store late",
                                   "description": f"A logger on host a has held lines unacknowledged for over "
                                                  f"{t.lag_seconds} seconds. Nothing is lost, but the host's recent "
                                                  "logs are not searchable: check its way to the store host (TLS, "
                                                  "the ingest endpoint) and the store's health."}}
    tests = [
        {"interval": "15s",
         "input_series": [up("a", "1x60"), up("b", "1x4"), up("c", "0x60")],
         "alert_rule_test": [
             {"eval_time": "1m", "alertname": "PodvisorHostDown", "exp_alerts": []},
             {"eval_time": "3m30s", "alertname": "PodvisorHostDown", "exp_alerts": [down]},
             # past the 5 minute lookback b has no series at all: the expected host keeps it firing
             {"eval_time": "10m", "alertname": "PodvisorHostDown", "exp_alerts": [down]},
         ]},
        {"interval": "1m",
         "input_series": [lag("a", "0+30x10"), lag("b", "1x10"), up("a", "1x10"), up("b", "1x10")],
         "alert_rule_test": [
             {"eval_time": "3m", "alertname": "PodvisorHostShippingLagging", "exp_alerts": []},
             {"eval_time": "6m", "alertname": "PodvisorHostShippingLagging", "exp_alerts": [lagging]},
         ]},
    ]
    return dump({"rule_files": [FLEET_RULES_FILENAME], "evaluation_interval": "15s", "tests": tests},
                header=f"promtool tests of {FLEET_RULES_FILENAME} (hosts a, b, c). Run: promtool test rules "
                       f"{FLEET_TESTS_FILENAME}")
