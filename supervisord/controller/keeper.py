"""Keep one supervisord program running: start it, restart it alone with backoff when it ends.

Used for the sidecars (restartPolicy Always) and for the aggregator. A program stopped from outside
(`supervisorctl stop`) after we started it is left stopped: that was an operator's decision.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from supervisord.controller import probes
from supervisord.controller.backoff import BackoffTracker
from supervisord.rpc import ALIVE, Supervisor
from supervisord.spec import Backoff, Probe

log = logging.getLogger(__name__)

HEALTH = Probe(http_get="/health", period_seconds=0.1, timeout_seconds=0.5, failure_threshold=1)


def exit_reason(info: dict) -> str:
    """Why a program that was running is not any more, in kubectl's words."""
    code = info.get("exitstatus", 0)
    if info["statename"] == "FATAL":
        return f"StartError: {info.get('spawnerr') or 'spawn error'}"
    if code == -1:  # supervisord's exit status for a process killed by a signal
        return "Error: killed by a signal"
    return "Completed" if code == 0 else f"Error: exit code {code}"


class Keeper:
    def __init__(self, name: str, sup: Supervisor, backoff: Backoff, host: str, port: int | None,
                 prober: Callable[..., probes.Result] = probes.run):
        self.name, self.sup, self.host, self.port, self.prober = name, sup, host, port, prober
        self.backoff = BackoffTracker(backoff)
        self.reset()

    def reset(self) -> None:
        self.launched = False  # started by us (or adopted) and not yet seen ending
        self.ready = False  # alive and answered /health since it started
        self.held = False  # stopped from outside podvisor: left stopped until the pod is (re)started
        self.next_start = 0.0
        self.restarts = 0
        self.last_reason: str | None = None
        self.backoff.reset()

    def start(self, now: float) -> bool:
        try:
            self.sup.start(self.name, False)
        except Exception as exc:  # a refused spawn is retried with backoff and counted, never dropped
            delay = self.backoff.crashed(now)
            self.restarts += 1
            self.last_reason = f"StartError: {exc}"
            log.error("cannot start %s: %s; retrying in %.2fs", self.name, exc, delay)
            self.next_start = now + delay
            return False
        self.backoff.started(now)
        self.launched, self.ready = True, False
        return True

    def keep(self, info: dict, now: float) -> None:
        if info["statename"] in ALIVE:
            self.launched, self.held = True, False  # adopts a process an operator started
            if not self.ready:
                self.ready = self.port is None or self.prober(HEALTH, self.host, self.port).ok
            return
        self.ready = False
        if self.launched:
            self.launched = False
            if info["statename"] == "STOPPED":
                log.warning("%s was stopped from outside podvisor; leaving it stopped", self.name)
                self.held, self.next_start = True, float("inf")
                return
            delay = self.backoff.crashed(now)
            self.restarts += 1
            self.last_reason = exit_reason(info)
            log.warning("%s ended (%s); restarting it alone in %.2fs", self.name, self.last_reason, delay)
            self.next_start = now + delay
        if now >= self.next_start:
            self.start(now)
