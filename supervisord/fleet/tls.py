"""The fleet's CA and certificates, made with the openssl command (Debian's openssl package).

One CA per fleet (`ca.crt`, `ca.key`: the key stays with the operator, never on a host). Each host
gets a key and a certificate for its names and addresses, good both as a server (nginx in front of
the store host's aggregator, the central Prometheus) and as a client (a host's Prometheus agent
remote-writing). Loggers and agents trust the fleet's CA alone. Existing files are kept: rendering
again never rotates a key behind the operator's back (delete the files to renew them).
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

CA_DAYS = 3650
CERT_DAYS = 825  # the longest validity current TLS clients accept for a server certificate
CURVE = "prime256v1"


class TlsError(RuntimeError):
    """openssl is missing or refused: the message says which command and why."""


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise TlsError("openssl not found: install Debian's openssl package (apt-get install -y openssl)")
    return found


def _run(*args: str, cwd: Path | None = None) -> None:
    done = subprocess.run([openssl(), *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    if done.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}")


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


def ensure_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """(ca.crt, ca.key) in `directory`, created when missing."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / "ca.crt", directory / "ca.key"
    if not (crt.exists() and key.exists()):
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{CURVE}", "-nodes",
             "-keyout", str(key), "-out", str(crt), "-days", str(CA_DAYS), "-subj", f"/CN=podvisor fleet CA {name}",
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        _private(key)
    return crt, key


def subject_alt_names(names: Sequence[str]) -> str:
    """'DNS:x,IP:1.2.3.4' for host names and addresses."""
    out = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            out.append(f"IP:{name}")
        except ValueError:
            out.append(f"DNS:{name}")
    return ",".join(out)


def issue(ca: tuple[Path, Path], directory: Path, stem: str, names: Sequence[str]) -> tuple[Path, Path]:
    """(stem.crt, stem.key) in `directory` for `names` (host names and IP addresses), signed by `ca`;
    kept when present."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    if crt.exists() and key.exists():
        return crt, key
    csr, ext = directory / f"{stem}.csr", directory / f"{stem}.ext"
    _run("req", "-new", "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{CURVE}", "-nodes", "-keyout", str(key),
         "-out", str(csr), "-subj", f"/CN={names[0]}")
    _private(key)
    ext.write_text(f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={subject_alt_names(names)}\n")
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
         "-out", str(crt), "-days", str(CERT_DAYS), "-extfile", str(ext))
    csr.unlink()
    ext.unlink()
    return crt, key
