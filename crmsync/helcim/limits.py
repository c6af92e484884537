"""Pacing under Helcim's limits: one pacer shared by every worker thread.

Helcim allows, per merchant account and all tokens together, 5 concurrent
requests, 100 per rolling minute and 3000 per rolling hour. The :class:`Pacer`
keeps a client under those limits instead of bouncing off 429s:

* **concurrency**: at most ``concurrent`` requests in flight;
* **rolling windows**: a request occupies the minute and hour windows from the
  moment it is sent until its answer (or failure) has been received *plus* the
  window length. The server saw it arrive before that, so by the time the
  client frees the slot the server has too, whatever the network jitter:
  paced traffic never meets a 429 of its own making;
* **other integrations**: every answer's ``minute-limit-remaining`` and
  ``hour-limit-remaining`` say how full the server's windows are. What the
  client's own requests cannot explain is somebody else's traffic on the same
  account; it is subtracted from the allowance until it ages out;
* **budget**: calls are counted by operation, and a hard ``max_calls`` stops a
  call before it is sent (:class:`~crmsync.errors.BudgetExhausted`);
* **stopping**: once the run's :class:`~crmsync.stopping.StopSignal` is set,
  nothing more is admitted (:class:`~crmsync.errors.Interrupted`).

The limits themselves are settings (:class:`crmsync.config.RateLimits`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crmsync.config import RateLimits
from crmsync.errors import BudgetExhausted
from crmsync.stopping import StopSignal


@dataclass
class Ticket:
    """One request's place in the windows; ``done`` is set when its answer arrives."""

    operation: str
    sent: float
    seq: int = 0  # order of sending: answers to older requests say less about now
    done: float | None = None


@dataclass
class PacerStats:
    calls: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0  # 429 answers received
    waited_seconds: float = 0.0  # time spent waiting for the limits

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "by_operation": dict(sorted(self.by_operation.items())),
            "by_status": dict(sorted(self.by_status.items())),
            "rate_limited": self.rate_limited,
            "waited_seconds": round(self.waited_seconds, 3),
        }


def _header_int(headers: Mapping[str, str] | None, name: str) -> int | None:
    if not headers:
        return None
    raw = headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Observation:
    """What one answer's limit headers say about the others' requests, per window.

    ``high`` counts as the others' every request of ours the server may not
    have counted yet (a safe bound); ``low`` counts every request of ours that
    it might have counted as ours. The truth lies between.
    """

    at: float
    high: tuple[int, int]  # (minute, hour)
    low: tuple[int, int]


