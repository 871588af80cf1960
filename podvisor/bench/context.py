"""What every scenario gets: the sizes, the selected scenarios, their results, stacks, progress."""

from __future__ import annotations

import subprocess
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from podvisor.bench.profile import Sampler
from podvisor.bench.report import Progress, ScenarioResult
from podvisor.bench.sizes import Sizes
from podvisor.bench.stacks import Stacks
from podvisor.testing.harness import terminate


@dataclass(frozen=True)
class Scenario:
    number: int
    key: str
    title: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(1, "throughput", "Log pipeline throughput"),
    Scenario(2, "baseline", "Baseline: one POST per line"),
    Scenario(3, "latency", "Delivery latency"),
    Scenario(4, "footprint", "Sidecar footprint"),
    Scenario(5, "overhead", "App overhead of the sidecars"),
    Scenario(6, "metrics", "Metrics sidecar scrape-and-enrich"),
    Scenario(7, "aggregator", "Aggregator ingest and queries"),
    Scenario(8, "lifecycle", "Lifecycle"),
    Scenario(9, "gateway", "Gateway overhead"),
    Scenario(10, "restart", "Requests refused across a kill -9"),
    Scenario(11, "stores", "ClickHouse store beside SQLite"),
    Scenario(12, "rsyslog", "Side by side with rsyslog"),
)


@dataclass
class Bench:
    sizes: Sizes
    selected: frozenset[int]
    workdir: Path
    progress: Progress
    results: dict[int, ScenarioResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stacks = Stacks(self.workdir)
        for sc in SCENARIOS:
            if sc.number in self.selected:
                self.results[sc.number] = ScenarioResult(sc.number, sc.key, sc.title)

    def wants(self, number: int) -> bool:
        return number in self.selected

    def result(self, number: int) -> ScenarioResult:
        """The result of scenario `number`; a scratch one when it was not selected (figures dropped)."""
        if number in self.results:
            return self.results[number]
        sc = SCENARIOS[number - 1]
        return ScenarioResult(sc.number, sc.key, sc.title)

    @contextmanager
    def profiled(self, number: int, pids: dict[str, int], when: bool = True) -> Iterator[None]:
        """Sample `pids` with py-spy while the block runs (when `when`: the last run of a scenario),
        for the report's 'where the time goes' of scenario `number`."""
        if not when or number not in self.results:
            yield
            return
        samplers = [Sampler(name, pid, self.workdir / f"profile-{number}-{name}.txt", 600).start()
                    for name, pid in pids.items()]
        try:
            yield
        finally:
            self.results[number].profiles = [sampler.stop() for sampler in samplers]

    def say(self, text: str, detail: bool = False) -> None:
        self.progress.show(text, detail)

    def attempt(self, numbers: list[int], fn: Callable[[], None]) -> bool:
        """Run `fn`; an exception becomes the error of those of `numbers` that were selected."""
        try:
            fn()
            return True
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 (reported in the table; the other scenarios go on)
            detail = "".join(traceback.format_exception_only(exc)).strip()
            for n in numbers:
                if n in self.results and self.results[n].error is None:
                    self.results[n].error = detail.splitlines()[0][:300]
                    self.results[n].notes.append(detail[:4000])
            return False


@contextmanager
def child(argv: list[str], log: Path, **kwargs: object) -> Iterator[subprocess.Popen]:
    """A helper process of the benchmark, its output in `log`; terminated (then killed) on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=kwargs.pop("stdout", out), stderr=out, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        terminate(proc)
