"""Fault injection: parsing, determinism, and each fault kind over real HTTP."""

from __future__ import annotations

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
