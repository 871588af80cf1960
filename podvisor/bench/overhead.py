"""Scenario 5: the user app's throughput and p99 with its sidecars running vs the same app alone.

"Alone" is the same command with the same environment as supervisord gives the pod's app (its own
port, database and log file), started as a plain subprocess: nothing tails its log, nothing scrapes
it. "In the pod" is the stack's user app, whose every access line the logger ships to the
aggregator and whose metrics sidecar is scraped every 15 s. `wrk` drives GET / with N connections;
the two are measured alternately, in swapped order each run, and each run's ratio is of its own pair.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import requests

from podvisor.bench.context import Bench, child
from podvisor.bench.report import Goal
from podvisor.supervisord.render import conf as render
from podvisor.testing.harness import StackHandle, bin_dir, free_port, wait_for

POD = "user"
INSTALL_HINT = "install it with `sudo apt-get install -y wrk`"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> dict[str, float]:
    """requests/s, p99 ms and error count from `wrk --latency` output; ValueError if it is not there."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    p99 = re.search(r"^\s+99(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if not rps or not p99:
        raise ValueError(f"unexpected wrk output:\n{text[-1500:]}")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    return {
        "rps": float(rps.group(1)),
        "p99_ms": float(p99.group(1)) * _UNITS[p99.group(2)],
        "errors": errors,
    }


def wrk(url: str, seconds: float, connections: int) -> dict[str, float]:
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError(f"wrk not found on PATH: {INSTALL_HINT}")
    threads = max(1, min(2, connections))
    argv = [exe, f"-t{threads}", f"-c{connections}", f"-d{max(seconds, 1):g}s", "--timeout", "10s",
            "--latency", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return parse_wrk(done.stdout)


def alone_environment(h: StackHandle, folder: Path, port: int) -> dict[str, str]:
    """The environment supervisord gives the pod's app, with the port and files moved to `folder`."""
    app_env = render.Renderer(h.spec, bin_dir()).app_env(h.spec.pod(POD))
    env = {k: v for k, v in h.env().items() if k != "PODVISOR_CONF"}
    # The renderer's state paths carry supervisord's %-escaping; plain values do not.
    env.update(
        {k: str(v).replace("%%", "%") if isinstance(v, render._Raw) else str(v) for k, v in app_env.items()}
    )
    env.update(APP_PORT=str(port), APP_DB=str(folder / f"{POD}.db"), APP_LOG_FILE=str(folder / "app.log"),
               PYTHONUNBUFFERED="1")
    return env


def command(h: StackHandle) -> list[str]:
    """The app's command as the renderer resolves it (podvisor's own programs run from bin_dir)."""
    cmd = h.spec.pod(POD).command
    if cmd.startswith("podvisor-") and "/" not in cmd and " " not in cmd:
        return [str(Path(bin_dir()) / cmd)]
    return shlex.split(cmd)


def run(bench: Bench, h: StackHandle) -> None:
    sizes = bench.sizes
    result = bench.result(5)
    folder = bench.workdir / "alone"
    folder.mkdir(exist_ok=True)
    port = free_port()
    alone_url, pod_url = f"http://127.0.0.1:{port}/", h.apps[POD] + "/"
    bench.say("5 overhead: starting the app alone")
    with child(
        command(h), folder / "app.out", env=alone_environment(h, folder, port), cwd=str(folder)
    ) as proc:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the app alone exited {proc.returncode}: {(folder / 'app.out').read_text()[-800:]}"
                )
            return requests.get(alone_url, timeout=1).status_code == 200

        wait_for(up, 60, "the app alone to answer")
        for url in (alone_url, pod_url):  # warm-up: connections, caches, first-call code paths
            wrk(url, 1, sizes.wrk_connections)
        errors = 0
        for i in range(sizes.runs):
            order = [("alone", alone_url), ("in its pod", pod_url)]
            if i % 2:
                order.reverse()
            got = {}
            for name, url in order:
                bench.say(
                    f"5 overhead run {i + 1}/{sizes.runs}: wrk {sizes.wrk_seconds:g} s, "
                    f"{sizes.wrk_connections} connections, app {name}"
                )
                pids = {"app": h.pid(f"{POD}-app"), "logger": h.pid(f"{POD}-logger"), "aggregator": h.pid("aggregator")}
                with bench.profiled(5, pids, when=i == sizes.runs - 1 and name == "in its pod"):
                    got[name] = wrk(url, sizes.wrk_seconds, sizes.wrk_connections)
                errors += int(got[name]["errors"])
            result.figure("throughput in the pod / alone", "x", Goal(">=", 0.95)).add(
                got["in its pod"]["rps"] / got["alone"]["rps"]
            )
            result.figure("p99 latency in the pod / alone", "x", Goal("<=", 1.10)).add(
                got["in its pod"]["p99_ms"] / got["alone"]["p99_ms"]
            )
            result.figure("requests/s, app alone", "req/s").add(got["alone"]["rps"])
            result.figure("requests/s, app in its pod", "req/s").add(got["in its pod"]["rps"])
            result.figure("p99 latency, app alone", "ms").add(got["alone"]["p99_ms"])
            result.figure("p99 latency, app in its pod", "ms").add(got["in its pod"]["p99_ms"])
    result.notes.append(
        f"wrk GET / with {sizes.wrk_connections} connections, {sizes.wrk_seconds:g} s each, "
        f"alone and in the pod alternately; socket errors and non-2xx: {errors}"
    )
    if os.cpu_count() and os.cpu_count() <= 2:
        result.notes.append(
            "on 2 cores wrk, the app, the logger and the aggregator share the CPUs: the ratio "
            "includes shipping every access line"
        )
