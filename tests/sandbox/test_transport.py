"""Authentication, limit headers, content types and the operation table."""

from __future__ import annotations

import pytest

from helcim_sandbox.launcher import SandboxProcess
from helcim_sandbox.operations import OPERATIONS, operation_for
from tests.conftest import Api


def test_connection_test(api: Api) -> None:
    response = api("GET", "/connection-test")
    assert (response.status_code, response.json()) == (200, {"message": "Connected Successfully"})


@pytest.mark.parametrize("token", ["", "wrong-token"], ids=["missing", "wrong"])
def test_bad_token_is_401_unauthorized(api: Api, sandbox: SandboxProcess, token: str) -> None:
    headers = {} if not token else {"api-token": token}
    response = api.session.get(api.base_url + "/customers", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"errors": "Unauthorized"}
    assert response.headers["content-type"] == "application/json"
    assert "minute-limit-remaining" in response.headers
    assert sandbox.stats()["by_operation"] == {"get-customers": {"401": 1}}


def test_header_name_is_case_insensitive(api: Api) -> None:
    response = api.session.get(
        api.base_url + "/connection-test", headers={"API-Token": api.token}, timeout=10
    )
    assert response.status_code == 200


def test_every_answer_carries_the_limit_headers(api: Api) -> None:
    answers = [
        api("GET", "/connection-test"),
        api("POST", "/customers", json={}),
        api("GET", "/customers/12"),
        api("GET", "/no-such-endpoint"),
    ]
    for response in answers:
        assert int(response.headers["minute-limit-remaining"]) >= 0
        assert int(response.headers["hour-limit-remaining"]) >= 0
        assert response.headers["content-type"] == "application/json"


def test_unknown_endpoint_is_json_404(api: Api) -> None:
    response = api("GET", "/no-such-endpoint")
    assert response.status_code == 404
    assert response.json() == {"errors": "Not Found"}


def test_sandbox_endpoints_are_outside_v2_and_need_no_token(sandbox: SandboxProcess) -> None:
    assert sandbox.stats()["total"] == 0
    assert sandbox.root_url + "/v2" == sandbox.base_url


def test_all_eighteen_operations_are_routed() -> None:
    assert len(OPERATIONS) == 18
    assert len({name for *_, name in OPERATIONS}) == 18
    assert operation_for("GET", "/v2/customers/5/bank-accounts/request-new") == "request-new-bank-account"
    assert operation_for("GET", "/v2/customers/5/bank-accounts/7") == "get-customer-bank-account"
    assert operation_for("PUT", "/v2/customers/5/bank-accounts/7/pads/9") == "update-pad"
    assert operation_for("POST", "/v2/nothing") == "unknown"


def test_stats_count_by_operation_and_status(api: Api, sandbox: SandboxProcess) -> None:
    api("GET", "/connection-test")
    api.create(contactName="A")
    api("POST", "/customers", json={})
    api("GET", "/customers/1")
    stats = sandbox.stats()
    assert stats["total"] == 4
    assert stats["by_operation"] == {
        "connection-test": {"200": 1},
        "create-customer": {"200": 1, "400": 1},
        "get-customer": {"404": 1},
    }
    assert stats["by_status"] == {"200": 2, "400": 1, "404": 1}
    sandbox.reset_stats()
    assert sandbox.stats()["total"] == 0
