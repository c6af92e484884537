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
    SYNCED_FIELDS,
    HelcimCustomer,
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
from crmsync.state import StateStore, utcnow

log = logging.getLogger("crmsync.snapshot")


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
        return frame.astype(dict.fromkeys(CUSTOMER_COLUMNS[1:], "str"))
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
    return pd.DataFrame(rows, columns=list(CARD_COLUMNS)).astype(
        {"card_id": "int64", "helcim_id": "int64", "is_default": "bool"}
    )


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
    return pd.DataFrame(rows, columns=list(BANK_COLUMNS)).astype(
        {"bank_id": "int64", "helcim_id": "int64", "verified": "bool", "ready": "bool"}
    )


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
    return pd.DataFrame(rows, columns=list(PAD_COLUMNS)).astype(
        {
            "pad_id": "int64",
            "helcim_id": "int64",
            "bank_id": "int64",
            "accepted": "bool",
            "active": "bool",
            "pad_type": "int64",
        }
    )


def _replace_rows(store: StateStore, table: str, frame: pd.DataFrame, now: str) -> None:
    if frame.empty:
        return
    columns = [*frame.columns, "fetched_at"]
    marks = ", ".join("?" * len(columns))
    values = (
        (*(v.item() if hasattr(v, "item") else v for v in row), now) for row in frame.itertuples(index=False)
    )
    store.db.executemany(
        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})",
        values,
    )


def cache_written(store: StateStore, customers: Sequence[Customer]) -> None:
    """Put customers Helcim just answered a write with into the cache (cards are left as they are).

    A budget-limited night may not read the page a new customer lands on; the
    next diff must still find the customer a link points to.
    """
    frame = customers_frame(customers)
    if frame.empty:
        return
    known = dict(
        store.db.execute(
            f"SELECT helcim_id, page FROM helcim_customers WHERE helcim_id IN ({','.join('?' * len(frame))})",
            [int(i) for i in frame["helcim_id"]],
        ).fetchall()
    )
    pages = [int(known.get(int(i), 0)) for i in frame["helcim_id"]]
    _replace_rows(store, "helcim_customers", frame.assign(page=pages), utcnow())


def cache_write(store: StateStore, customer: Customer, values: dict[str, str | None]) -> None:
    """Record in the cache what a confirmed write left in Helcim, without reading it back.

    ``values`` are the synced fields written (already normalised: they are
    what the plan sent); a create carries every field, an update the fields it
    changed. The next page read replaces the row with Helcim's own copy.
    Cheap on purpose: the loader calls it once per write.
    """
    written = {k: v for k, v in values.items() if k in SYNCED_FIELDS and v is not None}
    dates = {"date_created": _when(customer.date_created), "date_updated": _when(customer.date_updated)}
    exists = store.db.execute("SELECT 1 FROM helcim_customers WHERE helcim_id = ?", (customer.id,)).fetchone()
    if exists:
        sets = {**written, "customer_code": customer.code, "date_updated": dates["date_updated"]}
        store.db.execute(
            f"UPDATE helcim_customers SET {', '.join(f'{k} = ?' for k in sets)}, fetched_at = ? WHERE helcim_id = ?",
            (*sets.values(), utcnow(), customer.id),
        )
        return
    now = utcnow()
    row = {"helcim_id": customer.id, "customer_code": customer.code, **dict.fromkeys(SYNCED_FIELDS, "")}
    row |= {**written, **dates, "page": 0, "fetched_at": now}
    store.db.execute(
        f"INSERT INTO helcim_customers ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        tuple(row.values()),
    )
    # A customer just created through the API has no bank account or PAD yet: known without a call,
    # so the rolling refresh (and the morning report) does not treat it as never read.
    store.db.execute(
        "INSERT OR IGNORE INTO bank_refresh (helcim_id, refreshed_at, customer_updated) VALUES (?, ?, ?)",
        (customer.id, now, dates["date_updated"]),
    )


@dataclass
class CustomerRefresh:
    pages: int = 0
    customers: int = 0
    complete: bool = False  # a pass over every page finished in this run (it may have begun in earlier runs)
    all_read: bool = False  # every page was read in this run
    missing_links: list[str] = field(default_factory=list)  # crm_ids linked to customers Helcim no longer has


def _store_page(store: StateStore, page: int, customers: list[Customer], now: str, last: bool) -> list[int]:
    """Cache one page; return the ids of cached customers the page proves gone."""
    frame = customers_frame(customers)
    ids = [c.id for c in customers]
    # Pages are in id order: every customer whose id lies in this page's range is on it.
    if ids:
        sql, params = "SELECT helcim_id FROM helcim_customers WHERE helcim_id >= ?", [min(ids)]
        if not last:
            sql += " AND helcim_id <= ?"
            params.append(max(ids))
    elif page == 1:  # an empty account
        sql, params = "SELECT helcim_id FROM helcim_customers", []
    else:  # an empty page after a full one: it proves nothing about ids we cannot place
        sql, params = "SELECT helcim_id FROM helcim_customers WHERE 0", []
    present = set(ids)
    gone = [int(r[0]) for r in store.db.execute(sql, params) if int(r[0]) not in present]
    with store.transaction() as db:
        if gone:
            marks = ",".join("?" * len(gone))
            db.execute(f"DELETE FROM helcim_customers WHERE helcim_id IN ({marks})", gone)
            db.execute(f"DELETE FROM helcim_cards WHERE helcim_id IN ({marks})", gone)
        if ids:
            marks = ",".join("?" * len(ids))
            db.execute(f"DELETE FROM helcim_cards WHERE helcim_id IN ({marks})", ids)
        _replace_rows(store, "helcim_customers", frame.assign(page=page), now)
        _replace_rows(store, "helcim_cards", cards_frame(customers), now)
    return gone


