"""The seed system's shipping design, for the baseline ratio only: tail a file, one HTTP POST per line.

No batching and no compression, as the seed did; to be fair to it, it keeps one keep-alive
connection, enriches each entry with the same labels and a deterministic id as podvisor's logger
(so the store does the same work per line), and retries a failed POST instead of dropping the line.
Runs as its own process, as a sidecar would:

    python -m podvisor.bench.naive --file F --url http://127.0.0.1:PORT --token-file T --pod P
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import requests


def entry(line: bytes, pod: str, service: str, source: str, file_key: str, offset: int) -> dict:
    text = line.decode("utf-8", "replace").rstrip("\n")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {"message": text}
    data.update(
        service_name=service,
        environment="production",
        pod=pod,
        host=socket.gethostname(),
        source=source,
        id=f"naive:{pod}:{file_key}:{offset}",
    )
    return data


def ship(path: Path, url: str, token: str, pod: str, service: str, poll: float = 0.01) -> None:
    """Ship every complete line of `path` forever, one POST each."""
    http = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    print("ready", flush=True)
    while not path.exists():
        time.sleep(poll)
    with open(path, "rb") as fh:
        file_key = uuid.uuid4().hex[:12]  # one file, one shipper: a fresh key per start is enough here
        offset = 0
        pending = b""
        while True:
            chunk = fh.readline()
            if not chunk:
                time.sleep(poll)  # the seed's tail -f
                continue
            pending += chunk
            if not pending.endswith(b"\n"):
                continue
            body = entry(pending, pod, service, path.name, file_key, offset)
            while True:
                try:
                    if http.post(url + "/logs", json=body, headers=headers, timeout=10).status_code < 300:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            offset += len(pending)
            pending = b""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m podvisor.bench.naive", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--url", required=True, help="aggregator base URL")
    parser.add_argument("--token-file", required=True, type=Path)
    parser.add_argument("--pod", default="naive")
    parser.add_argument("--service", default="naive-service")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        ship(args.file, args.url.rstrip("/"), args.token_file.read_text().strip(), args.pod, args.service)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
