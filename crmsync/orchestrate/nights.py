"""Which accounts failed two nights in a row: the runs Dagster recorded, night by night.   [pure]

A night runs from noon to noon in the account's time zone and is named after
its morning (the 02:30 run of 28 November belongs to the night ``2026-11-28``;
so do its retries and a run by hand at 23:00 on the 27th). A night
**succeeded** when one of its runs did (exit 0, or 1: some rows rejected); it
**failed** when none did and at least one run failed — a run refused because
another held the state store (``busy``) says nothing about the night and is
left out. Nights without any run are skipped: the two latest nights that had
runs are compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

__all__ = ["FailedNights", "RunOutcome", "failed_nights"]


@dataclass(frozen=True)
class RunOutcome:
    """One finished run of one account, as Dagster recorded it."""

    night: date
    succeeded: bool
    busy: bool = False  # refused at once: another run held the account's state store
    exit_code: int | None = None  # None: the run ended before crmsync said (a crash, a kill)
    status: str = ""  # crmsync's status of the run (failed, refused, interrupted, …)
    finished_at: float = 0.0  # when the run ended (a POSIX timestamp)


@dataclass(frozen=True)
class FailedNights:
    """The nights in a row, latest first, that an account failed up to its latest night."""

    account: str
    nights: tuple[date, ...]
    last: RunOutcome | None  # the latest failed run: its exit code and error

    @property
    def flagged(self) -> bool:
        return len(self.nights) >= 2

    def describe(self) -> str:
        nights = ", ".join(n.isoformat() for n in self.nights)
        if self.last is None:
            return f"{self.account}: no failed night"
        code = "no exit code" if self.last.exit_code is None else f"exit {self.last.exit_code}"
        status = f" ({self.last.status})" if self.last.status else ""
        return f"{self.account}: failed {len(self.nights)} nights in a row ({nights}); the last run: {code}{status}"


def failed_nights(account: str, outcomes: Iterable[RunOutcome]) -> FailedNights:
    """The account's run of failed nights, ending with the latest night that had a run.

    ``outcomes`` come newest first, as Dagster lists runs.
    """
    by_night: dict[date, list[RunOutcome]] = {}
    for outcome in outcomes:
        if not outcome.busy:
            by_night.setdefault(outcome.night, []).append(outcome)
    streak: list[date] = []
    last: RunOutcome | None = None
    for night in sorted(by_night, reverse=True):
        runs = by_night[night]
        if any(run.succeeded for run in runs):
            break
        streak.append(night)
        last = last or runs[0]
    return FailedNights(account, tuple(streak), last)
