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


class Keeper:
    def __init__(self, name: str, sup: Supervisor, backoff: Backoff, host: str, port: int | None,
                 prober: Callable[..., probes.Result] = probes.run):
        self.name, self.sup, self.host, self.port, self.prober = name, sup, host, port, prober
        self.backoff = BackoffTracker(backoff)
        self.reset()

    def reset(self) -> None:
        self.launched = False  # started by us (or adopted) and not yet seen ending
        self.ready = False  # alive and answered /health since it started
        self.next_start = 0.0
        self.restarts = 0
        self.backoff.reset()

    def start(self, now: float) -> bool:
        try:
            self.sup.start(self.name, False)
        except Exception as exc:  # a refused spawn is retried with backoff and logged, never dropped
            log.error("cannot start %s: %s", self.name, exc)
            self.next_start = now + self.backoff.crashed(now)
            return False
        self.backoff.started(now)
        self.launched, self.ready = True, False
        return True

    def keep(self, info: dict, now: float) -> None:
        if info["statename"] in ALIVE:
            self.launched = True  # adopts a process an operator started
            if not self.ready:
                self.ready = self.port is None or self.prober(HEALTH, self.host, self.port).ok
            return
        self.ready = False
        if self.launched:
            self.launched = False
            if info["statename"] == "STOPPED":
                log.warning("%s was stopped from outside podvisor; leaving it stopped", self.name)
                self.next_start = float("inf")
                return
            delay = self.backoff.crashed(now)
            self.restarts += 1
            log.warning("%s ended (%s, exit %s); restarting it alone in %.2fs",
                        self.name, info["statename"], info.get("exitstatus"), delay)
            self.next_start = now + delay
        if now >= self.next_start:
            self.start(now)
