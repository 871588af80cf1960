"""Debian's rsyslog as a shipper into the aggregator: `imfile` tails one file, `omelasticsearch` posts
its lines in bulk to the aggregator's `_bulk` endpoint, with a logger credential as the basic-auth
password (so the aggregator stamps the pod, as it does for podvisor's own logger).

Each document is the line itself (the apps write JSON), and its `_id` is `<pod>:rsyslog-<file
offset>` (imfile's metadata), so a bulk request rsyslog sends again is stored once. Used by the
benchmark's side-by-side scenario and by the test that proves the bulk requests are stored.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from podvisor.testing.harness import terminate

INSTALL_HINT = "install them with `sudo apt-get install -y rsyslog rsyslog-elasticsearch`"
MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog", "/usr/lib/rsyslog")


def rsyslogd() -> str:
    """The rsyslogd binary; RuntimeError naming the Debian packages when it or its module is missing."""
    exe = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")
    if exe is None:
        raise RuntimeError(f"rsyslogd not found: {INSTALL_HINT}")
    if not any(Path(folder, "omelasticsearch.so").exists() for folder in MODULE_DIRS):
        raise RuntimeError(f"rsyslog's omelasticsearch module not found: {INSTALL_HINT}")
    return exe


def config(work: Path, log_file: Path, aggregator_url: str, credential: str, pod: str,
           batch: int = 1000, max_bytes: int = 4 * 1024 * 1024) -> str:
    """An rsyslog.conf that ships `log_file` to the aggregator and nothing else (no syslog socket)."""
    parts = urlsplit(aggregator_url)
    for value in (str(work), str(log_file), credential, pod):
        if '"' in value or "\\" in value:
            raise ValueError(f"cannot put {value!r} in an rsyslog string")
    return f"""
global(workDirectory="{work}" maxMessageSize="256k")
module(load="imfile" mode="inotify")
module(load="omelasticsearch")
template(name="pv_document" type="string" string="%msg%")
template(name="pv_id" type="string" string="{pod}:rsyslog-%$!metadata!fileoffset%")
input(type="imfile" file="{log_file}" tag="podvisor" addMetadata="on" ruleset="pv_ship")
ruleset(name="pv_ship") {{
  action(type="omelasticsearch" name="pv_bulk" server="{parts.hostname}" serverport="{parts.port}"
         usehttps="off" uid="rsyslog" pwd="{credential}" searchIndex="{pod}" template="pv_document"
         bulkmode="on" maxbytes="{max_bytes}" dynbulkid="on" bulkid="pv_id" errorfile="{work}/errors.json"
         queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="{batch}"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
"""


@contextmanager
def running(folder: Path, log_file: Path, aggregator_url: str, credential: str, pod: str,
            env: dict[str, str] | None = None, batch: int = 1000) -> Iterator[subprocess.Popen]:
    """rsyslogd in the foreground with its config, state and output in `folder`; stopped on exit."""
    exe = rsyslogd()
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "rsyslog.conf"
    conf.write_text(config(folder, log_file, aggregator_url, credential, pod, batch))
    check = subprocess.run([exe, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"rsyslogd refused its config: {(check.stdout + check.stderr)[-1500:]}")
    with open(folder / "rsyslogd.out", "wb") as out:
        proc = subprocess.Popen([exe, "-n", "-f", str(conf), "-i", str(folder / "rsyslogd.pid")],
                                stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ))
    try:
        yield proc
    finally:
        terminate(proc)


def errors(folder: Path) -> str:
    """What rsyslog wrote about refused bulk items (its error file), '' when nothing."""
    path = folder / "errors.json"
    return path.read_text(errors="replace") if path.exists() else ""
