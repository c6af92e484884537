"""Fault injection: parsing, determinism, and each fault kind over real HTTP."""

from __future__ import annotations

import random
import time

import pytest
import requests

from helcim_sandbox.faults import FaultConfig, FaultInjector
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import Api


def test_parse_and_round_trip() -> None:
    cfg = FaultConfig.parse(
        "error500=0.05,drop_after_commit=0.02,timeout=0.01,latency_ms=20-200,seed=7,timeout_s=3"
    )
    assert cfg.probabilities == {"error500": 0.05, "drop_after_commit": 0.02, "timeout": 0.01}
    assert (cfg.latency_ms, cfg.seed, cfg.timeout_s) == ((20.0, 200.0), 7, 3.0)
    assert FaultConfig.parse(cfg.spec()) == cfg
    assert not FaultConfig.parse("").active


@pytest.mark.parametrize(
    "spec",
    ["error500", "error500=2", "explode=0.1", "latency_ms=9-3", "on=sometimes", "error500=0.6,timeout=0.6"],
)
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match=r"fault|value|more than 1"):
        FaultConfig.parse(spec)


def test_same_seed_same_decisions() -> None:
    spec = "error500=0.2,reset=0.1,drop_after_commit=0.1,latency_ms=0-50,seed=42"
    runs = []
    for _ in range(2):
        injector = FaultInjector(FaultConfig.parse(spec))
        runs.append([injector.draw("POST") for _ in range(500)])
    assert runs[0] == runs[1]
    kinds = [d.kind for d in runs[0]]
    assert 60 < kinds.count("error500") < 140  # about 20 % of 500
    other = FaultInjector(FaultConfig.parse(spec.replace("seed=42", "seed=43")))
    assert [other.draw("POST") for _ in range(500)] != runs[0]


def test_writes_only() -> None:
    injector = FaultInjector(FaultConfig.parse("error500=1,on=writes"))
    assert injector.draw("GET").kind is None
    assert injector.draw("POST").kind == "error500"


def test_new_settings_round_trip() -> None:
    cfg = FaultConfig.parse(
        "html=0.1,bad_json=0.05,wrong_shape=0.05,no_id=0.05,redirect=0.05,slow_body=0.05,huge_body=0.05,"
        "error500=0.123456789,trickle_s=2.5,huge_mb=0.5,redirect_to=https://elsewhere.example:8443/base/,"
        "op=get-customers|create-customer,skip=3,count=2,seed=11"
    )
    assert cfg.probabilities["html"] == 0.1
    assert cfg.probabilities["error500"] == 0.123456789  # the spec keeps every digit
    assert (cfg.trickle_s, cfg.huge_mb, cfg.skip, cfg.count) == (2.5, 0.5, 3, 2)
    assert cfg.redirect_to == "https://elsewhere.example:8443/base"  # the path is appended after it
    assert cfg.op == ("create-customer", "get-customers")
    assert FaultConfig.parse(cfg.spec()) == cfg
    defaults = FaultConfig.parse("html=0.5")
    assert (defaults.trickle_s, defaults.huge_mb, defaults.redirect_to) == (30.0, 64.0, "http://127.0.0.2:9")
    assert (defaults.op, defaults.skip, defaults.count) == ((), 0, 0)
    assert FaultConfig.parse(defaults.spec()) == defaults
    assert FaultConfig.parse("error500=0,html=0.2") == FaultConfig.parse("html=0.2")


@pytest.mark.parametrize(
    "spec",
    [
        "op=get-customer-typo",
        "op=",
        "skip=-1",
        "count=two",
        "huge_mb=0",
        "trickle_s=-1",
        "redirect_to=ftp://host",
        "redirect_to=elsewhere",
        "redirect_to=http://host/?q=1",
        "html=0.5,huge_body=0.6",
    ],
)
def test_parse_rejects_new_settings(spec: str) -> None:
    with pytest.raises(ValueError, match=r"fault|value|operation|more than 1"):
        FaultConfig.parse(spec)


def test_existing_seeds_keep_their_fault_sequences() -> None:
    # Recorded with faults.py before the poisoned-answer kinds existed.
    injector = FaultInjector(
        FaultConfig.parse(
            "error500=0.2,reset=0.1,drop_after_commit=0.1,timeout=0.1,error429=0.1,latency_ms=0-50,seed=42"
        )
    )
    draws = [injector.draw("POST" if i % 3 else "GET") for i in range(24)]
    assert [d.kind for d in draws] == [
        None, "reset", None, None, "timeout", "reset", "error500", None, "reset", None, None,
        "drop_after_commit", None, "error500", None, None, "error429", "drop_after_commit",
        None, None, None, "reset", "error500", "error500",
    ]  # fmt: skip
    assert [round(d.latency_s * 1000, 3) for d in draws[:6]] == [1.251, 11.161, 33.835, 4.347, 1.49, 25.268]


