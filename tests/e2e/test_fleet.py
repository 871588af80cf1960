"""A fleet of two hosts, each a network namespace this module creates and removes (198.18.0.0/15,
joined by a switch namespace; no traffic leaves them), each running on its default ports:

- a podvisor stack (supervisord, controller, one pod writing numbered lines, its aggregator) whose
  aggregator writes into a two-shard ClickHouse cluster (one shard per host, Debian's 18.16);
- nginx terminating TLS (the fleet's CA, made with the openssl command) in front of its aggregator;
  the loggers of each host ship to the *other* host's TLS endpoint, verifying the CA, with their own
  credentials minted from the fleet's token;
- a Prometheus agent remote-writing over mutual TLS to the central Prometheus on h1.

Lines from both hosts are stored exactly once through an aggregator `kill -9` and a shard restart
(counted with FINAL); the central Prometheus has up == 1 for both hosts' targets, and the host-down
alert fires once h2 is taken off the network.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from podvisor.supervisord.fleet import ingest, tls
from podvisor.supervisord.prometheus import fleet as promfleet
from podvisor.supervisord.prometheus.rules import render_rules
from podvisor.supervisord.render.clickhouse import Node
from podvisor.supervisord.render.nginx import binary
from podvisor.testing.clickhouse import Shard
from podvisor.testing.harness import StackHandle, terminate
from podvisor.testing.netns import Host, Network, call
from podvisor.testing.waiting import wait_for

pytestmark = pytest.mark.e2e

WRITER = Path(__file__).with_name("delivery_writer.py")
CLUSTER = "fleet"
PODS = {"h1": "alpha", "h2": "beta"}
SHIP_ENV = {"LOGGER_BATCH_LINES": "100", "LOGGER_FLUSH_INTERVAL": "0.05", "LOGGER_BACKOFF_INITIAL": "0.05",
            "LOGGER_BACKOFF_MAX": "0.5", "LOGGER_REQUEST_TIMEOUT": "5", "LOGGER_CHECKPOINT_INTERVAL": "0.2"}


def pod_spec(service: str) -> dict:
    return {"service": service, "command": f"{sys.executable} {WRITER}", "grace_seconds": 3,
            "probes": {"startup": {"http_get": "/health", "period_seconds": 0.1, "failure_threshold": 300}},
            "logger_env": SHIP_ENV}


class Fleet:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.net = Network()
        self.procs: list[subprocess.Popen] = []
        self.shards: dict[str, Shard] = {}
        self.stacks: dict[str, StackHandle] = {}
        self.hosts: dict[str, Host] = {}

    def start(self) -> None:
        root = self.root
        for name in ("h1", "h2"):
            self.hosts[name] = self.net.host(name)
        hosts = list(self.hosts.values())
        nodes = [Node(h.address) for h in hosts]
        for host, node in zip(hosts, nodes, strict=True):
            self.shards[host.name] = Shard(root / f"clickhouse-{host.name}", node, CLUSTER, nodes,
                                           listen=("127.0.0.1", host.address),
                                           networks=("127.0.0.1", "::1", "198.18.0.0/15"), prefix=host.exec_prefix())
            self.shards[host.name].start()
        for host in hosts:
            self.shards[host.name].wait_ready(60, ask=self._shard_ready(host))
        ca = tls.ensure_ca(root / "ca", "test")
        self.ca = ca[0]
        token = root / "fleet-token"
        token.write_text("fleet-master-token-" + os.urandom(16).hex() + "\n")
        token.chmod(0o600)
        for index, host in enumerate(hosts):
            other = hosts[1 - index]
            cert, key = tls.issue(ca, root / host.name / "tls", "host", [host.name, host.address])
            conf = ingest.write(root / host.name / "ingest", host.address, ingest.INGEST_PORT, cert, key,
                                "127.0.0.1:8080")
            self._spawn(host, [binary("nginx"), "-p", str(root / host.name / "ingest") + "/", "-c", str(conf),
                               "-e", "nginx/ingest-error.log", "-g", "daemon off;"])
            store = (f"clickhouse+http://127.0.0.1:8123,{other.address}:8123/podvisor?cluster={CLUSTER}"
                     f"&instance={index}&settle=0.5")
            spec = {"stack": {"store": store, "ingest_url": f"https://{other.address}:{ingest.INGEST_PORT}",
                              "ca_file": str(self.ca), "token_file": str(token)},
                    "pods": {PODS[host.name]: pod_spec(f"{PODS[host.name]}-service")}}
            stack = StackHandle(root / host.name / "stack", spec, own_ports=False, exec_prefix=host.exec_prefix(),
                                call=lambda fn, h=host: call(h, fn))
            self.stacks[host.name] = stack
            stack.start(timeout=90)

    def _shard_ready(self, host: Host):
        return lambda: call(host, lambda: requests.get(f"http://{host.address}:8123/?query=SELECT%201",
                                                       timeout=2).text.strip() == "1")

    def _spawn(self, host: Host, argv: list[str], name: str | None = None) -> subprocess.Popen:
        out = open(self.root / host.name / f"{name or Path(argv[0]).name}.out", "ab")  # noqa: SIM115
        proc = subprocess.Popen([*host.exec_prefix(), *argv], stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs.append(proc)
        return proc

    def clickhouse(self, sql: str, host: str = "h1") -> str:
        h = self.hosts[host]
        reply = call(h, lambda: requests.post("http://127.0.0.1:8123/", data=sql.encode(), timeout=30))
        assert reply.status_code == 200, reply.text
        return reply.text

    def output(self) -> str:
        parts = [stack.output(20) for stack in self.stacks.values()]
        parts += [shard.output(20) for shard in self.shards.values()]
        return "\n".join(parts)

    def close(self) -> None:
        errors = []
        for stack in self.stacks.values():
            try:
                stack.stop()
            except AssertionError as exc:
                errors.append(str(exc)[:2000])
        for proc in reversed(self.procs):
            terminate(proc)
        for shard in self.shards.values():
            shard.stop()
        self.net.close_after(errors, "fleet")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    handle = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        handle.start()
        yield handle
    finally:
        handle.close()


def start_run(fleet: Fleet, host: str, run: str, count: int, rate: int) -> None:
    pod = PODS[host]
    url = fleet.stacks[host].apps[pod] + "/runs"
    reply = call(fleet.hosts[host], lambda: requests.post(url, json={"run": run, "count": count, "rate": rate},
                                                          timeout=5))
    assert reply.status_code in (200, 201, 202), reply.text


def tally(fleet: Fleet, run: str) -> tuple[int, int, int]:
    """(entries seen once each = count with FINAL, distinct (pod, seq), rows before merging)."""
    where = f"WHERE position(body, '\"run\":\"{run}\"') > 0"
    final = fleet.clickhouse(f"SELECT count() FROM podvisor.logs FINAL {where}").strip()
    distinct = fleet.clickhouse(f"SELECT uniqExact(pod, visitParamExtractUInt(body, 'seq')) FROM podvisor.logs "
                                f"{where}").strip()
    raw = fleet.clickhouse(f"SELECT count() FROM podvisor.logs {where}").strip()
    return int(final), int(distinct), int(raw)


def refused(fleet: Fleet) -> float:
    total = 0.0
    for host in fleet.hosts.values():
        text = call(host, lambda: requests.get("http://127.0.0.1:8080/metrics", timeout=5).text)
        total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith('aggregator_ingest_requests_total{status="503"}'))
    return total


def test_lines_of_both_hosts_are_stored_once_through_an_aggregator_kill_and_a_shard_restart(fleet):
    run, count, rate = f"r{os.urandom(3).hex()}", 1500, 150  # ten seconds of writing on each host
    for host in PODS:
        start_run(fleet, host, run, count, rate)
    h1 = fleet.stacks["h1"]
    wait_for(lambda: tally(fleet, run)[0] > 200, 60, "the first lines in ClickHouse", output=fleet.output)
    old = h1.pid("aggregator")
    os.kill(old, signal.SIGKILL)  # h2's loggers ship to h1: they retry until the controller restarts it
    h1.wait_for(lambda: h1.info("aggregator")["statename"] == "RUNNING" and h1.pid("aggregator") != old, 60,
                "the controller restarting h1's aggregator")
    shard = fleet.shards["h2"]
    shard.stop()  # every insert needs both shards (a synchronous Distributed insert): 503s, retried
    # The writers keep writing; an aggregator refusing ingest with 503 shows the outage was felt.
    wait_for(lambda: refused(fleet) > 0, 60, "an aggregator answering 503 while a shard is down", output=fleet.output)
    shard.start()
    shard.wait_ready(60, ask=fleet._shard_ready(fleet.hosts["h2"]))
    wait_for(lambda: tally(fleet, run)[0] == 2 * count, 120, f"all {2 * count} lines counted with FINAL",
             output=fleet.output, interval=0.5)
    final, distinct, raw = tally(fleet, run)
    assert (final, distinct) == (2 * count, 2 * count), (final, distinct, raw)  # lost 0, duplicated 0
    per_shard = [int(fleet.clickhouse(f"SELECT count() FROM podvisor.logs_local WHERE position(body, '{run}') > 0",
                                      host).strip()) for host in ("h1", "h2")]
    assert all(n > 0 for n in per_shard), per_shard  # both shards hold their share
    # The API of either aggregator answers from the cluster, both hosts' pods in one query.
    for pod in PODS.values():
        api = call(fleet.hosts["h2"], lambda p=pod: requests.get(
            "http://127.0.0.1:8080/api/v1/logs", params={"q": "seq", "field.run": run, "pod": p, "limit": 5},
            timeout=10).json())
        assert [e["pod"] for e in api["entries"]] == [pod] * 5, api


def test_the_central_prometheus_sees_every_host_and_alerts_when_one_goes_down(fleet):
    prometheus = shutil.which("prometheus")
    assert prometheus is not None, "prometheus not found: install Debian's prometheus package"
    root, h1 = fleet.root, fleet.hosts["h1"]
    central_dir = root / "central"
    central_dir.mkdir()
    cert, key = root / "h1" / "tls" / "host.crt", root / "h1" / "tls" / "host.key"
    (central_dir / "prometheus.yml").write_text(promfleet.render_central("1s"))
    (central_dir / "podvisor.rules.yml").write_text(render_rules())
    (central_dir / promfleet.FLEET_RULES_FILENAME).write_text(promfleet.render_rules(
        list(PODS), promfleet.FleetThresholds(host_silence_seconds=5, host_down_for="2s")))
    (central_dir / "web.yml").write_text(promfleet.render_web_config(str(cert), str(key), str(fleet.ca)))
    fleet._spawn(h1, [prometheus, f"--config.file={central_dir / 'prometheus.yml'}",
                      f"--storage.tsdb.path={central_dir / 'data'}", f"--web.config.file={central_dir / 'web.yml'}",
                      f"--web.listen-address={h1.address}:{promfleet.CENTRAL_PORT}",
                      "--web.enable-remote-write-receiver"], "prometheus-central")
    for name, host in fleet.hosts.items():
        agent_dir = root / name / "agent"
        agent_dir.mkdir()
        stack = fleet.stacks[name]
        pods = {p.name: f"127.0.0.1:{p.metrics_port}" for p in stack.spec.pods}
        (agent_dir / "agent.yml").write_text(promfleet.render_agent(
            name, pods, f"127.0.0.1:{stack.spec.aggregator_port}", f"127.0.0.1:{stack.spec.controller_port}",
            central=f"{h1.address}:{promfleet.CENTRAL_PORT}", ca_file=str(fleet.ca),
            cert_file=str(root / name / "tls" / "host.crt"), key_file=str(root / name / "tls" / "host.key"),
            scrape_interval="1s"))
        fleet._spawn(host, [prometheus, "--enable-feature=agent", f"--config.file={agent_dir / 'agent.yml'}",
                            f"--storage.agent.path={agent_dir / 'wal'}", "--web.listen-address=127.0.0.1:9095"],
                     "prometheus-agent")

    def query(expr: str) -> list[dict]:
        reply = call(h1, lambda: requests.get(f"https://{h1.address}:{promfleet.CENTRAL_PORT}/api/v1/query",
                                              params={"query": expr}, verify=str(fleet.ca), cert=(str(cert), str(key)),
                                              timeout=5))
        reply.raise_for_status()
        return reply.json()["data"]["result"]

    def up_by_host() -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for sample in query("up == 1"):
            seen.setdefault(sample["metric"]["host"], set()).add(sample["metric"]["job"])
        return seen

    jobs = {"podvisor-pods", "podvisor-aggregator", "podvisor-controller"}
    wait_for(lambda: up_by_host() == {"h1": jobs, "h2": jobs}, 90, "up == 1 for every target of both hosts",
             output=fleet.output, interval=0.5)
    assert query("up == 0") == []
    with pytest.raises(requests.exceptions.SSLError):  # no client certificate: no access
        call(h1, lambda: requests.get(f"https://{h1.address}:{promfleet.CENTRAL_PORT}/api/v1/query",
                                      params={"query": "up"}, verify=str(fleet.ca), timeout=5))
    fleet.net.unplug(fleet.hosts["h2"])

    def firing() -> set[str]:
        return {s["metric"]["host"] for s in query('ALERTS{alertname="PodvisorHostDown",alertstate="firing"}')}

    assert wait_for(lambda: firing() == {"h2"}, 60, "PodvisorHostDown firing for h2 alone", output=fleet.output,
                    interval=0.5)
    fleet.net.plug(fleet.hosts["h2"])  # so the stacks stop as usual (their loggers drain to the other host)
