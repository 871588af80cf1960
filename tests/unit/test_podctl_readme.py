"""The podctl commands of the README and docs/*.md: each one parses, and each one is run by an end-to-end test."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from podvisor.supervisord.podctl import main as podctl
from tests.fixtures import readme

REPO = Path(__file__).resolve().parents[2]
# A run of string literals closing a call or a list: `stack.podctl("logs", "user", "-f")`,
# `[..., "status", "-w"]`, `stack.podctl("down", timeout=30)`.
LITERALS = re.compile(r'((?:"[^"\n]*"\s*,\s*)*"[^"\n]*")\s*(?:,\s*\w+=|,?\s*[)\]])')
STRING = re.compile(r'"([^"\n]*)"')


def documented_commands() -> list[tuple[str, ...]]:
    """Arguments of every `podctl ...` line in the code blocks of the README and docs/*.md (comments
    stripped), README first."""
    commands: list[tuple[str, ...]] = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for args in podctl_lines(path.read_text()):
            if args not in commands:
                commands.append(args)
    return commands


def podctl_lines(markdown: str) -> list[tuple[str, ...]]:
    """Arguments of each `podctl ...` line in the fenced blocks of one markdown file."""
    commands, fenced, verbatim = [], False, False
    for line in markdown.splitlines():
        # tests/e2e/test_polyglot.py runs that block's commands as they are written
        verbatim = (verbatim or "<!-- polyglot:begin -->" in line) and "<!-- polyglot:end -->" not in line
        if verbatim:
            continue
        if line.startswith("```"):
            fenced = not fenced
            continue
        text = line.removeprefix("$ ").split("  #")[0].split(" # ")[0].strip()
        if fenced and text.startswith("podctl "):
            commands.append(tuple(shlex.split(text)[1:]))
    return commands


def e2e_runs() -> list[tuple[str, ...]]:
    """Every run of string literals in the end-to-end tests, as written (podctl's arguments need no
    escapes)."""
    return [tuple(STRING.findall(match.group(1))) for path in (REPO / "tests" / "e2e").glob("test_*.py")
            for match in LITERALS.finditer(path.read_text())]


def readme_runs() -> list[tuple[str, ...]]:
    """The podctl commands of the README's run, serve and follow blocks: tests/e2e/test_readme.py
    runs them as written."""
    ran = [block for block in readme.blocks((REPO / "README.md").read_text())
           if block.directive in ("run", "serve", "follow")]
    return [args for block in ran for args in podctl_lines(f"```\n{block.body}```\n")]


COMMANDS = documented_commands()
RUNS = e2e_runs() + readme_runs()


def test_the_docs_show_podctl_commands():
    assert len(COMMANDS) >= 20 and ("up",) in COMMANDS and ("down",) in COMMANDS, COMMANDS


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_every_documented_podctl_command_parses_and_an_e2e_test_runs_it(args):
    podctl.build_parser().parse_args(list(args))  # exits 2 (fails the test) when it does not parse
    assert any(run[-len(args):] == args for run in RUNS), f"no test in tests/e2e runs `podctl {' '.join(args)}`"
