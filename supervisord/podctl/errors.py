"""podctl's exit codes and the errors that carry them (one line for stderr, one documented code).

Like supervisorctl: 0 ok, 1 failed (an unknown pod, a timeout, a refusal), 2 bad usage or an
unreadable conf, 3 a pod is not running, 4 supervisord, the controller or the aggregator did not
answer. A 4xx from a server is the caller's mistake (2 or 1), never "unreachable".
"""
from __future__ import annotations

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


class PodctlError(Exception):
    """An error podctl reports as `podctl: <message>` on stderr and exits with `code`."""

    code = EXIT_FAIL


class Failure(PodctlError):
    """The command could not do what was asked (unknown pod, timeout, a server said no)."""


class UsageError(PodctlError):
    """Bad arguments, or a conf podctl cannot read or use."""

    code = EXIT_USAGE


class Unreachable(PodctlError):
    """supervisord, the controller or the aggregator did not answer."""

    code = EXIT_UNREACHABLE
