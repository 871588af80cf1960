"""pytest plugin: spawn a real podvisor stack in your tests (installed as the `podvisor` plugin).

Fixtures:
- ``podvisor_stack``: the default pods (user, product, order and the nginx gateway in front of them,
  which needs Debian's ``nginx-light``) plus the aggregator, rendered into ``tmp_path`` with
  ephemeral ports, started under a real supervisord, every pod Ready. Hands back a
  :class:`~supervisord.harness.StackHandle` (``.apps["user"]``, ``.aggregator_url``, ``.metrics``,
  ``.rpc`` for supervisord's XML-RPC, ``.podctl(...)``, ``.logs(...)``). Torn down after the test;
  the test fails if any process of the stack is left behind.
- ``podvisor_factory``: ``make(spec=None, environment=None, start=True)`` for stacks of your own;
  ``spec`` is a path to a pods TOML file or the same as a dict. Every stack it made is torn down.
- ``podvisor_module_stack``: one default stack shared by a test module (read-mostly tests).

Which spec the fixtures use by default: ``--podvisor-spec PATH`` on the command line, else the
``podvisor_spec`` ini option (relative to the rootdir), else podvisor's own demo
``supervisord/pods.toml``. ``./`` and ``../`` commands in a spec file are relative to its folder.

Example::

    def test_hello(podvisor_stack):
        assert requests.get(podvisor_stack.apps["user"] + "/").text == "Hello from user-service"
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from podvisor.testing.harness import StackHandle


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--podvisor-spec", default=None, help="pods spec (TOML) for the podvisor fixtures")
    parser.addini("podvisor_spec", "pods spec (TOML) for the podvisor fixtures, relative to the rootdir")


def default_spec(config: pytest.Config) -> Path | None:
    option = config.getoption("--podvisor-spec")
    if option:
        return Path(option).resolve()
    ini = config.getini("podvisor_spec")
    return (Path(config.rootpath) / ini).resolve() if ini else None


class _Factory:
    def __init__(self, root: Path, default: Path | None = None):
        self.root = root
        self.default = default
        self.stacks: list[StackHandle] = []

    def __call__(self, spec: str | Path | dict | None = None, environment: str | None = None,
                 start: bool = True, timeout: float = 60.0) -> StackHandle:
        handle = StackHandle(self.root / f"stack{len(self.stacks)}", spec or self.default, environment)
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
def podvisor_factory(tmp_path: Path, pytestconfig: pytest.Config) -> Iterator[Callable[..., StackHandle]]:
    factory = _Factory(tmp_path, default_spec(pytestconfig))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def podvisor_stack(podvisor_factory: Callable[..., StackHandle]) -> StackHandle:
    return podvisor_factory()


@pytest.fixture(scope="module")
def podvisor_module_stack(tmp_path_factory: pytest.TempPathFactory,
                          pytestconfig: pytest.Config) -> Iterator[StackHandle]:
    factory = _Factory(tmp_path_factory.mktemp("podvisor"), default_spec(pytestconfig))
    try:
        yield factory()
    finally:
        factory.close()
