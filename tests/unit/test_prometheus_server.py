"""A real Prometheus scraping a real metrics sidecar in front of a real prometheus_client app.

Uses sockets and the Debian `prometheus` binary; fails, not skips, when it is missing. Every process
is started on an ephemeral port in tmp_path and stopped (terminate, then wait) in `finally`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from podvisor.supervisord.prometheus import render_config, render_rules
from podvisor.testing.harness import free_port, terminate
from podvisor.testing.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 45.0
POLL = 0.2

APP = """
import os, sys, time
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
r = CollectorRegistry()
Counter("demo_requests", "Requests.", ["path", "status"], registry=r).labels('/x"y', "200").inc(3)
Histogram("demo_latency_seconds", "Latency.", registry=r).observe(0.2)
server, _ = start_http_server(0, addr="127.0.0.1", registry=r)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
print(server.server_port, flush=True)
time.sleep(3600)
"""


def tails(logs: list[Path]) -> Callable[[], str]:
    """The end of each process log: what a failed wait shows."""
    return lambda: "\n".join(f"--- {log.name} ---\n{log.read_text()[-3000:]}" for log in logs if log.exists())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict]:
    binary = shutil.which("prometheus")
    assert binary is not None, (
        "prometheus not found: install Debian's prometheus package (apt-get install -y prometheus)"
    )
    procs: list[subprocess.Popen] = []
    logs = {name: tmp_path / f"{name}.log" for name in ("app", "sidecar", "prometheus")}
    pidfile = tmp_path / "app.pid"
    try:
        with logs["app"].open("w") as err:
            app = subprocess.Popen(
                [sys.executable, "-c", APP, str(pidfile)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=tmp_path,
            )
        procs.append(app)
        assert app.stdout is not None
        app_port = app.stdout.readline().strip()
        assert app_port.isdigit(), logs["app"].read_text()

        env = {
            **os.environ,
            "POD_NAME": "user",
            "SERVICE_NAME": "user-service",
            "ENVIRONMENT": "e2e",
            "METRICS_PORT": "0",
            "METRICS_TARGET_URL": f"http://127.0.0.1:{app_port}/metrics",
            "METRICS_APP_PIDFILE": str(pidfile),
            "METRICS_MEMORY_LIMIT_BYTES": str(2**30),
        }
        with logs["sidecar"].open("w") as out:
            sidecar = subprocess.Popen(
                [sys.executable, "-m", "podvisor.sidecars.metrics.main"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(sidecar)
        listening = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
        sidecar_port = wait_for(
            lambda: listening.search(logs["sidecar"].read_text()),
            DEADLINE,
            "sidecar listening",
            output=tails([logs["sidecar"]]),
            procs=procs,
            interval=POLL,
        ).group(1)

        config = tmp_path / "prometheus.yml"
        config.write_text(
            render_config(
                {"user": f"127.0.0.1:{sidecar_port}"},
                scrape_interval="1s",
                scrape_timeout="1s",
                evaluation_interval="1s",
            )
        )
        (tmp_path / "podvisor.rules.yml").write_text(render_rules())
        prom_port = free_port()
        with logs["prometheus"].open("w") as out:
            prometheus = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        procs.append(prometheus)
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for(
            lambda: requests.get(f"{prom}/-/ready", timeout=2).status_code == 200,
            DEADLINE,
            "prometheus ready",
            output=tails(list(logs.values())),
            procs=procs,
            interval=POLL,
        )
        yield {
            "app": app,
            "procs": procs,
            "logs": list(logs.values()),
            "prometheus": prom,
            "sidecar": f"http://127.0.0.1:{sidecar_port}",
        }
    finally:
        for proc in reversed(procs):
            terminate(proc)
        for proc in procs:
            if proc.stdout:
                proc.stdout.close()


def test_prometheus_scrapes_enriched_series_and_sees_the_app_go(stack: dict) -> None:
    prom, output = stack["prometheus"], tails(stack["logs"])
    procs = [p for p in stack["procs"] if p is not stack["app"]]

    def query(expr: str) -> list[dict]:
        r = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def one_value(expr: str, expected: str) -> Callable[[], bool]:
        return lambda: [s["value"][1] for s in query(expr)] == [expected]

    wait_for(one_value('up{job="podvisor-pods",pod="user"}', "1"), DEADLINE, "up == 1", output=output,
             procs=stack["procs"], interval=POLL)
    wait_for(
        one_value(
            'demo_requests_total{pod="user",service_name="user-service",environment="e2e",path="/x\\"y"}', "3"
        ),
        DEADLINE,
        "enriched app series",
        output=output,
        procs=stack["procs"],
        interval=POLL,
    )
    assert query('podvisor_target_up{target="app",pod="user"}')[0]["value"][1] == "1"
    assert float(query('podvisor_pod_resident_memory_bytes{pod="user"}')[0]["value"][1]) > 0
    buckets = query('demo_latency_seconds_bucket{pod="user"}')
    assert {s["metric"]["le"] for s in buckets} >= {"0.25", "+Inf"}

    app = stack["app"]
    app.terminate()
    app.wait(10)
    text = requests.get(f"{stack['sidecar']}/metrics", timeout=5).text
    assert re.search(r'podvisor_target_up\{[^}]*target="app"[^}]*\} 0\.0', text), text
    assert "demo_requests" not in text and "demo_latency" not in text
    assert "podvisor_pod_resident_memory_bytes" not in text  # no pid, no process series

    wait_for(one_value('podvisor_target_up{target="app",pod="user"}', "0"), DEADLINE, "podvisor_target_up == 0",
             output=output, procs=procs, interval=POLL)
    wait_for(lambda: query('demo_requests_total{pod="user"}') == [], DEADLINE, "app series stale", output=output,
             procs=procs, interval=POLL)
    assert query('up{job="podvisor-pods",pod="user"}')[0]["value"][1] == "1"  # the sidecar still answers
