"""Helcim → frames: customers with their cards, bank accounts and PADs, read within a budget.

Reading costs calls, so the snapshot is a cache in the state store that each
run refreshes as far as its budget allows:

* **customers and cards**: ``GET /customers?includeCards=yes``, 100 a call, in
  id order. A run that cannot afford every page resumes next time where it
  stopped (a rolling cursor), so every page is refreshed in turn; customers
  are never deleted in Helcim and new ones get higher ids, so pages are stable.
* **bank accounts and PADs**: one call per customer (two when it has a bank
  account). A run spends on them what its budget leaves after the writes,
  less a reserve (:func:`bank_calls_after_writes`); a floor of about one
  customer in :data:`BANK_REFRESH_NIGHTS` is kept out of the writes' share
  (:func:`bank_reads_for`), so every customer is read at least that often even
  when the budget is short. The order: customers never read first, then
  those whose cards changed since their last read (cards come with every
  customer page, so the signal costs nothing: ids, default flags, expiry and
  each card's ``dateUpdated``), then the oldest read. A customer's own
  ``dateUpdated`` is no signal: Helcim leaves it alone when a payment method
  changes (setting a default card, LIVE).

Helcim values go through the same normalisation as the CRM's before they are
cached, so the diff compares like with like. Tokens and full numbers are never
stored. :func:`load_snapshot` returns the cached frames, validated by
``schemas/helcim.py``, with their age.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from crmsync.console import Progress
from crmsync.crm.normalize import normalize_crm
from crmsync.errors import AccountMismatchError, BudgetExhausted
from crmsync.helcim.client import PAGE_SIZE, HelcimClient
from crmsync.helcim.models import Address, BankAccount, Card, Customer, Pad
from crmsync.schemas.address import ADDRESS_FIELDS
from crmsync.schemas.helcim import (
    BANK_COLUMNS,
    CARD_COLUMNS,
    CUSTOMER_COLUMNS,
    PAD_COLUMNS,
    SNAPSHOT_TABLES,
    SYNCED_FIELDS,
    HelcimCustomer,
    dtypes_of,
    empty,
)
from crmsync.schemas.helcim import (
    BankAccount as BankSchema,
)
from crmsync.schemas.helcim import (
    Card as CardSchema,
)
from crmsync.schemas.helcim import (
    Pad as PadSchema,
)
from crmsync.state import StateStore, stored

log = logging.getLogger("crmsync.snapshot")

#: Each customer's bank accounts and PADs are read at least once every this many runs (the floor).
BANK_REFRESH_NIGHTS = 7
#: At most this share of a run's budget goes to reading customer pages; the rest waits for the next run.
PAGE_SHARE = 0.5
#: At most this share of a run's budget is kept from the writes for the bank refresh's floor.
BANK_SHARE = 0.25
#: Calls per customer of a bank refresh, on average (bank accounts, and PADs for the ~20 % that have one).
CALLS_PER_CUSTOMER = 1.2
#: The share of a run's budget the bank refresh leaves unspent (150 of the default 3,000): Helcim's limits are
#: per account, so other integrations, payment pages and a person's ``crmsync act`` keep room in the hour
#: after the nightly run.
BANK_RESERVE_SHARE = 0.05
#: Neither ``crmsync run`` nor ``crmsync reconcile`` reads again the bank accounts and PADs of a customer read
#: within this many hours (by this run, the night's, an earlier report, or created since by crmsync itself),
#: unless its cards changed since: a 9 a.m. report re-reading the 2 a.m. run's customers would spend most of
#: the hour's limit the merchant's payment pages and other integrations need during the day, and a run again
#: the same night (after a failed or stopped one) would read again what the first read minutes before.
REREAD_HOURS = 20


def pages_to_read(cached_customers: int, budget: int) -> int | None:
    """How many customer pages to read now: all of them (None) when they fit in PAGE_SHARE of the budget."""
    needed = cached_customers // PAGE_SIZE + 1
    allowed = max(1, int(budget * PAGE_SHARE))
    return None if needed <= allowed else allowed


def bank_reads_for(customers: int, budget: int) -> int:
    """The floor of the rolling bank/PAD refresh, in calls: one customer in BANK_REFRESH_NIGHTS a night.

    The plan keeps it out of the writes' share of the budget, so it holds when the budget is short.
    """
    wanted = math.ceil(customers / BANK_REFRESH_NIGHTS * CALLS_PER_CUSTOMER)
    return min(wanted, int(budget * BANK_SHARE))


def customers_per_night(customers: int, budget: int) -> int:
    """How many customers' bank data the floor reads a night at least (for "when the rest will be read")."""
    if customers <= 0:
        return 0
    return max(1, math.floor(bank_reads_for(customers, budget) / CALLS_PER_CUSTOMER))


