"""A ClickHouse server configuration for podvisor's log store: one node of a cluster of shards.

The fleet renderer writes it for every store host, and the test harness starts its shards from it
(podvisor.testing.clickhouse). Paths are absolute: ClickHouse resolves nothing against the file.
The `remote_servers` cluster lists every shard (one replica each), which the `Distributed` table
of the store spreads entries over; the syntax is the one both Debian's 18.16 and current releases read.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from podvisor.supervisord.render.binaries import system_binary


def server_command() -> str:
    """clickhouse-server as supervisord should run it: Debian's package installs it in /usr/sbin;
    a release that ships the one `clickhouse` binary runs the server as `clickhouse server`."""
    found = system_binary("clickhouse-server")
    if found is None:
        single = system_binary("clickhouse")
        if single is not None:
            return f"{single} server"
    return found or "/usr/sbin/clickhouse-server"


@dataclass(frozen=True)
class Node:
    """One ClickHouse server: where it listens (HTTP for the aggregator, TCP for its peers)."""

    host: str
    http_port: int = 8123
    tcp_port: int = 9000


def remote_servers(cluster: str, shards: Sequence[Node]) -> str:
    """The <remote_servers> block: `cluster` with one shard per node."""
    body = "".join(
        f"      <shard><replica><host>{escape(node.host)}</host><port>{node.tcp_port}</port></replica></shard>\n"
        for node in shards)
    return f"  <remote_servers>\n    <{cluster}>\n{body}    </{cluster}>\n  </remote_servers>\n"


def render_config(data_dir: Path, node: Node, cluster: str, shards: Sequence[Node],
                  listen: Sequence[str] = ("127.0.0.1",), log_level: str = "information", console: bool = False) -> str:
    """config.xml of `node` (data in `data_dir`), a member of `cluster` made of `shards`. `console`:
    the server logs to stderr (supervisord keeps and rotates it) instead of files below `data_dir`."""
    data = Path(data_dir)
    listens = "".join(f"  <listen_host>{escape(h)}</listen_host>\n" for h in listen)
    if console:
        logger = "    <console>1</console>\n"
    else:
        logger = (f"    <log>{data}/log/server.log</log>\n    <errorlog>{data}/log/error.log</errorlog>\n"
                  "    <size>10M</size>\n    <count>2</count>\n")
    return f"""<?xml version="1.0"?>
<!-- Rendered by podvisor: a node of the log store's ClickHouse cluster {escape(cluster)}. -->
<yandex>
  <logger>
    <level>{log_level}</level>
{logger}  </logger>
  <http_port>{node.http_port}</http_port>
  <tcp_port>{node.tcp_port}</tcp_port>
{listens}  <path>{data}/data/</path>
  <tmp_path>{data}/tmp/</tmp_path>
  <user_files_path>{data}/user_files/</user_files_path>
  <format_schema_path>{data}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
{remote_servers(cluster, shards)}</yandex>
"""


def render_users(networks: Sequence[str] = ("127.0.0.1", "::1")) -> str:
    """users.xml: the `default` user without a password, reachable from `networks` only. A connection
    checks for a server shutdown every `poll_interval` seconds (default 10): 1 makes a stop prompt
    even while a peer shard holds an idle connection."""
    ips = "".join(f"<ip>{escape(n)}</ip>" for n in networks)
    return f"""<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><poll_interval>1</poll_interval></default></profiles>
  <users>
    <default><password></password><networks>{ips}</networks><profile>default</profile><quota>default</quota></default>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


def write_node(directory: Path, node: Node, cluster: str, shards: Sequence[Node],
               listen: Sequence[str] = ("127.0.0.1",), networks: Sequence[str] = ("127.0.0.1", "::1")) -> Path:
    """Write config.xml and users.xml into `directory` (data below it); return config.xml's path."""
    directory = Path(directory)
    for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "users.xml").write_text(render_users(networks))
    config = directory / "config.xml"
    config.write_text(render_config(directory, node, cluster, shards, listen))
    return config