def test_settings_never_shift_the_random_sequence() -> None:
    """Ineligible, skipped and over-count requests consume their numbers: the n-th draw stays put."""
    base = "error500=0.3,html=0.3,latency_ms=0-100,seed=5"
    requests_ = [("GET", "get-customers"), ("POST", "create-customer"), ("GET", "get-customer")] * 40
    plain = FaultInjector(FaultConfig.parse(base))
    reference = [plain.draw(m, op) for m, op in requests_]
    picky = FaultInjector(FaultConfig.parse(base + ",op=create-customer|get-customer,skip=4,count=10"))
    draws = [picky.draw(m, op) for m, op in requests_]
    assert [d.latency_s for d in draws] == [d.latency_s for d in reference]
    eligible = [i for i, (_, op) in enumerate(requests_) if op != "get-customers"]
    faulted = [i for i, d in enumerate(draws) if d.kind]
    expected = [i for i in eligible[4:] if reference[i].kind][:10]
    assert faulted == expected
    assert all(draws[i] == reference[i] for i in faulted)
    assert sum(picky.injected.values()) == 10


def test_skip_counts_only_eligible_requests() -> None:
    injector = FaultInjector(FaultConfig.parse("error500=1,on=writes,skip=2"))
    kinds = [injector.draw(m).kind for m in ("GET", "POST", "GET", "GET", "PUT", "GET", "POST", "DELETE")]
    assert kinds == [None, None, None, None, None, None, "error500", "error500"]


def test_count_caps_the_faults_and_restarts_on_reconfigure() -> None:
    cfg = FaultConfig.parse("error500=1,count=2")
    injector = FaultInjector(cfg)
    assert [injector.draw("GET").kind for _ in range(4)] == ["error500", "error500", None, None]
    injector.injected.clear()  # a stats reset does not restart the count
    assert injector.draw("GET").kind is None
    injector.reconfigure(cfg)
    assert injector.draw("GET").kind == "error500"


def test_two_variant_kinds_split_their_band_in_halves() -> None:
    spec = "error500=0.2,redirect=0.4,seed=3"
    injector = FaultInjector(FaultConfig.parse(spec))
    rng = random.Random(3)
    for _ in range(300):
        u = rng.random()
        rng.random()
        draw = injector.draw("GET")
        if u < 0.2:
            assert draw.kind == "error500"
        elif u < 0.6:
            assert (draw.kind, draw.variant) == ("redirect", 0 if u < 0.4 else 1)
        else:
            assert draw.kind is None


def test_no_id_applies_to_customer_writes_only() -> None:
    injector = FaultInjector(FaultConfig.parse("no_id=1,count=2"))
    assert injector.draw("GET", "get-customers").kind is None
    assert injector.draw("POST", "create-bank-account").kind is None
    assert injector.injected == {}
    assert injector.draw("POST", "create-customer").kind == "no_id"
    assert injector.draw("PUT", "update-customer").kind == "no_id"
    assert injector.injected == {"no_id": 2}


def _codes(api: Api, code: str) -> int:
    return len(api("GET", "/customers", params={"customerCode": code}).json())


@pytest.mark.parametrize(("kind", "status"), [("error500", 500), ("error503", 503), ("error429", 429)])
def test_error_faults_change_nothing(api: Api, sandbox: SandboxProcess, kind: str, status: int) -> None:
    sandbox.configure(faults=f"{kind}=1")
    response = api("POST", "/customers", json={"customerCode": "F-1", "contactName": "A"})
    assert response.status_code == status
    assert isinstance(response.json()["errors"], str)
    assert "minute-limit-remaining" in response.headers
    sandbox.configure(faults="")
    assert _codes(api, "F-1") == 0
    assert sandbox.stats()["faults_injected"] == {kind: 1}


def test_reset_drops_the_connection_before_doing_anything(api: Api, sandbox: SandboxProcess) -> None:
    sandbox.configure(faults="reset=1")
    with pytest.raises(requests.ConnectionError):
        api("POST", "/customers", json={"customerCode": "R-1", "contactName": "A"})
    sandbox.configure(faults="")
    assert _codes(api, "R-1") == 0


def test_drop_after_commit_writes_then_hangs_up(api: Api, sandbox: SandboxProcess) -> None:
    sandbox.configure(faults="drop_after_commit=1")
    with pytest.raises(requests.ConnectionError):
        api("POST", "/customers", json={"customerCode": "D-1", "contactName": "A"})
    sandbox.configure(faults="")
    assert _codes(api, "D-1") == 1  # the write landed although no answer came back
    assert sandbox.stats()["by_operation"]["create-customer"] == {"dropped:200": 1}


def test_timeout_lands_the_write_after_the_client_gave_up(api: Api, sandbox: SandboxProcess) -> None:
    sandbox.configure(faults="timeout=1,timeout_s=1.5,on=writes")
    with pytest.raises(requests.Timeout):
        api("POST", "/customers", json={"customerCode": "T-1", "contactName": "A"}, timeout=0.5)
    assert _codes(api, "T-1") == 0  # not yet: a look-up right now finds nothing
    deadline = time.monotonic() + 10
    while _codes(api, "T-1") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _codes(api, "T-1") == 1


def test_latency_delays_answers(api: Api, sandbox: SandboxProcess) -> None:
    sandbox.configure(faults="latency_ms=300-300")
    started = time.perf_counter()
    assert api("GET", "/connection-test").status_code == 200
    assert time.perf_counter() - started >= 0.3  # a lower bound only: the delay cannot be skipped


def test_faults_never_touch_sandbox_endpoints(sandbox: SandboxProcess) -> None:
    sandbox.configure(faults="error500=1")
    assert sandbox.stats()["total"] == 0
    sandbox.seed(3)
    assert sandbox.stats()["data"]["customers"] == 3
