"""Fixtures shared by the unit tests: the aggregator app, its test client, its token, a bare store."""
from tests.unit.test_aggregator_fixtures import app, client, store, token  # noqa: F401 - pytest fixtures
