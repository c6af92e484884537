"""Which accounts failed two nights in a row, from their runs night by night."""

from __future__ import annotations

from datetime import date

import pytest

from crmsync.orchestrate.nights import RunOutcome, failed_nights

N26, N27, N28 = date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)


def failed(night: date, exit_code: int = 3, *, busy: bool = False) -> RunOutcome:
    return RunOutcome(
        night, succeeded=False, busy=busy, exit_code=exit_code, status="busy" if busy else "failed"
    )


def ok(night: date) -> RunOutcome:
    return RunOutcome(night, succeeded=True, exit_code=0, status="ok")


@pytest.mark.parametrize(
    ("outcomes", "nights"),
    [
        pytest.param([failed(N28), failed(N27), ok(N26)], (N28, N27), id="two-failed-nights"),
        pytest.param([failed(N28), ok(N27), failed(N26)], (N28,), id="one-night-then-ok"),
        pytest.param([failed(N28), failed(N28), ok(N27)], (N28,), id="retries-of-one-night-count-once"),
        pytest.param([ok(N28), failed(N28), failed(N27)], (), id="a-later-success-saves-the-night"),
        pytest.param(
            [failed(N28, 2, busy=True), failed(N27), ok(N26)], (N27,), id="a-busy-launch-says-nothing"
        ),
        pytest.param(
            [failed(N28), failed(N26), ok(date(2026, 11, 20))], (N28, N26), id="nights-without-runs-skip"
        ),
        pytest.param([], (), id="never-ran"),
    ],
)
def test_failed_nights(outcomes: list[RunOutcome], nights: tuple[date, ...]) -> None:
    found = failed_nights("north", outcomes)
    assert found.nights == nights
    assert found.flagged == (len(nights) >= 2)


def test_the_description_names_the_nights_and_the_last_exit_code() -> None:
    found = failed_nights("north", [failed(N28, 3), failed(N27, 2)])
    assert (
        found.describe()
        == "north: failed 2 nights in a row (2026-11-28, 2026-11-27); the last run: exit 3 (failed)"
    )
