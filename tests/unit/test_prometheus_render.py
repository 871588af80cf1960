"""Rendering prometheus.yml and the rules, without the Prometheus binaries (supervisord/prometheus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisord.prometheus import alerts, render_config, render_rules, render_rules_test
from supervisord.prometheus.cli import PACKAGE_DIR, main
from supervisord.prometheus.config import duration_seconds
from supervisord.prometheus.yamltext import dump, scalar

PODS = {"user": "127.0.0.1:9101", "product": "127.0.0.1:9102"}


def test_committed_rules_and_promtool_tests_match_the_renderer() -> None:
    """Fails when rules.py or ruletests.py changed without `python -m supervisord.prometheus --commit`."""
    assert (PACKAGE_DIR / "podvisor.rules.yml").read_text() == render_rules()
    assert (PACKAGE_DIR / "rules_test.yml").read_text() == render_rules_test()


def test_every_required_alert_is_defined_with_severity_and_annotations() -> None:
    names = {a.name for a in alerts()}
    assert names == {
        "PodvisorServiceDown",
        "PodvisorHighErrorRatio",
        "PodvisorHighLatencyP95",
        "PodvisorMemoryOverLimit",
        "PodvisorCrashLooping",
        "PodvisorLogShippingLag",
    }
    for alert in alerts():
        assert alert.severity in ("warning", "critical")
        assert alert.summary and len(alert.description) > len(alert.summary)


def test_config_has_the_three_jobs_and_pod_labels() -> None:
    text = render_config(
        PODS,
        aggregator="127.0.0.1:8080",
        controller="127.0.0.1:9100",
        scrape_interval="1s",
        scrape_timeout="1s",
    )
    assert 'job_name: "podvisor-pods"' in text and "honor_labels: true" in text
    assert 'pod: "user"' in text and '"127.0.0.1:9101"' in text
    assert 'job_name: "podvisor-aggregator"' in text and 'job_name: "podvisor-controller"' in text
    assert 'rule_files:\n  - "podvisor.rules.yml"' in text
    assert "podvisor-aggregator" not in render_config(PODS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scrape_interval": "5s", "scrape_timeout": "10s"}, "longer than scrape_interval"),
        ({"scrape_interval": "fast"}, "not a Prometheus duration"),
        ({"aggregator": "http://127.0.0.1:8080"}, "not a host:port"),
        ({"controller": "127.0.0.1:0"}, "not a host:port"),
    ],
)
def test_config_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_config(PODS, **kwargs)


def test_durations() -> None:
    assert (
        duration_seconds("15s") == 15 and duration_seconds("1m30s") == 90 and duration_seconds("500ms") == 0.5
    )
    for bad in ("", "15", "1.5s", "s"):
        with pytest.raises(ValueError):
            duration_seconds(bad)


def test_yaml_strings_are_json_strings() -> None:
    tricky = 'say "hi" {{ $labels.pod }} # not a comment: \\ \n\u2028'
    assert json.loads(scalar(tricky).replace("\\u2028", "\u2028")) == tricky
    assert "\u2028" not in scalar(tricky)
    assert dump({"a": [], "b": {}, "c": [{"x": 1, "y": [True, None]}], "d e": 1.5}) == (
        'a: []\nb: {}\nc:\n  - x: 1\n    y:\n      - true\n      - null\n"d e": 1.5\n'
    )


def test_cli_writes_all_three_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prom"
    assert (
        main(
            [
                "--out",
                str(out),
                "--aggregator",
                "127.0.0.1:8080",
                "--controller",
                "127.0.0.1:9100",
                "--pod",
                "user=127.0.0.1:9101",
                "--pod",
                "product=127.0.0.1:9102",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["podvisor.rules.yml", "prometheus.yml", "rules_test.yml"]
    assert (out / "prometheus.yml").read_text() == render_config(
        PODS, aggregator="127.0.0.1:8080", controller="127.0.0.1:9100"
    )
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--pod", "user"],
        ["--pod", "=127.0.0.1:1"],
        [],
        ["--pod", "user=127.0.0.1:1", "--pod", "user=127.0.0.1:2"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv + (["--out", str(tmp_path)] if argv else []))
    assert info.value.code == 2


def test_cli_reports_bad_address_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--pod", "user=localhost"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
