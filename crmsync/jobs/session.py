"""A Session: what every command that talks to Helcim holds while it runs, in one place.

::

    with Session(settings, "run", max_calls=budget, stop=stop).open() as session:
        session.client   # the paced, budgeted Helcim client (the budget is session.budget)
        session.state    # the state store: locked for this process, bound to this account
        session.record   # the run being recorded (status, exit code, summary)

Opening takes the state store's lock, opens (and migrates) the store, binds
it to the API URL, and starts recording the run; leaving records the run
whatever ended it (``record.status`` and ``record.exit_code`` as the command
set them, or the error's) with the calls spent. The order is the same for
every command, so it is written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from crmsync.config import Settings
from crmsync.errors import UsageError
from crmsync.helcim.client import HelcimClient, RetryPolicy
from crmsync.state import RunRecord, StateStore, open_state, state_lock
from crmsync.stopping import StopSignal

__all__ = ["CallStats", "Session", "client_for", "locked_state"]


def client_for(
    settings: Settings,
    *,
    max_calls: int | None = None,
    retry: RetryPolicy | None = None,
    stop: StopSignal | None = None,
) -> HelcimClient:
    """A client for the account: ``settings.timeout`` bounds each call whole (connect, headers, body)."""
    return HelcimClient(
        settings.api_url,
        settings.require_token(),
        limits=settings.rate_limits,
        max_calls=max_calls,
        retry=retry,
        timeout=(min(5.0, settings.timeout), settings.timeout),
        deadline=settings.timeout,
        stop=stop,
        token_source=settings.token_source,
        url_source=settings.url_source,
        proxy=settings.proxy,
        ca_bundle=str(settings.ca_bundle) if settings.ca_bundle is not None else None,
    )


@contextmanager
def locked_state(settings: Settings) -> Iterator[StateStore]:
    """The account's state store, locked for this process and bound to its API URL."""
    with state_lock(settings.state_path), open_state(settings.state_path) as state:
        state.bind_account(settings.api_url)
        yield state


@dataclass(frozen=True)
class CallStats:
    """What a command spent on Helcim's API, as summary.json reports it."""

    calls: int
    by_operation: dict[str, dict[str, int]]
    by_status: dict[str, int]
    retries: int
    rate_limited: int
    waited_seconds: float

    @classmethod
    def of(cls, client: HelcimClient | None) -> CallStats:
        if client is None:
            return cls(0, {}, {}, 0, 0, 0.0)
        stats = client.stats()
        return cls(
            int(stats["calls"]),
            dict(stats["by_operation"]),
            dict(stats["by_status"]),
            int(stats.get("retries", 0)),
            int(stats["rate_limited"]),
            float(stats["waited_seconds"]),
        )


class Session:
    """One command's hold on one merchant account (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        command: str,
        *,
        max_calls: int | None = None,
        stop: StopSignal | None = None,
    ) -> None:
        budget = max_calls if max_calls is not None else settings.rate_limits.per_hour
        if budget < 1:
            raise UsageError("the call budget (max_calls) must be at least 1")
        self.settings = settings
        self.command = command
        self.budget = budget
        self.stop = stop
        self._client: HelcimClient | None = (
            None  # made on opening: a bad input file fails before the token is read
        )
        self._state: StateStore | None = None
        self._record: RunRecord | None = None

    @property
    def client(self) -> HelcimClient:
        if self._client is None:
            self._client = client_for(self.settings, max_calls=self.budget, stop=self.stop)
        return self._client

    @property
    def state(self) -> StateStore:
        if self._state is None:
            raise RuntimeError("the session is not open")
        return self._state

    @property
    def record(self) -> RunRecord:
        if self._record is None:
            raise RuntimeError("the session is not open")
        return self._record

    @property
    def calls(self) -> CallStats:
        return CallStats.of(self._client)

    def calls_left(self) -> int:
        return self.budget - self.calls.calls

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    @contextmanager
    def open(self, start: dict[str, Any] | None = None) -> Iterator[Session]:
        """Client → lock → open → bind → record; the run is recorded however the block ends."""
        self.client  # noqa: B018 - the token is checked before the state store is touched
        with locked_state(self.settings) as state:
            self._state = state
            with state.recording(
                self.command, start or {}, always=lambda: {"api_calls": self.calls.calls}
            ) as record:
                self._record = record
                try:
                    yield self
                finally:
                    self._record = None
            self._state = None

    def finish(self, status: str, exit_code: int, summary: dict[str, Any]) -> None:
        """What the state store records for this run when the block ends normally."""
        record = self.record
        record.status, record.exit_code = status, exit_code
        record.summary = {k: v for k, v in summary.items() if k != "outputs"}
