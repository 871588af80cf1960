"""What both sidecars' settings share."""
from __future__ import annotations


class SettingsError(ValueError):
    """A setting is missing or invalid; str() is the one line to print, naming it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
