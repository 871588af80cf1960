"""A changed spec applied to a running stack: `podctl apply` and `supervisorctl update`.

The demo stack gets a fourth pod that podvisor did not write (Python's stock http.server behind a
shell script, supervisord/examples/hello), with no ports given; then a third pod is changed; then
the fourth is removed. Pods the change does not touch keep their processes.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from podvisor.testing.harness import REPO

pytestmark = pytest.mark.e2e
HELLO = REPO / "supervisord" / "examples" / "hello" / "serve.sh"
HELLO_POD = {"command": str(HELLO), "stderr_level": "INFO", "metrics_path": False, "socket": "app",
             "probes": {"readiness": {"http_get": "/health", "period_seconds": 0.5}}}


@pytest.fixture(scope="module")
def stack(podvisor_module_stack):
    return podvisor_module_stack


def pids(stack, pods=("user", "product")) -> dict[str, int]:
    return {f"{pod}-{role}": stack.pid(f"{pod}-{role}") for pod in pods for role in ("app", "logger", "metrics")}


def write_spec(stack, tmp_path: Path, edit) -> Path:
    data = copy.deepcopy(stack.spec_dict)
    edit(data["pods"])
    path = tmp_path / "pods.json"
    path.write_text(json.dumps(data))
    return path


def apply(stack, spec: Path) -> subprocess.CompletedProcess:
    proc = stack.podctl("apply", "-f", str(spec), "--timeout", "90")
    assert proc.returncode == 0, f"podctl apply exited {proc.returncode}: {proc.stdout}{proc.stderr}\n{stack.output()}"
    return proc


def test_apply_adds_changes_and_removes_pods_leaving_the_others_alone(stack, tmp_path):
    before = pids(stack)

    spec = write_spec(stack, tmp_path, lambda pods: pods.update(hello=dict(HELLO_POD)))
    out = apply(stack, spec).stdout
    assert "pod/hello created" in out and "pod/user unchanged" in out and "pod/order unchanged" in out, out
    hello = stack.pods()["hello"]
    assert hello["ready"] and all(hello["ports"].values()), hello
    port = hello["ports"]["app"]
    low, high = map(int, stack.spec_dict["stack"]["app_ports"].split("-"))
    assert low <= port <= high, f"port {port} not from the stack's range {low}-{high}"
    resp = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert resp.status_code == 200 and "did not write" in resp.text
    # its stderr access lines ship, at the level the spec gives them, and its probes are marked
    shipped = stack.wait_for(lambda: [e for e in stack.logs(pod="hello") if "GET / HTTP" in e.get("message", "")],
                             10, "hello's access line in the aggregator")
    assert shipped[0]["level"].upper() == "INFO", shipped[0]
    metrics = requests.get(f"http://127.0.0.1:{hello['ports']['metrics']}/metrics", timeout=5).text
    assert 'target="app"' not in metrics and "podvisor_pod_resident_memory_bytes" in metrics, metrics[:2000]
    assert pids(stack) == before, "adding a pod restarted others"

    order_before = pids(stack, ("order",))
    spec = write_spec(stack, tmp_path, lambda pods: (pods.update(hello=dict(HELLO_POD)),
                                                     pods["order"].setdefault("env", {}).update(APP_THREADS="4")))
    out = apply(stack, spec).stdout
    assert "pod/order configured" in out and "pod/hello unchanged" in out, out
    assert all(pid != order_before[name] for name, pid in pids(stack, ("order",)).items() if name == "order-app")
    assert pids(stack) == before, "changing order restarted user or product"

    out = apply(stack, write_spec(stack, tmp_path, lambda pods: None)).stdout
    assert "pod/hello deleted" in out, out
    assert "hello" not in stack.pods()
    assert not [n for n in stack.rpc.all_info() if n.startswith("hello-")], "hello's programs left in supervisord"
    assert pids(stack) == before


def test_apply_refuses_a_bad_spec_with_one_line_and_changes_nothing(stack, tmp_path):
    before = (stack.conf.read_text(), pids(stack))
    bad = write_spec(stack, tmp_path, lambda pods: pods["user"].update(restart_policy="sometimes"))
    proc = stack.podctl("apply", "-f", str(bad))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "restart_policy" in proc.stderr
    assert (stack.conf.read_text(), pids(stack)) == before


def test_supervisorctl_update_after_a_spec_change_keeps_the_aggregator_and_ships_the_new_pod(stack, tmp_path):
    """The supervisord way: render the changed spec, then `supervisorctl update`. It re-creates the
    aggregator (its section names every pod's metrics sidecar) and adds the new pod's programs;
    the controller must start all of them, in order."""
    from podvisor.supervisord.render.conf import render_files, write_files
    from podvisor.supervisord.spec.parse import load
    spec = write_spec(stack, tmp_path, lambda pods: pods.update(hello=dict(HELLO_POD)))
    from podvisor.testing.harness import bin_dir
    write_files(render_files(load(spec), stack.conf, bin_dir()))
    before = pids(stack)
    proc = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(stack.conf), "update"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "aggregator" in proc.stdout, f"expected supervisord to re-create the aggregator: {proc.stdout}"
    stack.wait_for(lambda: stack.pods().get("hello", {}).get("ready"), 60, "the new pod Ready after update")
    stack.wait_for(lambda: stack.info("aggregator")["statename"] == "RUNNING", 30, "the aggregator running again")
    port = stack.pods()["hello"]["ports"]["app"]
    requests.get(f"http://127.0.0.1:{port}/index.html", timeout=5)
    stack.wait_for(lambda: [e for e in stack.logs(pod="hello") if "index.html" in e.get("message", "")], 20,
                   "the new pod's line shipped")
    assert pids(stack) == before
    # and back, so the module's stack is as it was
    write_files(render_files(load(write_spec(stack, tmp_path, lambda pods: None)), stack.conf, bin_dir()))
    subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(stack.conf), "update"],
                   capture_output=True, text=True, timeout=60, check=True)
    stack.wait_for(lambda: "hello" not in stack.pods(), 30, "the removed pod gone from the controller")
    stack.wait_for(lambda: stack.info("aggregator")["statename"] == "RUNNING", 30, "the aggregator running")
