"""Hosts for tests: network namespaces joined by one switch, made and removed by the test itself.

`Network(prefix)` creates a switch namespace holding a bridge; `network.host(name)` a namespace for
a host with a veth pair whose other end is on the bridge, an address from 198.18.0.0/15 (the range
set aside for benchmark networks) and loopback up, so a host runs its stack on its default ports.
No namespace has a route out and the test's own namespace has no leg on the switch: no traffic
leaves the namespaces. `close()` removes every namespace (their veths go with them) even after a
failure. Needs root and iproute2 (`ip`); a test fails, not skips, without them.

`call(host, fn)` runs `fn()` on a thread that has entered the host's namespace (sockets it opens
live there), which is how a test talks to the services of a host, on that host's loopback.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
SUBNET = "198.18.0"


def ip_binary() -> str:
    found = shutil.which("ip", path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert found is not None, "ip not found: install Debian's iproute2 package (apt-get install -y iproute2)"
    assert os.geteuid() == 0, "network namespaces need root"
    return found


def _ip(*args: str) -> None:
    done = subprocess.run([ip_binary(), *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str

    def exec_prefix(self) -> list[str]:
        """Prepend to a command to run it in this host's namespace."""
        return [ip_binary(), "netns", "exec", self.namespace]


class Network:
    """A switch namespace and the host namespaces plugged into it."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.switch = f"pvsw-{self.tag}"
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        _ip("netns", "add", self.switch)
        self._namespaces.append(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def host(self, name: str) -> Host:
        """A new host namespace on the switch, with the next address."""
        index = len(self.hosts) + 1
        namespace = f"pv-{self.tag}-{name}"
        _ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        outer, inner = f"pv{self.tag}{index}", "eth0"
        _ip("link", "add", outer, "type", "veth", "peer", "name", f"pvi{self.tag}{index}")
        _ip("link", "set", outer, "netns", self.switch)
        _ip("link", "set", f"pvi{self.tag}{index}", "netns", namespace)
        _ip("-n", namespace, "link", "set", f"pvi{self.tag}{index}", "name", inner)
        _ip("-n", self.switch, "link", "set", outer, "master", "br0")
        _ip("-n", self.switch, "link", "set", outer, "up")
        address = f"{SUBNET}.{index}"
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inner)
        _ip("-n", namespace, "link", "set", inner, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        host = Host(name, namespace, address)
        self.hosts.append(host)
        return host

    def unplug(self, host: Host) -> None:
        """Take the host off the network (its link goes down): to the others it is gone."""
        _ip("-n", host.namespace, "link", "set", "eth0", "down")

    def plug(self, host: Host) -> None:
        _ip("-n", host.namespace, "link", "set", "eth0", "up")

    def close(self) -> None:
        """Remove every namespace made (veths go with them); report what could not be removed."""
        errors = []
        for namespace in reversed(self._namespaces):
            try:
                _ip("netns", "del", namespace)
            except AssertionError as exc:
                errors.append(str(exc))
        self._namespaces.clear()
        if errors:
            raise AssertionError("network namespaces left behind: " + "; ".join(errors))

    def close_after(self, errors: list[str], what: str) -> None:
        """The end of a teardown: remove the namespaces, then fail the test with every error of
        the teardown (`errors`, and the namespaces' own) at once."""
        try:
            self.close()
        except AssertionError as exc:
            errors.append(str(exc))
        if errors:
            import pytest  # only tests tear fleets down

            pytest.fail(f"{what} teardown: " + "\n".join(errors), pytrace=False)


def call(host: Host, fn: Callable[[], T]) -> T:
    """Run `fn()` inside `host`'s network namespace (on a thread of its own) and return its result."""
    outcome: dict[str, object] = {}

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{host.namespace}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                outcome["error"] = OSError(ctypes.get_errno(), f"setns into {host.namespace} failed")
                return
        finally:
            os.close(fd)
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{host.name}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
