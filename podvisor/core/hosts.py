"""The Host header check against DNS rebinding: a page that rebinds its name to 127.0.0.1 still
sends its own name as Host, so a read answers only to the names this process is reached by."""
from __future__ import annotations

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_ANY_ADDRESS = ("0.0.0.0", "::", "")


def host_name(header: str) -> str:
    """'Example.com:8080' -> 'example.com'; '[::1]:80' -> '::1'; a bare IPv6 address is kept."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


class HostCheck:
    """Allowed: the localhost names with any port, the address the process is bound to, and
    `extra` names (a setting such as AGGREGATOR_ALLOWED_HOSTS)."""

    def __init__(self, bound_host: str, extra: tuple[str, ...] = (), setting: str | None = None) -> None:
        names = [*LOCAL_NAMES, *(host_name(name) for name in extra)]
        if host_name(bound_host) not in _ANY_ADDRESS:
            names.append(host_name(bound_host))
        self.names = tuple(dict.fromkeys(names))
        self._setting = setting

    def allows(self, header: str | None) -> bool:
        """A request without a Host header (HTTP/1.0) cannot have been rebound: allowed."""
        return not header or host_name(header) in self.names

    def refusal(self, header: str) -> str:
        """The error message of a 421 for `header`."""
        hint = f"; add a name with {self._setting}" if self._setting else ""
        return (f"Host {header[:100]!r} is not served here (DNS rebinding guard): use one of "
                f"{', '.join(self.names)}{hint}")
