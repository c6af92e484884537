"""Deterministic fault injection for the sandbox (``--faults SPEC``).

SPEC is a comma-separated list of ``kind=probability`` and settings, e.g.
``error500=0.05,drop_after_commit=0.02,timeout=0.01,latency_ms=20-200,seed=7``.

Kinds (each request draws at most one, in this order of precedence):

``error500`` / ``error503``
    answer 500 / 503 ``{"errors": ...}`` without doing anything.
``reset``
    close the connection before doing anything (a connection reset).
``drop_after_commit``
    perform the request (a write is committed), then close the connection
    without answering. This is the case that makes naive retries of
    ``POST /customers`` create duplicates.
``timeout``
    stall ``timeout_s`` seconds (default 30) before performing the request and
    answering; by then a client with a shorter timeout has given up, and the
    write lands *after* the client's look-up.
``error429``
    a spurious 429, as when another integration on the same account has used
    up the allowance.

Settings:

``latency_ms=A-B``
    add a uniform delay of A to B milliseconds to every request (or ``=N``).
``timeout_s=S``
    the stall of the ``timeout`` fault.
``seed=N``
    the random seed (default 0). For a given seed the n-th request of the run
    always draws the same fault.
``on=all|writes|reads``
    which requests may draw a fault (default all).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FAULT_KINDS = ("error500", "error503", "reset", "drop_after_commit", "timeout", "error429")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class FaultConfig:
    probabilities: dict[str, float] = field(default_factory=dict)
    latency_ms: tuple[float, float] = (0.0, 0.0)
    timeout_s: float = 30.0
    seed: int = 0
    on: str = "all"

    @property
    def active(self) -> bool:
        return any(p > 0 for p in self.probabilities.values()) or self.latency_ms[1] > 0

    def spec(self) -> str:
        parts = [f"{k}={v:g}" for k, v in self.probabilities.items() if v > 0]
        if self.latency_ms[1] > 0:
            parts.append(f"latency_ms={self.latency_ms[0]:g}-{self.latency_ms[1]:g}")
        parts += [f"timeout_s={self.timeout_s:g}", f"seed={self.seed}", f"on={self.on}"]
        return ",".join(parts)

    @classmethod
    def parse(cls, spec: str | None) -> FaultConfig:
        probabilities: dict[str, float] = {}
        latency = (0.0, 0.0)
        timeout_s = 30.0
        seed = 0
        on = "all"
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key, raw = key.strip().lower(), raw.strip()
            if not sep:
                raise ValueError(f"bad fault setting {part!r}: expected name=value")
            try:
                if key in FAULT_KINDS:
                    value = float(raw)
                    if not 0 <= value <= 1:
                        raise ValueError
                    probabilities[key] = value
                elif key == "latency_ms":
                    low, _, high = raw.partition("-")
                    latency = (float(low), float(high or low))
                    if latency[0] < 0 or latency[1] < latency[0]:
                        raise ValueError
                elif key == "timeout_s":
                    timeout_s = float(raw)
                    if timeout_s < 0:
                        raise ValueError
                elif key == "seed":
                    seed = int(raw)
                elif key == "on":
                    if raw not in ("all", "writes", "reads"):
                        raise ValueError
                    on = raw
                else:
                    known = ", ".join((*FAULT_KINDS, "latency_ms", "timeout_s", "seed", "on"))
                    raise KeyError(known)
            except KeyError as exc:
                raise ValueError(f"unknown fault {key!r}; known: {exc.args[0]}") from None
            except ValueError:
                raise ValueError(f"bad value in fault setting {part!r}") from None
        if sum(probabilities.values()) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        return cls(probabilities, latency, timeout_s, seed, on)


@dataclass(frozen=True)
class Draw:
    kind: str | None
    latency_s: float


class FaultInjector:
    """Draws one fault decision per request from a seeded generator."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.injected: dict[str, int] = {}

    def reconfigure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)

    def draw(self, method: str) -> Draw:
        cfg = self.config
        if not cfg.active:
            return Draw(None, 0.0)
        # Always consume the same number of random values per request so the
        # sequence of decisions depends only on the request's ordinal.
        u = self._rng.random()
        v = self._rng.random()
        low, high = cfg.latency_ms
        latency = (low + (high - low) * v) / 1000.0
        eligible = (
            cfg.on == "all"
            or (cfg.on == "writes" and method in WRITE_METHODS)
            or (cfg.on == "reads" and method not in WRITE_METHODS)
        )
        if not eligible:
            return Draw(None, latency)
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += cfg.probabilities.get(kind, 0.0)
            if u < edge:
                self.injected[kind] = self.injected.get(kind, 0) + 1
                return Draw(kind, latency)
        return Draw(None, latency)
