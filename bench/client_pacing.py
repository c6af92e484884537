"""How close the paced client gets to Helcim's allowed rate, and how many 429s it meets.

Against helcim-sandbox with time-scaled limits and 5-40 ms of latency, a
backlog of GET /customers/{id} calls goes through 5 worker threads sharing one
client. Two scenarios:

* **minute-bound**: ``fast`` limits (100 per 1-second "minute", 3000 per
  60-second "hour"), 1,500 calls;
* **hour-bound**: ``concurrent=5, minute=30, hour=120, scale=120`` (30 per 0.5 s,
  120 per 30 s), 240 calls: the hour window must roll over once.

Figures: calls per full window as a share of the allowed rate (the target,
>= 90 %), the zero-latency ideal duration over the achieved one (stricter: it
ignores that 5 connections with real latency cannot send a window's worth at
once), and 429s received (target 0). Baseline, measured in the same run on the minute-bound scenario:
``unpaced`` — the same client with pacing off (5 concurrent, 429s waited out
with backoff), i.e. what a client that relies on 429s gets.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from crmsync.config import RateLimits
from crmsync.helcim.client import HelcimClient, RetryPolicy
from helcim_sandbox.launcher import SandboxProcess, running_sandbox
from helcim_sandbox.seed import SeedOptions, seed_store
from helcim_sandbox.store import FIRST_IDS, Store

CUSTOMERS = 2_000
TARGET_SHARE = 0.90


def theoretical_seconds(calls: int, per_minute: int, minute_s: float, per_hour: int, hour_s: float) -> float:
    """The earliest moment the last of ``calls`` can be sent under both rolling windows (zero latency)."""
    times: list[float] = []
    for n in range(calls):
        t = 0.0
        if n >= per_minute:
            t = max(t, times[n - per_minute] + minute_s)
        if n >= per_hour:
            t = max(t, times[n - per_hour] + hour_s)
        times.append(t)
    return times[-1]


def drive(sandbox: SandboxProcess, limits: RateLimits, calls: int, window: float) -> dict[str, Any]:
    """``calls`` GETs through 5 workers; ``window`` is the server's minute window, for counting."""
    sandbox.reset_stats()
    client = HelcimClient(sandbox.base_url, sandbox.token, limits=limits, retry=RetryPolicy(attempts=10))
    first = FIRST_IDS["customers"]
    rng = random.Random(5)
    ids = [first + rng.randrange(CUSTOMERS) for _ in range(calls)]
    done_at: list[float] = []
    lock = threading.Lock()

    def one(customer_id: int) -> None:
        client.get_customer(customer_id)
        with lock:
            done_at.append(time.monotonic())

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(one, ids))
    elapsed = time.monotonic() - started
    per_window: dict[int, int] = {}
    for t in done_at:
        index = int((t - started) // window)
        per_window[index] = per_window.get(index, 0) + 1
    full = [per_window.get(i, 0) for i in range(int(elapsed // window))]
    server = sandbox.stats()
    return {
        "calls": calls,
        "seconds": round(elapsed, 2),
        "per_window_full": full,
        "client_429": client.stats()["rate_limited"],
        "server_429": server["by_status"].get("429", 0),
        "server_requests": server["total"],
    }


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pacing-") as tmp:
        db = Path(tmp) / "pacing.db"
        store = Store(str(db))
        seed_store(store, SeedOptions(CUSTOMERS, seed=1, today=date(2026, 11, 25)))
        store.close()
        with running_sandbox(db=db, limits="fast", faults="latency_ms=5-40,seed=2", workdir=tmp) as sandbox:
            scenarios = [
                ("minute-bound", "fast", 1500),
                ("hour-bound", "fast,minute=30,hour=120,scale=120", 240),
            ]
            for name, spec, calls in scenarios:
                sandbox.configure(limits=spec)
                limits = RateLimits.from_spec(spec)
                outcome = drive(sandbox, limits, calls, limits.minute_seconds)
                ideal = theoretical_seconds(
                    calls, limits.per_minute, limits.minute_seconds, limits.per_hour, limits.hour_seconds
                )
                outcome["theoretical_seconds"] = round(ideal, 2)
                outcome["share_of_allowed_rate"] = round(ideal / outcome["seconds"], 3)
                results[name] = outcome
            sandbox.configure(limits="fast")
            baseline = drive(sandbox, RateLimits(concurrent=5, scale=60.0, paced=False), 1500, 1.0)
            ideal = theoretical_seconds(1500, 100, 1.0, 3000, 60.0)
            baseline["theoretical_seconds"] = round(ideal, 2)
            baseline["share_of_allowed_rate"] = round(ideal / baseline["seconds"], 3)
            results["baseline-unpaced"] = baseline

    minute, hour, base = results["minute-bound"], results["hour-bound"], results["baseline-unpaced"]
    full = minute["per_window_full"]
    mean_share = sum(full) / len(full) / 100 if full else 0.0
    base_full = base["per_window_full"]
    base_share = sum(base_full) / len(base_full) / 100 if base_full else 0.0
    print("paced client, 5 workers sharing one pacer, sandbox latency 5-40 ms")
    print(
        f"  minute-bound ({minute['calls']} calls, 100 allowed per 1 s window): per full window "
        f"{min(full)}-{max(full)}, mean {mean_share:.0%} of the allowed rate; 429s received: {minute['server_429']}"
    )
    print(
        f"      {minute['seconds']} s against a zero-latency ideal of {minute['theoretical_seconds']} s"
        f" ({minute['share_of_allowed_rate']:.0%})"
    )
    print(
        f"  hour-bound ({hour['calls']} calls, 120 allowed per 30 s window): {hour['seconds']} s against an ideal"
        f" of {hour['theoretical_seconds']} s = {hour['share_of_allowed_rate']:.0%}; 429s received: {hour['server_429']}"
    )
    print(
        f"baseline 'unpaced' (same client, pacing off, 429s waited out): per full window mean {base_share:.0%}; "
        f"{base['seconds']} s; 429s received: {base['server_429']} ({base['server_requests']} requests "
        f"for {base['calls']} calls)"
    )
    print(
        f"  paced vs unpaced: {mean_share / base_share if base_share else 0:.2f}x the calls per window, "
        f"{minute['seconds'] / base['seconds'] if base['seconds'] else 0:.2f}x the time, "
        f"{minute['server_429']} vs {base['server_429']} 429s"
    )
    met = (
        mean_share >= TARGET_SHARE
        and hour["share_of_allowed_rate"] >= TARGET_SHARE
        and minute["server_429"] == 0
        and hour["server_429"] == 0
    )
    return {
        **results,
        "mean_window_share": round(mean_share, 3),
        "baseline_mean_window_share": round(base_share, 3),
        "targets_met": met,
    }
