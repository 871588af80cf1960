"""podctl logs against a real stack: one pod, several, all; -f live within 2 s; --tail, --since,
--level, --grep; probe and scrape lines hidden unless --probes; and one clear line with the
documented exit code for every mistake."""
from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

pytestmark = pytest.mark.e2e
PODS = ("user", "product", "order")


@pytest.fixture(scope="module")
def stack(podvisor_module_stack):
    return podvisor_module_stack


def ok(result) -> str:
    return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def post(stack, *entries: dict) -> None:
    """Entries into the aggregator as a shipper sends them (with the stack's token)."""
    resp = requests.post(stack.aggregator_url + "/logs", json=list(entries), headers=stack.auth(), timeout=10)
    assert resp.status_code == 202 and resp.json()["stored"] == len(entries), resp.text


def entry(pod: str, message: str, **fields) -> dict:
    return {"pod": pod, "service_name": f"{pod}-service", "level": "info", "message": message, **fields}


LINE = re.compile(r"^(\S+)\s+\| (\S+) (\S+)\s+(.*)$")  # pod | timestamp LEVEL message


def parse(line: str) -> tuple[str, str, str, str]:
    match = LINE.match(line)
    assert match, f"not a podctl logs line: {line!r}"
    return match.groups()  # type: ignore[return-value]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Follower:
    """`podctl ...` running in the background; its stdout lines collected as they come."""

    def __init__(self, stack, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "podvisor.supervisord.podctl.main", "-c",
                                      str(stack.conf), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=stack.env())
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))

    def seen_line(self, text: str) -> bool:
        """Whether a line holding `text` has come (without waiting)."""
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait()[1])
        return any(text in line for line in self.seen)

    def wait_line(self, text: str, timeout: float) -> float:
        """When (monotonic) the first line holding `text` arrived; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} within {timeout}s; got {self.seen}\n"
                                     f"stderr: {self.stop()[1]}") from None
            self.seen.append(line)
            if text in line:
                return at

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.proc.returncode, self.proc.stderr.read()


def test_logs_user_f_shows_a_new_line_within_2s_and_hides_probe_lines(stack):
    follower = Follower(stack, "logs", "user", "-f")
    try:
        tag = uuid.uuid4().hex[:12]
        # The stream is live once a line posted now arrives (history and tail join without a gap).
        post(stack, entry("user", f"probe-{tag} GET /health 200", probe=True),
             entry("user", f"first-{tag}"), entry("order", f"other-pod-{tag}"))
        follower.wait_line(f"first-{tag}", 15)

        sent = time.monotonic()
        user_id = int(tag[:6], 16) + 1000  # an id nobody created: a 404, logged as `GET /users/<id> 404`
        assert requests.get(stack.apps["user"] + f"/users/{user_id}", timeout=5).status_code == 404
        arrived = follower.wait_line(f"GET /users/{user_id} 404", 10)
        assert arrived - sent < 2.0, f"the line took {arrived - sent:.2f}s to show"
        post(stack, entry("user", f"probe2-{tag} GET /metrics 200", probe=True), entry("user", f"last-{tag}"))
        follower.wait_line(f"last-{tag}", 10)
        shown = "\n".join(follower.seen)
        assert f"probe-{tag}" not in shown and f"probe2-{tag}" not in shown, shown
        assert f"other-pod-{tag}" not in shown, "a line of another pod"
        assert all(line.startswith("user ") for line in follower.seen if tag in line), shown
        assert "\x1b[" not in shown, "colour on a pipe"
    finally:
        code, err = follower.stop()
    assert code == 0 and err == "", (code, err)

    hidden = stack.podctl("logs", "user", "--grep", tag)
    assert hidden.returncode == 0 and f"first-{tag}" in hidden.stdout and "probe" not in hidden.stdout, ok(hidden)
    shown = stack.podctl("logs", "user", "--grep", tag, "--probes")
    assert f"probe-{tag}" in shown.stdout and f"probe2-{tag}" in shown.stdout, ok(shown)


def test_logs_f_tail_0_follows_every_pod_without_the_history(stack):
    tag = uuid.uuid4().hex[:12]
    post(stack, entry("order", f"before-{tag}"))
    follower = Follower(stack, "logs", "-f", "--tail", "0")
    try:
        # once a line posted after the start shows, the stream is live (probe lines are hidden now)
        stack.wait_for(lambda: post(stack, entry("user", f"warm-{tag}")) or follower.seen_line(f"warm-{tag}"), 15,
                       "the follower's stream live")
        post(stack, entry("order", f"live-{tag}"), entry("product", f"live-{tag}"))
        follower.wait_line(f"live-{tag}", 15)
        follower.wait_line(f"live-{tag}", 15)
    finally:
        code, err = follower.stop()
    assert code == 0, err
    ours = [line for line in follower.seen if f"live-{tag}" in line or f"before-{tag}" in line]
    assert sorted(line.split()[0] for line in ours) == ["order", "product"], follower.seen


def test_logs_of_every_pod_by_default_of_several_and_of_one(stack):
    tag = uuid.uuid4().hex[:12]
    post(stack, *(entry(pod, f"upstream timeout {tag} in {pod}") for pod in PODS))
    every = stack.podctl("logs")
    assert every.returncode == 0, ok(every)
    ours = [parse(line) for line in every.stdout.splitlines() if tag in line]
    assert sorted(pod for pod, *_ in ours) == sorted(PODS), ok(every)
    two = stack.podctl("logs", "user", "order", "--since", "10m", "--grep", "timeout")
    assert sorted(parse(line)[0] for line in two.stdout.splitlines() if tag in line) == ["order", "user"], ok(two)
    one = stack.podctl("logs", "product", "--grep", tag)
    assert [parse(line)[0] for line in one.stdout.splitlines()] == ["product"], ok(one)


def test_logs_f_order_follows_one_pod(stack):
    follower = Follower(stack, "logs", "-f", "order")
    tag = uuid.uuid4().hex[:12]
    try:
        post(stack, entry("user", f"not-order-{tag}"), entry("order", f"order-{tag}"))
        follower.wait_line(f"order-{tag}", 15)
    finally:
        code, err = follower.stop()
    assert code == 0, err
    assert all(parse(line)[0] == "order" for line in follower.seen), follower.seen


def test_logs_tail_since_level_and_grep(stack):
    tag = uuid.uuid4().hex[:12]
    now = datetime.now(UTC)
    old = stamp(now - timedelta(hours=2))
    post(stack, entry("user", f"{tag} old line", timestamp=old),
         *(entry("user", f"{tag} line {i}", timestamp=stamp(now + timedelta(milliseconds=i))) for i in range(5)),
         entry("user", f"{tag} went wrong", level="error", timestamp=stamp(now + timedelta(milliseconds=9))))

    def messages(*args: str) -> list[str]:
        result = stack.podctl("logs", "user", "--grep", tag, *args)
        assert result.returncode == 0 and result.stderr == "", ok(result)
        return [parse(line)[3] for line in result.stdout.splitlines()]
    assert messages() == [f"{tag} old line", *(f"{tag} line {i}" for i in range(5)), f"{tag} went wrong"]
    assert messages("--tail", "2") == [f"{tag} line 4", f"{tag} went wrong"]
    assert messages("--since", "1h") == [*(f"{tag} line {i}" for i in range(5)), f"{tag} went wrong"]
    assert messages("--since", "3h", "--tail", "1") == [f"{tag} went wrong"]
    assert messages("--since", stamp(now + timedelta(milliseconds=3))) == [f"{tag} line 3", f"{tag} line 4",
                                                                          f"{tag} went wrong"]
    assert messages("--since", f"{(now - timedelta(minutes=150)).timestamp():.0f}")[0] == f"{tag} old line"
    assert messages("--level", "error") == [f"{tag} went wrong"]
    assert messages("--level", "ERROR,warning") == [f"{tag} went wrong"]


def test_the_readme_logs_command_with_level_and_since(stack):
    post(stack, entry("user", "readme example failure", level="error"))
    result = stack.podctl("logs", "user", "--level", "error", "--since", "2024-05-01T10:00:00Z")
    assert result.returncode == 0, ok(result)
    lines = result.stdout.splitlines()
    assert any("readme example failure" in line for line in lines), ok(result)
    assert all(parse(line)[2] == "ERROR" for line in lines), ok(result)


MISTAKES = [
    # (arguments, exit code, what the one line on stderr says)
    (("logs", "nope"), 1, "no pod named 'nope' (pods: gateway, order, product, user)"),
    (("logs", "user", "--level", "bogus"), 2, "argument --level: 'bogus' is not a level"),
    (("logs", "user", "--limit", "0"), 2, "argument --limit: '0' is not a whole number of lines of at least 1"),
    (("logs", "user", "--tail", "-3"), 2, "argument --tail: '-3' is not a whole number"),
    (("logs", "user", "--since", "yesterday"), 2, "argument --since: 'yesterday' is not an ISO 8601 time"),
    (("logs", "user", "--grep", "***"), 2, "the aggregator refused the query: q: no words to search for"),
    (("describe", "nope"), 1, "no pod named 'nope'"),
    (("top", "nope"), 1, "no pod named 'nope'"),
    (("status", "-w", "-o", "json"), 2, "cannot be watched as JSON"),
    (("completion", "fish"), 2, "argument shell: invalid choice: 'fish'"),
]


@pytest.mark.parametrize("args, code, says", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_every_mistake_gets_one_clear_line_and_its_exit_code(stack, args, code, says):
    result = stack.podctl(*args)
    assert result.returncode == code, ok(result)
    assert result.stderr.count("\n") == 1 and says in result.stderr and "Traceback" not in result.stderr, ok(result)
    assert result.stdout == "", ok(result)


def test_a_conf_that_is_not_a_stack_conf_is_a_usage_error_not_a_traceback(tmp_path):
    for conf, says in (("/etc/passwd", "/etc/passwd is not a stack conf"),
                       (str(tmp_path / "missing.conf"), "cannot read")):
        result = subprocess.run([sys.executable, "-m", "podvisor.supervisord.podctl.main", "-c", conf, "status"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, ok(result)
        assert result.stderr.count("\n") == 1 and says in result.stderr, ok(result)


def test_logs_exit_4_when_the_aggregator_does_not_answer(podvisor_factory):
    stack = podvisor_factory(start=False).render()  # a conf, nobody home
    for args in (("logs", "user"), ("logs", "-f")):
        result = stack.podctl(*args, timeout=30)
        assert result.returncode == 4, ok(result)
        assert result.stderr == (f"podctl: the aggregator at {stack.aggregator_url} did not answer: "
                                 "connection refused\n"), ok(result)
