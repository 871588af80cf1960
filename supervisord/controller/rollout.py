"""A rolling replacement of a pod's app processes, as a Kubernetes rolling update with maxUnavailable 0.

Where podvisor holds the pod's socket, a new process is started in a spare slot (on the same
socket) and only once it is Ready is an old one told to stop; it drains within its grace and its
slot becomes the spare. Where the app binds its own port, each replica is stopped, then started.
The pod runner advances a rollout one step per reconcile: nothing here blocks or does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# The longest a new process may take to become Ready before the rollout gives up on it (and
# keeps the old one), like a Deployment's progressDeadlineSeconds.
PROGRESS_DEADLINE_SECONDS = 120.0


@dataclass
class Rollout:
    op_id: str
    old: list[int]  # slots still to replace, in order
    regroup: frozenset[str] = frozenset()  # programs supervisord must take anew (a changed section)
    deadline_seconds: float = PROGRESS_DEADLINE_SECONDS
    new: int | None = None  # the slot started for the replacement in progress
    stopping: int | None = None  # the old slot told to stop, not yet gone
    in_place: bool = False  # no spare (the app binds its own port): the stopped slot starts again
    started_at: float = 0.0
    replaced: list[tuple[int, int]] = field(default_factory=list)  # (old slot, new slot)

    @property
    def done(self) -> bool:
        return not self.old and self.new is None and self.stopping is None
