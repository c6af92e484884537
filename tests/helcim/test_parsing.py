"""Parsing Helcim's objects and error bodies: every quirk of the reference."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import requests

from crmsync.errors import AuthenticationError, HelcimRequestError, HelcimUnavailable, RateLimited
from crmsync.helcim.errors import error_for_response, error_text, is_error_body, was_not_sent
from crmsync.helcim.models import (
    Address,
    BankAccount,
    BankAccountInput,
    Card,
    Customer,
    CustomerInput,
    DefaultCardRecord,
    Pad,
)

ADDRESS = {
    "name": "Ada",
    "street1": "1 Main",
    "street2": "",
    "city": "Calgary",
    "province": "AB",
    "country": "CAN",
    "postalCode": "T2P 1A1",
    "phone": "",
    "email": "",
}


def test_customer_quirks() -> None:
    customer = Customer.from_api(
        {
            "id": "28104301",
            "customerCode": "CRM-1",
            "contactName": "Ada",
            "businessName": None,
            "cellphone": "4035550100",
            "billingAddress": ADDRESS,
            "shippingAddress": "",
            "dateCreated": "2026-11-25 05:40:02",
            "dateUpdated": "0000-00-00 00:00:00",
            "cards": [{"id": 1, "cardF6L4": 5454545454, "cardExpiry": 128, "default": 1}],
        }
    )
    assert customer.id == 28104301
    assert customer.business_name == ""
    assert customer.cell_phone == "4035550100"
    assert customer.billing == Address("Ada", "1 Main", "", "Calgary", "AB", "CAN", "T2P 1A1")
    assert customer.shipping is None  # "" means no address
    assert customer.date_created == datetime(2026, 11, 25, 5, 40, 2)
    assert customer.date_updated is None  # zero-date means never
    (card,) = customer.cards
    assert (card.f6l4, card.expiry, card.is_default, card.first6, card.last4) == (
        "5454545454",
        "0128",
        True,
        "545454",
        "5454",
    )


@pytest.mark.parametrize("key", ["cellphone", "cellPhone"])
def test_cell_phone_in_either_casing(key: str) -> None:
    assert Customer.from_api({key: "4035550100"}).cell_phone == "4035550100"


@pytest.mark.parametrize("raw", ["", None, {}, dict.fromkeys(ADDRESS, ""), "nonsense"])
def test_empty_addresses_are_none(raw: Any) -> None:
    assert Address.from_api(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"), [(True, True), (False, False), (1, True), ("0", False), ("1", True)]
)
def test_card_default_flag(raw: Any, expected: bool) -> None:
    assert Card.from_api({"default": raw}).is_default is expected


def test_customer_input_uses_request_casing() -> None:
    body = CustomerInput(
        contact_name="Ada", cell_phone="4035550100", billing=Address(name="Ada"), code="C-1"
    ).to_api()
    assert body["cellPhone"] == "4035550100"
    assert body["customerCode"] == "C-1"
    assert body["billingAddress"]["postalCode"] == ""
    assert "shippingAddress" not in body


def test_set_default_record() -> None:
    record = DefaultCardRecord.from_api(
        {
            "customer": {
                "id": 5,
                "customerCode": "C",
                "defaultCard": 77,
                "defaultBankAccount": 0,
                "cellPhone": "1",
            }
        }
    )
    assert (record.id, record.code, record.default_card_id, record.default_bank_account_id) == (5, "C", 77, 0)


def test_bank_account_and_pad_states() -> None:
    bank = BankAccount.from_api(
        {"id": 3, "verified": "1", "ready": 0, "routingNumber": "021000021", "bankAccountNumberL4": "6789"}
    )
    assert (bank.verified, bank.ready, bank.country, bank.last4) == (True, False, "USA", "6789")
    zero = "0000-00-00 00:00:00"
    pending = Pad.from_api({"accepted": 0, "status": 1, "dateRevoked": zero})
    accepted = Pad.from_api({"accepted": 1, "status": 1, "dateRevoked": zero})
    inactive = Pad.from_api({"accepted": 1, "status": 2, "dateRevoked": zero})
    revoked = Pad.from_api({"accepted": 1, "status": 1, "dateRevoked": "2026-01-02 03:04:05"})
    assert [p.state for p in (pending, accepted, inactive, revoked)] == [
        "pending",
        "accepted",
        "revoked",
        "revoked",
    ]


def test_bank_input_for_each_country() -> None:
    common: dict[str, Any] = {
        "street": "1 Main",
        "city": "Calgary",
        "province": "AB",
        "postal_code": "T2P1A1",
    }
    ca = BankAccountInput(
        account_number="1234567",
        country="CA",
        institution="003",
        transit="12345",
        first_name="A",
        last_name="B",
        **common,
    ).to_api()
    assert (ca["bankFinancialNumber"], ca["bankTransitNumber"], ca["firstName"]) == ("003", "12345", "A")
    us = BankAccountInput(
        account_number="12345678",
        country="US",
        routing="021000021",
        company_name="Co",
        corporate=True,
        savings=True,
        **common,
    ).to_api()
    assert (us["bankRoutingNumber"], us["companyName"], us["accountCorporate"], us["accountType"]) == (
        "021000021",
        "Co",
        2,
        2,
    )
    assert "1234567" not in repr(BankAccountInput(account_number="1234567", country="CA", **common))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"errors": "Invalid customerId"}, "Invalid customerId", id="string"),
        pytest.param(
            {"errors": {"billingAddress.street1": "street1 is required", "cellPhone": "bad"}},
            '{"billingAddress.street1": "street1 is required", "cellPhone": "bad"}',
            id="object",
        ),
        pytest.param({"errors": ["first", "second"]}, "first; second", id="array"),
        pytest.param([], "fallback", id="empty-array"),
        pytest.param({"message": "Bank account not found."}, "Bank account not found.", id="message"),
        pytest.param({"data": {"message": "deep"}}, "deep", id="data-message"),
        pytest.param("plain text", "plain text", id="text"),
        pytest.param(None, "fallback", id="none"),
    ],
)
def test_error_text(body: Any, expected: str) -> None:
    assert error_text(body, "fallback") == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (429, RateLimited),
        (500, HelcimUnavailable),
        (503, HelcimUnavailable),
        (400, HelcimRequestError),
        (404, HelcimRequestError),
    ],
)
def test_classification(status: int, kind: type[Exception]) -> None:
    error = error_for_response("get-customer", status, "Reason", {"errors": {"customerCode": "taken"}})
    assert type(error) is kind
    assert error.status == status
    assert "get-customer" in str(error)


def test_field_errors_read_as_one_line() -> None:
    error = error_for_response("create-customer", 400, "Reason", {"errors": {"a": "x", "b": "y"}})
    assert error.detail == "a: x; b: y"


def test_a_200_with_errors_is_a_refusal() -> None:
    assert is_error_body({"errors": "Something went wrong"})
    assert not is_error_body({"id": 1, "errors": ""})
    assert not is_error_body([])
    assert not is_error_body({"message": "Connected Successfully"})


@pytest.mark.parametrize(
    ("error", "never_sent"),
    [
        pytest.param(requests.ConnectTimeout("connect timed out"), True, id="connect-timeout"),
        pytest.param(
            requests.ConnectionError("NewConnectionError: [Errno 111] Connection refused"), True, id="refused"
        ),
        pytest.param(requests.ConnectionError("Failed to resolve 'api.helcim.com'"), True, id="dns"),
        pytest.param(
            requests.ConnectionError("RemoteDisconnected('Remote end closed connection')"),
            False,
            id="dropped",
        ),
        pytest.param(requests.ReadTimeout("read timed out"), False, id="read-timeout"),
    ],
)
def test_never_sent_is_only_claimed_when_no_connection_was_made(
    error: requests.RequestException, never_sent: bool
) -> None:
    assert was_not_sent(error) is never_sent
