"""Deterministic fault injection for the sandbox (``--faults SPEC``).

SPEC is a comma-separated list of ``kind=probability`` and settings, e.g.
``error500=0.05,drop_after_commit=0.02,timeout=0.01,latency_ms=20-200,seed=7``.
The probabilities of all kinds add up to at most 1.

Kinds (each request draws at most one, in this order of precedence). The
stats key is what ``/_sandbox/stats`` counts the request under in
``by_status``; ``faults_injected`` counts it under the kind's name.

``error500`` / ``error503``
    answer 500 / 503 ``{"errors": ...}`` without doing anything (key ``500``/``503``).
``reset``
    close the connection before doing anything (a connection reset; key ``reset``).
``drop_after_commit``
    perform the request (a write is committed), then close the connection
    without answering (key ``dropped:STATUS``). This is the case that makes
    naive retries of ``POST /customers`` create duplicates.
``timeout``
    stall ``timeout_s`` seconds (default 30) before performing the request and
    answering; by then a client with a shorter timeout has given up, and the
    write lands *after* the client's look-up (key ``timeout``).
``error429``
    a spurious 429, as when another integration on the same account has used
    up the allowance (key ``429``).

Poisoned answers: the connection works, the answer does not. Where a kind has
two variants, the first half of its probability band draws the first one.

``html``
    a Cloudflare-like HTML error page (``text/html``, a ``<title>``, a few KB)
    instead of JSON. First half: the request **is performed**, then answered
    200 with the page (the origin did the work, the answer got mangled; key
    ``html:200``). Second half: nothing is performed, the page comes with a
    502 (key ``html:502``).
``bad_json``
    perform the request and answer its real status and ``application/json``,
    with the body cut off half-way (invalid JSON; a truthful content-length).
    An empty answer (a 204) becomes ``200 {"id":`` (key ``bad_json:STATUS``).
``wrong_shape``
    perform the request, answer 200 ``{"data": <real body>}`` (``null`` for an
    empty one): a list endpoint gets an object, an object without a top-level
    ``id`` (key ``wrong_shape:200``).
``no_id``
    only for the writes that answer a customer (``create-customer``,
    ``update-customer``): perform the request, answer 200 ``{}`` whatever the
    real answer was (key ``no_id:200``). On any other request the draw is no
    fault at all: nothing is injected or counted, and ``count`` is not used up.
``redirect``
    nothing is performed; first half 301, second half 307, ``Location:`` on
    another origin, ``redirect_to`` (default ``http://127.0.0.2:9``) with the
    original path and query appended (key ``redirect:301``/``redirect:307``).
``slow_body``
    perform the request, send the status and headers at once, then the body in
    20 chunks spread evenly over ``trickle_s`` seconds (default 30): every
    socket read is fast, the whole answer is slow. A body shorter than 20
    bytes is padded with JSON whitespace so every chunk carries a byte; a 204
    stays empty and immediate (key ``slow_body:STATUS``).
``huge_body``
    perform the request, answer 200 ``application/json`` with a valid JSON
    array of at least ``huge_mb`` MiB (default 64), streamed in chunks with no
    content-length (chunked encoding), never built in memory. Its elements are
    the real answer's elements repeated (or the real body repeated, if it is
    not a non-empty array; ``{}`` if it is empty) (key ``huge_body:200``).

Settings:

``latency_ms=A-B``
    add a uniform delay of A to B milliseconds to every request (or ``=N``).
``timeout_s=S``
    the stall of the ``timeout`` fault.
``trickle_s=S``, ``huge_mb=M``, ``redirect_to=URL``
    the parameters of ``slow_body``, ``huge_body`` and ``redirect``.
``seed=N``
    the random seed (default 0). For a given seed the n-th request of the run
    always draws the same fault.
``on=all|writes|reads``
    which requests may draw a fault (default all).
``op=NAME[|NAME...]``
    only requests of these Helcim operationIds (``get-customers``,
    ``create-customer``, ...) may draw a fault (default: every operation).
``skip=N``
    the first N eligible requests (those ``on`` and ``op`` allow) draw no fault.
``count=N``
    at most N faults are injected in all (0, the default, is unlimited).

``skip`` and ``count`` run from the moment the faults are configured (a stats
reset does not restart them). Every request that reaches the draw consumes the
same random numbers whatever it is and whatever these settings say, so
``on``/``op``/``skip``/``count`` never shift which fault the n-th request
would draw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from helcim_sandbox.operations import OPERATION_IDS

FAULT_KINDS = (
    "error500",
    "error503",
    "reset",
    "drop_after_commit",
    "timeout",
    "error429",
    # poisoned answers (appended, so the bands of the kinds above stay where they were)
    "html",
    "bad_json",
    "wrong_shape",
    "no_id",
    "redirect",
    "slow_body",
    "huge_body",
)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The writes that answer a customer: the only requests ``no_id`` applies to.
CUSTOMER_WRITE_OPS = frozenset({"create-customer", "update-customer"})

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_TRICKLE_S = 30.0
DEFAULT_HUGE_MB = 64.0
DEFAULT_REDIRECT_TO = "http://127.0.0.2:9"
SETTINGS = (
    "latency_ms",
    "timeout_s",
    "trickle_s",
    "huge_mb",
    "redirect_to",
    "seed",
    "on",
    "op",
    "skip",
    "count",
)


class _Explained(ValueError):
    """A refused setting whose message already says what is wrong."""


def _number(value: float) -> str:
    """``:g`` when it round-trips (the familiar short form), else the exact repr."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _redirect_target(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError
    if any(c.isspace() or c == "," for c in raw):
        raise ValueError
    return raw.rstrip("/")


