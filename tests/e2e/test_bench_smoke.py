"""podvisor-bench end to end at its smallest size: every scenario runs and reports well-formed figures.

Timings are never asserted here (the machine may be loaded): only the report's structure, that
every scenario ran without an error, and that nothing the benchmark started is left behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from podvisor.bench.context import SCENARIOS

pytestmark = pytest.mark.e2e
BENCH = Path(__file__).resolve().parents[2] / "bin" / "podvisor-bench"
MARK = "PODVISOR_BENCH_SMOKE"


def leftovers(mark: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(MARK) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {' '.join(proc.cmdline()[:4])}")
        except psutil.Error:
            continue
    return found


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_smoke_run_reports_every_scenario_as_table_and_json(tmp_path):
    assert shutil.which("wrk"), "wrk is missing: sudo apt-get install -y wrk"
    assert shutil.which("rsyslogd", path=os.environ.get("PATH", "") + ":/usr/sbin"), (
        "rsyslogd is missing: sudo apt-get install -y rsyslog rsyslog-elasticsearch")
    out = tmp_path / "bench.json"
    mark = uuid.uuid4().hex
    env = dict(os.environ, **{MARK: mark})
    try:
        done = subprocess.run(
            [sys.executable, str(BENCH), "--smoke", "--json", str(out)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        left = leftovers(mark)
        for line in left:  # never leave them to the next test, even when failing
            try:
                psutil.Process(int(line.split()[0])).kill()
            except psutil.Error:
                pass
    report = f"exit {done.returncode}\n--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr[-4000:]}"
    assert not left, f"processes left behind: {left}\n{report}"
    assert done.returncode == 0, report
    assert "[" in done.stderr and "done: 8" in done.stderr, "no progress line on stderr\n" + report

    doc = json.loads(out.read_text())
    assert doc["tool"] == "podvisor-bench" and doc["mode"] == "smoke" and doc["runs"] == 1
    assert doc["machine"]["cpus"] >= 1 and doc["machine"]["python"] and doc["machine"]["cpu_model"]
    scenarios = {s["number"]: s for s in doc["scenarios"]}
    assert sorted(scenarios) == [sc.number for sc in SCENARIOS], doc["scenarios"]
    header = done.stdout.splitlines()[0].split()
    assert header == ["#", "figure", "median", "min", "max", "unit", "goal", "met"], done.stdout
    for number, scenario in scenarios.items():
        assert scenario["error"] is None, f"scenario {number}: {scenario['error']}\n{scenario['notes']}"
        assert scenario["figures"], f"scenario {number} has no figures"
        for fig in scenario["figures"]:
            where = f"scenario {number} figure {fig['name']!r}"
            assert fig["unit"], where
            assert all(is_number(fig[k]) for k in ("median", "min", "max")), where
            assert fig["min"] <= fig["median"] <= fig["max"], where
            assert fig["runs"] == len(fig["values"]) >= 1 and all(is_number(v) for v in fig["values"]), where
            if fig["goal"] is None:
                assert fig["met"] is None, where
            else:
                assert fig["goal"]["op"] in (">=", "<=") and is_number(fig["goal"]["value"]), where
                assert isinstance(fig["met"], bool), where
                assert fig["goal"]["text"] in done.stdout, where
            assert fig["name"] in done.stdout, f"{where} missing from the table"
        if number not in (2, 9):  # the baseline and the gateway's cost are context, the others have goals
            assert any(f["goal"] for f in scenario["figures"]), f"scenario {number} has no goal"
    side = {fig["name"]: fig for fig in scenarios[12]["figures"]}
    assert side["rsyslog: end to end, write to queryable"]["median"] > 0, "rsyslog shipped the lines"
    for scenario in scenarios.values():
        missed = any(fig["met"] is False for fig in scenario["figures"])
        if missed and scenario["profile"]:  # the report names where the time went
            assert f"{scenario['number']} {scenario['title']}: goal missed" in done.stdout
            assert all(p["error"] or len(p["top"]) <= 3 for p in scenario["profile"])
    summary = doc["summary"]
    assert summary["errors"] == 0 and summary["met"] + summary["not_met"] == summary["goals"] > 0
    assert f"{summary['met']}/{summary['goals']} goals met" in done.stdout


def test_missing_wrk_is_a_clear_error_before_anything_starts(tmp_path):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # no /usr/bin: no wrk
    done = subprocess.run(
        [sys.executable, str(BENCH), "--only", "overhead", "--json", str(tmp_path / "b.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "wrk" in done.stderr and "apt-get install -y wrk" in done.stderr, done.stderr
    assert not (tmp_path / "b.json").exists()


def test_unknown_scenario_is_refused_naming_it(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH), "--only", "1,warp", "--json", str(tmp_path / "b.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown scenario 'warp'" in done.stderr, done.stderr
