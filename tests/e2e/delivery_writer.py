"""A pod "app" for the delivery suite: writes sequence-numbered JSON lines to stdout on request.

supervisord captures its stdout into the pod's `app.stdout.log` and rotates it by size (its own
`*.log.1` scheme), exactly as it does for any app. Standard library only: it is launched by
supervisord as `python3 delivery_writer.py` with the pod's APP_HOST / APP_PORT.

    GET  /health                  200 once serving
    POST /runs  {"run", "count", "rate", "pad"}   start writing `count` lines at `rate` lines/s
    GET  /runs/<run>              {"written": n, "done": bool}

Each line is one os.write() of less than PIPE_BUF bytes, so supervisord never sees half a line.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUNS: dict[str, dict] = {}
LOCK = threading.Lock()  # one line at a time on stdout, whatever the number of runs
STOP = threading.Event()


def line(run: str, seq: int, pad: int) -> bytes:
    return (json.dumps({"message": f"seq {seq}", "seq": seq, "run": run, "level": "info", "pad": "x" * pad})
            + "\n").encode()


def write(run: str, count: int, rate: float, pad: int) -> None:
    state = RUNS[run]
    started = time.monotonic()
    for seq in range(count):
        if STOP.is_set():
            return
        due = started + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            STOP.wait(delay)  # pacing, not synchronisation
        with LOCK:
            os.write(1, line(run, seq, pad))
        state["written"] = seq + 1
    state["done"] = True


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"ok": True})
        elif self.path.startswith("/runs/") and self.path[6:] in RUNS:
            self._send(200, RUNS[self.path[6:]])
        else:
            self._send(404, {"ok": False, "error": f"no such path {self.path}"})

    def do_POST(self) -> None:
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            run, count = str(body["run"]), int(body["count"])
            rate, pad = float(body.get("rate", 500)), int(body.get("pad", 0))
            if self.path != "/runs" or run in RUNS or count < 0 or rate <= 0 or not 0 <= pad <= 3000:
                raise ValueError("need a new run, count >= 0, rate > 0, 0 <= pad <= 3000")
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"ok": False, "error": str(exc)})
            return
        RUNS[run] = {"written": 0, "done": False}
        threading.Thread(target=write, args=(run, count, rate, pad), daemon=True).start()
        self._send(202, {"ok": True})

    def _send(self, status: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # stdout is the data channel
        pass


def main() -> int:
    address = (os.environ.get("APP_HOST", "127.0.0.1"), int(os.environ["APP_PORT"]))
    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True

    def on_term(_signum: int, _frame: object) -> None:
        STOP.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    print(f"delivery writer on {server.server_address}", file=sys.stderr, flush=True)
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
