"""The client against a real helcim-sandbox over HTTP: every operation, faults, limits, secrecy."""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from crmsync.config import RateLimits
from crmsync.errors import AuthenticationError, HelcimError, HelcimRequestError
from crmsync.helcim.client import HelcimClient, RetryPolicy
from crmsync.helcim.models import Address, BankAccountInput, CustomerInput
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN

# the sandbox commits before it drops a connection, so a look-up needs no settling time here
FAST_RETRY = RetryPolicy(attempts=8, backoff_base=0.01, backoff_max=0.2, settle_after_drop=0.05)


def make_client(sandbox: SandboxProcess, token: str = TOKEN, **kwargs: Any) -> HelcimClient:
    kwargs.setdefault("limits", RateLimits(paced=False))
    kwargs.setdefault("retry", FAST_RETRY)
    return HelcimClient(sandbox.base_url, token, **kwargs)


def billing(**overrides: str) -> Address:
    fields = {
        "name": "Ada Lovelace",
        "street1": "440 2 Ave SW",
        "city": "Calgary",
        "province": "AB",
        "country": "CAN",
        "postal_code": "T2P 5E9",
        "email": "ada@example.com",
    }
    fields.update(overrides)
    return Address(**fields)


def test_every_operation_end_to_end(sandbox: SandboxProcess) -> None:
    client = make_client(sandbox)
    assert client.connection_test().body == {"message": "Connected Successfully"}

    created = client.create_customer(
        CustomerInput(contact_name="Ada Lovelace", cell_phone="4035550100", billing=billing(), code="CRM-1")
    )
    customer = created.customer
    assert (created.recovered, customer.code, customer.cell_phone, customer.shipping) == (
        False,
        "CRM-1",
        "4035550100",
        None,
    )
    assert customer.billing == billing()

    updated = client.update_customer(
        customer.id, CustomerInput(contact_name="Ada King", business_name="Engines")
    )
    assert (updated.contact_name, updated.business_name, updated.billing) == (
        "Ada King",
        "Engines",
        billing(),
    )
    assert client.get_customer(customer.id).contact_name == "Ada King"
    assert client.find_customer_by_code("CRM-1") == client.get_customer(customer.id)
    assert client.find_customer_by_code("nobody") is None
    assert [c.code for c in client.list_customers(search="king")] == ["CRM-1"]

    first = sandbox.add_card(
        customer.id, cardHolderName="Ada", cardNumber="4111111111111111", cardExpiry="0130", default=True
    )
    second = sandbox.add_card(customer.id, cardHolderName="Ada", cardF6L4="5454545454", cardExpiry="1225")
    cards = client.list_cards(customer.id)
    assert [(c.id, c.is_default) for c in cards] == [(first["id"], True), (second["id"], False)]
    assert client.list_cards(customer.id, card_token=second["cardToken"])[0].id == second["id"]
    assert client.get_card(customer.id, second["id"]).expiry == "1225"
    record = client.set_default_card(customer.id, second["id"])
    assert (record.default_card_id, record.code) == (second["id"], "CRM-1")
    assert client.delete_card(customer.id, first["id"]) is True
    assert client.delete_card(customer.id, first["id"]) is False
    (listed,) = next(client.iter_customers())[1]
    assert [c.id for c in listed.cards] == [second["id"]]

    bank_id = client.create_bank_account(
        customer.id,
        BankAccountInput(
            account_number="123456789",
            country="CA",
            street="1 Main",
            city="Calgary",
            province="AB",
            postal_code="T2P1A1",
            institution="003",
            transit="12345",
            first_name="Ada",
            last_name="King",
        ),
    )
    bank = client.get_bank_account(customer.id, bank_id)
    assert (bank.last4, bank.institution, bank.verified, bank.ready, bank.country) == (
        "6789",
        "003",
        False,
        False,
        "CAN",
    )
    assert [b.id for b in client.list_bank_accounts(customer.id, ready=False)] == [bank_id]
    assert client.list_bank_accounts(customer.id, verified=True) == []
    client.set_default_bank_account(customer.id, bank_id)
    assert "request email" in client.request_new_bank_account(customer.id)

    (pad,) = client.list_pads(customer.id)
    assert (pad.state, pad.bank_account_id) == ("pending", bank_id)
    accepted = client.update_pad(
        customer.id, bank_id, pad.id, accepted=True, active=True, ip_address="203.0.113.9"
    )
    assert accepted is not None
    assert accepted.state == "accepted"
    assert client.get_pad(customer.id, bank_id, pad.id).ip_address == "203.0.113.9"
    assert client.get_bank_account(customer.id, bank_id).ready is True
    client.delete_bank_account(customer.id, bank_id)
    assert client.list_bank_accounts(customer.id) == []
    assert client.list_pads(customer.id)[0].state == "revoked"

    other = client.create_customer(CustomerInput(business_name="No Pads Ltd.", code="CRM-2")).customer
    assert client.list_pads(other.id) == []  # answered 204

    assert sum(client.stats()["by_operation"].values()) == sandbox.stats()["total"]


