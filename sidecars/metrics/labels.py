"""The pod labels the metrics sidecar adds to every sample, and the clash rule.

Every sample leaving the sidecar carries `service_name`, `environment` and `pod`; the series of one
replica of a pod with several (its app's and its process tree's) also carry `replica`, the slot
number ("0", "1", ...) that `podctl status` shows. When a sample
already has a label of one of those names, the app's value is kept and ours is exposed as
`exported_<name>` (the prefix repeats until the name is free). It is the same `exported_` prefix
Prometheus uses for label clashes with honor_labels=false, applied the other way round: the sidecar
never overwrites what the app said about itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

LABEL_NAMES = ("service_name", "environment", "pod")
EXPORTED_PREFIX = "exported_"


def escape_label_value(value: str) -> str:
    """Escape a label value for both exposition formats (backslash, double quote, line feed)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exported_name(name: str, taken: Iterable[str]) -> str:
    """Return `name`, or `exported_name` (repeated) until it is not in `taken`."""
    taken = set(taken)
    while name in taken:
        name = EXPORTED_PREFIX + name
    return name


@dataclass(frozen=True)
class PodLabels:
    """The identity of one pod (and of one of its replicas) as labels: service_name, environment, pod
    (, replica)."""

    service_name: str
    environment: str
    pod: str
    replica: str | None = None

    def items(self) -> list[tuple[str, str]]:
        items = [("service_name", self.service_name), ("environment", self.environment), ("pod", self.pod)]
        return items if self.replica is None else [*items, ("replica", self.replica)]

    def names(self) -> list[str]:
        return [name for name, _ in self.items()]

    def values(self) -> list[str]:
        return [value for _, value in self.items()]

    def of_replica(self, replica: str) -> PodLabels:
        return replace(self, replica=replica)

    def merged_into(self, labels: dict[str, str]) -> dict[str, str]:
        """Return `labels` plus ours; the clash rule renames ours, never theirs."""
        merged = dict(labels)
        for name, value in self.items():
            merged[exported_name(name, merged)] = value
        return merged
