"""Fixtures shared by the unit tests: the aggregator app, its test client and its token."""
from tests.unit.test_aggregator_fixtures import app, client, token  # noqa: F401 - pytest fixtures
