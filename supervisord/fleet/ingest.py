"""nginx terminating TLS in front of a store host's aggregator: the fleet's ingest endpoint.

Loggers of every host ship to https://STORE:8443 (verifying the fleet's CA) with their own
credentials, which nginx passes through untouched: the aggregator still authenticates each logger.
Only shipping goes through (POST /logs, /api/v1/ingest, OTLP's /v1/logs, and /health for probes);
reads stay on the store host's loopback. Ingest is idempotent (entry ids), so a request nginx could
not complete is safely retried by the logger.
"""
from __future__ import annotations

from pathlib import Path

from podvisor.supervisord.render.nginx import temp_paths

INGEST_PORT = 8443


def render(listen: str, port: int, cert: Path, key: str | Path, upstream: str, prefix_dir: str = "nginx",
           max_body: str = "8m") -> str:
    """nginx.conf (paths of logs and temp files relative to nginx's -p prefix)."""
    return f"""# Rendered by podvisor-render --fleet: TLS in front of this store host's aggregator.
# Run in the foreground: nginx -p PREFIX -c ingest.nginx.conf -g 'daemon off;' (stack.conf does).
worker_processes 1;
pid {prefix_dir}/ingest.pid;
error_log {prefix_dir}/ingest-error.log notice;

events {{
    worker_connections 1024;
}}

http {{
{temp_paths(prefix_dir)}
    server_tokens off;
    access_log off;
    client_max_body_size {max_body};
    client_body_buffer_size {max_body};
    proxy_max_temp_file_size 0;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto https;
    proxy_read_timeout 60s;

    upstream aggregator {{
        server {upstream};
        keepalive 16;
    }}

    server {{
        listen {listen}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:ingest:1m;
        default_type application/json;

        location = /logs {{ proxy_pass http://aggregator; }}
        location = /api/v1/ingest {{ proxy_pass http://aggregator; }}
        location = /v1/logs {{ proxy_pass http://aggregator; }}
        location = /health {{ proxy_pass http://aggregator; }}
        location / {{
            return 404 '{{"ok":false,"error":"only log shipping is served here; read on the store host"}}';
        }}
    }}
}}
"""


def write(directory: Path, listen: str, port: int, cert: Path, key: Path, upstream: str,
          prefix_dir: str = "nginx") -> Path:
    """ingest.nginx.conf in `directory` (nginx's prefix), with nginx's own folder `prefix_dir` (pid,
    error log, temp files) below it; its path."""
    (directory / prefix_dir / "tmp").mkdir(parents=True, exist_ok=True)
    path = directory / "ingest.nginx.conf"
    path.write_text(render(listen, port, cert, key, upstream, prefix_dir))
    return path


def command(nginx: str, prefix: str, prefix_dir: str = "nginx") -> str:
    """The command line running the ingest endpoint in the foreground, as supervisord wants it;
    `prefix` is the folder of ingest.nginx.conf (with a trailing /)."""
    return f"{nginx} -p {prefix} -c ingest.nginx.conf -e {prefix_dir}/ingest-error.log -g 'daemon off;'"
