"""The line rewriter: pure text in, text out (sidecars/metrics/rewrite.py)."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from podvisor.sidecars.metrics.labels import PodLabels
from podvisor.sidecars.metrics.rewrite import RewriteError, rewrite

POD = PodLabels(service_name="user-service", environment="production", pod="user")
OURS = {"service_name": "user-service", "environment": "production", "pod": "user"}


def samples(text: str, openmetrics: bool = False) -> list:
    parse = parse_om if openmetrics else parse_text
    return [s for family in parse(text + ("# EOF\n" if openmetrics else "")) for s in family.samples]


def sample_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_every_sample_gets_the_pod_labels() -> None:
    text = (
        "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\n"
        'jobs_total{queue="a"} 3\njobs_total{queue="b"} 4\n'
        "# TYPE temperature gauge\ntemperature 21.5\n"
    )
    out = rewrite(text, POD, openmetrics=False)
    got = samples(out)
    assert len(got) == 3
    for s in got:
        assert {k: s.labels[k] for k in OURS} == OURS
    assert {s.labels.get("queue") for s in got} == {"a", "b", None}


def test_escaped_label_values_pass_through_byte_for_byte() -> None:
    tricky = r'path="/a\"b\\c\nd",odd="} { , = # 1"'
    out = rewrite(f"# TYPE req_total counter\nreq_total{{{tricky}}} 1\n", POD, openmetrics=False)
    assert sample_lines(out) == [
        f'req_total{{{tricky},service_name="user-service",environment="production",pod="user"}} 1'
    ]
    [s] = samples(out)
    assert s.labels["path"] == '/a"b\\c\nd'
    assert s.labels["odd"] == "} { , = # 1"


def test_our_label_values_are_escaped() -> None:
    weird = PodLabels(service_name='svc "quoted"', environment="back\\slash", pod="two\nlines")
    [s] = samples(rewrite("up_like 1\n", weird, openmetrics=False))
    assert s.labels == {"service_name": 'svc "quoted"', "environment": "back\\slash", "pod": "two\nlines"}


def test_label_the_app_sets_is_kept_and_ours_is_exported() -> None:
    out = rewrite('x{pod="k8s-abc",environment="staging",le_not="1"} 1\n', POD, openmetrics=False)
    [s] = samples(out)
    assert s.labels == {
        "pod": "k8s-abc",
        "environment": "staging",
        "le_not": "1",
        "service_name": "user-service",
        "exported_environment": "production",
        "exported_pod": "user",
    }


def test_exported_prefix_repeats_until_free() -> None:
    [s] = samples(rewrite('x{pod="a",exported_pod="b"} 1\n', POD, openmetrics=False))
    assert (s.labels["pod"], s.labels["exported_pod"], s.labels["exported_exported_pod"]) == (
        "a",
        "b",
        "user",
    )


def test_histogram_and_summary_samples_keep_le_quantile_and_order() -> None:
    text = (
        "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
        'lat_seconds_bucket{path="/x",le="0.1"} 1\nlat_seconds_bucket{path="/x",le="+Inf"} 3\n'
        'lat_seconds_sum{path="/x"} 0.9\nlat_seconds_count{path="/x"} 3\n'
        "# HELP rpc_seconds RPCs.\n# TYPE rpc_seconds summary\n"
        'rpc_seconds{quantile="0.5"} 0.2\nrpc_seconds{quantile="0.99"} NaN\n'
        "rpc_seconds_sum 1\nrpc_seconds_count 4\n"
    )
    out = rewrite(text, POD, openmetrics=False)
    before, after = samples(text), samples(out)
    assert [s.name for s in after] == [s.name for s in before]
    assert [s.value for s in after][:3] == [1, 3, 0.9]
    assert [s.labels.get("le") for s in after] == [s.labels.get("le") for s in before]
    assert [s.labels.get("quantile") for s in after] == [s.labels.get("quantile") for s in before]
    # le and quantile keep their written form and place: ours are appended after them
    assert 'lat_seconds_bucket{path="/x",le="+Inf",service_name=' in out
    assert 'rpc_seconds{quantile="0.99",service_name=' in out
    assert [line for line in out.splitlines() if line.startswith("#")] == [
        line for line in text.splitlines() if line.startswith("#")
    ]


def test_help_text_and_its_escaping_are_kept() -> None:
    text = "# HELP odd_total Line one\\nline two \\\\ backslash.\n# TYPE odd_total counter\nodd_total 1\n"
    out = rewrite(text, POD, openmetrics=False)
    assert out.splitlines()[0] == "# HELP odd_total Line one\\nline two \\\\ backslash."
    [family] = list(parse_text(out))
    assert family.documentation == "Line one\nline two \\ backslash."


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf", "1e-09", "-0.5", "42", "1.7e+09"])
def test_special_values_are_kept_verbatim(value: str) -> None:
    assert sample_lines(rewrite(f"g {value}\n", POD, openmetrics=False)) == [
        f'g{{service_name="user-service",environment="production",pod="user"}} {value}'
    ]


def test_sample_timestamps_are_dropped() -> None:
    out = rewrite('g{a="b"} 1 1700000000000\nh 2 -5\n', POD, openmetrics=False)
    assert [s.timestamp for s in samples(out)] == [None, None]
    assert [line.split()[-1] for line in sample_lines(out)] == ["1", "2"]


def test_text_format_whitespace_and_trailing_comma_are_normalised() -> None:
    out = rewrite('  g { a = "x y" ,\tb="2", } 3\n', POD, openmetrics=False)
    assert sample_lines(out) == [
        'g{a="x y",b="2",service_name="user-service",environment="production",pod="user"} 3'
    ]


def test_plain_comments_and_blank_lines_are_dropped() -> None:
    out = rewrite("# just a comment\n\n# TYPE g gauge\ng 1\n", POD, openmetrics=False)
    assert out.splitlines() == [
        "# TYPE g gauge",
        'g{service_name="user-service",environment="production",pod="user"} 1',
    ]


def test_openmetrics_exemplars_units_and_eof() -> None:
    text = (
        '# TYPE sent_bytes counter\n# UNIT sent_bytes bytes\n# HELP sent_bytes Bytes \\"sent\\".\n'
        'sent_bytes_total{path="/x"} 3 # {trace_id="abc \\"q\\""} 1.0 1700000000.5\n'
        'sent_bytes_created{path="/x"} 1700000000.0\n'
        "# TYPE lat histogram\n"
        'lat_bucket{le="0.5"} 1 # {trace_id="t1"} 0.3\nlat_bucket{le="+Inf"} 2\nlat_sum 0.9\nlat_count 2\n'
        '# TYPE build info\nbuild_info{version="1.2"} 1\n'
        '# TYPE state stateset\nstate{state="a"} 1\nstate{state="b"} 0\n'
        "# EOF\n"
    )
    out = rewrite(text, POD, openmetrics=True)
    assert "# EOF" not in out
    assert '# {trace_id="abc \\"q\\""} 1.0 1700000000.5' in out
    families = {f.name: f for f in parse_om(out + "# EOF\n")}
    assert families["sent_bytes"].unit == "bytes"
    assert families["sent_bytes"].documentation == 'Bytes "sent".'
    [total, _created] = families["sent_bytes"].samples
    assert total.exemplar.labels == {"trace_id": 'abc "q"'}
    assert families["lat"].samples[0].exemplar.value == 0.3
    assert families["build"].type == "info" and families["state"].type == "stateset"
    for family in families.values():
        for s in family.samples:
            assert {k: s.labels[k] for k in OURS} == OURS


def test_openmetrics_truncated_or_trailing_content_is_an_error() -> None:
    with pytest.raises(RewriteError, match="EOF"):
        rewrite("# TYPE g gauge\ng 1\n", POD, openmetrics=True)
    with pytest.raises(RewriteError, match="after # EOF"):
        rewrite("g 1\n# EOF\ng 2\n", POD, openmetrics=True)


@pytest.mark.parametrize(
    "line",
    [
        'g{a="unterminated} 1',
        'g{a="x"b="y"} 1',
        "g 1_000",
        "g 1\r",
        "g abc",
        'g{1a="x"} 1',
        'g{a="1",a="2"} 1',
        'g{a="1", a="2"} 1',
        'g{a="1\\\\",a="2"} 1',
        "9lives 1",
        'g 1 # {a="b"} 1',  # exemplars do not exist in the text format
        "# TYPE g banana",
    ],
)
def test_malformed_text_is_rejected(line: str) -> None:
    with pytest.raises(RewriteError):
        rewrite(line + "\n", POD, openmetrics=False)


def test_commas_and_equals_inside_values_are_not_label_names() -> None:
    [s] = samples(rewrite('g{a="x,b=",b="y\\",c=\\"z"} 1\n', POD, openmetrics=False))
    assert (s.labels["a"], s.labels["b"]) == ("x,b=", 'y",c="z')


def test_second_type_line_for_a_family_is_rejected() -> None:
    with pytest.raises(RewriteError, match="second TYPE"):
        rewrite("# TYPE g gauge\ng 1\n# TYPE g gauge\n", POD, openmetrics=False)


def test_openmetrics_rejects_free_comments() -> None:
    with pytest.raises(RewriteError, match="unknown comment"):
        rewrite("# hello\n# EOF\n", POD, openmetrics=True)


def test_keep_filters_whole_families() -> None:
    text = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n# HELP b B.\n# TYPE b gauge\nb 2\n"
    out = rewrite(text, POD, openmetrics=False, keep=lambda name: name.startswith("b"))
    assert out.splitlines() == [
        "# HELP b B.",
        "# TYPE b gauge",
        'b{service_name="user-service",environment="production",pod="user"} 2',
    ]


def test_empty_input_gives_empty_output() -> None:
    assert rewrite("", POD, openmetrics=False) == ""
    assert rewrite("# EOF\n", POD, openmetrics=True) == ""