def refresh_customers(
    client: HelcimClient, store: StateStore, *, max_pages: int | None = None, progress: Progress | None = None
) -> CustomerRefresh:
    """Read customer pages (with cards) into the cache: all of them, or ``max_pages`` from the cursor on.

    Stops early, keeping what it read, when the client's budget runs out.
    Raises :class:`AccountMismatchError` when most customers this state links
    to are missing from Helcim (another account, or a wiped sandbox).
    """
    result = CustomerRefresh()
    row = store.db.execute("SELECT next_page FROM snapshot_cursor WHERE id = 1").fetchone()
    start = 1 if max_pages is None or row is None else int(row[0])
    page, gone_ids = start, []
    try:
        while max_pages is None or result.pages < max_pages:
            try:
                batch = client.list_customers(limit=PAGE_SIZE, page=page, include_cards=True)
            except BudgetExhausted:
                break
            last = len(batch) < PAGE_SIZE  # only a page that parsed as a list of customers gets here
            gone_ids += _store_page(store, page, batch, utcnow(), last)
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
        store.db.execute(
            "INSERT INTO snapshot_cursor (id, next_page, complete_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE"
            " SET next_page = excluded.next_page,"
            " complete_at = CASE WHEN ? THEN excluded.complete_at ELSE snapshot_cursor.complete_at END",
            (page, utcnow() if result.complete else "", result.complete),
        )
    result.missing_links = _check_links(store, gone_ids, result)
    return result


def _check_links(store: StateStore, gone_ids: list[int], result: CustomerRefresh) -> list[str]:
    links = store.links()
    if links.empty:
        return []
    cached = {int(r[0]) for r in store.db.execute("SELECT helcim_id FROM helcim_customers")}
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
            f"or the sandbox was reset. Use a fresh --state file for this account."
        )
    if len(missing):
        log.warning("%d linked customers are no longer in Helcim", len(missing))
    return [str(c) for c in missing["crm_id"]]


@dataclass
class BankRefresh:
    customers: int = 0
    with_bank_accounts: int = 0


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
    order = store.db.execute(
        "SELECT c.helcim_id, c.date_updated FROM helcim_customers c LEFT JOIN bank_refresh r USING (helcim_id)"
        " ORDER BY r.helcim_id IS NOT NULL, r.customer_updated = c.date_updated, r.refreshed_at, c.helcim_id"
        " LIMIT ?",
        (max_calls,),
    ).fetchall()
    spent = 0
    for helcim_id, date_updated in order:
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
        now = utcnow()
        with store.transaction() as db:
            db.execute("DELETE FROM helcim_banks WHERE helcim_id = ?", (helcim_id,))
            _replace_rows(store, "helcim_banks", banks_frame([(helcim_id, b) for b in banks]), now)
            if pads is not None:  # without the PADs read, the customer stays first in line
                db.execute("DELETE FROM helcim_pads WHERE helcim_id = ?", (helcim_id,))
                _replace_rows(store, "helcim_pads", pads_frame([(helcim_id, p) for p in pads]), now)
                db.execute(
                    "INSERT OR REPLACE INTO bank_refresh (helcim_id, refreshed_at, customer_updated)"
                    " VALUES (?, ?, ?)",
                    (helcim_id, now, date_updated),
                )
        if pads is not None:
            result.customers += 1
            result.with_bank_accounts += bool(banks)
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


def _read(store: StateStore, table: str, columns: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    frame = pd.read_sql_query(
        f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1",
        store.db,
    )
    return frame.astype({c: dtypes.get(c, "str") for c in columns})


def load_snapshot(store: StateStore) -> Snapshot:
    customers = _read(store, "helcim_customers", CUSTOMER_COLUMNS, {"helcim_id": "int64"})
    cards = _read(
        store, "helcim_cards", CARD_COLUMNS, {"card_id": "int64", "helcim_id": "int64", "is_default": "bool"}
    )
    banks = _read(
        store,
        "helcim_banks",
        BANK_COLUMNS,
        {"bank_id": "int64", "helcim_id": "int64", "verified": "bool", "ready": "bool"},
    )
    pads = _read(
        store,
        "helcim_pads",
        PAD_COLUMNS,
        {
            "pad_id": "int64",
            "helcim_id": "int64",
            "bank_id": "int64",
            "accepted": "bool",
            "active": "bool",
            "pad_type": "int64",
        },
    )
    HelcimCustomer.validate(customers, lazy=True)
    CardSchema.validate(cards, lazy=True)
    BankSchema.validate(banks, lazy=True)
    PadSchema.validate(pads, lazy=True)
    oldest = store.db.execute("SELECT MIN(fetched_at) FROM helcim_customers").fetchone()[0] or ""
    cursor = store.db.execute("SELECT complete_at FROM snapshot_cursor WHERE id = 1").fetchone()
    refreshed = pd.read_sql_query("SELECT helcim_id, refreshed_at FROM bank_refresh", store.db)
    return Snapshot(customers, cards, banks, pads, oldest, cursor[0] if cursor else "", refreshed)
