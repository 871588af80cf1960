"""nginx.conf for a gateway pod, rendered from the spec like stack.conf.

Paths are relative to nginx's prefix (`-p <state>/pods/<pod>/`), so the file holds no machine path
and can be committed. nginx runs in the foreground under supervisord, without root: its pid and
temp files live in the pod's state folder, its access log (JSON, one object per line) and error
log in the pod's log folder, where the logging sidecar tails them like any app's.
"""
from __future__ import annotations

import re
from pathlib import Path

from podvisor.supervisord.render.binaries import system_binary
from podvisor.supervisord.spec.model import Pod, Stack
from podvisor.supervisord.spec.parse import GATEWAY_HEALTH_PATH, NGINX_STATUS_PATH

NGINX_DIR = "nginx"  # below the pod's state folder: pid and temp files
# One JSON object per request, with the fields podvisor's log line has; `level` from the status.
ACCESS_FORMAT = (
    '\'{"timestamp":"$podvisor_time","level":"$podvisor_level","logger":"nginx.access",'
    '"message":"$request_method $uri $status","request_id":"$podvisor_request_id",'
    '"method":"$request_method","path":"$uri","query":"$args","status":$status,'
    '"bytes":$body_bytes_sent,"client":"$remote_addr","user_agent":"$http_user_agent",'
    '"request":"$request","upstream":"$upstream_addr","request_time":$request_time,'
    '"upstream_response_time":"$upstream_response_time"}\''
)


def binary(name: str) -> str:
    """The nginx executable as supervisord should run it: Debian installs it in /usr/sbin, which
    is not on every user's PATH."""
    if "/" in name:
        return name
    return system_binary(name) or f"/usr/sbin/{name}"


def temp_paths(folder: str) -> str:
    """nginx's temporary folders, all below `folder` (its defaults are in /var/lib/nginx, which a
    stack's user may not write), as lines of an http block."""
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    return "\n".join(f"    {kind}_temp_path {folder}/tmp/{kind.removeprefix('client_')};" for kind in kinds)


def conf_name(conf_path: Path, pod: Pod, slot: int = 0) -> Path:
    """stack.conf -> stack.<pod>.nginx.conf beside it; stack.<pod>-<slot>.nginx.conf for another slot."""
    return conf_path.with_name(f"{conf_path.stem}.{pod.name}{f'-{slot}' if slot else ''}.nginx.conf")


def slot_files(slot: int) -> tuple[str, str, str]:
    """A slot's pid file, access log and error log, relative to nginx's prefix: each nginx master
    (a replica, or the one a rolling restart starts beside the old) has its own, so the logger ships
    each one's lines under their own file identity."""
    suffix = f"-{slot}" if slot else ""
    return f"{NGINX_DIR}/nginx{suffix}.pid", f"logs/access{suffix}.log", f"logs/error{suffix}.log"


def error_log(slot: int) -> str:
    return slot_files(slot)[2]


def _upstream(stack: Stack, target: str) -> str:
    if target.startswith(("http://", "https://")):
        return target.split("://", 1)[1].rstrip("/")
    return f"{stack.host}:{stack.pod(target).port}"


