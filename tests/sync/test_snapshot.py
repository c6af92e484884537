"""The snapshot against a real sandbox: paging, the rolling cursor, bank refresh order, secrecy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from crmsync.config import RateLimits
from crmsync.errors import AccountMismatchError
from crmsync.helcim.client import HelcimClient, RetryPolicy
from crmsync.state import StateStore, open_state, utcnow
from crmsync.sync.snapshot import (
    bank_calls_after_writes,
    bank_reads_for,
    bank_reserve,
    customers_per_night,
    load_snapshot,
    refresh_customers,
    refresh_payment_methods,
)
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN


def client_for(sandbox: SandboxProcess, max_calls: int | None = None) -> HelcimClient:
    return HelcimClient(
        sandbox.base_url,
        TOKEN,
        limits=RateLimits(paced=False),
        max_calls=max_calls,
        retry=RetryPolicy(attempts=2),
    )


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = open_state(tmp_path / "state.db")
    yield store
    store.close()


def test_full_refresh_reads_every_page_with_cards(sandbox: SandboxProcess, state: StateStore) -> None:
    seeded = sandbox.seed(250, seed=4, today="2026-11-25")
    client = client_for(sandbox)
    result = refresh_customers(client, state)
    assert (result.pages, result.customers, result.complete, result.all_read) == (3, 250, True, True)
    assert client.stats()["by_operation"] == {"get-customers": 3}
    snapshot = load_snapshot(state)
    assert len(snapshot.customers) == 250
    assert len(snapshot.cards) == seeded["cards"]
    phones = snapshot.customers["cell_phone"]
    assert phones[phones != ""].str.fullmatch(r"\d{10,15}").all()  # normalised like a CRM export
    assert set(snapshot.customers["billing_country"]) <= {"CAN", "USA", ""}
    assert snapshot.customers_complete_at != ""


def test_rolling_pages_resume_where_the_last_run_stopped(sandbox: SandboxProcess, state: StateStore) -> None:
    sandbox.seed(250, seed=4)
    client = client_for(sandbox)
    runs = [refresh_customers(client, state, max_pages=2) for _ in range(3)]
    # pages 1-2, then 3 (a pass ends) and 1, then 2 and 3 (another pass ends)
    assert [(r.pages, r.complete, r.all_read) for r in runs] == [
        (2, False, False),
        (2, True, False),
        (2, True, False),
    ]
    cursor = state.db.execute("SELECT next_page FROM snapshot_cursor").fetchone()[0]
    assert cursor == 1
    assert len(load_snapshot(state).customers) == 250


def test_a_spent_budget_stops_the_paging_and_keeps_what_was_read(
    sandbox: SandboxProcess, state: StateStore
) -> None:
    sandbox.seed(250, seed=4)
    result = refresh_customers(client_for(sandbox, max_calls=2), state, max_pages=10)
    assert (result.pages, result.complete) == (2, False)
    assert len(load_snapshot(state).customers) == 200


def test_customers_deleted_in_helcim_leave_the_cache(sandbox: SandboxProcess, state: StateStore) -> None:
    sandbox.seed(120, seed=4)
    refresh_customers(client_for(sandbox), state)
    sandbox.reset()
    sandbox.seed(30, seed=9)
    refresh_customers(client_for(sandbox), state)
    assert len(load_snapshot(state).customers) == 30


def refreshed(state: StateStore) -> dict[int, str]:
    return {
        int(r[0]): str(r[1]) for r in state.db.execute("SELECT helcim_id, refreshed_at FROM bank_refresh")
    }


def test_bank_refresh_reads_never_read_then_cards_changed_then_oldest(
    sandbox: SandboxProcess, state: StateStore
) -> None:
    sandbox.seed(40, seed=2)
    client = client_for(sandbox)
    refresh_customers(client, state)
    first = refresh_payment_methods(client, state, max_calls=10)
    read_once = set(refreshed(state))
    assert 5 <= first.customers == len(read_once) <= 10
    assert first.calls <= 10
    refresh_payment_methods(client, state, max_calls=40 - len(read_once))
    read_twice = set(refreshed(state)) - read_once
    assert read_twice  # the second run read customers never read before, and only those
    assert {h for h, at in refreshed(state).items() if h in read_once} == read_once
    refresh_payment_methods(client, state, max_calls=1000)
    assert len(refreshed(state)) == 40
    # A default card set in Helcim leaves the customer's dateUpdated alone (LIVE), a renamed customer's moves:
    # the card change is the signal, the customer's dateUpdated is not.
    customers = client.list_customers(limit=100, include_cards=True)
    with_cards = next(c for c in customers if len(c.cards) >= 2 and c.id != max(read_once))
    target = next(card for card in with_cards.cards if not card.is_default)
    client.set_default_card(with_cards.id, target.id)
    renamed = max(read_once)
    requests.put(
        f"{sandbox.base_url}/customers/{renamed}",
        json={"contactName": "Changed in Helcim"},
        headers=sandbox.headers,
        timeout=10,
    ).raise_for_status()
    refresh_customers(client, state)
    before = refreshed(state)
    refresh_payment_methods(client, state, max_calls=2)
    after = refreshed(state)
    order = [h for _, h in sorted((at, h) for h, at in after.items() if at != before[h])]
    assert order[0] == with_cards.id  # the customer whose cards changed went first
    assert renamed not in order  # a new dateUpdated alone moves nobody up


def test_customers_read_in_this_run_are_not_read_again(sandbox: SandboxProcess, state: StateStore) -> None:
    sandbox.seed(30, seed=5)
    client = client_for(sandbox)
    refresh_customers(client, state)
    started = utcnow()
    first = refresh_payment_methods(client, state, max_calls=1000, read_before=started)
    assert first.customers == 30
    again = refresh_payment_methods(client, state, max_calls=1000, read_before=started)
    assert (again.customers, again.calls) == (0, 0)
    assert refresh_payment_methods(client, state, max_calls=1000, read_before=utcnow()).customers == 30


def test_a_customer_read_recently_is_read_again_when_its_cards_changed(
    sandbox: SandboxProcess, state: StateStore
) -> None:
    """A recent read spares a customer a second one (the run's, a morning report's), but not after its cards
    changed: a new default, an added or removed card is what the next report must see."""
    sandbox.seed(30, seed=5)
    client = client_for(sandbox)
    refresh_customers(client, state)
    started = utcnow()
    assert refresh_payment_methods(client, state, max_calls=1000, read_before=started).customers == 30
    customers = client.list_customers(limit=100, include_cards=True)
    changed = next(c for c in customers if len(c.cards) >= 2)
    client.set_default_card(changed.id, next(card for card in changed.cards if not card.is_default).id)
    refresh_customers(client, state)  # the page shows the moved default: the cards' signature changed
    before = refreshed(state)
    again = refresh_payment_methods(client, state, max_calls=1000, read_before=started)
    assert again.customers == 1
    assert [h for h, at in refreshed(state).items() if at != before[h]] == [changed.id]
    assert refresh_payment_methods(client, state, max_calls=1000, read_before=started).customers == 0


def test_the_budget_after_the_writes_keeps_a_reserve_and_the_floor() -> None:
    assert bank_reserve(3000) == 150
    assert bank_calls_after_writes(2790, floor=45, budget=3000) == 2640  # all but the reserve
    assert bank_calls_after_writes(100, floor=45, budget=3000) == 45  # the floor holds on a short night
    assert bank_calls_after_writes(20, floor=45, budget=3000) == 20  # never more than is left
    assert bank_calls_after_writes(0, floor=45, budget=3000) == 0
    assert bank_reads_for(70, 3000) == 12  # one customer in seven a night, 1.2 calls each
    assert bank_reads_for(100_000, 3000) == 750  # capped at a quarter of the budget
    assert customers_per_night(70, 3000) == 10


def test_one_call_left_keeps_the_bank_accounts_and_the_customer_first_in_line(
    sandbox: SandboxProcess, state: StateStore
) -> None:
    sandbox.seed(60, seed=3)
    client = client_for(sandbox)
    refresh_customers(client, state)
    with_bank = int(next(iter(client.list_customers(limit=100))).id)
    sandbox.add_bank(
        with_bank,
        accountCorporate=1,
        accountType=1,
        bankAccountNumber="1234567",
        bankFinancialNumber="003",
        bankTransitNumber="12345",
        streetAddress="1 Main",
        city="Calgary",
        provinceAlpha2="AB",
        countryAlpha2="CA",
        postalCode="T2P1A1",
        firstName="A",
        lastName="B",
    )
    state.db.execute(
        "INSERT INTO bank_refresh (helcim_id, refreshed_at) SELECT helcim_id, '2000' FROM helcim_customers"
    )
    state.db.execute("UPDATE bank_refresh SET refreshed_at = '1999' WHERE helcim_id = ?", (with_bank,))
    result = refresh_payment_methods(client, state, max_calls=1)
    assert result.customers == 0  # its PADs were not read: not counted as refreshed
    assert load_snapshot(state).banks["helcim_id"].eq(with_bank).any()
    assert refreshed(state)[with_bank] == "1999"


def test_no_token_or_full_number_is_stored(
    sandbox: SandboxProcess, state: StateStore, tmp_path: Path
) -> None:
    sandbox.seed(60, seed=3)
    client = client_for(sandbox)
    refresh_customers(client, state)
    refresh_payment_methods(client, state, max_calls=200)
    tokens = [c.token for _, page in client.iter_customers() for customer in page for c in customer.cards]
    assert tokens
    state.db.execute("PRAGMA wal_checkpoint(FULL)")
    stored = (tmp_path / "state.db").read_bytes()
    assert not any(token.encode() in stored for token in tokens)
    assert TOKEN.encode() not in stored


def test_a_state_built_against_another_account_is_refused(sandbox: SandboxProcess, state: StateStore) -> None:
    sandbox.seed(20, seed=1)
    client = client_for(sandbox)
    refresh_customers(client, state)
    customers = load_snapshot(state).customers
    for n, (helcim_id, code) in enumerate(
        zip(customers["helcim_id"].tolist(), customers["customer_code"].tolist(), strict=True)
    ):
        state.link(f"C{n}", int(helcim_id), str(code), "created")
    sandbox.reset()  # a wiped sandbox: none of the linked customers exist any more
    sandbox.seed(5, seed=2)
    # ids and codes restart after a reset, so a few ids exist again: most do not
    with pytest.raises(AccountMismatchError, match=r"\d+ of the 20 Helcim customers"):
        refresh_customers(client, state)
