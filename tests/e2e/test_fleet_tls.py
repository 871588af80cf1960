"""Ingest across hosts: nginx terminates TLS (certificates from the fleet's CA, as podvisor-render
makes them) in front of the aggregator; a logger that trusts the fleet's CA ships every line, a
logger given another CA refuses the certificate and sends nothing (counted, logged, retried).

Real processes: the aggregator, Debian's nginx, two logging sidecars, the openssl command.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from podvisor.supervisord.fleet import ingest, tls
from podvisor.supervisord.render.nginx import binary
from podvisor.testing.harness import free_port, terminate
from podvisor.testing.waiting import wait_for

pytestmark = pytest.mark.e2e


class Processes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = open(self.root / f"{name}.out", "wb")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs[name] = proc
        return proc

    def output(self) -> str:
        return "\n".join(f"--- {name} ---\n" + (self.root / f"{name}.out").read_text(errors="replace")[-3000:]
                         for name in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            terminate(proc)


@pytest.fixture
def fleet_ingest(tmp_path: Path) -> Iterator[dict]:
    procs = Processes(tmp_path)
    ca = tls.ensure_ca(tmp_path / "ca", "test")
    other_ca = tls.ensure_ca(tmp_path / "other-ca", "other")
    cert, key = tls.issue(ca, tmp_path / "store", "store", ["localhost", "127.0.0.1"])
    agg_port, tls_port = free_port(), free_port()
    creds = {pod: tmp_path / pod / "credential" for pod in ("web", "stray")}
    try:
        procs.start("aggregator", [sys.executable, "-m", "podvisor.aggregator.main"], {
            "AGGREGATOR_PORT": str(agg_port), "AGGREGATOR_DB": str(tmp_path / "agg" / "logs.db"),
            "AGGREGATOR_LOGGER_CREDENTIALS": ",".join(f"{pod}:{pod}-service={path}" for pod, path in creds.items())})
        conf = ingest.write(tmp_path / "store", "127.0.0.1", tls_port, cert, key, f"127.0.0.1:{agg_port}")
        procs.start("nginx", [binary("nginx"), "-p", str(tmp_path / "store") + "/", "-c", str(conf),
                              "-e", "nginx/ingest-error.log", "-g", "daemon off;"], {})
        wait_for(lambda: requests.get(f"https://127.0.0.1:{tls_port}/health", verify=str(ca[0]), timeout=2).ok,
                 30, "the aggregator through nginx's TLS", procs=procs.procs.values(), output=procs.output)
        loggers = {}
        for pod, trusted in (("web", ca[0]), ("stray", other_ca[0])):
            (tmp_path / pod / "logs").mkdir(parents=True)
            port = free_port()
            procs.start(f"logger-{pod}", [sys.executable, "-m", "podvisor.sidecars.logger.main"], {
                "POD_NAME": pod, "SERVICE_NAME": f"{pod}-service", "LOGGER_LOG_DIR": str(tmp_path / pod / "logs"),
                "LOGGER_STATE_DIR": str(tmp_path / pod / "state"), "LOGGER_CREDENTIAL_FILE": str(creds[pod]),
                "LOGGER_AGGREGATOR_URL": f"https://localhost:{tls_port}", "LOGGER_CA_FILE": str(trusted),
                "LOGGER_PORT": str(port), "LOGGER_FLUSH_INTERVAL": "0.05", "LOGGER_BACKOFF_MAX": "0.5"})
            loggers[pod] = f"http://127.0.0.1:{port}"
        yield {"root": tmp_path, "procs": procs, "ca": ca[0], "aggregator": f"http://127.0.0.1:{agg_port}",
               "ingest": f"https://localhost:{tls_port}", "loggers": loggers}
    finally:
        procs.stop()


def write_lines(root: Path, pod: str, count: int) -> None:
    with open(root / pod / "logs" / "app.log", "a") as fh:
        for i in range(count):
            fh.write(f'{{"message": "{pod} line {i}", "level": "info", "n": {i}}}\n')


def stored(aggregator: str, pod: str) -> list[dict]:
    return requests.get(aggregator + "/api/v1/logs", params={"pod": pod, "limit": 1000}, timeout=5).json()["entries"]


def test_loggers_ship_over_tls_and_refuse_a_certificate_from_another_ca(fleet_ingest):
    root, procs, aggregator = fleet_ingest["root"], fleet_ingest["procs"], fleet_ingest["aggregator"]
    write_lines(root, "web", 200)
    write_lines(root, "stray", 50)
    wait_for(lambda: len(stored(aggregator, "web")) == 200, 60, "the 200 lines of pod web through TLS",
             procs=procs.procs.values(), output=procs.output)
    assert sorted(e["n"] for e in stored(aggregator, "web")) == list(range(200))

    def tls_refusals() -> float:
        text = requests.get(fleet_ingest["loggers"]["stray"] + "/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("podvisor_logger_retries_total") and 'reason="tls"' in line)

    wait_for(lambda: tls_refusals() >= 2, 30, "the stray logger refusing the certificate twice",
             procs=procs.procs.values(), output=procs.output)
    assert stored(aggregator, "stray") == []
    health = requests.get(fleet_ingest["loggers"]["stray"] + "/health", timeout=5).json()
    assert health["aggregator_reachable"] is False and health["waiting_lines"] == 50
    assert "certificate" in (root / "logger-stray.out").read_text()


def test_the_tls_endpoint_serves_shipping_only(fleet_ingest):
    url, ca = fleet_ingest["ingest"], str(fleet_ingest["ca"])
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + "/health", timeout=5)  # not a certificate the system's CAs know
    reply = requests.get(url + "/api/v1/logs", verify=ca, timeout=5)
    assert reply.status_code == 404 and reply.json()["ok"] is False
    assert requests.post(url + "/logs", json=[{"message": "x"}], verify=ca, timeout=5).status_code == 401
