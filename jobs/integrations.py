"""Jobs of the integration settings: checking a connection with its provider."""

from __future__ import annotations

from app.integrations.services import run_test
from jobs.context import job

# How long the page can still show a finished test's outcome.
TEST_RESULT_SECONDS = 3600


@job("default", result_ttl=TEST_RESULT_SECONDS)
def test_connection(session, connection_id: int) -> dict:
    """Call the provider with the connection's credentials (a harmless request) and record
    the outcome on the connection. Returns {"ok": bool, "message": str} for the page."""

    return run_test(session, connection_id)
