"""Per-logger credentials: each logger ships with its own, bound to its pod and service.

    pv1.<pod>.<service>.<mac>     service = base64url(UTF-8 service name), no padding
                                  mac = base64url(HMAC-SHA256(master token, "logger:<pod>.<service>"))

Stateless: the aggregator verifies one by recomputing the MAC with its master token, so nothing
is stored per logger and a new master token revokes every credential at once. At start the
aggregator writes the credential of each pod it is told about (AGGREGATOR_LOGGER_CREDENTIALS) into
that pod's logger state directory, mode 0600; the logger reads it (LOGGER_CREDENTIAL_FILE).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

PREFIX = "pv1"
_POD = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass(frozen=True)
class LoggerIdentity:
    """Who a valid logger credential speaks for."""

    pod: str
    service: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(master: str, pod: str, service_b64: str) -> str:
    return _b64(hmac.new(master.encode(), f"logger:{pod}.{service_b64}".encode(), hashlib.sha256).digest())


def mint(master: str, pod: str, service: str) -> str:
    """The credential of the logger of `pod` (whose entries carry `service`)."""
    if not _POD.match(pod):
        raise ValueError(f"pod name {pod!r} cannot be put in a credential (letters, digits, '-', '_')")
    service_b64 = _b64(service.encode())
    return f"{PREFIX}.{pod}.{service_b64}.{_mac(master, pod, service_b64)}"


def verify(master: str, credential: str) -> LoggerIdentity | None:
    """The identity a credential proves, or None (malformed, or minted with another master token)."""
    parts = credential.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not _POD.match(parts[1]) or len(credential) > 1024:
        return None
    _, pod, service_b64, mac = parts
    if not hmac.compare_digest(mac.encode(), _mac(master, pod, service_b64).encode()):
        return None
    try:
        service = base64.urlsafe_b64decode(service_b64 + "=" * (-len(service_b64) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    return LoggerIdentity(pod, service)


def write_credential(path: Path, credential: str) -> bool:
    """Write `credential` to `path` with mode 0600 (atomically, never readable by others even for an
    instant); False when the file already held it. The folder is created 0700 if missing."""
    try:
        if path.read_text().strip() == credential and not path.stat().st_mode & 0o077:
            return False
    except OSError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old .tmp left with other bits keeps them through O_CREAT
        os.write(fd, (credential + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True
