"""A fleet run from what `podvisor-render --fleet` writes, nothing built by hand: two hosts, each a
network namespace this module creates and removes (198.18.0.0/15, joined by a switch namespace; no
traffic leaves them), each running `supervisord -c <host>/stack.conf` and nothing else.

h1 (store, prometheus) and h2 (store) each run a pod writing numbered lines; h2's loggers ship to
h1. Every line is stored once in the two-shard ClickHouse cluster the stacks started, readable
through either aggregator; h2's lines reached h1's aggregator through nginx's TLS endpoint (the
aggregator listens on h1's loopback only). The central Prometheus the h1 stack started has
`up == 1` for every target the agents of both stacks scrape. Stopping each supervisord stops all of
it: no process is left in either namespace.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from podvisor.core.supervisor import SupervisorRPC
from podvisor.supervisord.prometheus import fleet as promfleet
from podvisor.supervisord.spec import parse as specmod
from podvisor.testing.netns import Host, Network, call, ip_binary
from podvisor.testing.waiting import wait_for

pytestmark = pytest.mark.e2e

WRITER = Path(__file__).with_name("delivery_writer.py")
PODS = {"h1": "alpha", "h2": "beta"}
ROLE_PROGRAMS = {"h1": {"prometheus", "clickhouse", "ingest-nginx", "prometheus-agent"},
                 "h2": {"clickhouse", "ingest-nginx", "prometheus-agent"}}
SHIP_ENV = {"LOGGER_BATCH_LINES": "100", "LOGGER_FLUSH_INTERVAL": "0.05", "LOGGER_BACKOFF_INITIAL": "0.05",
            "LOGGER_BACKOFF_MAX": "0.5", "LOGGER_CHECKPOINT_INTERVAL": "0.2"}
BIN = Path(sys.executable).parent  # podvisor-render and the interpreter the stacks' bin/ wrappers find


def pods_toml(pod: str) -> str:
    env = ", ".join(f'{k} = "{v}"' for k, v in SHIP_ENV.items())
    return f"""[pods.{pod}]
service = "{pod}-service"
command = "{sys.executable} {WRITER}"
grace_seconds = 3
logger_env = {{ {env} }}

[pods.{pod}.probes.startup]
http_get = "/health"
period_seconds = 0.1
failure_threshold = 300
"""


def fleet_toml(hosts: dict[str, Host], root: Path) -> str:
    h1, h2 = hosts["h1"], hosts["h2"]
    return f"""[fleet]
name = "fleet"
scrape_interval = "1s"

[hosts.h1]
address = "{h1.address}"
roles = ["store", "prometheus"]
pods = "h1.toml"
clickhouse_data = "{root / 'clickhouse-h1'}"