class Pacer:
    """Thread-safe admission of requests under :class:`RateLimits` and a call budget."""

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        max_calls: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        stop: StopSignal | None = None,
    ) -> None:
        self.limits = limits or RateLimits()
        self.max_calls = max_calls
        self.stop = stop
        self.stats = PacerStats()
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        # Answered requests still occupying a window, in order of answer (so pruning is exact);
        # requests in flight occupy every window until answered.
        self._minute: deque[Ticket] = deque()
        self._hour: deque[Ticket] = deque()
        self._observations: deque[Observation] = deque(maxlen=max(2, self.limits.concurrent + 1))
        self._observed_seq = -1
        self._hold_until = float("-inf")  # after a 429: nobody sends before this
        if stop is not None:
            stop.on_set(self._wake)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- admission ---------------------------------------------------------------

    @property
    def remaining_budget(self) -> int | None:
        return None if self.max_calls is None else max(0, self.max_calls - self.stats.calls)

    def _window(self, hour: bool) -> tuple[deque[Ticket], float, int]:
        if hour:
            return self._hour, self.limits.hour_seconds, self.limits.per_hour
        return self._minute, self.limits.minute_seconds, self.limits.per_minute

    def _prune(self, now: float) -> None:
        for hour in (False, True):
            window, length, _ = self._window(hour)
            while window and window[0].done is not None and window[0].done + length <= now:
                window.popleft()

    def _foreign(self, hour: bool, now: float) -> tuple[int, bool, float]:
        """The others' requests in a window, whether that may all be phantom, and when it expires.

        The others' usage only shrinks between answers unless they send more,
        so the smallest of the last few safe bounds is still a bound: it leaves
        out most of the "phantom" (our own requests in flight at the time).
        The estimate may be all phantom when the latest answer's optimistic
        bound is zero: nothing shows another integration at all.
        """
        _, length, _ = self._window(hour)
        live = [o for o in self._observations if now < o.at + length]
        if not live:
            return 0, True, now
        best = min(live, key=lambda o: o.high[hour])
        return best.high[hour], live[-1].low[hour] == 0, best.at + length

    def _free_at(self, hour: bool, now: float) -> float:
        """When the window may have room again (``now`` if it has room now).

        Room appears when our earliest-answered request leaves the window, or
        when the estimate of the others' usage expires. Every answer also wakes
        the waiters (with a fresh estimate); this is the timer for when none comes.

        When nothing shows another integration, nothing is in flight and only
        the phantom stands in the way, one request goes out as a probe: its
        answer, with nothing else in flight, says exactly what the others use.
        At worst (another integration started just then) it meets one 429,
        which is waited out.
        """
        window, length, limit = self._window(hour)
        high, maybe_phantom, expires = self._foreign(hour, now)
        ours = self._in_flight + len(window)
        if ours + high < limit or (self._in_flight == 0 and maybe_phantom and ours < limit):
            return now
        candidates = [now + min(0.05, length / 100)] if self._in_flight else []
        if window:
            candidates.append(window[0].done + length if window[0].done is not None else now)
        if high:
            candidates.append(expires)
        return min(candidates) if candidates else now + length / 100

    def try_acquire(self, operation: str) -> Ticket | float:
        """A ticket to send now, or how many seconds to wait before asking again."""
        with self._cond:
            return self._try_acquire_locked(operation)

    def _try_acquire_locked(self, operation: str) -> Ticket | float:
        if self.stop is not None and self.stop.is_set():
            raise self.stop.error(operation)
        if self.max_calls is not None and self.stats.calls >= self.max_calls:
            raise BudgetExhausted(
                f"{operation}: the call budget of {self.max_calls} is spent; not sent", operation=operation
            )
        now = self._clock()
        if self._in_flight >= self.limits.concurrent:
            return 0.05
        if self.limits.paced:
            if now < self._hold_until:
                return self._hold_until - now
            self._prune(now)
            free = max(self._free_at(False, now), self._free_at(True, now))
            if free > now:
                return free - now
        ticket = Ticket(operation, now, seq=self.stats.calls)
        self._in_flight += 1
        self.stats.calls += 1
        self.stats.by_operation[operation] += 1
        return ticket

    def acquire(self, operation: str) -> Ticket:
        """Block until a request may be sent.

        Raises BudgetExhausted when the budget is spent, Interrupted once the stop signal is set.
        """
        started = self._clock()
        with self._cond:
            while True:
                result = self._try_acquire_locked(operation)
                if isinstance(result, Ticket):
                    self.stats.waited_seconds += self._clock() - started
                    return result
                self._cond.wait(timeout=max(result, 0.001))

    def release(
        self, ticket: Ticket, headers: Mapping[str, str] | None = None, status: int | None = None
    ) -> None:
        """Record the answer (or its absence) of a request sent with ``ticket``."""
        with self._cond:
            now = self._clock()
            ticket.done = now
            self._in_flight -= 1
            if self.limits.paced:
                self._minute.append(ticket)
                self._hour.append(ticket)
            self.stats.by_status[str(status) if status is not None else "no answer"] += 1
            if status == 429:
                self.stats.rate_limited += 1
            self._observe(ticket, headers)
            self._cond.notify_all()

    def _observe(self, ticket: Ticket, headers: Mapping[str, str] | None) -> None:
        minute_left = _header_int(headers, "minute-limit-remaining")
        hour_left = _header_int(headers, "hour-limit-remaining")
        if minute_left is None or hour_left is None or ticket.seq < self._observed_seq:
            return  # no headers, or the answer to a request older than one already read
        self._observed_seq = ticket.seq
        counted = (self.limits.per_minute - minute_left, self.limits.per_hour - hour_left)
        surely = (
            self._ours_counted(ticket, False, surely=True),
            self._ours_counted(ticket, True, surely=True),
        )
        maybe = (
            self._ours_counted(ticket, False, surely=False),
            self._ours_counted(ticket, True, surely=False),
        )
        assert ticket.done is not None
        self._observations.append(
            Observation(
                at=ticket.done,
                high=(max(0, counted[0] - surely[0]), max(0, counted[1] - surely[1])),
                low=(max(0, counted[0] - maybe[0]), max(0, counted[1] - maybe[1])),
            )
        )

    def _ours_counted(self, ticket: Ticket, hour: bool, *, surely: bool) -> int:
        """How many of our requests the server counted when it admitted ``ticket``: at least, or at most.

        Surely counted: those answered before ``ticket`` was sent (they arrived
        before it) and sent less than a window before its answer (they had not
        left the server's window). Maybe counted: anything sent before its
        answer that may still have been in the server's window, requests still
        in flight included.
        """
        assert ticket.done is not None
        window, length, _ = self._window(hour)
        if surely:
            edge = ticket.done - length
            counted = 1
            for t in window:  # in order of answer
                if t.done is None or t.done >= ticket.sent:
                    break
                if t.sent > edge:
                    counted += 1
            return counted
        edge = ticket.sent - length
        in_window = sum(1 for t in window if t is not ticket and t.done is not None and t.done > edge)
        return 1 + in_window + self._in_flight

    def hold_after_429(self, consecutive: int) -> float:
        """After a 429 nobody sends for a while; the wait grows with consecutive 429s."""
        with self._cond:
            minute = self.limits.minute_seconds
            wait = min(minute, minute / 20 * 2.0 ** max(0, consecutive - 1))
            self._hold_until = max(self._hold_until, self._clock() + wait)
            return wait

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {**self.stats.as_dict(), "in_flight": self._in_flight, "limits": self.limits.describe()}
