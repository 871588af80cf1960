"""docs/interfaces.md is the contract: its settings tables match what each process reads."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from podvisor.aggregator.settings import Settings as AggregatorSettings
from podvisor.apps.common.settings import load_settings as app_settings
from podvisor.core.settings import Env
from podvisor.sidecars.logger.settings import Settings as LoggerSettings
from podvisor.sidecars.metrics.settings import Settings as MetricsSettings
from podvisor.supervisord.controller.main import Settings as ControllerSettings
from podvisor.supervisord.controller.states import Phase, Reason, State
from podvisor.supervisord.podctl.settings import Settings as PodctlSettings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "interfaces.md"
NAME = re.compile(r"`(_?[A-Z][A-Z0-9_]+)`")  # _ARGCOMPLETE too


def names_read(build, env: dict[str, str]) -> set[str]:
    """Every variable a settings builder asks for, set or not (a valid environment, so it reads all)."""
    recorder = Env(env)
    build(recorder)
    return set(recorder.names)


READERS = {
    "apps": (lambda e: app_settings("order", e), {}),
    "podvisor-logger": (LoggerSettings.from_env, {"POD_NAME": "p", "SERVICE_NAME": "s", "LOGGER_LOG_DIR": "/l",
                                                  "LOGGER_STATE_DIR": "/s", "LOGGER_CREDENTIAL_FILE": "/t"}),
    "podvisor-metrics": (MetricsSettings.from_env, {"POD_NAME": "p", "SERVICE_NAME": "s",
                                                    "METRICS_TARGET_URL": "http://127.0.0.1:1/metrics"}),
    "podvisor-aggregator": (AggregatorSettings.from_env, {}),
    "podvisor-controller": (ControllerSettings.from_env, {"CONTROLLER_SPEC": "/x.json",
                                                          "SUPERVISOR_SERVER_URL": "unix:///x.sock"}),
    "podctl": (PodctlSettings.from_env, {}),
}


def documented() -> dict[str, set[str]]:
    """Section '### <process>' -> the variables named in the first column of its table."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            sections[current] = set()
        elif line.startswith("## "):
            current = None
        elif current is not None and line.startswith("| ") and not line.startswith("| ---"):
            sections[current] |= set(NAME.findall(line.split("|")[1]))
    return sections


@pytest.mark.parametrize("process", list(READERS))
def test_every_variable_a_process_reads_is_documented_and_nothing_else(process):
    build, env = READERS[process]
    read = names_read(build, env)
    doc = documented().get(process)
    assert doc is not None, f"docs/interfaces.md has no '### {process}' settings table"
    assert not read - doc, f"{process} reads {sorted(read - doc)} but docs/interfaces.md does not list them"
    assert not doc - read, f"docs/interfaces.md lists {sorted(doc - read)} for {process}, which it never reads"


def test_phases_states_and_reasons_are_all_documented():
    text = DOC.read_text()
    missing = [v.value for enum in (Phase, State, Reason) for v in enum if f"`{v.value}" not in text]
    assert not missing, f"not in docs/interfaces.md: {missing}"


def test_the_doc_is_tracked_and_refers_to_nothing_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "docs/interfaces.md"], cwd=REPO,
                             capture_output=True, text=True)
    assert tracked.returncode == 0, tracked.stderr
    ignored = subprocess.run(["git", "check-ignore", "-q", "docs/interfaces.md"], cwd=REPO)
    assert ignored.returncode == 1, "docs/interfaces.md is git-ignored"
    text = DOC.read_text()
    assert "../" not in text.replace("%(here)s/../bin", ""), "a path leaving the repository"
    for link in re.findall(r"\]\(([^)#]+)", text):
        assert not link.startswith(("http", "/")) and (DOC.parent / link).exists(), link


def test_the_files_it_names_are_the_ones_the_renderer_writes():
    from podvisor.supervisord.render import conf as render
    from podvisor.supervisord.spec import parse as spec
    conf = render.render_files(spec.load(render.DEFAULT_SPEC), REPO / "supervisord" / "stack.conf")
    text = next(iter(conf.values()))
    doc = DOC.read_text()
    for rendered in ("supervisor.sock", "supervisord.log", "controller.log", "aggregator/token",
                     "aggregator/logs.db", "logs/sidecars/logger.log", "logger\"", "data/user.db"):
        assert rendered.strip('"') in text
    for named in ("supervisor.sock", "controller.log", "controller/state.json", "sidecars/logger.log"):
        assert named in doc
