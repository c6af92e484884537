"""Which accounts failed two nights in a row, from their runs night by night."""

from __future__ import annotations

from datetime import date

import pytest

from crmsync.orchestrate.nights import MAX_NIGHTS, RunOutcome, failed_nights

N20, N26, N27, N28, N29, N30 = (date(2026, 11, d) for d in (20, 26, 27, 28, 29, 30))


def failed(night: date, exit_code: int = 3, *, busy: bool = False) -> RunOutcome:
    return RunOutcome(
        night, succeeded=False, busy=busy, exit_code=exit_code, status="busy" if busy else "failed"
    )


def ok(night: date) -> RunOutcome:
    return RunOutcome(night, succeeded=True, exit_code=0, status="ok")


def stuck(night: date) -> RunOutcome:
    """A run still STARTED in Dagster's records: its worker died without Dagster noticing."""
    return RunOutcome(night, succeeded=False, finished=False)


@pytest.mark.parametrize(
    ("outcomes", "tonight", "nights"),
    [
        pytest.param([failed(N28), failed(N27), ok(N26)], N28, (N28, N27), id="two-failed-nights"),
        pytest.param([failed(N28), ok(N27), failed(N26)], N28, (N28,), id="one-night-then-ok"),
        pytest.param([failed(N28), failed(N28), ok(N27)], N28, (N28,), id="retries-of-one-night-count-once"),
        pytest.param([ok(N28), failed(N28), failed(N27)], N28, (), id="a-later-success-saves-the-night"),
        pytest.param(
            [failed(N28, 2, busy=True), failed(N27), ok(N26)],
            N28,
            (N27,),
            id="a-busy-launch-tonight-says-nothing",
        ),
        pytest.param([failed(N27, 2, busy=True), ok(N26)], N29, (N28, N27), id="busy-is-no-success"),
        pytest.param(
            [failed(N28), failed(N26), ok(N20)],
            N28,
            (N28, N27, N26, *(date(2026, 11, d) for d in (25, 24, 23, 22, 21))),
            id="nights-without-runs-failed",
        ),
        pytest.param([ok(N26)], N28, (N27,), id="tonight-not-yet-judged"),
        pytest.param([ok(N26)], N29, (N28, N27), id="a-schedule-that-stopped-launching"),
        pytest.param([stuck(N26)], N30, (N29, N28, N27, N26), id="a-run-stuck-in-progress"),
        pytest.param([stuck(N28), ok(N27)], N28, (), id="tonight-still-running"),
        pytest.param([ok(N28)], N26, (), id="runs-tagged-for-later-nights"),
        pytest.param([], N28, (), id="never-ran"),
    ],
)
def test_failed_nights(outcomes: list[RunOutcome], tonight: date, nights: tuple[date, ...]) -> None:
    found = failed_nights("north", outcomes, tonight=tonight)
    assert found.nights == nights
    assert found.flagged == (len(nights) >= 2)


def test_the_description_names_the_nights_and_the_last_exit_code() -> None:
    found = failed_nights("north", [failed(N28, 3), failed(N27, 2)], tonight=N28)
    assert (
        found.describe()
        == "north: failed 2 nights in a row (2026-11-28, 2026-11-27); the last run: exit 3 (failed)"
    )
    hung = failed_nights("north", [stuck(N26)], tonight=N30)
    assert hung.describe() == (
        "north: failed 4 nights in a row (2026-11-29, 2026-11-28, 2026-11-27, 2026-11-26); "
        "none of their runs finished (no run launched, or one still stuck in progress)"
    )
    ages = failed_nights("north", [failed(N30), failed(date(2025, 1, 1))], tonight=N30)
    assert len(ages.nights) == MAX_NIGHTS
    assert ages.describe().startswith(f"north: failed at least {MAX_NIGHTS} nights in a row (2026-11-30, ")
    assert ", …); " in ages.describe()
