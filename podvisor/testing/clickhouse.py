"""A ClickHouse cluster of its own for tests: shards of Debian's clickhouse-server on loopback.

`ClickHouseCluster(root, shards=2).start()` renders each shard's config into `root` (ephemeral
ports, a `remote_servers` cluster naming every shard), runs `clickhouse-server` per shard and waits
until each answers; `stop()` ends them. Never the system service: nothing outside `root` is used.
A missing clickhouse-server fails the test that asked for one (it does not skip).
"""
from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

import requests

from podvisor.supervisord.render.clickhouse import Node, write_node
from podvisor.testing.harness import free_port, terminate
from podvisor.testing.waiting import wait_for

SERVER_PATHS = "/usr/sbin:/usr/bin:/usr/local/bin:/usr/local/sbin"


def server_binary() -> str:
    """clickhouse-server (Debian's package installs it in /usr/sbin); AssertionError when missing."""
    found = shutil.which("clickhouse-server", path=SERVER_PATHS)
    if found is None:
        found = shutil.which("clickhouse", path=SERVER_PATHS)
        if found is not None:
            return found + " server"
    assert found is not None, ("clickhouse-server not found: install Debian's clickhouse-server package "
                               "(apt-get install -y clickhouse-server); .ci/run does")
    return found


class Shard:
    """One clickhouse-server process with its own folder."""

    def __init__(self, root: Path, node: Node, cluster: str, shards: Sequence[Node],
                 listen: Sequence[str], networks: Sequence[str], prefix: Sequence[str] = ()) -> None:
        self.root = root
        self.node = node
        self.config = write_node(root, node, cluster, shards, listen, networks)
        self.prefix = list(prefix)  # e.g. ["ip", "netns", "exec", NAME]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.node.host}:{self.node.http_port}"

    def start(self, timeout: float = 60.0) -> Shard:
        argv = [*self.prefix, *server_binary().split(), f"--config-file={self.config}"]
        out = open(self.root / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.root,
                                     start_new_session=True)
        out.close()
        return self

    def wait_ready(self, timeout: float = 60.0, ask=None) -> None:
        ask = ask or (lambda: requests.get(self.url + "/?query=SELECT%201", timeout=2).text.strip() == "1")
        wait_for(ask, timeout, f"clickhouse-server at {self.url}", procs=[self.proc] if self.proc else [],
                 output=self.output)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def output(self, lines: int = 40) -> str:
        out = []
        for name in ("stdout.log", "log/error.log"):
            try:
                text = (self.root / name).read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {self.root / name} ---\n" + "\n".join(text))
        return "\n".join(out)


class ClickHouseCluster:
    """`shards` servers on 127.0.0.1, ephemeral ports, one cluster named `name` over all of them."""

    def __init__(self, root: Path, shards: int = 2, name: str | None = None) -> None:
        self.root = Path(root)
        self.name = name or f"pvtest_{uuid.uuid4().hex[:8]}"
        nodes = [Node("127.0.0.1", free_port(), free_port()) for _ in range(shards)]
        self.shards = [Shard(self.root / f"shard{i}", node, self.name, nodes, ("127.0.0.1",), ("127.0.0.1", "::1"))
                       for i, node in enumerate(nodes)]

    @property
    def nodes(self) -> list[Node]:
        return [shard.node for shard in self.shards]

    def store_url(self, database: str, **params: str) -> str:
        """The AGGREGATOR_STORE value for this cluster: every node, the first one first."""
        hosts = ",".join(f"{n.host}:{n.http_port}" for n in self.nodes)
        query = "&".join(f"{k}={v}" for k, v in {"cluster": self.name, **params}.items())
        return f"clickhouse+http://{hosts}/{database}?{query}"

    def start(self, timeout: float = 60.0) -> ClickHouseCluster:
        try:
            for shard in self.shards:
                shard.start()
            for shard in self.shards:
                shard.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def query(self, sql: str, shard: int = 0, data: bytes | None = None) -> str:
        """Run `sql` on one shard over HTTP; raise AssertionError with ClickHouse's message."""
        reply = requests.post(self.shards[shard].url + "/", params={"query": sql} if data is not None else None,
                              data=data if data is not None else sql.encode(), timeout=30)
        assert reply.status_code == 200, f"{sql[:200]}: {reply.status_code} {reply.text[:500]}"
        return reply.text

    def stop(self) -> None:
        for shard in self.shards:
            shard.stop()
