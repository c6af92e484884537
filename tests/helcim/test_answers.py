"""Answers that are not Helcim's documented shape, redirects, 403s, bad settings: never data, never silent."""

from __future__ import annotations

from typing import Any

import pytest

from crmsync.errors import (
    AuthenticationError,
    HelcimUnavailable,
    ProtocolError,
    RedirectRefused,
    UsageError,
)
from crmsync.helcim.client import HelcimClient, check_connection
from crmsync.helcim.models import CustomerInput
from tests.helcim.test_retries import CUSTOMER, client_with

HTML = b"<!DOCTYPE html><html><head><title>502 Bad gateway | api.helcim.com | Cloudflare</title></head>" + (
    b"<body>" + b"x" * 3000 + b"</body></html>"
)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(HTML, id="html"),
        pytest.param(b'[{"id": 1, "customerCode": "C-1"', id="cut-off-json"),
        pytest.param({"data": [CUSTOMER]}, id="object-not-list"),
        pytest.param([{"customerCode": "C-1"}], id="customer-without-id"),
        pytest.param("Connected", id="a-string"),
    ],
)
def test_a_page_that_is_not_a_list_of_customers_is_retried_then_reported_never_empty(body: Any) -> None:
    client, adapter, _ = client_with(*[(200, body)] * 3, attempts=3)
    with pytest.raises(ProtocolError, match="get-customers: Helcim answered 200, but not as documented"):
        client.list_customers(page=2)
    assert len(adapter.sent) == 3  # retried like a 5xx


def test_a_poisoned_page_then_a_good_one_reads_the_good_one() -> None:
    client, adapter, _ = client_with((200, HTML), (200, [CUSTOMER]))
    assert [c.id for c in client.list_customers()] == [7]
    assert len(adapter.sent) == 2


def test_an_html_error_page_is_described_not_pasted() -> None:
    client, _, _ = client_with(*[(502, HTML)] * 2, attempts=2)
    with pytest.raises(HelcimUnavailable) as info:
        client.get_customer(7)
    message = str(info.value)
    assert "an HTML page" in message
    assert "502 Bad gateway" in message
    assert len(message) < 250
    assert "xxxx" not in message


class TestCreateWithoutAnId:
    data = CustomerInput(contact_name="Ada", code="C-1")

    def test_an_answer_without_an_id_is_looked_up_and_found(self) -> None:
        client, adapter, _ = client_with((200, {}), (200, [CUSTOMER]))
        result = client.create_customer(self.data)
        assert (result.customer.id, result.recovered) == (7, True)
        assert adapter.calls() == ["POST /v2/customers", "GET /v2/customers"]

    def test_an_answer_without_an_id_that_did_not_land_is_posted_again(self) -> None:
        client, adapter, _ = client_with((200, {}), (200, []), (200, CUSTOMER))
        result = client.create_customer(self.data)
        assert (result.customer.id, result.recovered) == (7, False)
        assert adapter.calls() == ["POST /v2/customers", "GET /v2/customers", "POST /v2/customers"]

    def test_never_an_id_zero(self) -> None:
        client, _, _ = client_with(*[(200, {}), (200, [])] * 3, attempts=3)
        with pytest.raises(ProtocolError, match="no id"):
            client.create_customer(self.data)


def test_a_redirect_is_never_followed() -> None:
    client, adapter, _ = client_with((301, None, {"location": "https://elsewhere.example:8443/v2/customers"}))
    with pytest.raises(RedirectRefused, match=r"redirect to https://elsewhere\.example:8443") as info:
        client.list_customers()
    assert info.value.exit_code == 3
    assert len(adapter.sent) == 1  # not retried, not followed


def test_a_redirected_create_stays_uncertain_for_the_journal() -> None:
    client, adapter, _ = client_with((307, None, {"location": "http://127.0.0.2:9/v2/customers"}))
    with pytest.raises(RedirectRefused):
        client.create_customer(CustomerInput(contact_name="Ada", code="C-1"))
    assert adapter.calls() == ["POST /v2/customers"]


def test_403_is_an_authentication_failure_with_the_token_hint() -> None:
    client, adapter, _ = client_with((403, {"errors": "Forbidden"}))
    with pytest.raises(AuthenticationError, match=r"403 Forbidden.*HELCIM_API_TOKEN") as info:
        client.get_customer(7)
    assert (info.value.exit_code, len(adapter.sent)) == (3, 1)


@pytest.mark.parametrize(
    "body",
    [pytest.param(HTML, id="html"), pytest.param({"ok": True}, id="no-message"), pytest.param([], id="list")],
)
def test_ping_fails_on_an_answer_that_is_not_helcims(body: Any) -> None:
    client, _, _ = client_with(*[(200, body)] * 2, attempts=2)
    with pytest.raises(ProtocolError) as info:
        check_connection(client)
    assert info.value.exit_code == 3


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cr3t-pw@api.helcim.com/v2",
        "https://:s3cr3t-pw@api.helcim.com/v2",
        "https://u@h.example/v2",
    ],
)
def test_a_url_with_credentials_is_refused_without_showing_them(url: str) -> None:
    with pytest.raises(UsageError) as info:
        HelcimClient(url, "tok")
    assert "s3cr3t" not in str(info.value)
    assert "user:" not in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("token", ["tök-en", "tok\nen", "tok en", "“tok”"])
def test_a_token_http_cannot_carry_is_refused_without_showing_it(token: str) -> None:
    with pytest.raises(UsageError, match="HELCIM_API_TOKEN has a character") as info:
        HelcimClient("https://api.helcim.com/v2", token)
    assert token not in str(info.value)