def render(stack: Stack, pod: Pod, slot: int = 0) -> str:
    """The conf of one app slot. Where podvisor holds the socket, nginx inherits it (the launcher
    sets NGINX="3;4;"): nginx reuses an inherited socket whose address a `listen` names, so the
    slot listens on the pod's port and on its own (probes and scrapes reach this master alone)."""
    gateway = pod.gateway
    assert gateway is not None
    pid, access_log, error_log = slot_files(slot)
    listens = [pod.port] + ([pod.slot_ports[slot]] if pod.socket == "held" else [])
    upstreams, locations = [], []
    prefixes = ", ".join(prefix for prefix, _ in gateway.routes)
    for index, (prefix, target) in enumerate(gateway.routes):
        name = f"route{index}"
        scheme = "https" if target.startswith("https://") else "http"
        upstreams.append(f"    upstream {name} {{\n        server {_upstream(stack, target)};\n"
                         "        keepalive 16;\n    }\n")
        # proxy_pass with a URI part replaces the matched prefix by "/": /user/users -> /users
        locations.append(f"        location {prefix} {{\n            proxy_pass {scheme}://{name}/;\n        }}\n")
    return f"""# Rendered by podvisor-render from the pods spec (pod {pod.name}): edit the spec and re-render.
daemon off;
worker_processes auto;
pid {pid};
error_log {error_log} notice;

events {{
    worker_connections 1024;
    # Without it, workers wait on the listening socket with EPOLLEXCLUSIVE, and the kernel wakes one
    # of them per new connection: when that one belongs to a master that is stopping (a rolling
    # restart shares the socket between two masters), the wakeup is lost and the connection waits
    # in the backlog until the next one arrives. With the mutex, every waiting worker is woken.
    accept_mutex on;
}}

http {{
{temp_paths(NGINX_DIR)}
    server_tokens off;
    # No temp files: when supervisord runs as root, nginx's workers run as nobody, who cannot write
    # in the state folder. Bodies up to the apps' own limit stay in memory; responses stream.
    client_max_body_size 1m;
    client_body_buffer_size 1m;
    proxy_max_temp_file_size 0;

    # podvisor's timestamps carry milliseconds (and Z for UTC): nginx's $time_iso8601 has neither,
    # so the milliseconds of $msec (the same clock reading) are spliced in.
    map $msec $podvisor_millis {{
        "~\\.(?<ms>\\d\\d\\d)$" $ms;
        default 000;
    }}
    map $time_iso8601 $podvisor_time {{
        "~^(?<second>[^+]+)\\+00:00$" $second.${{podvisor_millis}}Z;
        "~^(?<second>.+T[0-9:]+)(?<zone>[-+].+)$" $second.$podvisor_millis$zone;
        default $time_iso8601;
    }}
    map $status $podvisor_level {{
        ~^5 error;
        ~^4 warning;
        default info;
    }}
    # A request keeps the id it came with; nginx gives one to a request that has none.
    map $http_x_request_id $podvisor_request_id {{
        "" $request_id;
        default $http_x_request_id;
    }}
    log_format podvisor escape=json {ACCESS_FORMAT};
    access_log {access_log} podvisor;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Request-ID $podvisor_request_id;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Prefix $podvisor_prefix;
    proxy_connect_timeout {gateway.connect_timeout_seconds:g}s;
    proxy_read_timeout {gateway.read_timeout_seconds:g}s;
    proxy_send_timeout {gateway.read_timeout_seconds:g}s;
    # One X-Request-ID in every answer: the gateway's (an upstream echoes the same id).
    proxy_hide_header X-Request-ID;
    add_header X-Request-ID $podvisor_request_id always;

    map $uri $podvisor_prefix {{
        default "";
{"".join(f'        ~^{re.escape(prefix)} "{prefix}";{chr(10)}' for prefix, _ in gateway.routes)}    }}

{"".join(upstreams)}
    server {{
{"".join(f"        listen {stack.host}:{port};{chr(10)}" for port in listens)}        default_type application/json;
        # nginx's own errors as JSON (an upstream's own error answers pass through untouched). A
        # request nginx cannot parse (400, 414) cannot be redirected to a location: its HTML stays.
        error_page 413 = @too_large;
        error_page 502 = @unavailable;
        error_page 503 = @unavailable;
        error_page 504 = @timed_out;

        location = {GATEWAY_HEALTH_PATH} {{
            return 200 '{{"status":"healthy"}}';
        }}
        location = {NGINX_STATUS_PATH} {{
            stub_status;
            allow 127.0.0.1;
            allow ::1;
            deny all;
        }}
{"".join(locations)}        location / {{
            return 404 '{{"ok":false,"error":"no route: the gateway routes {prefixes}"}}';
        }}
        location @too_large {{
            return 413 '{{"ok":false,"error":"request body over 1 MiB"}}';
        }}
        location @unavailable {{
            return 502 '{{"ok":false,"error":"upstream unavailable"}}';
        }}
        location @timed_out {{
            return 504 '{{"ok":false,"error":"upstream timed out"}}';
        }}
    }}
}}
"""
