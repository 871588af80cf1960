"""podctl's settings from the environment (documented in docs/interfaces.md, podctl table)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from podvisor.core.settings import Env
from podvisor.supervisord.render.conf import DEFAULT_CONF


@dataclass(frozen=True)
class Settings:
    conf: Path  # the stack podctl talks to when -c is not given
    no_color: bool  # https://no-color.org: set and not empty means no ANSI colours, even on a terminal
    completing: bool  # a shell's completion script is asking (argcomplete's protocol)

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        given = env.path("PODVISOR_CONF")
        local = Path("supervisord/stack.conf")
        conf = given if given is not None else (local if local.exists() else DEFAULT_CONF)
        return cls(conf, env.optional("NO_COLOR") is not None, env.optional("_ARGCOMPLETE") is not None)
