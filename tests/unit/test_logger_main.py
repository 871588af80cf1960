"""Settings and the process: bad config exits 2 naming the setting; aggregator down: up, retrying,
clean stop; a pod's tuning knobs from the spec."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from podvisor.core.budget import DEFAULT_BUDGET
from podvisor.core.settings import Env
from podvisor.sidecars.logger.settings import MIB, Settings, SettingsError
from podvisor.testing.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path, **extra):
    env = {"POD_NAME": "user", "SERVICE_NAME": "user-service", "LOGGER_LOG_DIR": str(tmp_path / "logs"),
           "LOGGER_STATE_DIR": str(tmp_path / "state"), "LOGGER_CREDENTIAL_FILE": str(tmp_path / "token")}
    env.update(extra)
    return env


def test_settings_defaults(tmp_path):
    settings = Settings.from_env(Env(_env(tmp_path)))
    assert settings.environment == "production"
    assert settings.aggregator_url == "http://127.0.0.1:8080"
    assert (settings.host, settings.port, settings.app_program) == ("127.0.0.1", 0, None)
    assert (settings.batch_lines, settings.batch_bytes, settings.flush_interval) == (4000, 4 * MIB, 0.05)
    assert settings.rescan_interval == 2.0
    assert (settings.poll_interval, settings.max_line_bytes) == (0.1, 64 * 1024)
    assert settings.grace_seconds == DEFAULT_BUDGET.logger_seconds  # the pod's grace plus the sidecar drain
    assert (settings.max_entry_bytes, settings.backoff_initial, settings.backoff_max) == (256 * 1024, 0.2,
                                                                                          10.0)
    assert settings.spool_max_bytes == 256 * MIB


def test_tuning_knobs_are_read(tmp_path):
    settings = Settings.from_env(Env(_env(tmp_path, LOGGER_BACKOFF_INITIAL="0.05", LOGGER_BACKOFF_MAX="0.5",
                                          LOGGER_MAX_ENTRY_BYTES="65536", LOGGER_BATCH_LINES="50",
                                          LOGGER_REQUEST_TIMEOUT="1.5")))
    assert settings.request_timeout == 1.5
    assert (settings.backoff_initial, settings.backoff_max) == (0.05, 0.5)
    assert (settings.max_entry_bytes, settings.batch_lines) == (65536, 50)


@pytest.mark.parametrize("name, value", [
    ("POD_NAME", ""), ("SERVICE_NAME", ""), ("LOGGER_LOG_DIR", ""), ("LOGGER_CREDENTIAL_FILE", ""),
    ("LOGGER_PORT", "70000"), ("LOGGER_PORT", "http"), ("LOGGER_BATCH_LINES", "0"),
    ("LOGGER_FLUSH_INTERVAL", "-1"), ("LOGGER_POLL_INTERVAL", "nan"), ("LOGGER_GRACE_SECONDS", "soon"),
    ("LOGGER_AGGREGATOR_URL", "ftp://x"), ("POD_NAME", "a:b"), ("LOGGER_MAX_LINE_BYTES", "1"),
    ("LOGGER_BACKOFF_INITIAL", "0"), ("LOGGER_BACKOFF_MAX", "0.1"), ("LOGGER_MAX_ENTRY_BYTES", "100"),
    ("LOGGER_REQUEST_TIMEOUT", "0"),
])
def test_bad_settings_name_the_setting(tmp_path, name, value):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(Env(_env(tmp_path, **{name: value})))
    # The message names the variable and the bad value (a blank one counts as unset).
    expected = f"{name}: " if not value else f"{name}={value!r}: "
    assert err.value.name == name and str(err.value).startswith(expected), str(err.value)


def test_bad_config_exits_2_with_one_line_naming_the_setting(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGGER_", "POD_", "SERVICE_"))}
    env.update(_env(tmp_path, LOGGER_BATCH_BYTES="lots"))
    proc = subprocess.run([sys.executable, "-m", "podvisor.sidecars.logger.main"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("podvisor-logger: bad setting LOGGER_BATCH_BYTES='lots': "), proc.stderr


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, proc, log, what, timeout=15.0):
    return wait_for(predicate, timeout, what, output=log.read_text, procs=[proc])


def test_runs_against_no_aggregator_retries_and_stops_promptly_on_sigterm(tmp_path):
    (tmp_path / "logs" / "sidecars").mkdir(parents=True)
    (tmp_path / "logs" / "app.log").write_text('{"message": "waiting for the aggregator"}\n')
    (tmp_path / "token").write_text("t")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGGER_", "SUPERVISOR_"))}
    env.update(_env(tmp_path, LOGGER_AGGREGATOR_URL=f"http://127.0.0.1:{_closed_port()}", LOGGER_PORT="0"))
    log = tmp_path / "logger.out"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "podvisor.sidecars.logger.main"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        port = int(_wait_for(lambda: re.search(r"http://127\.0\.0\.1:(\d+)/health", log.read_text()),
                             proc, log, "the logger's health URL").group(1))

        def retries():
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            match = re.search(r'podvisor_logger_retries_total\{reason="connection"\} (\S+)', text)
            return match and float(match.group(1)) >= 2

        _wait_for(retries, proc, log, "two connection retries")
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
        assert health["state"] == "running" and health["aggregator_reachable"] is False
        assert health["inflight_lines"] == 1
        assert proc.poll() is None, "stays up while the aggregator is down"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log.read_text()
        assert time.monotonic() - started < 5, log.read_text()
        text = log.read_text()
        assert "unreachable" in text and "remain unshipped" in text
        checkpoint = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
        assert [f["offset"] for f in checkpoint["body"]["files"].values()] == [0]  # nothing acknowledged
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_spec_sets_a_pods_tuning_knobs_and_refuses_the_rendered_ones(tmp_path):
    from podvisor.supervisord.render import conf as render
    from podvisor.supervisord.spec import parse as spec
    from podvisor.testing.harness import load_spec_dict

    data = load_spec_dict(None)
    data["pods"]["user"]["logger_env"] = {"LOGGER_BATCH_LINES": 50, "LOGGER_BACKOFF_MAX": "0.5"}
    stack = spec.from_dict(data)
    conf = render.render_files(stack, tmp_path / "stack.conf")[tmp_path / "stack.conf"]
    section = conf.split("[program:user-logger]")[1].split("\n[")[0]
    environment = next(line for line in section.splitlines() if line.startswith("environment="))
    assert 'LOGGER_BATCH_LINES="50"' in environment and 'LOGGER_BACKOFF_MAX="0.5"' in environment
    assert "LOGGER_BATCH_LINES" not in conf.split("[program:product-logger]")[1].split("\n[")[0]
    assert spec.from_dict(spec.to_dict(stack)).pods[0].logger_env == {"LOGGER_BATCH_LINES": "50",
                                                                         "LOGGER_BACKOFF_MAX": "0.5"}
    for bad, message in [({"BATCH": "1"}, "must be a LOGGER_NAME = value pair"),
                         ({"LOGGER_PORT": "1"}, "is set from the spec itself")]:
        data["pods"]["user"]["logger_env"] = bad
        with pytest.raises(spec.SpecError) as err:
            spec.from_dict(data)
        assert f"pod 'user': logger_env {next(iter(bad))!r}" in str(err.value) and message in str(err.value)
