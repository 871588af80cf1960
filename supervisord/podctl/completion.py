"""Shell completion for podctl through argcomplete: `podctl completion bash|zsh` prints the script
to source; pod names come from the stack's controller when it answers (else nothing is offered).

argcomplete's protocol: the script runs podctl with _ARGCOMPLETE set and the command line in
COMP_LINE; `complete()` answers on file descriptor 8 and exits before anything else runs.
argcomplete is imported only then, so podctl itself starts without it.
"""
from __future__ import annotations

import argparse
from typing import Any

import requests

from podvisor.core.settings import Env
from podvisor.supervisord.podctl.client import Target
from podvisor.supervisord.podctl.errors import Failure, PodctlError
from podvisor.supervisord.podctl.settings import Settings

SHELLS = ("bash", "zsh")
ASK_SECONDS = 1.0  # a TAB must not hang on a stack that does not answer


def pod_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """The controller's pods starting with `prefix`; nothing when there is no stack to ask."""
    try:
        target = Target.from_conf(getattr(parsed_args, "conf", None) or Settings.from_env(Env()).conf)
        resp = requests.get(target.controller_url + "/pods", timeout=ASK_SECONDS)
        names = [p["pod"] for p in resp.json()["pods"]]
    except (PodctlError, requests.RequestException, ValueError, KeyError, TypeError):
        return []
    return sorted(name for name in names if name.startswith(prefix))


def with_pods(action: argparse.Action) -> argparse.Action:
    """Mark a positional as taking pod names (argcomplete reads `completer`)."""
    action.completer = pod_names  # type: ignore[attr-defined]
    return action


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request and exit (argcomplete does both)."""
    import argcomplete  # only when a shell asks: podctl runs without it otherwise

    argcomplete.autocomplete(parser, always_complete_options=False)


def script(shell: str) -> str:
    """The completion script for `shell`, to source in its rc file."""
    try:
        import argcomplete
    except ImportError:
        raise Failure("completion needs argcomplete: pip install argcomplete") from None
    return argcomplete.shellcode(["podctl"], shell=shell)
