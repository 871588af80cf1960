"""podvisor: pods without containers. Everything podvisor installs lives under this one name.

The repository keeps its folders at the top (apps/, sidecars/, aggregator/, supervisord/); setuptools
maps them to podvisor.apps, podvisor.sidecars, podvisor.aggregator and podvisor.supervisord.
"""
__version__ = "0.2.0"