@dataclass(frozen=True)
class FaultConfig:
    probabilities: dict[str, float] = field(default_factory=dict)
    latency_ms: tuple[float, float] = (0.0, 0.0)
    timeout_s: float = DEFAULT_TIMEOUT_S
    seed: int = 0
    on: str = "all"
    trickle_s: float = DEFAULT_TRICKLE_S
    huge_mb: float = DEFAULT_HUGE_MB
    redirect_to: str = DEFAULT_REDIRECT_TO
    op: tuple[str, ...] = ()  # empty: every operation
    skip: int = 0
    count: int = 0  # 0: unlimited

    @property
    def active(self) -> bool:
        return any(p > 0 for p in self.probabilities.values()) or self.latency_ms[1] > 0

    def spec(self) -> str:
        """The settings as a SPEC that :meth:`parse` turns back into an equal config."""
        parts = [f"{k}={_number(v)}" for k, v in self.probabilities.items() if v > 0]
        if self.latency_ms[1] > 0:
            parts.append(f"latency_ms={_number(self.latency_ms[0])}-{_number(self.latency_ms[1])}")
        parts += [f"timeout_s={_number(self.timeout_s)}", f"seed={self.seed}", f"on={self.on}"]
        # The newer settings only when they differ from their defaults, to keep the spec short.
        if self.trickle_s != DEFAULT_TRICKLE_S:
            parts.append(f"trickle_s={_number(self.trickle_s)}")
        if self.huge_mb != DEFAULT_HUGE_MB:
            parts.append(f"huge_mb={_number(self.huge_mb)}")
        if self.redirect_to != DEFAULT_REDIRECT_TO:
            parts.append(f"redirect_to={self.redirect_to}")
        if self.op:
            parts.append(f"op={'|'.join(self.op)}")
        if self.skip:
            parts.append(f"skip={self.skip}")
        if self.count:
            parts.append(f"count={self.count}")
        return ",".join(parts)

    @classmethod
    def parse(cls, spec: str | None) -> FaultConfig:
        probabilities: dict[str, float] = {}
        settings: dict[str, Any] = {}
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
                    if value > 0:
                        probabilities[key] = value
                    else:
                        probabilities.pop(key, None)
                elif key == "latency_ms":
                    low, _, high = raw.partition("-")
                    latency = (float(low), float(high or low))
                    if not 0 <= latency[0] <= latency[1] < float("inf"):
                        raise ValueError
                    settings[key] = latency
                elif key in ("timeout_s", "trickle_s"):
                    seconds = float(raw)
                    if not 0 <= seconds < float("inf"):
                        raise ValueError
                    settings[key] = seconds
                elif key == "huge_mb":
                    size = float(raw)
                    if not 0 < size < float("inf"):
                        raise ValueError
                    settings[key] = size
                elif key == "redirect_to":
                    settings[key] = _redirect_target(raw)
                elif key == "seed":
                    settings[key] = int(raw)
                elif key in ("skip", "count"):
                    number = int(raw)
                    if number < 0:
                        raise ValueError
                    settings[key] = number
                elif key == "on":
                    if raw not in ("all", "writes", "reads"):
                        raise ValueError
                    settings[key] = raw
                elif key == "op":
                    names = sorted({name.strip() for name in raw.split("|")})
                    unknown = [name for name in names if name not in OPERATION_IDS]
                    if unknown:
                        known = ", ".join(sorted(OPERATION_IDS))
                        raise _Explained(f"unknown operation {unknown[0]!r} in {part!r}; known: {known}")
                    settings[key] = tuple(names)
                else:
                    raise KeyError(", ".join((*FAULT_KINDS, *SETTINGS)))
            except KeyError as exc:
                raise ValueError(f"unknown fault {key!r}; known: {exc.args[0]}") from None
            except _Explained:
                raise
            except ValueError:
                raise ValueError(f"bad value in fault setting {part!r}") from None
        if sum(probabilities.values()) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        return cls(probabilities, **settings)


@dataclass(frozen=True)
class Draw:
    kind: str | None
    latency_s: float
    variant: int = 0  # 0: first half of the kind's band, 1: second half


class FaultInjector:
    """Draws one fault decision per request from a seeded generator."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.injected: dict[str, int] = {}
        self._eligible_seen = 0  # for skip=
        self._injected_total = 0  # for count=

    def reconfigure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._eligible_seen = 0
        self._injected_total = 0

    def draw(self, method: str, op: str = "unknown") -> Draw:
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
        ) and (not cfg.op or op in cfg.op)
        if not eligible:
            return Draw(None, latency)
        self._eligible_seen += 1
        if self._eligible_seen <= cfg.skip or (cfg.count and self._injected_total >= cfg.count):
            return Draw(None, latency)
        edge = 0.0
        for kind in FAULT_KINDS:
            p = cfg.probabilities.get(kind, 0.0)
            edge += p
            if u < edge:
                if kind == "no_id" and op not in CUSTOMER_WRITE_OPS:
                    return Draw(None, latency)
                self.injected[kind] = self.injected.get(kind, 0) + 1
                self._injected_total += 1
                return Draw(kind, latency, 0 if u < edge - p / 2 else 1)
        return Draw(None, latency)
