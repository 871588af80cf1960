"""podctl logs without a stack: --since forms, --level, counts, the query it sends, time order,
and argparse's mistakes as one line with exit 2."""
from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from podvisor.supervisord.podctl import logs
from podvisor.supervisord.podctl import main as podctl
from podvisor.supervisord.podctl.errors import EXIT_USAGE

NOW = 1_714_560_000.0  # 2024-05-01T10:40:00Z


@pytest.mark.parametrize("text, seconds", [
    ("10m", NOW - 600), ("2h", NOW - 7200), ("1d", NOW - 86400), ("1h30m", NOW - 5400), ("90s", NOW - 90),
    ("1714521600", 1714521600.0), ("1714521600.5", 1714521600.5),
    ("2024-05-01T00:00:00Z", 1714521600.0), ("2024-05-01T00:00:00", 1714521600.0),  # no zone: UTC
    ("2024-05-01T02:00:00+02:00", 1714521600.0), ("2024-05-01", 1714521600.0),
])
def test_since_takes_iso_epoch_or_a_duration_back_from_now(text, seconds):
    assert logs.parse_since(text, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["yesterday", "10x", "-5m", "nan", "inf", "", "m", "5 m"])
def test_since_refuses_anything_else(text):
    with pytest.raises(ValueError):
        logs.parse_since(text, NOW)


def test_levels_and_counts():
    assert logs.levels_arg("ERROR, warning,error") == ("error", "warning")
    for bad in ("bogus", "error,bogus", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            logs.levels_arg(bad)
    assert logs.count_arg(0)("0") == 0 and logs.count_arg(1)("5") == 5
    for text in ("0", "-1", "ten", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            logs.count_arg(1)(text)


def test_the_query_sent_to_the_aggregator():
    assert logs.LogFilter().params() == {"probes": "exclude"}
    params = logs.LogFilter(("user", "order"), ("error",), 1714521600.0, "timeout", probes=True).params()
    assert params == {"probes": "include", "pod": "user,order", "level": "error", "since": "1714521600.000",
                      "q": "timeout"}


def test_lines_of_several_pods_are_shown_in_time_order():
    entries = [{"pod": "a", "timestamp": "2024-05-01T10:00:02Z"}, {"pod": "b", "timestamp": "2024-05-01T10:00:01Z"},
               {"pod": "c", "timestamp": "2024-05-01T12:00:01.500+02:00"}, {"pod": "d"},
               {"pod": "e", "timestamp": "2024-05-01T10:00:01Z"}]
    assert [e["pod"] for e in logs.in_time_order(entries)] == ["b", "e", "c", "a", "d"]


def test_defaults_and_the_old_limit_name():
    args = podctl.build_parser().parse_args(["logs"])
    assert (args.pods, args.tail, args.follow, args.probes, args.since) == ([], 100, False, False, None)
    assert podctl.build_parser().parse_args(["logs", "a", "b", "--limit", "7"]).tail == 7
    assert podctl.build_parser().parse_args(["logs", "--tail", "0", "-f"]).tail == 0
    since = podctl.build_parser().parse_args(["logs", "--since", "2024-05-01T00:00:00Z"]).since
    assert since == datetime(2024, 5, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("argv, says", [
    (["logs", "--tail", "3", "--limit", "4"], "argument --limit: not allowed with argument --tail"),
    (["logs", "--since", "yesterday"], "argument --since: 'yesterday' is not an ISO 8601 time"),
    (["up", "--timeout", "0"], "argument --timeout: '0' is not a positive number of seconds"),
    (["nope"], "argument COMMAND: invalid choice: 'nope'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_argument_mistakes_are_one_line_naming_the_command_and_exit_2(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        podctl.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == EXIT_USAGE
    assert err.count("\n") == 1 and says in err and err.startswith("podctl"), err
