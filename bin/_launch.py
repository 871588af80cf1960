"""Runs a podvisor process's main() from this checkout, installed or not.

The checkout's folders are podvisor's subpackages (setup.cfg maps apps/ to podvisor.apps, and so
on); the same mapping is made here, so a launcher always runs the code beside it.
"""
import importlib
import importlib.util
import os
import sys


def run(module: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    spec = importlib.util.spec_from_file_location(
        "podvisor", os.path.join(root, "podvisor", "__init__.py"),
        submodule_search_locations=[os.path.join(root, "podvisor"), root])
    package = importlib.util.module_from_spec(spec)
    sys.modules["podvisor"] = package
    spec.loader.exec_module(package)
    sys.exit(importlib.import_module(module).main())
