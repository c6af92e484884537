"""The client-side pacer, on a fake clock: windows, other integrations, concurrency, budget."""

from __future__ import annotations

import threading
import time

import pytest

from crmsync.config import RateLimits
from crmsync.errors import BudgetExhausted, UsageError
from crmsync.helcim.limits import Pacer, Ticket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def headers(minute: int, hour: int) -> dict[str, str]:
    return {"minute-limit-remaining": str(minute), "hour-limit-remaining": str(hour)}


def take(pacer: Pacer, op: str = "get-customer") -> Ticket:
    result = pacer.try_acquire(op)
    assert isinstance(result, Ticket), f"expected to be admitted, told to wait {result}"
    return result


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("helcim", (5, 100, 3000, 60.0, True)),
        ("fast", (5, 100, 3000, 1.0, True)),
        ("off", (5, 100, 3000, 60.0, False)),
        ("helcim,concurrent=2,minute=50", (2, 50, 3000, 60.0, True)),
        ("fast,scale=30", (5, 100, 3000, 2.0, True)),
    ],
)
def test_spec(spec: str, expected: tuple[int, int, int, float, bool]) -> None:
    limits = RateLimits.from_spec(spec)
    assert (
        limits.concurrent,
        limits.per_minute,
        limits.per_hour,
        limits.minute_seconds,
        limits.paced,
    ) == expected


@pytest.mark.parametrize("spec", ["warp", "helcim,minute=0", "helcim,week=3", "fast,minute=x"])
def test_bad_spec(spec: str) -> None:
    with pytest.raises(UsageError):
        RateLimits.from_spec(spec)


def test_minute_window_frees_a_slot_a_window_after_the_answer() -> None:
    clock = Clock()
    pacer = Pacer(RateLimits(concurrent=10, per_minute=3, per_hour=100), clock=clock)
    tickets = [take(pacer) for _ in range(3)]
    clock.now += 1.0
    for ticket in tickets:
        pacer.release(ticket, status=200)  # answered at t=101
    wait = pacer.try_acquire("get-customer")
    assert wait == pytest.approx(60.0)  # 101 + 60 - 101: measured from the answer, not the send
    clock.now += 59.9
    assert isinstance(pacer.try_acquire("x"), float)
    clock.now += 0.1
    take(pacer)


def test_requests_in_flight_keep_their_slot() -> None:
    clock = Clock()
    pacer = Pacer(RateLimits(concurrent=10, per_minute=2, per_hour=100), clock=clock)
    first, _second = take(pacer), take(pacer)
    clock.now += 120  # long after, but the first one never answered yet
    assert isinstance(pacer.try_acquire("x"), float)
    pacer.release(first, status=200)
    clock.now += 60
    take(pacer)


def test_hour_window() -> None:
    clock = Clock()
    pacer = Pacer(RateLimits(concurrent=10, per_minute=100, per_hour=4), clock=clock)
    for _ in range(4):
        pacer.release(take(pacer), status=200)
        clock.now += 61
    wait = pacer.try_acquire("x")
    assert isinstance(wait, float)
    assert wait == pytest.approx(3600 - 4 * 61)


def test_other_integrations_usage_is_respected() -> None:
    """The server says 30 are left while we sent 1: 69 are somebody else's."""
    clock = Clock()
    pacer = Pacer(RateLimits(concurrent=1000, per_minute=100, per_hour=3000), clock=clock)
    pacer.release(take(pacer), headers(30, 2900), 200)
    admitted: list[Ticket] = []
    while isinstance(ticket := pacer.try_acquire("x"), Ticket):
        admitted.append(ticket)
    assert len(admitted) == 30  # exactly the 30 the server said were left
    for ticket in admitted:
        pacer.release(ticket, status=200)
    clock.now += 61  # ours and the others' requests have all left the window
    take(pacer)


def test_stale_answers_do_not_override_newer_observations() -> None:
    clock = Clock()
    pacer = Pacer(RateLimits(concurrent=10), clock=clock)
    old, new = take(pacer), take(pacer)
    pacer.release(new, headers(98, 2998), 200)
    pacer.release(old, headers(10, 2998), 200)  # sent earlier: says less about now, ignored
    # From the newer answer: 2 counted, 1 surely ours (the other was still in flight) -> 1, on the safe side.
    assert pacer._foreign(hour=False, now=clock.now)[0] == 1


def test_concurrency_cap_under_threads() -> None:
    pacer = Pacer(RateLimits(concurrent=3, paced=False))
    peak, current, lock = [0], [0], threading.Lock()

    def work() -> None:
        for _ in range(20):
            ticket = pacer.acquire("get-customer")
            with lock:
                current[0] += 1
                peak[0] = max(peak[0], current[0])
            time.sleep(0.001)
            with lock:
                current[0] -= 1
            pacer.release(ticket, status=200)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 3
    assert pacer.stats.calls == 160


def test_budget_stops_before_sending_and_counts_by_operation() -> None:
    pacer = Pacer(RateLimits(paced=False), max_calls=3)
    for op in ("get-customers", "get-customers", "create-customer"):
        pacer.release(take(pacer, op), status=200)
    with pytest.raises(BudgetExhausted, match="budget of 3"):
        pacer.try_acquire("update-customer")
    assert pacer.stats.by_operation == {"get-customers": 2, "create-customer": 1}
    assert pacer.remaining_budget == 0


def test_a_429_holds_everybody_and_backs_off() -> None:
    clock = Clock()
    pacer = Pacer(RateLimits(), clock=clock)
    pacer.release(take(pacer), headers(0, 2000), 429)
    assert pacer.stats.rate_limited == 1
    first = pacer.hold_after_429(1)
    assert first == pytest.approx(3.0)  # a twentieth of the minute
    assert pacer.try_acquire("x") == pytest.approx(3.0)
    assert pacer.hold_after_429(3) == pytest.approx(12.0)
    assert pacer.hold_after_429(10) == pytest.approx(60.0)  # never more than a window
