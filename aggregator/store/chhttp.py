"""ClickHouse's HTTP interface, through requests.

clickhouse-connect (the maintained client) cannot talk to Debian's 18.16: at connect it reads
`system.settings.readonly`, a column 18.16 lacks ("Unknown identifier: readonly"). The HTTP
interface itself is stable across versions: the query in the body (or in `query=` with the data in
the body for an INSERT), settings as URL parameters, errors as a non-200 status with
"Code: N, e.displayText() = ..." (18.16) or "Code: N. DB::Exception: ..." (current).
"""
from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping

import requests

from podvisor.aggregator.store.base import QueryTimeout, StoreUnavailable

_CODE = re.compile(r"Code: (\d+)")
TIMEOUT_CODES = frozenset({159, 160})  # TIMEOUT_EXCEEDED, TOO_SLOW
BAD_QUERY_CODES = frozenset({6, 27, 36, 43, 44, 47, 62, 117, 127, 386, 427})  # parse/argument/regex errors


class ClickHouseError(RuntimeError):
    """ClickHouse answered with an error: `code` is its error number (0 when it gave none)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Node:
    """One server's HTTP endpoint; one keep-alive session per calling thread."""

    def __init__(self, address: str, *, connect_timeout: float = 2.0) -> None:
        self.address = address
        self.url = f"http://{address}/"
        self._connect_timeout = connect_timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def execute(self, sql: str, *, data: bytes | None = None, timeout: float = 30.0,
                settings: Mapping[str, object] | None = None) -> str:
        """Run one statement; return the body. Raises StoreUnavailable (no answer), QueryTimeout
        (ClickHouse's time limit) or ClickHouseError."""
        params: dict[str, object] = dict(settings or {})
        if data is None:
            body = sql.encode()
        else:
            params["query"] = sql
            body = data
        if "max_execution_time" not in params and data is None:
            params["max_execution_time"] = max(1, math.ceil(timeout))  # 18.16 takes whole seconds
        try:
            reply = self._session().post(self.url, params=params, data=body,
                                         timeout=(self._connect_timeout, timeout + 1))
        except requests.Timeout:
            raise QueryTimeout(f"ClickHouse at {self.address} did not answer within {timeout:.0f}s") from None
        except requests.RequestException as exc:
            raise StoreUnavailable(f"ClickHouse at {self.address} unreachable: {type(exc).__name__}") from None
        if reply.status_code == 200:
            return reply.content.decode("utf-8", "surrogateescape")
        text = reply.content.decode("utf-8", "replace").strip()
        match = _CODE.search(text)
        code = int(match.group(1)) if match else 0
        if code in TIMEOUT_CODES:
            raise QueryTimeout(f"query timed out ({text[:200]})")
        raise ClickHouseError(code, f"ClickHouse at {self.address}: {text[:500]}")

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
