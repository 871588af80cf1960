"""Runs a podvisor process's main() from this checkout, installed or not."""
import importlib
import os
import sys


def run(module: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    sys.exit(importlib.import_module(module).main())
