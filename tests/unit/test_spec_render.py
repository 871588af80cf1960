"""The pods spec validates clearly, and stack.conf is what the spec renders."""
from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from podvisor.supervisord.render import conf as render
from podvisor.supervisord.render import main as render_main
from podvisor.supervisord.spec import parse as spec
from podvisor.testing.harness import load_spec_dict

REPO = Path(__file__).resolve().parents[2]


def base() -> dict:
    return load_spec_dict(None)


def test_committed_conf_matches_the_spec():
    stack = spec.load(render.DEFAULT_SPEC)
    for path, text in render.render_files(stack, render.DEFAULT_CONF, source="pods.toml").items():
        assert path.read_text() == text, f"{path} is stale: run podvisor-render"


def test_render_check_cli_passes_on_the_committed_files():
    proc = subprocess.run([sys.executable, "-m", "podvisor.supervisord.render.main", "--check"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_render_check_fails_on_drift(tmp_path):
    conf = tmp_path / "stack.conf"
    conf.write_text("stale")
    assert render_main.main(["--out", str(conf), "--check"]) == 1


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["pods"]["user"].update(prot=1), "pod 'user': key 'prot' is unknown"),
    (lambda d: d["pods"]["user"].pop("command"), "pod 'user': key 'command' is missing"),
    (lambda d: d["pods"]["product"].update(port=3000),
     "pod 'product': key 'port' port 3000 clashes with pod 'user' port"),
    (lambda d: d["pods"]["user"].update(port="3000"), "pod 'user': key 'port' must be int"),
    (lambda d: d["pods"]["user"].update(port=70000), "pod 'user': key 'port' must be a port 1-65535"),
    (lambda d: d["pods"]["user"].update(restart_policy="sometimes"), "pod 'user': key 'restart_policy' must be one of"),
    (lambda d: d["pods"]["user"].update(memory_limit="lots"), "pod 'user': key 'memory_limit': 'lots' is not a size"),
    (lambda d: d["pods"]["user"]["probes"]["liveness"].update(period_seconds=-1),
     "pod 'user' probes.liveness: key 'period_seconds' must be >= 0"),
    (lambda d: d["pods"]["user"]["probes"]["liveness"].update(tcp_socket=True),
     "pod 'user' probes.liveness: needs exactly one of"),
    (lambda d: d["pods"]["user"]["probes"].update(sometimes={}), "pod 'user' probes: key 'sometimes' is unknown"),
    (lambda d: d["pods"]["order"]["env"].update(X="{nope.url}"), "pod 'order': env 'X' refers to unknown pod 'nope'"),
    (lambda d: d["stack"].update(colour="blue"), "stack: key 'colour' is unknown"),
    (lambda d: d["pods"].clear(), "spec: no pods defined"),
    (lambda d: d["pods"].update({"Bad_Name": copy.deepcopy(d["pods"]["user"])}), "pod 'Bad_Name': name must be"),
])
def test_bad_spec_is_refused_with_one_line_naming_pod_and_key(mutate, message):
    data = base()
    mutate(data)
    with pytest.raises(spec.SpecError) as err:
        spec.from_dict(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_render_cli_prints_one_clear_line_and_exits_2(tmp_path):
    bad = tmp_path / "pods.toml"
    bad.write_text(render.DEFAULT_SPEC.read_text().replace('restart_policy = "always"', 'restart_policy = "nope"', 1))
    proc = subprocess.run([sys.executable, "-m", "podvisor.supervisord.render.main", "--spec", str(bad), "--out",
                           str(tmp_path / "s.conf")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "pod 'user': key 'restart_policy'" in proc.stderr
    assert not (tmp_path / "s.conf").exists()


def test_sizes():
    assert spec.parse_size("256MB", "x") == 256 * 1024**2
    assert spec.parse_size("1GiB", "x") == 1024**3
    assert spec.parse_size(4096, "x") == 4096
    with pytest.raises(spec.SpecError):
        spec.parse_size("0MB", "x")


def test_resolved_json_round_trips_through_the_validator():
    stack = spec.load(render.DEFAULT_SPEC)
    again = spec.from_dict(json.loads(json.dumps(spec.to_dict(stack))))
    assert again == stack


def test_supervisord_accepts_the_rendered_conf_with_no_environment(tmp_path):
    data = base()
    data["stack"]["state_dir"] = str(tmp_path / "state")
    (tmp_path / "state").mkdir()
    stack = spec.from_dict(data)
    conf = tmp_path / "stack.conf"
    render.write_files(render.render_files(stack, conf, "/opt/podvisor/bin"))
    render.make_state_dirs(stack, tmp_path)
    opts = ServerOptions()
    opts.realize(args=["-c", str(conf)], doc="")
    names = {p.name for g in opts.process_group_configs for p in g.process_configs}
    assert names == {"podvisor-controller", "aggregator"} | {
        f"{pod}-{role}" for pod in ("user", "product", "order", "gateway") for role in ("app", "logger", "metrics")
    } | {f"{pod}-app-1" for pod in ("user", "product", "order", "gateway")}, (
        "each pod's containers, a spare slot where it is held")
    by_name = {p.name: p for g in opts.process_group_configs for p in g.process_configs}
    gateway, spare = by_name["gateway-app"], by_name["gateway-app-1"]
    # nginx inherits the socket podvisor holds (NGINX="3;4;"), each slot with a conf of its own
    nginx = "/usr/sbin/nginx -p " + str(tmp_path / "state/pods/gateway") + "/ -c "
    assert gateway.command.endswith(f" gateway 0 -- {nginx}{tmp_path}/stack.gateway.nginx.conf -e logs/error.log")
    assert spare.command.endswith(f" gateway 1 -- {nginx}{tmp_path}/stack.gateway-1.nginx.conf -e logs/error-1.log")
    assert gateway.stopsignal == signal.SIGQUIT  # nginx's graceful stop (SIGTERM is its fast one)
    app = by_name["order-app"]
    assert app.environment["USER_SERVICE_URL"] == f"http://127.0.0.1:{stack.pod('user').port}"
    assert app.environment["APP_LOG_FILE"] == str(tmp_path / "state/pods/order/logs/app.log")
    assert app.stopasgroup and app.killasgroup and not app.autorestart
    assert app.stdout_logfile == str(tmp_path / "state/pods/order/logs/app.stdout.log")
    # Shutdown stops reverse priority: apps before sidecars before the aggregator and the controller.
    assert app.priority > by_name["order-logger"].priority > by_name["aggregator"].priority
    assert by_name["aggregator"].priority > by_name["podvisor-controller"].priority
    assert opts.server_configs[0]["chmod"] == 0o700
    # Every stop deadline comes from the pod's stop budget (podvisor.core.budget), from its grace_seconds.
    for pod in stack.pods:
        budget = pod.budget
        app, logger = by_name[pod.programs["app"]], by_name[pod.programs["logger"]]
        assert app.stopwaitsecs == budget.app_stopwaitsecs
        assert float(app.environment["APP_DRAIN_SECONDS"]) == budget.app_drain_seconds < pod.grace_seconds
        assert logger.stopwaitsecs == budget.logger_stopwaitsecs
        assert float(logger.environment["LOGGER_GRACE_SECONDS"]) == budget.logger_seconds
        assert logger.stopwaitsecs > budget.logger_seconds  # the logger's own deadline comes first
        assert by_name[pod.programs["metrics"]].stopwaitsecs == budget.metrics_stopwaitsecs
    assert by_name["aggregator"].stopwaitsecs == stack.budget.aggregator_stopwaitsecs
    assert by_name["podvisor-controller"].stopwaitsecs == stack.budget.controller_stopwaitsecs


def test_committed_conf_uses_only_here_expansions():
    text = render.DEFAULT_CONF.read_text()
    assert "%(ENV_" not in text
    assert "0.0.0.0" not in text


def test_fresh_clone_has_every_state_folder_the_committed_conf_needs():
    stack = spec.load(render.DEFAULT_SPEC)
    tracked = subprocess.run(["git", "ls-files", "var"], cwd=REPO, capture_output=True, text=True).stdout.split()
    for d in render.state_dirs(stack, Path("var")):
        assert str(d / ".gitkeep") in tracked or str(d) == "var", f"{d} is not in git: supervisord will refuse the conf"


def test_the_default_bin_dir_is_the_checkouts_bin_seen_from_the_conf():
    """A conf rendered beside an example's spec runs the same launchers as the committed one."""
    assert render.default_bin_dir(REPO / "supervisord" / "stack.conf") == "../bin"
    example = REPO / "supervisord" / "examples" / "polyglot" / "stack.conf"
    assert render.default_bin_dir(example) == "../../../bin"
    assert (example.parent / render.default_bin_dir(example) / "podvisor-controller").exists()
