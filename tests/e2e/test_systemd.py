"""The systemd unit: clean under `systemd-analyze verify`, and its ExecStart stops in order losing no line."""
from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from podvisor.supervisord.systemd import unit as systemd
from podvisor.testing import harness

pytestmark = pytest.mark.e2e
SUPERVISORD = Path(sys.executable).parent / "supervisord"


def vm_spec() -> dict:
    data = harness.load_spec_dict(None)
    data["stack"]["read_auth"] = "always"
    return data


def test_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: apt-get install systemd"
    assert SUPERVISORD.exists(), f"{SUPERVISORD} missing: pip install -e '.[test]'"
    handle = harness.StackHandle(tmp_path, vm_spec())
    conf = tmp_path / "stack.vm.conf"
    unit = tmp_path / "podvisor.service"
    unit.write_text(systemd.render_unit(handle.spec, conf, SUPERVISORD, None))
    conf.write_text("")  # verify checks the unit, not the conf; the file just has to exist
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr
    text = unit.read_text()
    for line in ("KillMode=mixed", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 f"ReadWritePaths={handle.spec.state_dir}", "Restart=on-failure"):
        assert line in text
    timeout = int(re.search(r"TimeoutStopSec=(\d+)", text).group(1))
    assert timeout > max(p.grace_seconds for p in handle.spec.pods) + 10


def test_podvisor_systemd_writes_the_vm_conf_and_the_unit(tmp_path):
    """The README's VM command, `podvisor-systemd --state-dir ... --user ...`, with the spec and the
    unit in a temporary folder instead of the checkout and /etc (useradd and systemctl need a real
    systemd host: the unit they enable is checked by systemd-analyze above)."""
    spec = tmp_path / "pods.toml"
    spec.write_text(harness.render.DEFAULT_SPEC.read_text())
    user = pwd.getpwuid(os.getuid()).pw_name
    unit = tmp_path / "podvisor.service"
    done = subprocess.run([str(SUPERVISORD.parent / "podvisor-systemd"), "--spec", str(spec),
                           "--state-dir", str(tmp_path / "state"), "--user", user, "--unit", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    conf = tmp_path / "stack.vm.conf"
    assert done.stdout == f"wrote {conf} and {unit}; now: systemctl daemon-reload && systemctl enable --now podvisor\n"
    assert "AGGREGATOR_READ_AUTH=\"always\"" in conf.read_text()
    text = unit.read_text()
    assert f"ExecStart={SUPERVISORD} -n -c {conf}" in text
    assert f"User={user}\nGroup={user}\n" in text and "WantedBy=multi-user.target" in text
    state = tmp_path / "state" / "pods" / "user" / "logs" / "sidecars"
    assert state.is_dir() and state.owner() == user


def test_execstart_stopped_as_systemd_would_tears_down_in_order_and_loses_no_line(tmp_path):
    handle = harness.StackHandle(tmp_path, vm_spec())
    unit = systemd.render_unit(handle.spec, handle.conf, SUPERVISORD, None)
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.M).group(1)
    timeout = int(re.search(r"TimeoutStopSec=(\d+)", unit).group(1))
    handle.start(argv=shlex.split(exec_start))
    try:
        ids = []
        for pod, url in handle.apps.items():
            path = "/user/" if pod == "gateway" else "/"  # the gateway routes prefixes, "/" is its 404
            for _ in range(20):
                rid = f"systemd-{pod}-{uuid.uuid4().hex[:10]}"
                assert requests.get(url + path, headers={"X-Request-ID": rid}, timeout=5).status_code == 200
                ids.append(rid)
        # systemd, KillMode=mixed: SIGTERM to the main process only, SIGKILL to the rest after the timeout.
        handle.proc.send_signal(signal.SIGTERM)
        try:
            code = handle.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"supervisord outlived TimeoutStopSec={timeout}\n{handle.output()}")
        assert code == 0, handle.output()
        assert not harness.wait_for_gone(handle.descendants, 5), "processes outlived supervisord"
        log = (handle.state_dir / "supervisord.log").read_text()
        for pod in handle.apps:
            app_stop = ended(log, f"{pod}-app")
            assert app_stop < ended(log, f"{pod}-logger"), "a sidecar stopped before its app"
            assert app_stop < ended(log, f"{pod}-metrics")
            assert ended(log, f"{pod}-logger") < ended(log, "aggregator"), "aggregator stopped before a logger"
    finally:
        handle.stop(check=False)
    handle.start()  # same state directory: what was shipped before the stop is still there
    stored = {e.get("request_id") for e in handle.logs(limit=1000)}
    missing = [r for r in ids if r not in stored]
    shutdown = handle.logs(service="user", limit=1000)
    handle.stop()
    assert not missing, f"{len(missing)} of {len(ids)} request lines lost across the stop: {missing[:5]}"
    assert any("shutting down" in e.get("message", "").lower() for e in shutdown), "app shutdown lines not shipped"


def ended(log: str, program: str) -> int:
    """Where supervisord's log reports `program` ended: "stopped:" when it signalled it itself,
    "exited:" when the pod controller's parallel shutdown got there first."""
    found = re.search(rf"(?:stopped|exited): {re.escape(program)} \(", log)
    assert found, f"supervisord never reported {program} ending"
    return found.start()
