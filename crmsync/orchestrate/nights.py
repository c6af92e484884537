"""Which accounts failed two nights in a row: the runs Dagster recorded, night by night.   [pure]

A night runs from noon to noon in the account's time zone and is named after
its morning (the 02:30 run of 28 November belongs to the night ``2026-11-28``;
so do its retries and a run by hand at 23:00 on the 27th). A night
**succeeded** when one of its runs did (exit 0, or 1 with status partial).

Every night is expected to succeed, whether or not a run was launched for
it: an account is judged by the nights since its latest good one, up to the
night it is now in its own zone. Every night before tonight that did not
succeed **failed** — no run at all (the schedule skipped it behind a stuck
run, or no schedule runs in its zone), only stuck or killed runs, a busy
store, or failed runs. Tonight counts only once a run of it has finished
without succeeding: a run still in progress, or a launch refused because
another run held the state store (``busy``), says nothing yet. The nights are
counted from the account's earliest recorded run, so that an account that
never ran is not judged by nights before it existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["MAX_NIGHTS", "FailedNights", "RunOutcome", "failed_nights"]

#: The longest streak counted (and so the most nights looked at): longer ones read "at least".
MAX_NIGHTS = 60
_SHOWN = 5  # nights named in a description


@dataclass(frozen=True)
class RunOutcome:
    """One run of one account, as Dagster recorded it (finished, or still in progress)."""

    night: date
    succeeded: bool
    busy: bool = False  # refused at once: another run held the account's state store
    exit_code: int | None = None  # None: the run ended before crmsync said (a crash, a kill), or runs
    status: str = ""  # crmsync's status of the run (failed, refused, interrupted, …)
    finished_at: float = 0.0  # when the run ended (a POSIX timestamp)
    finished: bool = True  # False: queued or running (perhaps stuck): it judges no night


@dataclass(frozen=True)
class FailedNights:
    """The nights in a row, latest first, that an account failed up to tonight."""

    account: str
    nights: tuple[date, ...]
    last: RunOutcome | None  # the latest finished run of those nights: its exit code and status

    @property
    def flagged(self) -> bool:
        return len(self.nights) >= 2

    def describe(self) -> str:
        if not self.nights:
            return f"{self.account}: no failed night"
        shown = ", ".join(n.isoformat() for n in self.nights[:_SHOWN])
        more = ", …" if len(self.nights) > _SHOWN else ""
        count = f"at least {MAX_NIGHTS}" if len(self.nights) >= MAX_NIGHTS else str(len(self.nights))
        if self.last is None:
            how = "none of their runs finished (no run launched, or one still stuck in progress)"
        else:
            code = "no exit code" if self.last.exit_code is None else f"exit {self.last.exit_code}"
            how = f"the last run: {code}" + (f" ({self.last.status})" if self.last.status else "")
        return f"{self.account}: failed {count} nights in a row ({shown}{more}); {how}"


def failed_nights(account: str, outcomes: Iterable[RunOutcome], *, tonight: date) -> FailedNights:
    """The account's run of failed nights up to ``tonight`` (the night it is now in its own zone).

    ``outcomes`` come newest first, as Dagster lists runs.
    """
    runs = list(outcomes)
    if not runs:
        return FailedNights(account, (), None)
    good = [run.night for run in runs if run.succeeded]
    start = max(good) + timedelta(days=1) if good else min(run.night for run in runs)
    start = max(start, tonight - timedelta(days=MAX_NIGHTS - 1))
    failed: list[date] = []
    night = start
    while night <= tonight:
        if night < tonight or any(r.night == night and r.finished and not r.busy for r in runs):
            failed.append(night)
        night += timedelta(days=1)
    finished = [r for r in runs if r.finished and r.night in failed]
    last = next((r for r in finished if not r.busy), finished[0] if finished else None)
    return FailedNights(account, tuple(reversed(failed)), last)
