"""pytest plugin: spawn a real podvisor stack in your tests (installed as the `podvisor` plugin).

Fixtures:
- ``podvisor_stack``: the default three pods plus the aggregator, rendered into ``tmp_path`` with
  ephemeral ports, started under a real supervisord, every pod Ready. Hands back a
  :class:`~supervisord.harness.StackHandle` (``.apps["user"]``, ``.aggregator_url``, ``.metrics``,
  ``.rpc`` for supervisord's XML-RPC, ``.podctl(...)``, ``.logs(...)``). Torn down after the test;
  the test fails if any process of the stack is left behind.
- ``podvisor_factory``: ``make(spec=None, environment=None, start=True)`` for stacks of your own;
  ``spec`` is a path to a pods TOML file or the same as a dict. Every stack it made is torn down.
- ``podvisor_module_stack``: one default stack shared by a test module (read-mostly tests).

Example::

    def test_hello(podvisor_stack):
        assert requests.get(podvisor_stack.apps["user"] + "/").text == "Hello from user-service"
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from supervisord.harness import StackHandle


class _Factory:
    def __init__(self, root: Path):
        self.root = root
        self.stacks: list[StackHandle] = []

    def __call__(self, spec: str | Path | dict | None = None, environment: str | None = None,
                 start: bool = True, timeout: float = 60.0) -> StackHandle:
        handle = StackHandle(self.root / f"stack{len(self.stacks)}", spec, environment)
        self.stacks.append(handle)
        if start:
            handle.start(timeout)
        return handle

    def close(self) -> None:
        errors = []
        for handle in self.stacks:
            try:
                handle.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        if errors:
            pytest.fail("podvisor teardown: " + "\n".join(errors), pytrace=False)


@pytest.fixture
def podvisor_factory(tmp_path: Path) -> Iterator[Callable[..., StackHandle]]:
    factory = _Factory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def podvisor_stack(podvisor_factory: Callable[..., StackHandle]) -> StackHandle:
    return podvisor_factory()


@pytest.fixture(scope="module")
def podvisor_module_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    factory = _Factory(tmp_path_factory.mktemp("podvisor"))
    try:
        yield factory()
    finally:
        factory.close()
