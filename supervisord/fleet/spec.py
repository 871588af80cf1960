"""fleet.toml: the hosts of a fleet and what each runs.

    [fleet]
    name = "shop"                 # the ClickHouse cluster's name (remote_servers) and the CA's
    database = "podvisor"         # the log store's database
    pods = "pods.toml"            # the pods spec every host runs (relative to fleet.toml)
    clickhouse_data = "/var/lib/clickhouse-podvisor"   # a store host's ClickHouse data (absolute)
    scrape_interval = "15s"       # the Prometheus agents' scrape interval (and the central's rules)

    [hosts.store1]
    address = "10.0.0.11"
    roles = ["store", "prometheus"]
    clickhouse_data = "/srv/ch"   # this host's own ClickHouse data folder, when it differs
    [hosts.web1]
    address = "10.0.0.21"
    pods = "web-pods.toml"        # this host's own pods spec
    ships_to = "store1"           # default: the first store host

Roles: `store` runs a ClickHouse shard, the aggregator writing into the cluster and nginx's TLS
endpoint for shipping; `prometheus` the central Prometheus. Every host runs its pods (their loggers
ship over TLS to a store host) and a Prometheus agent. Pod names are fleet-wide: a logger's
credential and its entry ids are its pod's, so two hosts cannot both run a pod `user`.
"""
from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROLES = ("store", "prometheus")
CLICKHOUSE_DATA = "/var/lib/clickhouse-podvisor"
_INTERVAL = re.compile(r"^[0-9]+(ms|s|m|h)$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


FLEET_KEYS = ("name", "database", "pods", "clickhouse_data", "scrape_interval")
HOST_KEYS = ("address", "roles", "pods", "ships_to", "clickhouse_data")


class FleetError(ValueError):
    """A fleet.toml value that cannot be used; the message names the host and the key."""


@dataclass(frozen=True)
class FleetHost:
    name: str
    address: str
    roles: tuple[str, ...]
    pods: Path
    ships_to: str
    clickhouse_data: Path = Path(CLICKHOUSE_DATA)


@dataclass(frozen=True)
class Fleet:
    name: str
    database: str
    hosts: tuple[FleetHost, ...]
    scrape_interval: str = "15s"

    @property
    def stores(self) -> list[FleetHost]:
        return [h for h in self.hosts if "store" in h.roles]

    @property
    def prometheus(self) -> FleetHost:
        return next(h for h in self.hosts if "prometheus" in h.roles)

    def host(self, name: str) -> FleetHost:
        return next(h for h in self.hosts if h.name == name)


def load(path: Path) -> Fleet:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FleetError(f"fleet {path}: {exc}") from None
    fleet = data.get("fleet", {})
    for key in fleet:
        if key not in FLEET_KEYS:
            raise FleetError(f"fleet: key {key!r} is unknown ({', '.join(FLEET_KEYS)})")
    name = fleet.get("name", "podvisor")
    database = fleet.get("database", "podvisor")
    for key, value in (("name", name), ("database", database)):
        if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", value):
            raise FleetError(f"fleet: key {key!r} must be letters, digits and _, got {value!r}")
    base = Path(path).resolve().parent
    default_pods = fleet.get("pods")
    default_data = _data_dir(fleet.get("clickhouse_data", CLICKHOUSE_DATA), "fleet")
    interval = fleet.get("scrape_interval", "15s")
    if not isinstance(interval, str) or not _INTERVAL.match(interval):
        raise FleetError(f"fleet: key 'scrape_interval' must be a duration such as '15s', got {interval!r}")
    tables = data.get("hosts")
    if not isinstance(tables, dict) or not tables:
        raise FleetError("fleet: no hosts (add [hosts.NAME] tables)")
    hosts = []
    for host, table in tables.items():
        where = f"host {host!r}"
        if not _NAME.match(host) or not isinstance(table, dict):
            raise FleetError(f"{where}: name must be lowercase letters, digits and '-'; a table")
        unknown = set(table) - set(HOST_KEYS)
        if unknown:
            raise FleetError(f"{where}: key {sorted(unknown)[0]!r} is unknown ({', '.join(HOST_KEYS)})")
        try:
            ipaddress.ip_address(table.get("address", ""))
        except ValueError:
            raise FleetError(f"{where}: key 'address' must be an IP address, got {table.get('address')!r}") from None
        roles = table.get("roles", [])
        if not isinstance(roles, list) or any(r not in ROLES for r in roles):
            raise FleetError(f"{where}: key 'roles' must list some of {', '.join(ROLES)}, got {roles!r}")
        pods = table.get("pods", default_pods)
        if not isinstance(pods, str):
            raise FleetError(f"{where}: no pods spec (key 'pods', or [fleet] pods)")
        data_dir = _data_dir(table["clickhouse_data"], where) if "clickhouse_data" in table else default_data
        hosts.append((host, table["address"], tuple(roles), base / pods, table.get("ships_to"), data_dir))
    stores = [h[0] for h in hosts if "store" in h[2]]
    if not stores:
        raise FleetError("fleet: no host has the role 'store'")
    if sum("prometheus" in h[2] for h in hosts) != 1:
        raise FleetError("fleet: exactly one host must have the role 'prometheus'")
    out = []
    for host, address, roles, pods, ships_to, data_dir in hosts:
        ships_to = ships_to or (host if host in stores else stores[0])
        if ships_to not in stores:
            raise FleetError(f"host {host!r}: key 'ships_to' must name a store host ({', '.join(stores)})")
        out.append(FleetHost(host, address, roles, pods, ships_to, data_dir))
    return Fleet(name, database, tuple(out), interval)


def _data_dir(value: object, where: str) -> Path:
    """A ClickHouse data folder: absolute, since it names a folder on the host, not in the render."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise FleetError(f"{where}: key 'clickhouse_data' must be an absolute path, got {value!r}")
    return Path(value)
