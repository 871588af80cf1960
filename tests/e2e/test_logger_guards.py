"""The logger says what it cannot do: a log file replaced by a symlink, and shipping that stalls.

One stack for the module, its loggers tuned to retry fast, so that the aggregator coming back is
seen within a second or two.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import requests

from podvisor.testing.harness import StackHandle, load_spec_dict

pytestmark = pytest.mark.e2e
TIMEOUT = 10
FAST = {"LOGGER_BACKOFF_INITIAL": "0.05", "LOGGER_BACKOFF_MAX": "0.3", "LOGGER_REQUEST_TIMEOUT": "1"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> StackHandle:
    spec = load_spec_dict(None)
    for pod in spec["pods"].values():
        pod["logger_env"] = FAST
    handle = StackHandle(tmp_path_factory.mktemp("guards"), spec)
    try:
        yield handle.start()
    finally:
        handle.stop()


def health(stack: StackHandle) -> dict:
    reply = requests.get(stack.loggers["user"] + "/health", timeout=TIMEOUT)
    reply.raise_for_status()
    return reply.json()


def logger_metric(stack: StackHandle, name: str) -> float:
    text = requests.get(stack.loggers["user"] + "/metrics", timeout=TIMEOUT).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


def test_a_stall_shows_in_the_logger_health_until_an_ack_arrives(stack):
    marker = uuid.uuid4().hex
    assert health(stack)["stalled_seconds"] == 0 or stack.wait_for(
        lambda: health(stack)["stalled_seconds"] == 0, TIMEOUT, "nothing waiting at first")
    stack.rpc.stop("aggregator")
    try:
        with open(stack.pod_dir("user") / "logs" / "app.log", "a") as log:
            log.write(json.dumps({"message": f"waits {marker}"}) + "\n")
        stalled = stack.wait_for(lambda: (h := health(stack))["stalled_seconds"] > 1.0 and h, TIMEOUT,
                                 "the logger reports lines waiting without an ack")
        assert stalled["waiting_lines"] >= 1 and stalled["waiting_bytes"] > 0
        assert stalled["last_progress_at"] <= time.time() - 1.0
    finally:
        stack.rpc.start("aggregator")
    # Resumed: nothing waits. (An acknowledgement alone also sets stalled_seconds to 0 while later
    # lines, such as the probes' own, are still in flight: waiting_lines says when all are through.)
    resumed = stack.wait_for(lambda: (h := health(stack))["stalled_seconds"] == 0 and h["waiting_lines"] == 0
                             and h, TIMEOUT, "shipping resumed")
    assert resumed["last_progress_at"] > stalled["last_progress_at"]
    assert stack.logs(q=marker), "the waiting line was shipped"


def test_a_log_file_replaced_by_a_symlink_is_refused_counted_and_reported(stack, tmp_path):
    logs = stack.pod_dir("user") / "logs"
    outside = tmp_path / "outside.log"
    outside.write_text("")
    os.replace(logs / "app.log", logs / "app.log.1")  # as a rotation would, then the link takes its name
    os.symlink(outside, logs / "app.log")
    marker = uuid.uuid4().hex
    with open(logs / "app.log", "a") as log:  # what the app does the next time it opens app.log
        log.write(json.dumps({"message": f"through the link {marker}"}) + "\n")
    reported = stack.wait_for(lambda: health(stack)["symlinks_refused"] == ["app.log"], TIMEOUT,
                              "the logger's health names the symlink")
    assert reported
    assert logger_metric(stack, "podvisor_logger_symlinks_refused_total") == 1
    log_text = (logs / "sidecars" / "logger.log").read_text()
    assert log_text.count("is a symbolic link") == 1, log_text[-2000:]
    # Written through the link, never shipped: another marker in a regular file proves the logger runs.
    other = uuid.uuid4().hex
    with open(logs / "other.log", "a") as log:
        log.write(json.dumps({"message": f"regular {other}"}) + "\n")
    stack.wait_for(lambda: stack.logs(q=other), TIMEOUT, "a regular file's line shipped")
    assert stack.logs(q=marker) == []
    assert logger_metric(stack, "podvisor_logger_symlinks_refused_total") == 1, "counted once, not per scan"
