"""Probe bookkeeping: initial delay, period, success and failure thresholds."""
from __future__ import annotations

from podvisor.supervisord.controller.probes import ProbeState, Result
from podvisor.supervisord.spec.model import Probe

OK, FAIL = Result(True, "200"), Result(False, "503")


def state(**probe) -> ProbeState:
    values = dict(http_get="/health", initial_delay_seconds=5.0, period_seconds=2.0)
    values.update(probe)
    return ProbeState(Probe(**values), started_at=100.0)


def test_not_due_before_the_initial_delay():
    s = state()
    assert not s.due(104.99)
    assert s.due(105.0)


def test_after_a_result_the_next_is_due_one_period_later():
    s = state()
    s.record(OK, 105.0)
    assert not s.due(106.99)
    assert s.due(107.0)
    assert s.last == OK


def test_passing_needs_success_threshold_consecutive_successes():
    s = state(success_threshold=3, failure_threshold=1)
    s.record(OK, 1)
    s.record(OK, 2)
    s.record(FAIL, 3)  # breaks the run
    s.record(OK, 4)
    s.record(OK, 5)
    assert not s.passing
    s.record(OK, 6)
    assert s.passing


def test_passing_ends_only_at_failure_threshold_consecutive_failures():
    s = state(failure_threshold=3)
    s.record(OK, 1)
    assert s.passing
    s.record(FAIL, 2)
    s.record(FAIL, 3)
    assert s.passing and not s.failed
    s.record(FAIL, 4)
    assert not s.passing and s.failed


def test_a_success_resets_the_failure_count():
    s = state(failure_threshold=2)
    s.record(FAIL, 1)
    s.record(OK, 2)
    s.record(FAIL, 3)
    assert not s.failed
    s.record(FAIL, 4)
    assert s.failed


def test_a_fresh_probe_is_neither_passing_nor_failed():
    s = state()
    assert not s.passing and not s.failed and s.last is None
