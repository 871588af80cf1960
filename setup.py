"""Packaging: everything installs under `podvisor.`, from folders that stay at the repository's top.

setup.cfg holds the metadata; this file only maps the folders to their dotted names, which
setup.cfg cannot list without naming every subpackage by hand.
"""
from setuptools import find_packages, setup

FOLDERS = {
    "podvisor": "podvisor",
    "podvisor.apps": "apps",
    "podvisor.sidecars": "sidecars",
    "podvisor.aggregator": "aggregator",
    "podvisor.supervisord": "supervisord",
}

setup(
    package_dir=FOLDERS,
    py_modules=[],  # no top-level modules: turns setuptools' flat-layout auto-discovery off
    packages=[f"{name}.{sub}" if sub else name
              for name, folder in FOLDERS.items() for sub in ["", *find_packages(folder)]],
)
