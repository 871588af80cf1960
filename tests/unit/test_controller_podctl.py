"""podctl without a stack: the table, argument checks, the conf it reads, exit codes for bad usage."""
from __future__ import annotations

from pathlib import Path

import pytest

from podvisor.supervisord.podctl import client as podclient
from podvisor.supervisord.podctl import main as podctl
from podvisor.supervisord.podctl import output
from podvisor.supervisord.podctl.errors import EXIT_USAGE, UsageError
from podvisor.supervisord.render import conf as render
from podvisor.supervisord.spec import parse as specmod
from tests.fakes.supervisor import make_pod, rig


def snapshots() -> list[dict]:
    """Real runner snapshots: user Running after an app crash, product with a crashed logger."""
    r = rig(make_pod("user", 3000), make_pod("product", 3100))
    r.start_pod()
    r.sup.crash("user-app", 2)
    r.sup.crash("product-logger", 1)
    r.tick()
    r.clock.advance(1.0)
    r.wall.advance(125.0)
    r.tick(2)
    return [runner.snapshot() for runner in r.runners.values()]


def test_the_table_reads_like_kubectl_get_pods():
    lines = output.table(snapshots()).splitlines()
    assert lines[0].split() == ["POD", "READY", "REPLICAS", "STATUS", "RESTARTS", "AGE", "LAST", "REASON"]
    user, product = lines[1], lines[2]
    assert user.split()[:6] == ["user", "3/3", "1/1", "Running", "1", "2m"]
    assert user.endswith("Error: exit code 2")
    assert product.split()[:5] == ["product", "3/3", "1/1", "Running", "0"]
    assert "(+1 sidecar)" in product and product.endswith("logger: Error: exit code 1")
    assert all(line == line.rstrip() for line in lines)
    # columns line up: every row's STATUS starts where the header's does
    column = lines[0].index("STATUS")
    assert all(line[column:].startswith(("Running", "STATUS")) for line in lines)


@pytest.mark.parametrize("seconds, shown", [(0, "0s"), (59.9, "59s"), (60, "1m"), (3600 * 5, "5h"),
                                            (86400 * 3, "3d")])
def test_age_is_kubectl_style(seconds, shown):
    assert output.age(seconds) == shown


@pytest.mark.parametrize("argv", [["stop"], ["restart", "user", "--all"], ["start"]])
def test_naming_no_pod_or_a_pod_and_all_is_a_usage_error(argv, capsys, tmp_path):
    assert podctl.main(["-c", str(tmp_path / "none.conf"), *argv]) == EXIT_USAGE
    assert "name one pod or give --all" in capsys.readouterr().err


def test_all_is_accepted_for_every_action():
    for action in ("start", "stop", "restart"):
        args = podctl.build_parser().parse_args([action, "--all"])
        assert args.all and args.pod is None


def test_a_missing_conf_is_a_usage_error_naming_it(tmp_path, capsys):
    assert podctl.main(["-c", str(tmp_path / "nope.conf"), "status"]) == EXIT_USAGE
    assert "nope.conf" in capsys.readouterr().err


def test_the_target_comes_from_the_rendered_conf(tmp_path: Path):
    stack = specmod.from_dict({"stack": {"state_dir": str(tmp_path / "state"), "controller_port": 9555,
                                         "aggregator_port": 9556},
                               "pods": {"user": {"command": "podvisor-user", "port": 3000,
                                                 "metrics_port": 3001, "logger_port": 3002}}})
    conf = tmp_path / "stack.conf"
    render.write_files(render.render_files(stack, conf))
    target = podclient.Target.from_conf(conf)
    assert target.serverurl == f"unix://{tmp_path}/state/supervisor.sock"
    assert (target.controller_url, target.aggregator_url) == ("http://127.0.0.1:9555", "http://127.0.0.1:9556")
    assert target.state_dir == tmp_path / "state"


def test_a_conf_without_the_podvisor_section_says_how_to_fix_it(tmp_path):
    conf = tmp_path / "plain.conf"
    conf.write_text("[supervisorctl]\nserverurl=unix:///tmp/x.sock\n")
    with pytest.raises(UsageError, match=r"\[podvisor\] controller_url is missing .*podvisor-render"):
        podclient.Target.from_conf(conf)


class ScriptedClient(podclient.Client):
    """A Client whose controller answers are a script of pod lists (no sockets)."""

    def __init__(self, *answers: list[dict]):
        super().__init__(podclient.Target("unix:///nowhere.sock", "http://127.0.0.1:1", "http://127.0.0.1:2",
                                       Path("/nowhere")))
        self.answers = list(answers)

    def pods(self) -> list[dict]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def pod(name: str, phase: str = "Running", ready: bool = True, held: tuple = ()) -> dict:
    return {"pod": name, "phase": phase, "status": {"Running": "Running"}.get(phase, phase), "ready": ready,
            "containers_ready": 3 if ready else 2, "containers": 3, "held_by_operator": list(held)}


def test_wait_ready_ignores_pods_stopped_on_purpose_and_completed_jobs():
    client = ScriptedClient([pod("a"), pod("b", "Stopped", False), pod("c", "Succeeded", False),
                             pod("d", "Running", False, held=("metrics",))])
    assert client.wait_ready(None, 0.0) == (True, "")


def test_wait_ready_reports_what_is_not_ready_when_the_deadline_passes():
    client = ScriptedClient([pod("a"), pod("gate", ready=False)])
    assert client.wait_ready(None, 0.0) == (False, "gate (Running 2/3)")


def test_wait_ready_fails_at_once_when_a_pod_failed_for_good():
    client = ScriptedClient([pod("a", ready=False), pod("job", "Failed", False)])
    assert client.wait_ready(None, float("inf")) == (False, "job (Failed)")


def test_wait_ready_polls_until_ready():
    client = ScriptedClient([pod("a", "Pending", False)], [pod("a", ready=False)], [pod("a")])
    assert client.wait_ready(["a"], float("inf")) == (True, "")
    assert len(client.answers) == 1
