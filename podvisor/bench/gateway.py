"""Scenario 9: what the gateway costs, requests/s through nginx against the app directly.

One default stack (the three demo pods and the gateway). `wrk` drives GET /user/ through the
gateway (nginx strips the prefix: the user app's GET /) and GET / of the user app directly, with
the same connections and duration, alternately, in swapped order each run; each run's ratio is of
its own pair. Through the gateway every request is also an nginx access line that the gateway's
logger ships and counts, on the same 2 cores: the figure is the whole cost of the extra hop.
"""

from __future__ import annotations

import os

import requests

from podvisor.bench.context import Bench
from podvisor.bench.overhead import wrk

POD = "user"


def run(bench: Bench) -> None:
    sizes, result = bench.sizes, bench.result(9)
    bench.say("9 gateway: starting the default stack with its gateway")
    with bench.stacks.running() as h:
        direct, through = h.apps[POD] + "/", h.apps["gateway"] + f"/{POD}/"
        for url in (direct, through):
            resp = requests.get(url, timeout=5)
            if resp.status_code != 200 or resp.text != "Hello from user-service":
                raise RuntimeError(f"GET {url}: {resp.status_code} {resp.text[:200]!r}")
            wrk(url, 1, sizes.wrk_connections)  # warm-up: connections, nginx's upstream keep-alive
        errors = 0
        for i in range(sizes.runs):
            order = [("directly", direct), ("through the gateway", through)]
            if i % 2:
                order.reverse()
            got = {}
            for name, url in order:
                bench.say(f"9 gateway run {i + 1}/{sizes.runs}: wrk {sizes.wrk_seconds:g} s, "
                          f"{sizes.wrk_connections} connections, {name}")
                got[name] = wrk(url, sizes.wrk_seconds, sizes.wrk_connections)
                errors += int(got[name]["errors"])
            result.figure("requests/s, user app directly", "req/s").add(got["directly"]["rps"])
            result.figure("requests/s, through the gateway", "req/s").add(got["through the gateway"]["rps"])
            result.figure("throughput through the gateway / directly", "x").add(
                got["through the gateway"]["rps"] / got["directly"]["rps"])
            result.figure("p99 latency, user app directly", "ms").add(got["directly"]["p99_ms"])
            result.figure("p99 latency, through the gateway", "ms").add(got["through the gateway"]["p99_ms"])
    result.notes.append(
        f"wrk -t2 -c{sizes.wrk_connections} -d{sizes.wrk_seconds:g}s GET /user/ through nginx vs GET / of the "
        f"user app, alternately; socket errors and non-2xx: {errors}")
    if os.cpu_count() and os.cpu_count() <= 2:
        result.notes.append("on 2 cores wrk, nginx, the app and both pods' loggers share the CPUs")