def bank_reserve(budget: int) -> int:
    """Calls the bank refresh leaves unspent (BANK_RESERVE_SHARE of the budget)."""
    return math.ceil(budget * BANK_RESERVE_SHARE)


def bank_calls_after_writes(left: int, floor: int, budget: int) -> int:
    """What the bank refresh may spend once the writes are done: all that is left but the reserve,
    and never less than the floor (when that much is left)."""
    return max(0, min(left, max(floor, left - bank_reserve(budget))))


def not_read_since(hours: float) -> str:
    """The stored moment ``hours`` before now (as the state store writes moments): a refresh given it as
    ``read_before`` leaves alone the customers read after it."""
    return stored(datetime.now(UTC) - timedelta(hours=hours))


def card_signature(cards: Sequence[Card]) -> str:
    """A digest of a customer's cards: ids, default flags, expiry and each card's dateUpdated ("" for none)."""
    if not cards:
        return ""
    parts = sorted(f"{c.id}:{int(c.is_default)}:{c.expiry}:{_when(c.date_updated)}" for c in cards)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _address_columns(prefix: str, address: Address | None) -> dict[str, str]:
    a = address or Address()
    return {f"{prefix}_{f}": getattr(a, f) for f in ADDRESS_FIELDS}


def customers_frame(customers: Sequence[Customer]) -> pd.DataFrame:
    """Helcim customers in the generic column layout, normalised like a CRM export."""
    rows = [
        {
            "helcim_id": c.id,
            "customer_code": c.code,
            "contact_name": c.contact_name,
            "business_name": c.business_name,
            "cell_phone": c.cell_phone,
            **_address_columns("billing", c.billing),
            **_address_columns("shipping", c.shipping),
            "date_created": _when(c.date_created),
            "date_updated": _when(c.date_updated),
        }
        for c in customers
    ]
    frame = pd.DataFrame(rows, columns=list(CUSTOMER_COLUMNS)).astype({"helcim_id": "int64"})
    if frame.empty:
        return empty(HelcimCustomer)
    generic = frame.loc[:, list(SYNCED_FIELDS)].assign(crm_id=frame["customer_code"])
    normalised = normalize_crm(generic)
    out = frame.copy()
    for column in SYNCED_FIELDS:
        out[column] = normalised[column].astype("str").to_numpy()
    out["customer_code"] = frame["customer_code"].astype("str")
    for column in ("date_created", "date_updated"):
        out[column] = frame[column].astype("str")
    return out


def cards_frame(customers: Sequence[Customer]) -> pd.DataFrame:
    return _cards_of([(c.id, card) for c in customers for card in c.cards])


def cards_frame_of(helcim_id: int, cards: Sequence[Card]) -> pd.DataFrame:
    """One customer's cards (as a cards endpoint answers them) as the snapshot's cards frame."""
    return _cards_of([(helcim_id, card) for card in cards])


def _cards_of(pairs: Sequence[tuple[int, Card]]) -> pd.DataFrame:
    rows = [
        (
            card.id,
            helcim_id,
            card.holder_name,
            card.f6l4,
            card.expiry,
            card.is_default,
            _when(card.date_created),
        )
        for helcim_id, card in pairs
    ]
    return pd.DataFrame(rows, columns=list(CARD_COLUMNS)).astype(dtypes_of(CardSchema))


