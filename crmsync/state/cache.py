"""The cached Helcim snapshot inside the state store: customers, cards, bank accounts, PADs.

Reading Helcim costs calls, so what a run read is kept here, each row with the
time it was fetched; a budget-limited run diffs against the last known data
and says how old it is. This module is the only code that reads or writes
the cache's tables (``helcim_customers``, ``helcim_cards``, ``helcim_banks``,
``helcim_pads``, ``bank_refresh``, ``card_signatures``, ``snapshot_cursor``):
:mod:`crmsync.sync.snapshot` decides what to read from Helcim and hands the
frames over.

``card_signatures`` holds, per customer, a digest of its cards as the last page
read showed them (ids, default flags, expiry, each card's ``dateUpdated``);
``bank_refresh.cards_seen`` the digest when its bank accounts and PADs were
last read. The two differ when the customer's cards changed since: the
rolling bank refresh takes that as its "changed" signal. (A customer's own
``dateUpdated`` is no such signal: setting a default card leaves it as it was.)

The frames' columns and dtypes are the pandera models' of
:mod:`crmsync.schemas.helcim` (one declaration; a test checks the SQL tables
against them). Values arrive normalised, without tokens or full numbers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

import pandas as pd

from crmsync.schemas.helcim import (
    SNAPSHOT_TABLES,
    SYNCED_FIELDS,
    dtypes_of,
)
from crmsync.state.clock import utcnow

__all__ = ["SnapshotCache"]

Transaction = Callable[[], AbstractContextManager[sqlite3.Connection]]


class SnapshotCache:
    """The snapshot tables of one state store (its connection and transactions)."""

    def __init__(self, db: sqlite3.Connection, transaction: Transaction) -> None:
        self.db = db
        self.transaction = transaction

    # -- writing ---------------------------------------------------------------------

    def _replace_rows(self, table: str, frame: pd.DataFrame, now: str) -> None:
        if frame.empty:
            return
        columns = [*frame.columns, "fetched_at"]
        marks = ", ".join("?" * len(columns))
        values = (
            (*(v.item() if hasattr(v, "item") else v for v in row), now)
            for row in frame.itertuples(index=False)
        )
        self.db.executemany(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)

    def store_page(
        self,
        page: int,
        customers: pd.DataFrame,
        cards: pd.DataFrame,
        *,
        last: bool,
        signatures: dict[int, str],
    ) -> list[int]:
        """Cache one page of customers (in id order) with their cards; return the ids it proves gone.

        Every cached customer whose id lies in the page's range must be on it
        (the last page's range runs to the end); an empty first page means an
        empty account, an empty later page proves nothing.
        """
        ids = [int(i) for i in customers["helcim_id"]]
        if ids:
            sql, params = "SELECT helcim_id FROM helcim_customers WHERE helcim_id >= ?", [min(ids)]
            if not last:
                sql += " AND helcim_id <= ?"
                params.append(max(ids))
        elif page == 1:
            sql, params = "SELECT helcim_id FROM helcim_customers", []
        else:
            sql, params = "SELECT helcim_id FROM helcim_customers WHERE 0", []
        present = set(ids)
        gone = [int(r[0]) for r in self.db.execute(sql, params) if int(r[0]) not in present]
        now = utcnow()
        with self.transaction() as db:
            if gone:
                marks = ",".join("?" * len(gone))
                db.execute(f"DELETE FROM helcim_customers WHERE helcim_id IN ({marks})", gone)
                db.execute(f"DELETE FROM helcim_cards WHERE helcim_id IN ({marks})", gone)
                db.execute(f"DELETE FROM card_signatures WHERE helcim_id IN ({marks})", gone)
            if ids:
                db.execute(f"DELETE FROM helcim_cards WHERE helcim_id IN ({','.join('?' * len(ids))})", ids)
            self._replace_rows("helcim_customers", customers.assign(page=page), now)
            self._replace_rows("helcim_cards", cards, now)
            db.executemany(
                "INSERT OR REPLACE INTO card_signatures (helcim_id, signature) VALUES (?, ?)",
                signatures.items(),
            )
        return gone

    def store_cards(self, helcim_id: int, cards: pd.DataFrame, signature: str) -> None:
        """One customer's cards as a fresh read of them shows (after ``crmsync act`` touched them)."""
        with self.transaction() as db:
            db.execute("DELETE FROM helcim_cards WHERE helcim_id = ?", (helcim_id,))
            self._replace_rows("helcim_cards", cards, utcnow())
            db.execute(
                "INSERT OR REPLACE INTO card_signatures (helcim_id, signature) VALUES (?, ?)",
                (helcim_id, signature),
            )

    def store_found(self, customers: pd.DataFrame) -> None:
        """Customers Helcim answered a look-up with: into the cache, on the page they were known on."""
        if customers.empty:
            return
        ids = [int(i) for i in customers["helcim_id"]]
        known = dict(
            self.db.execute(
                f"SELECT helcim_id, page FROM helcim_customers WHERE helcim_id IN ({','.join('?' * len(ids))})",
                ids,
            ).fetchall()
        )
        pages = [int(known.get(i, 0)) for i in ids]
        self._replace_rows("helcim_customers", customers.assign(page=pages), utcnow())

    def store_written(
        self, helcim_id: int, code: str, values: dict[str, str | None], date_created: str, date_updated: str
    ) -> None:
        """What a confirmed write left in Helcim, without reading it back (the loader calls it per write).

        ``values`` are the synced fields written (normalised: what the plan
        sent); a create carries every field, an update the fields it changed.
        The next page read replaces the row with Helcim's own copy.
        """
        written = {k: v for k, v in values.items() if k in SYNCED_FIELDS and v is not None}
        exists = self.db.execute(
            "SELECT 1 FROM helcim_customers WHERE helcim_id = ?", (helcim_id,)
        ).fetchone()
        if exists:
            sets = {**written, "customer_code": code, "date_updated": date_updated}
            self.db.execute(
                f"UPDATE helcim_customers SET {', '.join(f'{k} = ?' for k in sets)}, fetched_at = ?"
                " WHERE helcim_id = ?",
                (*sets.values(), utcnow(), helcim_id),
            )
            return
        now = utcnow()
        row = {"helcim_id": helcim_id, "customer_code": code, **dict.fromkeys(SYNCED_FIELDS, "")}
        row |= {
            **written,
            "date_created": date_created,
            "date_updated": date_updated,
            "page": 0,
            "fetched_at": now,
        }
        self.db.execute(
            f"INSERT INTO helcim_customers ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        # A customer just created through the API has no bank account or PAD yet: known without a call,
        # so the rolling refresh (and the morning report) does not treat it as never read.
        self.db.execute(
            "INSERT OR IGNORE INTO bank_refresh (helcim_id, refreshed_at, cards_seen) VALUES (?, ?, '')",
            (helcim_id, now),
        )

    def store_payment_methods(
        self, helcim_id: int, banks: pd.DataFrame, pads: pd.DataFrame | None, cards_seen: str
    ) -> None:
        """One customer's bank accounts, and its PADs when they were read (then it counts as refreshed).

        ``cards_seen`` is the digest of the customer's cards when the read was planned.
        """
        now = utcnow()
        with self.transaction() as db:
            db.execute("DELETE FROM helcim_banks WHERE helcim_id = ?", (helcim_id,))
            self._replace_rows("helcim_banks", banks, now)
            if pads is not None:  # without the PADs read, the customer stays first in line
                db.execute("DELETE FROM helcim_pads WHERE helcim_id = ?", (helcim_id,))
                self._replace_rows("helcim_pads", pads, now)
                db.execute(
                    "INSERT OR REPLACE INTO bank_refresh (helcim_id, refreshed_at, cards_seen) VALUES (?, ?, ?)",
                    (helcim_id, now, cards_seen),
                )

    # -- the paging cursor -----------------------------------------------------------

    def next_page(self) -> int | None:
        """Where the rolling customer paging resumes (None before the first run)."""
        row = self.db.execute("SELECT next_page FROM snapshot_cursor WHERE id = 1").fetchone()
        return None if row is None else int(row[0])

    def save_cursor(self, next_page: int, *, complete: bool) -> None:
        self.db.execute(
            "INSERT INTO snapshot_cursor (id, next_page, complete_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE"
            " SET next_page = excluded.next_page,"
            " complete_at = CASE WHEN ? THEN excluded.complete_at ELSE snapshot_cursor.complete_at END",
            (next_page, utcnow() if complete else "", complete),
        )

    # -- reading ---------------------------------------------------------------------

    def customer_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM helcim_customers").fetchone()[0])

    def customer_ids(self) -> set[int]:
        return {int(r[0]) for r in self.db.execute("SELECT helcim_id FROM helcim_customers")}

    def refresh_order(self, limit: int, *, read_before: str | None = None) -> list[tuple[int, str]]:
        """(helcim_id, digest of its cards) of the customers whose bank accounts to read next, at most ``limit``.

        Never read first, then those whose cards changed since their last read
        (a new, removed or replaced card, a default moved, an expiry changed),
        then the oldest read. With ``read_before`` (a stored moment), customers
        read at or after it are not read again, unless their cards changed since.
        """
        sql = (
            "SELECT c.helcim_id, COALESCE(s.signature, '') FROM helcim_customers c"
            " LEFT JOIN bank_refresh r USING (helcim_id) LEFT JOIN card_signatures s USING (helcim_id)"
        )
        params: list[object] = []
        if read_before is not None:
            sql += " WHERE r.helcim_id IS NULL OR r.refreshed_at < ? OR r.cards_seen != COALESCE(s.signature, '')"
            params.append(read_before)
        sql += (
            " ORDER BY r.helcim_id IS NOT NULL, r.cards_seen = COALESCE(s.signature, ''), r.refreshed_at,"
            " c.helcim_id LIMIT ?"
        )
        rows = self.db.execute(sql, (*params, limit)).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def frame(self, table: str) -> pd.DataFrame:
        """One snapshot table as its pandera model's frame (columns and dtypes from the model)."""
        schema = SNAPSHOT_TABLES[table]
        columns = list(schema.columns)
        frame = pd.read_sql_query(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1", self.db)
        return frame.astype(dtypes_of(schema))

    def oldest_fetch(self) -> str:
        """When the least recently read cached customer was read ("" when nothing is cached)."""
        return str(self.db.execute("SELECT MIN(fetched_at) FROM helcim_customers").fetchone()[0] or "")

    def complete_at(self) -> str:
        """When a pass over every customer page last finished ("" never)."""
        row = self.db.execute("SELECT complete_at FROM snapshot_cursor WHERE id = 1").fetchone()
        return str(row[0]) if row else ""

    def bank_refreshed(self) -> pd.DataFrame:
        """helcim_id, refreshed_at: whose bank accounts and PADs have been read, and when."""
        return pd.read_sql_query("SELECT helcim_id, refreshed_at FROM bank_refresh", self.db)

    def table_columns(self, table: str) -> list[str]:
        """The SQL table's columns (for the test that checks them against the models)."""
        return [str(r[1]) for r in self.db.execute(f"PRAGMA table_info({table})")]
