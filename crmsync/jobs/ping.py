"""``crmsync ping``: test the connection and the token; which API answered, and the rate limits left."""

from __future__ import annotations

from crmsync.config import Settings
from crmsync.helcim.client import ConnectionReport, RetryPolicy, check_connection
from crmsync.jobs.session import client_for

__all__ = ["ConnectionReport", "ping"]

#: A ping gives up sooner than a run: a person is waiting for it.
PING_RETRY = RetryPolicy(attempts=3, max_seconds=20, backoff_max=5)


def ping(settings: Settings) -> ConnectionReport:
    """GET /connection-test once (with a few retries): raises like any call when it fails."""
    with client_for(settings, retry=PING_RETRY) as client:
        return check_connection(client)
