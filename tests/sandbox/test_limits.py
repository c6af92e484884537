"""Rate limits: the spec parser, the rolling windows, and the scaled mode over HTTP."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from helcim_sandbox.launcher import SandboxProcess
from helcim_sandbox.limits import LimitConfig, RateLimiter
from tests.conftest import Api


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("real", (5, 100, 3000, 60.0, 3600.0)),
        ("fast", (5, 100, 3000, 1.0, 60.0)),
        ("fast,minute=20,scale=30", (5, 20, 3000, 2.0, 120.0)),
        ("real,concurrent=2,hour=50", (2, 100, 50, 60.0, 3600.0)),
        ("minute=10", (5, 10, 3000, 60.0, 3600.0)),
    ],
)
def test_parse(spec: str, expected: tuple[int, int, int, float, float]) -> None:
    cfg = LimitConfig.parse(spec)
    assert (cfg.concurrent, cfg.per_minute, cfg.per_hour, cfg.minute_seconds, cfg.hour_seconds) == expected
    assert LimitConfig.parse(cfg.spec()) == cfg


@pytest.mark.parametrize("spec", ["", "slow", "fast,minute", "fast,minute=0", "fast,week=5", "fast,minute=x"])
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match=r"limits|number|positive"):
        LimitConfig.parse(spec)


def test_rolling_minute_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(LimitConfig.parse("real,minute=3,concurrent=10"), clock)
    for expected_left in (2, 1, 0):
        admission = limiter.acquire()
        limiter.release()
        assert admission.admitted
        assert admission.minute_remaining == expected_left
        clock.now += 10
    refused = limiter.acquire()
    assert (refused.admitted, refused.reason) == (False, "minute")
    clock.now = 1000.0 + 60.0  # the first request leaves the window
    assert limiter.acquire().admitted


def test_hour_window_and_concurrency() -> None:
    clock = FakeClock()
    limiter = RateLimiter(LimitConfig.parse("real,concurrent=2,minute=100,hour=4"), clock)
    assert limiter.acquire().admitted
    assert limiter.acquire().admitted
    assert limiter.acquire().reason == "concurrency"
    limiter.release()
    limiter.release()
    for _ in range(2):
        clock.now += 61
        assert limiter.acquire().admitted
        limiter.release()
    clock.now += 61
    assert limiter.acquire().reason == "hour"
    assert limiter.remaining() == (100, 0)


def test_off_mode_admits_everything() -> None:
    limiter = RateLimiter(LimitConfig.parse("off"))
    assert all(limiter.acquire().admitted for _ in range(10_000))


def test_scaled_minute_over_http(api: Api, sandbox: SandboxProcess) -> None:
    sandbox.configure(limits="fast,minute=20,hour=1000,scale=30")  # 20 per 2 s
    statuses, minute_left = [], []
    for _ in range(25):
        response = api("GET", "/connection-test")
        statuses.append(response.status_code)
        minute_left.append(int(response.headers["minute-limit-remaining"]))
    assert statuses == [200] * 20 + [429] * 5
    assert minute_left[:20] == list(range(19, -1, -1))
    assert minute_left[20:] == [0] * 5
    assert api("GET", "/connection-test").json() == {"errors": "Too Many Requests"}
    time.sleep(2.1)  # the scaled minute rolls over
    response = api("GET", "/connection-test")
    assert response.status_code == 200
    assert sandbox.stats()["by_status"] == {"200": 21, "429": 6}


def test_scaled_hour_over_http(api: Api, sandbox: SandboxProcess) -> None:
    sandbox.configure(limits="fast,minute=100,hour=8,scale=60")
    codes = [api("GET", "/connection-test").status_code for _ in range(10)]
    assert codes == [200] * 8 + [429] * 2
    assert api("GET", "/connection-test").headers["hour-limit-remaining"] == "0"


def test_concurrency_limit_over_http(sandbox: SandboxProcess) -> None:
    """Five slow requests hold every slot; a sixth one at the same time gets a 429."""
    sandbox.configure(limits="fast", faults="latency_ms=1500")
    results: list[int] = []

    def call() -> None:
        response = requests.get(sandbox.base_url + "/connection-test", headers=sandbox.headers, timeout=10)
        results.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while sandbox.stats()["in_flight"] < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox.stats()["in_flight"] == 5
    sixth = requests.get(sandbox.base_url + "/connection-test", headers=sandbox.headers, timeout=10)
    for thread in threads:
        thread.join()
    assert sixth.status_code == 429
    assert sorted(results) == [200] * 5
