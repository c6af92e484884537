"""Retry, 429 and safe-create logic, on a scripted transport (no server can fail on cue)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from crmsync.config import RateLimits
from crmsync.errors import (
    AuthenticationError,
    BudgetExhausted,
    HelcimRequestError,
    HelcimUnavailable,
    RateLimited,
)
from crmsync.helcim.client import HelcimClient, RetryPolicy
from crmsync.helcim.models import CustomerInput
from tests.helcim.fakes import ScriptedAdapter, Step, scripted_session

CUSTOMER = {
    "id": 7,
    "customerCode": "C-1",
    "contactName": "Ada",
    "cellphone": "",
    "billingAddress": "",
    "shippingAddress": "",
    "cards": [],
}


def client_with(
    *steps: Step, attempts: int = 4, patience: float = 3600.0
) -> tuple[HelcimClient, ScriptedAdapter, list[float]]:
    session, adapter = scripted_session(*steps)
    waits: list[float] = []
    client = HelcimClient(
        "https://helcim.test/v2",
        "tok",
        session,
        limits=RateLimits(paced=False),
        retry=RetryPolicy(attempts=attempts, backoff_base=0.5, backoff_max=4, rate_limit_patience=patience),
        sleep=waits.append,
    )
    return client, adapter, waits


def test_5xx_and_drops_are_retried_with_bounded_jittered_backoff() -> None:
    client, adapter, waits = client_with(
        (500, {"errors": "Internal"}), requests.ConnectionError("dropped"), (503, None), (200, CUSTOMER)
    )
    assert client.get_customer(7).code == "C-1"
    assert len(adapter.sent) == 4
    assert len(waits) == 3
    assert all(0 <= w <= 4 for w in waits)


def test_attempts_are_bounded() -> None:
    client, adapter, _ = client_with(*[(500, {"errors": "down"})] * 10, attempts=3)
    with pytest.raises(HelcimUnavailable, match="get-customer: Helcim answered 500"):
        client.get_customer(7)
    assert len(adapter.sent) == 3


def test_429s_are_waited_out_and_never_count_as_attempts() -> None:
    client, adapter, waits = client_with(
        *[(429, {"errors": "Too Many Requests"})] * 5, (200, CUSTOMER), attempts=2
    )
    assert client.get_customer(7).id == 7
    assert len(adapter.sent) == 6  # five 429s, then the answer: with only 2 attempts allowed
    assert len(waits) == 5
    assert client.stats()["rate_limited"] == 5


def test_429s_give_up_after_the_patience() -> None:
    client, adapter, _ = client_with(*[(429, {"errors": "Too Many Requests"})] * 5, patience=0.0)
    with pytest.raises(RateLimited):
        client.get_customer(7)
    assert len(adapter.sent) == 1


def test_401_costs_one_call_and_is_not_retried() -> None:
    client, adapter, waits = client_with((401, {"errors": "Unauthorized"}))
    with pytest.raises(AuthenticationError, match="HELCIM_API_TOKEN"):
        client.connection_test()
    assert (len(adapter.sent), waits) == (1, [])


def test_other_4xx_is_fatal() -> None:
    client, adapter, _ = client_with((400, {"errors": {"billingAddress.street1": "street1 is required"}}))
    with pytest.raises(HelcimRequestError) as info:
        client.update_customer(7, CustomerInput(contact_name="Ada"))
    assert info.value.detail == "billingAddress.street1: street1 is required"
    assert len(adapter.sent) == 1


def test_a_200_with_an_errors_body_is_a_refusal() -> None:
    client, _, _ = client_with((200, {"errors": "Customer could not be updated"}))
    with pytest.raises(HelcimRequestError, match="could not be updated"):
        client.update_customer(7, CustomerInput(contact_name="Ada"))


def test_budget_stops_before_sending() -> None:
    session, adapter = scripted_session((200, CUSTOMER))
    client = HelcimClient(
        "https://helcim.test/v2", "tok", session, limits=RateLimits(paced=False), max_calls=1
    )
    client.get_customer(7)
    with pytest.raises(BudgetExhausted):
        client.get_customer(7)
    assert len(adapter.sent) == 1


class TestSafeCreate:
    data = CustomerInput(contact_name="Ada", code="C-1")

    def test_a_lost_answer_is_resolved_by_looking_the_code_up(self) -> None:
        client, adapter, _ = client_with(requests.ConnectionError("dropped"), (200, [CUSTOMER]))
        result = client.create_customer(self.data)
        assert (result.customer.id, result.recovered) == (7, True)
        assert adapter.calls() == ["POST /v2/customers", "GET /v2/customers"]
        assert "customerCode=C-1" in (adapter.sent[1].url or "")

    def test_a_read_timeout_or_5xx_leads_to_a_look_up_then_a_new_post_if_absent(self) -> None:
        client, adapter, _ = client_with(
            requests.ReadTimeout("slow"), (200, []), (500, {"errors": "x"}), (200, []), (200, CUSTOMER)
        )
        result = client.create_customer(self.data)
        assert (result.customer.id, result.recovered) == (7, False)
        assert adapter.calls() == ["POST /v2/customers", "GET /v2/customers"] * 2 + ["POST /v2/customers"]

    def test_after_a_read_timeout_the_look_up_waits_a_read_timeout_first(self) -> None:
        """A timed-out POST may still be performed: looking at once would miss it and post a duplicate."""
        client, adapter, waits = client_with(
            requests.ReadTimeout("slow"), (200, [CUSTOMER]), (500, {"errors": "x"}), (200, [])
        )
        assert client.create_customer(self.data).recovered is True
        assert adapter.calls() == ["POST /v2/customers", "GET /v2/customers"]
        assert client.settle_seconds == 30.0
        assert waits.count(30.0) == 1  # one settle wait, before the look-up; the 5xx path has none
        client, _, waits = client_with((500, {"errors": "x"}), (200, [CUSTOMER]))
        assert client.create_customer(self.data).recovered is True
        assert 30.0 not in waits

    def test_an_unsent_request_is_resent_without_a_look_up(self) -> None:
        client, adapter, _ = client_with(requests.ConnectTimeout("no route"), (200, CUSTOMER))
        assert client.create_customer(self.data).recovered is False
        assert adapter.calls() == ["POST /v2/customers"] * 2

    def test_code_already_exists_is_resolved_by_the_look_up(self) -> None:
        client, adapter, _ = client_with(
            (400, {"errors": {"customerCode": "Customer code C-1 already exists"}}), (200, [CUSTOMER])
        )
        assert client.create_customer(self.data).recovered is True
        assert len(adapter.sent) == 2

    def test_a_validation_refusal_is_looked_up_once_and_not_retried(self) -> None:
        client, adapter, _ = client_with(
            (400, {"errors": "Contact name or business name should be filled"}), (200, [])
        )
        with pytest.raises(HelcimRequestError, match="should be filled"):
            client.create_customer(CustomerInput(code="C-1"))
        assert adapter.calls() == ["POST /v2/customers", "GET /v2/customers"]

    @pytest.mark.parametrize(
        "refusal",
        [
            pytest.param(
                {"errors": {"customerCode": "Customer code C-1 already exists"}}, id="sandbox-wording"
            ),
            pytest.param({"errors": "Duplicate customer code."}, id="other-wording"),
            pytest.param({"message": "code in use"}, id="message-shape"),
        ],
    )
    def test_any_400_to_a_create_finds_an_existing_code_whatever_the_wording(
        self, refusal: dict[str, Any]
    ) -> None:
        client, adapter, _ = client_with((400, refusal), (200, [CUSTOMER]))
        result = client.create_customer(self.data)
        assert (result.customer.id, result.recovered) == (7, True)
        assert adapter.calls() == ["POST /v2/customers", "GET /v2/customers"]

    def test_without_a_code_an_ambiguous_failure_is_not_retried(self) -> None:
        client, adapter, _ = client_with(requests.ReadTimeout("slow"))
        with pytest.raises(HelcimUnavailable, match="timed out"):
            client.create_customer(CustomerInput(contact_name="Ada"))
        assert len(adapter.sent) == 1


def test_non_repeatable_posts_are_only_resent_when_never_sent() -> None:
    client, adapter, _ = client_with(requests.ReadTimeout("slow"))
    with pytest.raises(HelcimUnavailable):
        client.request_new_bank_account(7)
    assert len(adapter.sent) == 1
    client, adapter, _ = client_with(requests.ConnectTimeout("no route"), (200, {"message": "sent"}))
    assert client.request_new_bank_account(7) == "sent"
    assert len(adapter.sent) == 2


@pytest.mark.parametrize("body", [{"id": 3, "cardF6L4": "4111111111"}, [{"id": 3, "cardF6L4": "4111111111"}]])
def test_a_single_card_as_object_or_one_element_array(body: Any) -> None:
    client, _, _ = client_with((200, body))
    assert client.get_card(7, 3).id == 3


def test_already_deleted_card_is_reported_not_raised() -> None:
    client, _, _ = client_with((204, None), (404, []), (404, {"errors": "Invalid customerId"}))
    assert client.delete_card(7, 3) is True
    assert client.delete_card(7, 3) is False
    with pytest.raises(HelcimRequestError, match="Invalid customerId"):
        client.delete_card(99, 3)


def test_pads_204_means_none() -> None:
    client, _, _ = client_with((204, None), (200, {"pads": [{"id": 1, "accepted": 1, "status": 1}]}))
    assert client.list_pads(7) == []
    assert [p.id for p in client.list_pads(7)] == [1]


def test_paging_stops_at_a_short_page() -> None:
    full = [dict(CUSTOMER, id=i, customerCode=f"C-{i}") for i in range(1, 101)]
    client, adapter, _ = client_with((200, full), (200, full), (200, full[:3]))
    pages = list(client.iter_customers())
    assert [(n, len(batch)) for n, batch in pages] == [(1, 100), (2, 100), (3, 3)]
    assert all("includeCards=yes" in (r.url or "") and "limit=100" in (r.url or "") for r in adapter.sent)


def test_exact_page_multiple_ends_with_an_empty_page() -> None:
    full = [dict(CUSTOMER, id=i) for i in range(1, 101)]
    client, adapter, _ = client_with((200, full), (200, []))
    assert sum(len(batch) for _, batch in client.iter_customers()) == 100
    assert len(adapter.sent) == 2
