"""Prometheus integration for podvisor: the scrape config and the alert rules, rendered as YAML.

`render_config()` writes prometheus.yml, `render_rules()` the alert rules; `python -m
supervisord.prometheus` writes both (plus promtool tests for the rules) into a directory.
"""

from .config import render_config
from .rules import Thresholds, alerts, render_rules
from .ruletests import render_rules_test

__all__ = ["Thresholds", "alerts", "render_config", "render_rules", "render_rules_test"]
