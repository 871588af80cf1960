"""The stop budget: every shutdown deadline of a pod, derived from its `grace_seconds` in one place.

A stop runs: SIGTERM to the app, which drains its in-flight requests within `app_drain_seconds`
and exits before supervisord's SIGKILL at `grace_seconds`; then the sidecars, where the logger
ships what is left within `SIDECAR_DRAIN_SECONDS`. Whoever enforces a deadline (the renderer's
`stopwaitsecs`, the app's drain, the logger's budget, the controller's wait, systemd's
`TimeoutStopSec`) reads it from here, so no two places disagree about a number.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_GRACE_SECONDS = 20.0
# The logger's own drain once its app has exited: read to the end, ship, checkpoint.
SIDECAR_DRAIN_SECONDS = 10.0
# HTTP servers without lines to ship (metrics sidecar, aggregator) finish their requests in this.
SERVER_DRAIN_SECONDS = 5.0
# A process that keeps its own deadline needs a moment to exit: supervisord's SIGKILL comes later.
KILL_MARGIN_SECONDS = 5.0


def _whole(seconds: float) -> int:
    """supervisord takes whole seconds: round up, so it never kills before our deadline."""
    return max(1, math.ceil(seconds))


@dataclass(frozen=True)
class StopBudget:
    """One pod's deadlines, all from its grace period (seconds from the app's SIGTERM)."""

    grace_seconds: float = DEFAULT_GRACE_SECONDS

    @property
    def app_drain_seconds(self) -> float:
        """What the app is told (APP_DRAIN_SECONDS): finish requests in this, then exit, before
        supervisord's SIGKILL at the grace; the margin is a fifth of the grace, one second at most."""
        return round(self.grace_seconds - min(1.0, self.grace_seconds / 5), 3)

    @property
    def app_stopwaitsecs(self) -> int:
        return _whole(self.grace_seconds)

    @property
    def app_stop_seconds(self) -> float:
        """How long the app may take to be gone after its SIGTERM: the grace, then supervisord's SIGKILL."""
        return self.grace_seconds + KILL_MARGIN_SECONDS

    @property
    def logger_seconds(self) -> float:
        """The logger's whole budget from its SIGTERM: wait for the app (at most its grace), then drain."""
        return self.grace_seconds + SIDECAR_DRAIN_SECONDS

    @property
    def logger_stopwaitsecs(self) -> int:
        return _whole(self.logger_seconds + KILL_MARGIN_SECONDS)

    @property
    def metrics_stopwaitsecs(self) -> int:
        return _whole(SERVER_DRAIN_SECONDS + KILL_MARGIN_SECONDS)

    @property
    def pod_stop_seconds(self) -> float:
        """How long a whole pod may take to stop (app, then sidecars) before it is reported late."""
        return float(self.logger_stopwaitsecs)

    @property
    def serial_seconds(self) -> int:
        """The pod's programs stopped one after another, each taking its full stopwaitsecs."""
        return self.app_stopwaitsecs + self.logger_stopwaitsecs + self.metrics_stopwaitsecs


DEFAULT_BUDGET = StopBudget()


@dataclass(frozen=True)
class StackBudget:
    """Deadlines of the whole stack: the pods stop in parallel, the aggregator after the loggers."""

    pods: tuple[StopBudget, ...]

    @property
    def aggregator_drain_seconds(self) -> float:
        return SERVER_DRAIN_SECONDS

    @property
    def aggregator_stopwaitsecs(self) -> int:
        return _whole(SERVER_DRAIN_SECONDS + KILL_MARGIN_SECONDS)

    @property
    def controller_stopwaitsecs(self) -> int:
        """The controller is stopped last, when everything else has gone."""
        return _whole(2 * KILL_MARGIN_SECONDS)

    @property
    def parallel_seconds(self) -> float:
        """The controller's shutdown: every pod at once, then the aggregator."""
        slowest = max((p.pod_stop_seconds for p in self.pods), default=0.0)
        return slowest + self.aggregator_stopwaitsecs

    @property
    def systemd_timeout_seconds(self) -> int:
        """systemd's TimeoutStopSec: even supervisord's own walk, one program at a time with each
        taking its full stopwaitsecs (the controller gone), ends before systemd SIGKILLs."""
        return (sum(p.serial_seconds for p in self.pods) + self.aggregator_stopwaitsecs
                + self.controller_stopwaitsecs + _whole(KILL_MARGIN_SECONDS))