[hosts.h2]
address = "{h2.address}"
roles = ["store"]
pods = "h2.toml"
ships_to = "h1"
clickhouse_data = "{root / 'clickhouse-h2'}"
"""


class Hosts:
    def __init__(self, root: Path) -> None:
        self.root, self.out = root, root / "fleet"
        self.net = Network()
        self.hosts: dict[str, Host] = {}
        self.procs: dict[str, subprocess.Popen] = {}

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}

    def start(self) -> None:
        for name in PODS:
            self.hosts[name] = self.net.host(name)
        for name, pod in PODS.items():
            (self.root / f"{name}.toml").write_text(pods_toml(pod))
        (self.root / "fleet.toml").write_text(fleet_toml(self.hosts, self.root))
        done = subprocess.run([str(BIN / "podvisor-render"), "--fleet", "fleet.toml", "--out", str(self.out)],
                              cwd=self.root, capture_output=True, text=True, timeout=60, env=self.env())
        assert done.returncode == 0, done.stdout + done.stderr
        for name, host in self.hosts.items():
            out = open(self.root / f"supervisord-{name}.out", "ab")  # noqa: SIM115 - the child keeps it
            self.procs[name] = subprocess.Popen(
                [*host.exec_prefix(), sys.executable, "-m", "supervisor.supervisord", "-n", "-c",
                 str(self.out / name / "stack.conf")], stdout=out, stderr=subprocess.STDOUT, env=self.env())
            out.close()

    def conf(self, host: str) -> str:
        return (self.out / host / "stack.conf").read_text()

    def supervisor(self, host: str) -> SupervisorRPC:
        return SupervisorRPC(f"unix://{self.out / host / 'var' / 'supervisor.sock'}", timeout=5)

    def running(self, host: str) -> set[str]:
        return {p["name"] for p in self.supervisor(host).call("getAllProcessInfo") if p["statename"] == "RUNNING"}

    def output(self) -> str:
        parts = []
        for host in PODS:
            var = self.out / host / "var"
            for path in [self.root / f"supervisord-{host}.out", var / "controller.log",
                         var / "aggregator" / "aggregator.log", *sorted(var.glob("*.log")),
                         var / "nginx" / "ingest-error.log"]:
                try:
                    lines = path.read_text(errors="replace").splitlines()[-15:]
                except OSError:
                    continue
                parts.append(f"--- {path} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def namespace_pids(self) -> dict[str, list[int]]:
        found = {}
        for name, host in self.hosts.items():
            done = subprocess.run([ip_binary(), "netns", "pids", host.namespace], capture_output=True, text=True,
                                  timeout=10)
            found[name] = [int(pid) for pid in done.stdout.split()]
        return found

    def close(self) -> None:
        errors = []
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # `ip netns exec` execs supervisord: this is supervisord
        for name, proc in self.procs.items():
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                errors.append(f"supervisord of {name} still running 120 s after SIGTERM")
                proc.kill()
                proc.wait(10)
        try:
            wait_for(lambda: not any(self.namespace_pids().values()), 30, "every process of both hosts gone",
                     output=self.output)
        except AssertionError as exc:
            errors.append(str(exc)[:3000])
            for pids in self.namespace_pids().values():  # ours alone: they live in our namespaces
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        self.net.close_after(errors, "fleet")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    hosts = Hosts(tmp_path_factory.mktemp("hosts"))
    try:
        hosts.start()
        for name in PODS:
            wait_for(lambda n=name: ROLE_PROGRAMS[n] | {"aggregator"} <= hosts.running(n), 60,
                     f"{name}'s role programs and aggregator RUNNING", output=hosts.output,
                     procs=[hosts.procs[name]])
        yield hosts
    finally:
        hosts.close()


def start_run(fleet: Hosts, host: str, run: str, count: int) -> bool:
    port = specmod.from_dict(json.loads((fleet.out / host / "stack.pods.json").read_text())).pod(PODS[host]).port
    reply = call(fleet.hosts[host], lambda: requests.post(f"http://127.0.0.1:{port}/runs",
                                                          json={"run": run, "count": count, "rate": 200}, timeout=5))
    return reply.status_code in (200, 201, 202)


def clickhouse(fleet: Hosts, sql: str) -> str:
    reply = call(fleet.hosts["h1"], lambda: requests.post("http://127.0.0.1:8123/", data=sql.encode(), timeout=30))
    assert reply.status_code == 200, reply.text
    return reply.text.strip()


def test_lines_of_both_hosts_go_through_tls_nginx_and_are_stored_once(fleet: Hosts):
    run, count = f"r{os.urandom(3).hex()}", 300
    h1 = fleet.hosts["h1"]
    for host in PODS:  # each pod answers once its stack has started it
        wait_for(lambda h=host: start_run(fleet, h, run, count), 60, f"{PODS[host]} taking a run",
                 output=fleet.output, procs=fleet.procs.values())
    where = f"WHERE position(body, '\"run\":\"{run}\"') > 0"
    wait_for(lambda: clickhouse(fleet, f"SELECT count() FROM podvisor.logs FINAL {where}") == str(2 * count), 60,
             f"all {2 * count} lines in the cluster", output=fleet.output, procs=fleet.procs.values(), interval=0.3)
    distinct = clickhouse(fleet, f"SELECT uniqExact(pod, visitParamExtractUInt(body, 'seq')) "
                                 f"FROM podvisor.logs {where}")
    assert distinct == str(2 * count)  # each line once: none lost, none twice
    token = (fleet.out / "token").read_text().strip()
    for pod in PODS.values():  # the API of h2's aggregator answers from the whole cluster
        api = call(fleet.hosts["h2"], lambda p=pod: requests.get(
            "http://127.0.0.1:8080/api/v1/logs", params={"q": "seq", "field.run": run, "pod": p, "limit": 5},
            headers={"Authorization": f"Bearer {token}"}, timeout=10).json())
        assert [e["pod"] for e in api["entries"]] == [pod] * 5, api
    # Both hosts' loggers ship to h1's TLS endpoint; h1's aggregator is on its loopback alone, so h2's
    # lines can only have come through nginx.
    for host in PODS:
        assert f'LOGGER_AGGREGATOR_URL="https://{h1.address}:8443"' in fleet.conf(host)
    with pytest.raises(requests.exceptions.ConnectionError):
        call(fleet.hosts["h2"], lambda: requests.get(f"http://{h1.address}:8080/health", timeout=5))
    health = call(fleet.hosts["h2"], lambda: requests.get(f"https://{h1.address}:8443/health",
                                                          verify=str(fleet.out / "h2" / "tls" / "ca.crt"), timeout=5))
    assert health.status_code == 200, health.text


def test_the_central_prometheus_has_every_hosts_targets_up(fleet: Hosts):
    h1, tls = fleet.hosts["h1"], fleet.out / "h1" / "tls"

    def up_by_host() -> dict[str, set[str]]:
        reply = call(h1, lambda: requests.get(f"https://{h1.address}:{promfleet.CENTRAL_PORT}/api/v1/query",
                                              params={"query": "up == 1"}, verify=str(tls / "ca.crt"),
                                              cert=(str(tls / "host.crt"), str(tls / "host.key")), timeout=5))
        reply.raise_for_status()
        seen: dict[str, set[str]] = {}
        for sample in reply.json()["data"]["result"]:
            seen.setdefault(sample["metric"]["host"], set()).add(sample["metric"]["job"])
        return seen

    jobs = {"podvisor-pods", "podvisor-aggregator", "podvisor-controller"}
    wait_for(lambda: up_by_host() == {"h1": jobs, "h2": jobs}, 60, "up == 1 for every target of both hosts",
             output=fleet.output, procs=fleet.procs.values(), interval=0.5)
    with pytest.raises(requests.exceptions.SSLError):  # web.yml: no client certificate, no access
        call(h1, lambda: requests.get(f"https://{h1.address}:{promfleet.CENTRAL_PORT}/api/v1/query",
                                      params={"query": "up"}, verify=str(tls / "ca.crt"), timeout=5))


def podctl(fleet: Hosts, host: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*fleet.hosts[host].exec_prefix(), sys.executable, "-m", "podvisor.supervisord.podctl.main",
                           "-c", str(fleet.out / host / "stack.conf"), *args],
                          capture_output=True, text=True, timeout=120, env=fleet.env())


def test_podctl_status_shows_the_pods_alone(fleet: Hosts):
    for name in fleet.hosts:
        done = podctl(fleet, name, "status", "-o", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert [p["pod"] for p in json.loads(done.stdout)["pods"]] == [PODS[name]]


def test_podctl_down_stops_every_program_of_the_host_in_order(fleet: Hosts):
    done = podctl(fleet, "h2", "down")
    assert done.returncode == 0, done.stdout + done.stderr
    assert fleet.procs["h2"].wait(10) == 0
    assert fleet.namespace_pids()["h2"] == [], fleet.output()  # ClickHouse, nginx, the agent too
    log = (fleet.out / "h2" / "var" / "supervisord.log").read_text()
    stopped = [line.split("stopped: ")[1].split()[0] for line in log.splitlines() if "INFO stopped: " in line]
    # the reverse of the start order: the agent first, ClickHouse after the aggregator, nginx before it
    assert stopped[0] == "prometheus-agent" and stopped[-1] == "podvisor-controller", stopped
    assert stopped.index("ingest-nginx") < stopped.index("aggregator") < stopped.index("clickhouse"), stopped
