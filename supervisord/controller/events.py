"""supervisord's event listener protocol: READY, header + payload, then RESULT.

supervisord writes ``key:value ...\\n`` headers with ``len:N`` then N bytes of payload; the listener
answers ``RESULT 2\\nOK`` and says ``READY\\n`` again before the next event.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class Event:
    name: str
    headers: dict[str, str]
    payload_headers: dict[str, str]
    data: str


def parse_tokens(line: str) -> dict[str, str]:
    """'a:1 b:2' -> {'a': '1', 'b': '2'}; a token without ':' is a ValueError naming it."""
    out = {}
    for token in line.split():
        key, sep, value = token.partition(":")
        if not sep:
            raise ValueError(f"event header token {token!r} has no ':'")
        out[key] = value
    return out


def parse_payload(name: str, payload: str) -> tuple[dict[str, str], str]:
    """Split a payload into its header tokens and, for events that carry one, the data after '\\n'."""
    head, _, data = payload.partition("\n")
    if name == "REMOTE_COMMUNICATION" or name.startswith(("PROCESS_LOG", "PROCESS_COMMUNICATION")):
        return parse_tokens(head), data
    return parse_tokens(head), ""


class Listener:
    """Blocking reader/writer of the protocol over the process's stdin/stdout (binary)."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO):
        self.stdin = stdin
        self.stdout = stdout

    def ready(self) -> None:
        self.stdout.write(b"READY\n")
        self.stdout.flush()

    def ok(self) -> None:
        self.stdout.write(b"RESULT 2\nOK")
        self.stdout.flush()

    def next_event(self) -> Event | None:
        """Say READY and block for the next event; None when supervisord closed our stdin."""
        self.ready()
        line = self.stdin.readline()
        if not line:
            return None
        headers = parse_tokens(line.decode("utf-8", "replace"))
        length = int(headers.get("len", "0"))
        payload = self.stdin.read(length).decode("utf-8", "replace") if length else ""
        name = headers.get("eventname", "UNKNOWN")
        payload_headers, data = parse_payload(name, payload)
        return Event(name, headers, payload_headers, data)
