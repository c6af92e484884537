"""Helcim's per-merchant rate limits, enforced the way the real API does.

Helcim allows 5 concurrent requests, 100 per rolling minute and 3000 per
rolling hour for a merchant account (all its tokens together). Beyond that it
answers 429. Every response carries ``minute-limit-remaining`` and
``hour-limit-remaining``.

Modes (``--limits``):

``real``
    5 / 100 per 60 s / 3000 per 3600 s.
``off``
    nothing enforced or tracked; the headers always show the full allowance.
``fast``
    the same shape with both windows divided by 60 (100 per second, 3000 per
    minute), so tests and benchmarks can exercise pacing in seconds.

A preset may be followed by overrides, e.g. ``fast,minute=20,scale=30`` or
``real,concurrent=2``. Keys: ``concurrent``, ``minute``, ``hour``, ``scale``
(windows are ``60/scale`` and ``3600/scale`` seconds).

Only requests that pass authentication and are admitted are counted: a 401 or
a 429 does not use up the allowance (the real API does not document which it
does; counting only admitted requests is the conservative reading).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

PRESETS: dict[str, dict[str, float]] = {
    "real": {"concurrent": 5, "minute": 100, "hour": 3000, "scale": 1.0},
    "off": {"concurrent": 5, "minute": 100, "hour": 3000, "scale": 1.0},
    "fast": {"concurrent": 5, "minute": 100, "hour": 3000, "scale": 60.0},
}


@dataclass(frozen=True)
class LimitConfig:
    """Limits of one merchant account."""

    mode: str = "real"
    concurrent: int = 5
    per_minute: int = 100
    per_hour: int = 3000
    scale: float = 1.0

    @property
    def enforced(self) -> bool:
        return self.mode != "off"

    @property
    def minute_seconds(self) -> float:
        return 60.0 / self.scale

    @property
    def hour_seconds(self) -> float:
        return 3600.0 / self.scale

    def spec(self) -> str:
        """The canonical spec string that parses back to this config."""
        return (
            f"{self.mode},concurrent={self.concurrent},minute={self.per_minute},"
            f"hour={self.per_hour},scale={self.scale:g}"
        )

    @classmethod
    def parse(cls, spec: str) -> LimitConfig:
        """Parse ``real``, ``off``, ``fast`` or ``PRESET,key=value,...``."""
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not parts:
            raise ValueError("empty limits spec: use real, off or fast")
        mode = "real"
        if "=" not in parts[0]:
            mode = parts.pop(0).lower()
            if mode not in PRESETS:
                raise ValueError(f"unknown limits preset {mode!r}: use real, off or fast")
        values = dict(PRESETS[mode])
        for part in parts:
            key, sep, raw = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in values:
                raise ValueError(
                    f"bad limits setting {part!r}: expected concurrent=, minute=, hour= or scale="
                )
            try:
                number = float(raw)
            except ValueError:
                raise ValueError(f"bad number in limits setting {part!r}") from None
            if number <= 0:
                raise ValueError(f"limits setting {part!r} must be positive")
            values[key] = number
        config = cls(
            mode=mode,
            concurrent=int(values["concurrent"]),
            per_minute=int(values["minute"]),
            per_hour=int(values["hour"]),
            scale=float(values["scale"]),
        )
        return config

    def with_mode(self, mode: str) -> LimitConfig:
        return replace(self, mode=mode)


@dataclass(frozen=True)
class Admission:
    admitted: bool
    reason: str  # "" when admitted, else "concurrency", "minute" or "hour"
    minute_remaining: int
    hour_remaining: int


class RateLimiter:
    """Rolling-window counter and in-flight gauge for one merchant account.

    Used from the server's event loop only, so it needs no lock.
    """

    def __init__(self, config: LimitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._minute: deque[float] = deque()
        self._hour: deque[float] = deque()
        self.in_flight = 0

    def reconfigure(self, config: LimitConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self._minute.clear()
        self._hour.clear()

    def _prune(self, now: float) -> None:
        minute_edge = now - self.config.minute_seconds
        hour_edge = now - self.config.hour_seconds
        while self._minute and self._minute[0] <= minute_edge:
            self._minute.popleft()
        while self._hour and self._hour[0] <= hour_edge:
            self._hour.popleft()

    def remaining(self) -> tuple[int, int]:
        if not self.config.enforced:
            return self.config.per_minute, self.config.per_hour
        self._prune(self._clock())
        return (
            max(0, self.config.per_minute - len(self._minute)),
            max(0, self.config.per_hour - len(self._hour)),
        )

    def acquire(self) -> Admission:
        """Admit one request or say which limit refuses it."""
        cfg = self.config
        if not cfg.enforced:
            self.in_flight += 1
            return Admission(True, "", cfg.per_minute, cfg.per_hour)
        now = self._clock()
        self._prune(now)
        reason = ""
        if self.in_flight >= cfg.concurrent:
            reason = "concurrency"
        elif len(self._minute) >= cfg.per_minute:
            reason = "minute"
        elif len(self._hour) >= cfg.per_hour:
            reason = "hour"
        if reason:
            minute_left, hour_left = self.remaining()
            return Admission(False, reason, minute_left, hour_left)
        self._minute.append(now)
        self._hour.append(now)
        self.in_flight += 1
        return Admission(True, "", cfg.per_minute - len(self._minute), max(0, cfg.per_hour - len(self._hour)))

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