def banks_frame(pairs: Sequence[tuple[int, BankAccount]]) -> pd.DataFrame:
    rows = [
        (
            b.id,
            helcim_id,
            b.account_type,
            b.corporate,
            b.verified,
            b.ready,
            b.country,
            b.institution,
            b.transit,
            b.routing,
            b.last4,
            _when(b.date_created),
            _when(b.date_verified),
            _when(b.date_last_used),
        )
        for helcim_id, b in pairs
    ]
    return pd.DataFrame(rows, columns=list(BANK_COLUMNS)).astype(dtypes_of(BankSchema))


def pads_frame(pairs: Sequence[tuple[int, Pad]]) -> pd.DataFrame:
    rows = [
        (
            p.id,
            helcim_id,
            p.bank_account_id,
            p.state,
            p.accepted,
            p.active,
            p.pad_type,
            _when(p.date_created),
            _when(p.date_accepted),
            _when(p.date_revoked),
        )
        for helcim_id, p in pairs
    ]
    return pd.DataFrame(rows, columns=list(PAD_COLUMNS)).astype(dtypes_of(PadSchema))


def cache_found(store: StateStore, customers: Sequence[Customer]) -> None:
    """Customers a look-up found (a write a killed run left in flight): into the cache at once.

    A budget-limited night may not read the page a new customer lands on; the
    next diff must still find the customer a link points to.
    """
    store.cache.store_found(customers_frame(customers))


def cache_write(store: StateStore, customer: Customer, values: dict[str, str | None]) -> None:
    """Record in the cache what a confirmed write left in Helcim, without reading it back."""
    store.cache.store_written(
        customer.id, customer.code, values, _when(customer.date_created), _when(customer.date_updated)
    )


@dataclass
class CustomerRefresh:
    pages: int = 0
    customers: int = 0
    complete: bool = False  # a pass over every page finished in this run (it may have begun in earlier runs)
    all_read: bool = False  # every page was read in this run
    missing_links: list[str] = field(default_factory=list)  # crm_ids linked to customers Helcim no longer has


def refresh_customers(
    client: HelcimClient, store: StateStore, *, max_pages: int | None = None, progress: Progress | None = None
) -> CustomerRefresh:
    """Read customer pages (with cards) into the cache: all of them, or ``max_pages`` from the cursor on.

    Stops early, keeping what it read, when the client's budget runs out.
    Raises :class:`AccountMismatchError` when most customers this state links
    to are missing from Helcim (another account, or a wiped sandbox).
    """
    result = CustomerRefresh()
    cursor = store.cache.next_page()
    start = 1 if max_pages is None or cursor is None else cursor
    page, gone_ids = start, []
    try:
        while max_pages is None or result.pages < max_pages:
            try:
                batch = client.list_customers(limit=PAGE_SIZE, page=page, include_cards=True)
            except BudgetExhausted:
                break
            last = len(batch) < PAGE_SIZE  # only a page that parsed as a list of customers gets here
            gone_ids += store.cache.store_page(
                page,
                customers_frame(batch),
                cards_frame(batch),
                last=last,
                signatures={c.id: card_signature(c.cards) for c in batch},
            )
            result.pages += 1
            result.customers += len(batch)
            if progress:
                progress("customer pages", 1)
            page = 1 if last else page + 1
            if last:
                result.complete = (
                    True  # a pass over every page ends here (earlier runs read the pages before)
                )
            if page == start:  # came all the way round within this run
                result.all_read = True
                break
    finally:  # whatever stops the paging (a signal, Helcim down), the next run resumes after the last page kept
        store.cache.save_cursor(page, complete=result.complete)
    result.missing_links = _check_links(store, gone_ids, result)
    return result


