"""podvisor-bench without sockets: goals, figures, the table, and the parsers of the tools' output."""
from __future__ import annotations

import pytest

from podvisor.bench import aggregator as agg_scenario
from podvisor.bench.context import SCENARIOS
from podvisor.bench.latency import percentile
from podvisor.bench.main import parse_only
from podvisor.bench.overhead import parse_wrk
from podvisor.bench.report import Figure, Goal, ScenarioResult, fmt, summary, table

WRK = """Running 1s test @ http://127.0.0.1:18765/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.22ms    3.93ms  24.88ms   76.50%
    Req/Sec   194.80     21.25   222.00     70.00%
  Latency Distribution
     50%    9.53ms
     75%   12.20ms
     90%   14.99ms
     99%    1.02s
  194 requests in 1.00s, 3.71MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:    193.69
Transfer/sec:      3.70MB
"""

AGGREGATOR = """\
ingest: 60000 lines in 1.9s = 31,650 lines/s (batch 1000, 4 clients, FTS on); batch latency p50 94 ms
filtered page: p50 0.7 ms, p99 13.9 ms, mean 1.7 ms over 100 queries of 60000 lines
full-text query: p50 0.8 ms, p99 1.8 ms, mean 0.9 ms over 100 queries of 60000 lines
"""


def test_figure_is_judged_on_the_median_of_its_runs():
    fig = Figure("rate", "lines/s", Goal(">=", 50_000))
    for value in (40_000, 60_000, 55_000):
        fig.add(value)
    data = fig.to_json()
    assert (data["median"], data["min"], data["max"], data["runs"]) == (55_000, 40_000, 60_000, 3)
    assert data["met"] is True and data["goal"]["text"] == ">= 50,000 lines/s"
    assert Figure("p95", "ms", Goal("<=", 500), [600.0]).met is False
    assert Figure("context", "s", None, [1.0]).met is None
    assert Figure("empty", "s", Goal("<=", 1)).to_json()["median"] is None


def test_goal_refuses_an_unknown_operator():
    with pytest.raises(ValueError, match="'<'"):
        Goal("<", 1)


def test_table_lists_every_figure_with_its_goal_and_marks_errors():
    ok = ScenarioResult(1, "throughput", "Log pipeline throughput")
    ok.figure("end to end", "lines/s", Goal(">=", 50_000)).add(9_000)
    ok.figure("logger CPU per million lines", "s").add(23.7)
    broken = ScenarioResult(5, "overhead", "App overhead", error="RuntimeError: wrk failed")
    text = table([ok, broken])
    lines = text.splitlines()
    assert lines[0].split() == ["#", "figure", "median", "min", "max", "unit", "goal", "met"]
    assert "end to end" in lines[2] and "9,000" in lines[2] and ">= 50,000 lines/s" in lines[2]
    assert lines[2].rstrip().endswith("NO")
    assert "23.7" in lines[3] and not lines[3].rstrip().endswith(("yes", "NO"))
    assert "App overhead: ERROR RuntimeError: wrk failed" in lines[4]
    assert summary([ok, broken]) == {"goals": 1, "met": 0, "not_met": 1, "errors": 1}


@pytest.mark.parametrize("value, text", [(None, "-"), (0, "0"), (1234567.8, "1,234,568"), (123.4, "123"),
                                         (12.34, "12.3"), (1.234, "1.23"), (0.1234, "0.123")])
def test_numbers_are_formatted_for_reading(value, text):
    assert fmt(value) == text


def test_wrk_output_is_parsed_with_units_and_errors():
    got = parse_wrk(WRK)
    assert got == {"rps": 193.69, "p99_ms": 1020.0, "errors": 9}


def test_wrk_output_without_figures_is_an_error_quoting_it():
    with pytest.raises(ValueError, match="unable to connect"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_aggregator_benchmark_output_is_parsed():
    assert agg_scenario.parse(AGGREGATOR) == {"lines": 60000.0, "rate": 31650.0, "filtered_p50": 0.7,
                                              "filtered_p99": 13.9, "fts_p50": 0.8, "fts_p99": 1.8}
    with pytest.raises(ValueError, match="format changed"):
        agg_scenario.parse(AGGREGATOR.splitlines()[0])


def test_scenarios_are_chosen_by_number_or_name():
    assert parse_only("1,latency, 8, gateway") == {1, 3, 8, 9}
    assert parse_only(None) == {sc.number for sc in SCENARIOS} and len(SCENARIOS) >= 10
    assert parse_only("rsyslog,12") == {12}
    with pytest.raises(ValueError, match="unknown scenario 'warp'"):
        parse_only("warp")


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 99) == 7.0


def test_a_profile_names_the_three_busiest_functions_and_leaves_waits_out():
    from podvisor.bench.profile import top_costs

    collapsed = "\n".join([
        "main (a.py:1);run (podvisor/bench/profile.py:1) 50",
        "main (a.py:1);insert (nowhere/at/all.py:99) 30",
        "main (a.py:1);parse (aggregator/validation.py:10) 15",
        "main (a.py:1);tiny (x.py:3) 5",
        "main (a.py:1);wait (threading.py:327) 900",
        "worker (w.py:2);Condition.wait (threading.py:331) 400",
        "not a stack line",
    ])
    profile = top_costs("aggregator", collapsed)
    assert profile.busy_samples == 100
    assert [round(share) for share, _ in profile.top] == [50, 30, 15]
    assert profile.top[0][1].startswith("run (bench/profile.py:1: ")  # the line of code, when found
    assert profile.top[1][1] == "insert (at/all.py:99)"  # no such file here: no code shown
    text = profile.text()
    assert text.startswith("aggregator (100 busy samples): 1. run") and "3. parse" in text and "tiny" not in text


def test_the_report_says_where_the_time_goes_only_for_scenarios_that_missed_a_goal():
    from podvisor.bench.profile import Profile
    from podvisor.bench.report import where_time_goes

    met, missed, unprofiled = (ScenarioResult(n, f"k{n}", f"Title {n}") for n in (1, 2, 3))
    met.figure("rate", "x", Goal(">=", 1)).add(2)
    met.profiles = [Profile("logger", 10, [(100.0, "f (a.py:1)")])]
    missed.figure("rate", "x", Goal(">=", 1)).add(0.5)
    missed.profiles = [Profile("logger", 10, [(60.0, "f (a.py:1)"), (40.0, "g (b.py:2)")]),
                       Profile("aggregator", error="no profile: py-spy not found (pip install py-spy)")]
    unprofiled.figure("rate", "x", Goal("<=", 1)).add(3)
    text = where_time_goes([met, missed, unprofiled])
    assert "Title 1" not in text
    assert "2 Title 2: goal missed" in text and "1. f (a.py:1) 60%; 2. g (b.py:2) 40%" in text
    assert "aggregator: no profile: py-spy not found" in text
    assert "3 Title 3: goal missed; this scenario takes no profile" in text
