"""Who may call a view: the decorator that applies AGGREGATOR_READ_AUTH to reads."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from podvisor.aggregator.state import get_state

F = TypeVar("F", bound=Callable[..., Any])


def require_read(view: F) -> F:
    """Decorator: the view needs the token only when AGGREGATOR_READ_AUTH says reads do; the caller
    (None when anonymous) is left in `g.principal`."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        auth = get_state().auth
        g.principal = auth.check(request, required=auth.reads_need_token)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
