"""The pytest plugin as a user's own suite sees it: their app, their spec, podvisor's fixtures."""
from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.e2e

USER_APP = r'''
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = open(os.environ["APP_LOG_FILE"], "a", buffering=1)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"/": b"echo says hi", "/health": b'{"status": "healthy"}',
                "/metrics": b"# TYPE echo_up gauge\necho_up 1\n"}.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")
        LOG.write(json.dumps({"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "level": "INFO", "message": "GET " + self.path,
                              "request_id": self.headers.get("X-Request-ID", "")}) + "\n")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((os.environ["APP_HOST"], int(os.environ["APP_PORT"])), Handler)
print("echo listening", flush=True)
server.serve_forever()
'''

SPEC = '''
[stack]
environment = "test"

[pods.echo]
service = "echo-service"
command = "./echo_app.py"
port = 3900
metrics_port = 3901
logger_port = 3902
probes.startup = { http_get = "/health", period_seconds = 0.2, failure_threshold = 100 }
'''

USER_TEST = '''
import requests


def test_my_service(podvisor_stack):
    assert requests.get(podvisor_stack.apps["echo"] + "/", timeout=5).text == "echo says hi"
    requests.get(podvisor_stack.apps["echo"] + "/", headers={"X-Request-ID": "from-my-test"}, timeout=5)

    def shipped():
        return podvisor_stack.logs(request_id="from-my-test")

    entries = podvisor_stack.wait_for(shipped, 20, "my line in the aggregator")
    assert entries[0]["service_name"] == "echo-service"
    assert entries[0]["environment"] == "test"
    assert 'pod="echo"' in requests.get(podvisor_stack.metrics["echo"] + "/metrics", timeout=5).text
'''


def test_users_suite_runs_its_own_spec_through_the_plugin(pytester: pytest.Pytester):
    app = pytester.path / "echo_app.py"
    app.write_text("#!/usr/bin/env python3\n" + USER_APP)
    app.chmod(0o755)
    pytester.makefile(".toml", pods=textwrap.dedent(SPEC))
    pytester.makeini("[pytest]\npodvisor_spec = pods.toml\n")
    pytester.makepyfile(test_mine=USER_TEST)
    result = pytester.runpytest_subprocess("-q", timeout=180)
    result.assert_outcomes(passed=1)
