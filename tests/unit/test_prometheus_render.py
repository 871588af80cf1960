"""Rendering prometheus.yml and the rules, without the Prometheus binaries (supervisord/prometheus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podvisor.supervisord.prometheus import alerts, render_config, render_rules, render_rules_test
from podvisor.supervisord.prometheus.cli import PACKAGE_DIR, main
from podvisor.supervisord.prometheus.config import duration_seconds
from podvisor.supervisord.prometheus.stack import render_stack
from podvisor.supervisord.prometheus.yamltext import dump, scalar
from podvisor.supervisord.render import conf as render
from podvisor.supervisord.render import main as render_main
from podvisor.supervisord.spec import parse as specmod

PODS = {"user": "127.0.0.1:9101", "product": "127.0.0.1:9102"}


def test_committed_rules_and_promtool_tests_match_the_renderer() -> None:
    """Fails when rules.py or ruletests.py changed without `python -m podvisor.supervisord.prometheus --commit`."""
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
        "PodvisorLogShippingLag", "PodvisorLogShippingStalled",
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


def _default_stack():
    return specmod.load(render.DEFAULT_SPEC)


def test_stack_files_scrape_every_sidecar_the_aggregator_and_the_controller() -> None:
    stack = _default_stack()
    files = render_stack(stack)
    assert sorted(files) == ["podvisor.rules.yml", "prometheus.yml", "rules_test.yml"]
    pods = {pod.name: f"{stack.host}:{pod.metrics_port}" for pod in stack.pods}
    assert files["prometheus.yml"] == render_config(
        pods,
        aggregator=f"{stack.host}:{stack.aggregator_port}",
        controller=f"{stack.host}:{stack.controller_port}",
    )
    assert files["podvisor.rules.yml"] == render_rules() and files["rules_test.yml"] == render_rules_test()


@pytest.mark.parametrize(
    "interval, timeout, evaluation", [("15s", "10s", "15s"), ("1s", "1s", "1s"), ("1m", "10s", "1m")]
)
def test_stack_scrape_timeout_follows_the_interval(interval: str, timeout: str, evaluation: str) -> None:
    text = render_stack(_default_stack(), interval)["prometheus.yml"]
    assert (
        f'scrape_interval: "{interval}"\n  scrape_timeout: "{timeout}"\n  evaluation_interval: "{evaluation}"'
        in text
    )


def test_cli_spec_takes_the_targets_from_the_pods_spec(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--spec", str(render.DEFAULT_SPEC), "--scrape-interval", "5s"]) == 0
    assert (tmp_path / "prometheus.yml").read_text() == render_stack(_default_stack(), "5s")["prometheus.yml"]
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--spec", str(render.DEFAULT_SPEC), "--pod", "user=127.0.0.1:1"])


def test_cli_reports_an_unreadable_spec_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path), "--spec", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.toml" in err


def test_podvisor_render_writes_the_prometheus_files_for_the_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "conf" / "stack.conf"
    conf.parent.mkdir()
    prom = tmp_path / "prom"
    assert render_main.main(["--out", str(conf), "--prometheus", str(prom), "--scrape-interval", "2s"]) == 0
    expected = render_stack(_default_stack(), "2s")
    assert {p.name: p.read_text() for p in prom.iterdir()} == expected
    assert conf.exists() and "wrote" in capsys.readouterr().out


def test_podvisor_render_refuses_a_bad_interval_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "stack.conf"
    argv = ["--out", str(conf), "--prometheus", str(tmp_path / "p"), "--scrape-interval", "0s"]
    assert render_main.main(argv) == 2
    assert "--scrape-interval" in capsys.readouterr().err
    assert not conf.exists() and not (tmp_path / "p").exists()
