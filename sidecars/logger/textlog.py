"""Plain-text lines that say their own level: nginx's error log (and what nginx prints on stderr).

An app podvisor did not write keeps its own formats. nginx's error log is one line per event::

    2024/01/01 10:00:00 [error] 12#12: *5 connect() failed (111: Connection refused) while
    connecting to upstream, client: 127.0.0.1, server: , request: "GET /user/ HTTP/1.1",
    upstream: "http://127.0.0.1:3000/", host: "localhost:8000"

(on one line). It becomes an entry with nginx's level mapped to podvisor's, the time as ISO 8601 UTC
(nginx writes local time), the pid and connection, and the request context nginx appends. Before
nginx has opened its error log it writes ``nginx: [emerg] ...`` on stderr: that level is kept too.
`parse` is only asked about lines that are not JSON, and answers None at once for a line that does
not start like one of these, before any regular expression runs.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# nginx's eight levels -> podvisor's (the aggregator's level filter knows these five).
LEVELS = {"debug": "debug", "info": "info", "notice": "info", "warn": "warning", "error": "error",
          "crit": "critical", "alert": "critical", "emerg": "critical"}
_ERROR_LINE = re.compile(r"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) \[([a-z]+)\] (\d+)#(\d+): (?:\*(\d+) )?")
_STDERR_LINE = re.compile(r"nginx: \[([a-z]+)\] ")
# The context nginx appends to an error about a request: `, client: 1.2.3.4, request: "GET / HTTP/1.1"`.
_CONTEXT = re.compile(r', (client|server|request|upstream|host|referrer): ("[^"]*"|[^,]*)')


def parse(text: str) -> dict[str, Any] | None:
    """The entry for an nginx error-log (or stderr) line, or None when `text` is not one."""
    if len(text) > 21 and text[4] == "/" and text[7] == "/" and text[20] == "[":
        return _error_line(text)
    if text.startswith("nginx: ["):
        match = _STDERR_LINE.match(text)
        if match is None or match.group(1) not in LEVELS:
            return None
        return {"message": text[match.end():], "level": LEVELS[match.group(1)], "nginx_level": match.group(1),
                "logger": "nginx"}
    return None


def _error_line(text: str) -> dict[str, Any] | None:
    match = _ERROR_LINE.match(text)
    if match is None or match.group(7) not in LEVELS:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:  # nginx writes its local time; the entry carries UTC, as every podvisor timestamp does
        moment = datetime(year, month, day, hour, minute, second).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    nginx_level = match.group(7)
    message = text[match.end():]
    record: dict[str, Any] = {
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "level": LEVELS[nginx_level],
        "nginx_level": nginx_level, "logger": "nginx.error", "message": message,
        "pid": int(match.group(8)),
    }
    if match.group(10) is not None:
        record["connection"] = int(match.group(10))
    if ", client: " in message:
        for name, value in _CONTEXT.findall(message):
            # `host` is the logger's own field (the machine): nginx's is the request's Host header
            record.setdefault("http_host" if name == "host" else name, value[1:-1] if value.startswith('"') else value)
    return record
