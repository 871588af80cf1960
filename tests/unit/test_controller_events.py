"""supervisord's event listener protocol, spoken over in-memory byte streams."""
from __future__ import annotations

import io

import pytest

from podvisor.supervisord.controller.events import Listener, parse_payload, parse_tokens


def envelope(name: str, payload: bytes, serial: int = 1) -> bytes:
    # The header supervisord writes: len counts payload BYTES, not characters.
    return (f"ver:3.0 server:supervisor serial:{serial} pool:podvisor-controller poolserial:{serial} "
            f"eventname:{name} len:{len(payload)}\n").encode() + payload


def test_parse_tokens_splits_on_the_first_colon_only():
    assert parse_tokens("a:1 b:2 url:http://x:9\n") == {"a": "1", "b": "2", "url": "http://x:9"}
    assert parse_tokens("") == {}


def test_a_token_without_a_colon_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="'garbage'"):
        parse_tokens("a:1 garbage b:2")


def test_parse_payload_of_a_state_event_has_no_data():
    payload = "processname:user-app groupname:user-app from_state:RUNNING expected:0 pid:77"
    headers, data = parse_payload("PROCESS_STATE_EXITED", payload)
    assert headers == {"processname": "user-app", "groupname": "user-app", "from_state": "RUNNING",
                       "expected": "0", "pid": "77"}
    assert data == ""


def test_parse_payload_of_remote_communication_keeps_the_data_after_the_first_newline():
    headers, data = parse_payload("REMOTE_COMMUNICATION", "type:podvisor\nstop user op-1\nsecond line")
    assert headers == {"type": "podvisor"}
    assert data == "stop user op-1\nsecond line"


def test_parse_payload_of_process_log_keeps_the_log_data():
    headers, data = parse_payload("PROCESS_LOG_STDERR",
                                  "processname:a groupname:a pid:3 channel:stderr\nboom")
    assert headers["channel"] == "stderr" and data == "boom"


def test_listener_says_ready_reads_one_event_and_acknowledges():
    stdin = io.BytesIO(envelope("PROCESS_STATE_RUNNING", b"processname:user-app groupname:user-app pid:9"))
    stdout = io.BytesIO()
    listener = Listener(stdin, stdout)

    event = listener.next_event()
    assert stdout.getvalue() == b"READY\n"  # READY before blocking for the event
    listener.ok()

    assert stdout.getvalue() == b"READY\nRESULT 2\nOK"
    assert event.name == "PROCESS_STATE_RUNNING"
    assert event.headers["serial"] == "1" and event.headers["len"] == "45"
    assert event.payload_headers == {"processname": "user-app", "groupname": "user-app", "pid": "9"}
    assert event.data == ""


def test_listener_reads_consecutive_events_without_bleeding_payloads():
    payload = "type:podvisor\nstop user op-ü".encode()  # non-ASCII: len is bytes, not characters
    stream = envelope("REMOTE_COMMUNICATION", payload, 1) + envelope("TICK_5", b"when:1700000000", 2)
    listener = Listener(io.BytesIO(stream), io.BytesIO())

    first, second = listener.next_event(), listener.next_event()

    assert first.name == "REMOTE_COMMUNICATION"
    assert first.payload_headers == {"type": "podvisor"}
    assert first.data == "stop user op-ü"
    assert second.name == "TICK_5" and second.payload_headers == {"when": "1700000000"}


def test_listener_event_with_an_empty_payload():
    listener = Listener(io.BytesIO(envelope("SUPERVISOR_STATE_CHANGE_STOPPING", b"")), io.BytesIO())
    event = listener.next_event()
    assert event.name == "SUPERVISOR_STATE_CHANGE_STOPPING"
    assert event.payload_headers == {} and event.data == ""


def test_listener_returns_none_at_eof():
    stdout = io.BytesIO()
    assert Listener(io.BytesIO(b""), stdout).next_event() is None
    assert stdout.getvalue() == b"READY\n"


def test_listener_refuses_a_bad_header_token():
    with pytest.raises(ValueError, match="'bogus'"):
        Listener(io.BytesIO(b"ver:3.0 bogus len:0\n"), io.BytesIO()).next_event()
