"""Where the system programs a conf runs (nginx, clickhouse-server, prometheus) are installed.

supervisord searches its own PATH, which under systemd or sudo often lacks /usr/sbin (where Debian
installs nginx and clickhouse-server): a rendered conf names them by absolute path instead.
"""
from __future__ import annotations

import shutil

SEARCH_PATH = "/usr/sbin:/usr/local/sbin:/sbin:/usr/bin:/usr/local/bin"


def system_binary(name: str) -> str | None:
    """The absolute path of `name` in the system's program folders; None when it is not installed."""
    return shutil.which(name, path=SEARCH_PATH)
