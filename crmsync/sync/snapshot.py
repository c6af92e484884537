"""Helcim → frames: customers with their cards, bank accounts and PADs, read within a budget.

Reading costs calls, so the snapshot is a cache in the state store that each
run refreshes as far as its budget allows:

* **customers and cards**: ``GET /customers?includeCards=yes``, 100 a call, in
  id order. A run that cannot afford every page resumes next time where it
  stopped (a rolling cursor), so every page is refreshed in turn; customers
  are never deleted in Helcim and new ones get higher ids, so pages are stable.
* **bank accounts and PADs**: one call per customer (two when it has a bank
  account), on a rolling schedule: customers never read first, then those whose
  Helcim record changed since, then the oldest read.

Helcim values go through the same normalisation as the CRM's before they are
cached, so the diff compares like with like. Tokens and full numbers are never
stored. :func:`load_snapshot` returns the cached frames, validated by
``schemas/helcim.py``, with their age.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from crmsync.console import Progress
from crmsync.crm.normalize import normalize_crm
from crmsync.errors import AccountMismatchError, BudgetExhausted
from crmsync.helcim.client import PAGE_SIZE, HelcimClient
from crmsync.helcim.models import Address, BankAccount, Customer, Pad
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
from crmsync.state import StateStore

log = logging.getLogger("crmsync.snapshot")

#: Each customer's bank accounts and PADs are read at least once every this many runs.
BANK_REFRESH_NIGHTS = 7
#: At most this share of a run's budget goes to reading customer pages; the rest waits for the next run.
PAGE_SHARE = 0.5
#: At most this share of a run's budget goes to reading bank accounts and PADs.
BANK_SHARE = 0.25


def pages_to_read(cached_customers: int, budget: int) -> int | None:
    """How many customer pages to read now: all of them (None) when they fit in PAGE_SHARE of the budget."""
    needed = cached_customers // PAGE_SIZE + 1
    allowed = max(1, int(budget * PAGE_SHARE))
    return None if needed <= allowed else allowed


def bank_reads_for(customers: int, budget: int) -> int:
    """Calls for this run's share of the rolling bank/PAD refresh (about 1.2 per customer read)."""
    wanted = math.ceil(customers / BANK_REFRESH_NIGHTS * 1.2)
    return min(wanted, int(budget * BANK_SHARE))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _address_columns(prefix: str, address: Address | None) -> dict[str, str]:
    a = address or Address()
    return {
        f"{prefix}_name": a.name,
        f"{prefix}_street1": a.street1,
        f"{prefix}_street2": a.street2,
        f"{prefix}_city": a.city,
        f"{prefix}_province": a.province,
        f"{prefix}_country": a.country,
        f"{prefix}_postal_code": a.postal_code,
        f"{prefix}_phone": a.phone,
        f"{prefix}_email": a.email,
    }


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
    rows = [
        (card.id, c.id, card.holder_name, card.f6l4, card.expiry, card.is_default, _when(card.date_created))
        for c in customers
        for card in c.cards
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
            gone_ids += store.cache.store_page(page, customers_frame(batch), cards_frame(batch), last=last)
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


def refresh_payment_methods(
    client: HelcimClient, store: StateStore, *, max_calls: int, progress: Progress | None = None
) -> BankRefresh:
    """Read bank accounts (and, where there are some, PADs) of as many customers as ``max_calls`` allows.

    Order: customers never read, then those whose Helcim record changed since
    their last read, then the oldest read.
    """
    result = BankRefresh()
    if max_calls <= 0:
        return result
    spent = 0
    for helcim_id, date_updated in store.cache.refresh_order(max_calls):
        if spent >= max_calls:
            break
        try:
            banks = client.list_bank_accounts(helcim_id)
            spent += 1
            pads: list[Pad] | None = [] if not banks else None
            if banks and spent < max_calls:
                pads = client.list_pads(helcim_id)
                spent += 1
        except BudgetExhausted:
            break
        store.cache.store_payment_methods(
            helcim_id,
            banks_frame([(helcim_id, b) for b in banks]),
            None if pads is None else pads_frame([(helcim_id, p) for p in pads]),
            date_updated,
        )
        if pads is not None:
            result.customers += 1
        if progress:
            progress("bank accounts", 1)
    return result


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
