"""Where the time goes: py-spy samples a process while a scenario measures it, and the report names
the three functions that took most of it (time spent in the function itself, blocking waits left
out), for every scenario that missed a goal.

py-spy attaches to a running process (ptrace: root, or a child of this process's tree with the
default Yama scope); without it the report says how to get it instead of a profile.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Frames where a thread waits rather than works (locks, sockets, sleeps, the event loop's poll).
IDLE = ("wait (threading.py", "wait_for (threading.py", "Condition.wait", "Event.wait", "sleep", "select",
        "poll", "_wait_for_tstate_lock", "accept", "readinto", "recv", "Queue.get (queue.py")
HINT = "no profile: py-spy not found (pip install py-spy)"


@dataclass
class Profile:
    """The busiest functions of one process: (share of its busy samples, function)."""

    process: str
    busy_samples: int = 0
    top: list[tuple[float, str]] = field(default_factory=list)
    error: str | None = None

    def text(self) -> str:
        if self.error:
            return f"{self.process}: {self.error}"
        costs = "; ".join(f"{n}. {name} {share:.0f}%" for n, (share, name) in enumerate(self.top, 1))
        return f"{self.process} ({self.busy_samples} busy samples): {costs or 'idle'}"


def py_spy() -> str | None:
    """The py-spy executable (beside this interpreter first), or None."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Sampler:
    """py-spy recording `pid` from start() until stop() (or `seconds`), raw collapsed stacks."""

    def __init__(self, name: str, pid: int, out: Path, seconds: float, rate: int = 100) -> None:
        self.name, self.pid, self.out = name, pid, out
        self.seconds, self.rate = seconds, rate
        self._proc: subprocess.Popen | None = None

    def start(self) -> Sampler:
        exe = py_spy()
        if exe is None:
            return self
        argv = [exe, "record", "--pid", str(self.pid), "--duration", str(max(1, int(self.seconds + 0.999))),
                "--rate", str(self.rate), "--format", "raw", "--nonblocking", "--output", str(self.out)]
        self._log = open(self.out.with_suffix(".log"), "wb")
        self._proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> Profile:
        """End the recording (py-spy writes its file on SIGINT) and read it."""
        if self._proc is None:
            return Profile(self.name, error=HINT)
        if self._proc.poll() is None:
            self._proc.send_signal(2)
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
        if not self.out.exists():
            reason = self.out.with_suffix(".log").read_text(errors="replace").strip().splitlines()
            return Profile(self.name, error=f"py-spy failed: {reason[-1] if reason else 'no output'}"[:200])
        return top_costs(self.name, self.out.read_text(errors="replace"))


def top_costs(name: str, collapsed: str, count: int = 3) -> Profile:
    """The `count` functions with the most samples of their own, among samples that are not a wait."""
    own: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        if any(marker in leaf for marker in IDLE):
            continue
        own[_short(leaf)] += int(samples)
    busy = sum(own.values())
    top = [(100.0 * n / busy, frame) for frame, n in own.most_common(count)] if busy else []
    return Profile(name, busy, top)


def _short(frame: str) -> str:
    """'run (aggregator/store/sqlite.py:99)' -> 'run (store/sqlite.py:99: <that line of code>)'."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    if not where:
        return func
    path, _, line = where.rpartition(":")
    code = _source_line(path, line)
    short = "/".join(path.split("/")[-2:])
    return f"{func} ({short}:{line}{': ' + code if code else ''})"


def _source_line(path: str, line: str) -> str:
    """The line of code a frame points at, when the file is found (the checkout or an absolute path)."""
    if not line.isdigit():
        return ""
    for candidate in (Path(path), REPO / path):
        try:
            with open(candidate, encoding="utf-8", errors="replace") as source:
                for number, text in enumerate(source, 1):
                    if number == int(line):
                        text = " ".join(text.split())
                        return text if len(text) <= 70 else text[:67] + "..."
        except OSError:
            continue
    return ""