def _check_links(store: StateStore, gone_ids: list[int], result: CustomerRefresh) -> list[str]:
    links = store.links()
    if links.empty:
        return []
    cached = store.cache.customer_ids()
    # Read in full this run: every linked id must be there. Otherwise only the pages read can prove absence.
    missing = (
        links[~links["helcim_id"].isin(cached)]
        if result.all_read
        else links[links["helcim_id"].isin(gone_ids)]
    )
    if len(missing) and (len(missing) * 2 > len(links) or (result.all_read and not cached)):
        raise AccountMismatchError(
            f"{len(missing)} of the {len(links)} Helcim customers this state store links to do not exist in this "
            f"Helcim account (e.g. id {int(missing['helcim_id'].iloc[0])}): it was built against another account, "
            f"or the sandbox was reset. Use a fresh state store for this account."
        )
    if len(missing):
        log.warning("%d linked customers are no longer in Helcim", len(missing))
    return [str(c) for c in missing["crm_id"]]


@dataclass
class BankRefresh:
    customers: int = 0  # whose bank accounts and PADs were read
    calls: int = 0  # spent on it


def refresh_payment_methods(
    client: HelcimClient,
    store: StateStore,
    *,
    max_calls: int,
    read_before: str | None = None,
    progress: Progress | None = None,
) -> BankRefresh:
    """Read bank accounts (and, where there are some, PADs) of as many customers as ``max_calls`` allows.

    Order: customers never read, then those whose cards changed since their
    last read, then the oldest read. Customers read at or after ``read_before``
    (a stored moment: the run's start) are not read again.
    """
    result = BankRefresh()
    if max_calls <= 0:
        return result
    for helcim_id, cards_seen in store.cache.refresh_order(max_calls, read_before=read_before):
        if result.calls >= max_calls:
            break
        try:
            banks = client.list_bank_accounts(helcim_id)
            result.calls += 1
            pads: list[Pad] | None = [] if not banks else None
            if banks and result.calls < max_calls:
                pads = client.list_pads(helcim_id)
                result.calls += 1
        except BudgetExhausted:
            break
        store_payment_methods(store, helcim_id, banks, pads, cards_seen)
        if pads is not None:
            result.customers += 1
        if progress:
            progress("bank accounts", 1)
    return result


def store_payment_methods(
    store: StateStore,
    helcim_id: int,
    banks: Sequence[BankAccount],
    pads: Sequence[Pad] | None,
    cards_seen: str,
) -> None:
    """One customer's bank accounts (and PADs, when read) into the cache."""
    store.cache.store_payment_methods(
        helcim_id,
        banks_frame([(helcim_id, b) for b in banks]),
        None if pads is None else pads_frame([(helcim_id, p) for p in pads]),
        cards_seen,
    )


@dataclass(frozen=True)
class Snapshot:
    """The cached view of Helcim, and how old it is."""

    customers: pd.DataFrame
    cards: pd.DataFrame
    banks: pd.DataFrame
    pads: pd.DataFrame
    customers_fetched_oldest: str  # "" when nothing is cached
    customers_complete_at: str  # when a full pass over all pages last finished ("" never)
    bank_refreshed: pd.DataFrame  # helcim_id, refreshed_at

    def describe(self) -> dict[str, Any]:
        return {
            "customers": len(self.customers),
            "cards": len(self.cards),
            "bank_accounts": len(self.banks),
            "pads": len(self.pads),
            "customers_fetched_oldest": self.customers_fetched_oldest,
            "customers_complete_at": self.customers_complete_at,
            "customers_with_bank_data": len(self.bank_refreshed),
        }


def load_snapshot(store: StateStore) -> Snapshot:
    """The cached frames, validated against their models, with how old they are."""
    cache = store.cache
    frames = {table: cache.frame(table) for table in SNAPSHOT_TABLES}
    for table, schema in SNAPSHOT_TABLES.items():
        schema.validate(frames[table], lazy=True)
    return Snapshot(
        frames["helcim_customers"],
        frames["helcim_cards"],
        frames["helcim_banks"],
        frames["helcim_pads"],
        cache.oldest_fetch(),
        cache.complete_at(),
        cache.bank_refreshed(),
    )
