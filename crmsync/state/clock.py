"""The state store's clock: UTC, to the microsecond, as text that sorts in time order."""

from __future__ import annotations

from datetime import UTC, datetime


def stored(moment: datetime) -> str:
    """``moment`` (in UTC) as the state store writes moments."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow() -> str:
    return stored(datetime.now(UTC))