def test_helcim_refusals_become_clear_errors(sandbox: SandboxProcess) -> None:
    client = make_client(sandbox)
    with pytest.raises(
        HelcimRequestError, match=r"get-customer: Helcim refused the request \(404\): Invalid customerId"
    ):
        client.get_customer(12345)
    with pytest.raises(HelcimRequestError, match="Contact name or business name should be filled"):
        client.create_customer(CustomerInput(code="X"))
    with pytest.raises(
        HelcimRequestError, match=r"billingAddress\.country: country must be an ISO 3166-1 alpha-3"
    ):
        client.create_customer(CustomerInput(contact_name="A", code="Y", billing=billing(country="CA")))


@pytest.mark.slow
def test_2000_creates_through_5_workers_under_faults_make_no_duplicates(sandbox: SandboxProcess) -> None:
    """The worst case: the server accepts duplicate codes, drops answers after committing and fails 5xx."""
    sandbox.configure(faults="drop_after_commit=0.05,error500=0.05,seed=11", duplicate_codes="allow")
    client = make_client(sandbox, limits=RateLimits(concurrent=5, paced=False))
    codes = [f"CRM-{n:05d}" for n in range(2000)]

    def create(code: str) -> tuple[str, bool]:
        result = client.create_customer(CustomerInput(contact_name=f"Customer {code}", code=code))
        assert result.customer.code == code
        return code, result.recovered

    with ThreadPoolExecutor(max_workers=5) as pool:
        outcomes = list(pool.map(create, codes))

    sandbox.configure(faults="")
    stored = Counter(c.code for _, page in client.iter_customers(include_cards=False) for c in page)
    assert len(stored) == 2000
    assert set(stored) == set(codes)
    assert max(stored.values()) == 1  # no code was created twice
    stats = sandbox.stats()
    dropped = stats["by_operation"]["create-customer"].get("dropped:200", 0)
    assert dropped > 50  # the faults really happened (5 % of about 2,200 posts)
    assert stats["faults_injected"]["error500"] > 50
    assert (
        sum(recovered for _, recovered in outcomes) == dropped
    )  # every dropped create was found, not re-posted


def test_300_paced_calls_under_the_scaled_limits_meet_no_429(sandbox: SandboxProcess) -> None:
    sandbox.configure(limits="fast", faults="latency_ms=2-25,seed=3")
    client = make_client(sandbox, limits=RateLimits.from_spec("fast"))
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: client.connection_test().status, range(300)))
    assert answers == [200] * 300
    assert client.stats()["rate_limited"] == 0
    assert sandbox.stats()["by_status"] == {"200": 300}


def test_other_integrations_on_the_account_are_respected(sandbox: SandboxProcess) -> None:
    """Another integration spends 60 of the 100 in this minute; the client fits in what is left."""
    sandbox.configure(limits="fast,minute=100,scale=30")  # 100 per 2 s
    other = requests.Session()
    for _ in range(60):
        assert other.get(sandbox.base_url + "/connection-test", headers=sandbox.headers, timeout=10).ok
    client = make_client(sandbox, limits=RateLimits.from_spec("fast,scale=30"))
    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = list(pool.map(lambda _: client.connection_test().status, range(100)))
    assert statuses == [200] * 100
    assert client.stats()["rate_limited"] == 0
    assert "429" not in sandbox.stats()["by_status"]


def test_an_unpaced_client_does_meet_429s_so_the_test_above_means_something(sandbox: SandboxProcess) -> None:
    sandbox.configure(limits="fast,minute=30,scale=30")
    client = make_client(sandbox, limits=RateLimits(concurrent=5, paced=False))
    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(lambda _: client.connection_test(), range(60)))
    assert client.stats()["rate_limited"] > 0  # waited out, yet they happened


def test_a_wrong_token_costs_exactly_one_call(sandbox: SandboxProcess) -> None:
    client = make_client(sandbox, token="definitely-wrong")
    with pytest.raises(AuthenticationError):
        client.list_customers()
    assert sandbox.stats()["total"] == 1


def test_the_token_never_appears_in_logs_or_errors(
    sandbox: SandboxProcess, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tok-9f8e7d6c5b4a-SECRET"
    texts: list[str] = []

    def capture(error: BaseException) -> None:
        texts.extend([str(error), repr(error), "".join(traceback.format_exception(error))])

    caplog.set_level(logging.DEBUG)
    wrong = make_client(sandbox, token=secret)
    for call in (wrong.connection_test, wrong.list_customers, lambda: wrong.get_customer(1)):
        with pytest.raises(AuthenticationError) as info:
            call()
        capture(info.value)
    sandbox.configure(faults="error500=0.3,drop_after_commit=0.2,reset=0.1,seed=5")
    right = make_client(sandbox, token=TOKEN)
    for n in range(30):
        try:
            right.create_customer(CustomerInput(contact_name="A", code=f"S-{n}"))
            right.get_customer(999)
        except HelcimError as error:
            capture(error)
    unreachable = HelcimClient(
        "http://127.0.0.1:9/v2", secret, retry=RetryPolicy(attempts=2, backoff_max=0.01)
    )
    with pytest.raises(HelcimError) as unreachable_info:
        unreachable.connection_test()
    capture(unreachable_info.value)
    texts += [record.getMessage() for record in caplog.records]
    texts.append(repr(wrong))
    assert len(texts) > 40
    for text in texts:
        assert secret not in text
        assert TOKEN not in text
