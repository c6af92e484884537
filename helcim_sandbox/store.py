"""SQLite persistence of the sandbox: customers, cards, bank accounts, PADs.

The store speaks Helcim's shapes: methods return dicts with exactly the keys
and value types of the reference (``cellphone`` lower-case, ``""`` for a
missing address, integer ids, 22-hex tokens, zero-dates for "never").

The server uses one store from its event loop only; ``--db FILE`` makes the
data survive a restart (WAL journal), the default is an in-memory database.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

ZERO_DATE = "0000-00-00 00:00:00"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_TIMEZONE = "America/Edmonton"  # recorded account: Mountain Time
SCHEMA_VERSION = 1
MERCHANT_ID = 57361

# First ids, in the ranges seen on real accounts.
FIRST_IDS = {"customers": 28_104_301, "cards": 161_462, "bank_accounts": 12_312, "pads": 238_954}
FIRST_CST = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY,
    customer_code TEXT NOT NULL,
    contact_name TEXT NOT NULL DEFAULT '',
    business_name TEXT NOT NULL DEFAULT '',
    cellphone TEXT NOT NULL DEFAULT '',
    billing TEXT,
    shipping TEXT,
    search TEXT NOT NULL DEFAULT '',
    date_created TEXT NOT NULL,
    date_updated TEXT,
    default_bank_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS customers_code ON customers (customer_code);
CREATE TABLE IF NOT EXISTS cards (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    card_holder_name TEXT NOT NULL,
    card_f6l4 TEXT NOT NULL,
    card_token TEXT NOT NULL UNIQUE,
    card_expiry TEXT NOT NULL,
    date_created TEXT NOT NULL,
    date_updated TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cards_customer ON cards (customer_id);
CREATE TABLE IF NOT EXISTS bank_accounts (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    date_created TEXT NOT NULL,
    date_updated TEXT NOT NULL,
    date_last_used TEXT NOT NULL,
    date_verified TEXT NOT NULL,
    bank_token TEXT NOT NULL UNIQUE,
    account_type TEXT NOT NULL,
    account_corporate TEXT NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0,
    ready INTEGER NOT NULL DEFAULT 0,
    bank_id_number TEXT NOT NULL DEFAULT '',
    transit_number TEXT NOT NULL DEFAULT '',
    routing_number TEXT NOT NULL DEFAULT '',
    account_l4 TEXT NOT NULL,
    address TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS banks_customer ON bank_accounts (customer_id);
CREATE TABLE IF NOT EXISTS pads (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    bank_account_id INTEGER NOT NULL,
    accepted INTEGER NOT NULL DEFAULT 0,
    ip_address TEXT NOT NULL DEFAULT '',
    type INTEGER NOT NULL DEFAULT 1,
    status INTEGER NOT NULL DEFAULT 1,
    date_created TEXT NOT NULL,
    date_updated TEXT NOT NULL,
    date_accepted TEXT NOT NULL,
    date_earliest_debit TEXT NOT NULL,
    date_revoked TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pads_customer ON pads (customer_id);
CREATE INDEX IF NOT EXISTS pads_bank ON pads (bank_account_id);
"""


class StoreError(Exception):
    """A request the store refuses; ``body`` and ``status`` are Helcim's answer."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def new_token() -> str:
    """A 22-character lower-case hex token like Helcim's cardToken/bankToken."""
    return secrets.token_hex(11)


def search_text(code: str, contact: str, business: str, cell: str, billing: Any, shipping: Any) -> str:
    parts = [code, contact, business, cell]
    for address in (billing, shipping):
        if address:
            parts += [address.get("city", ""), address.get("phone", ""), address.get("email", "")]
    return "\x1f".join(p.lower() for p in parts if p)


class Store:
    def __init__(self, path: str | None = None, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.path = path or ":memory:"
        # True emulates an API that accepts a second customer with an existing code
        # (Helcim's real behaviour is undocumented): the worst case for duplicate creates.
        self.allow_duplicate_codes = False
        self.tz = ZoneInfo(timezone)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        version = self._meta("schema_version")
        if version is None:
            self._set_meta("schema_version", str(SCHEMA_VERSION))
            self._set_meta("next_cst", str(FIRST_CST))
        elif int(version) != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: sandbox schema version {version}, expected {SCHEMA_VERSION}")

    # -- plumbing ---------------------------------------------------------------

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def now(self) -> str:
        return datetime.now(self.tz).strftime(DATE_FORMAT)

    def next_id(self, table: str) -> int:
        row = self.db.execute(f"SELECT MAX(id) FROM {table}").fetchone()
        return max(int(row[0] or 0) + 1, FIRST_IDS[table])

    def reset(self) -> None:
        with self.transaction() as db:
            for table in ("customers", "cards", "bank_accounts", "pads"):
                db.execute(f"DELETE FROM {table}")
            self._set_meta("next_cst", str(FIRST_CST))

    def counts(self) -> dict[str, int]:
        out = {}
        for table, where in (
            ("customers", ""),
            ("cards", " WHERE deleted = 0"),
            ("bank_accounts", " WHERE deleted = 0"),
            ("pads", ""),
        ):
            out[table] = int(self.db.execute(f"SELECT COUNT(*) FROM {table}{where}").fetchone()[0])
        return out

    # -- customers --------------------------------------------------------------

    def _public_customer(self, row: sqlite3.Row, cards: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "customerCode": row["customer_code"],
            "businessName": row["business_name"],
            "contactName": row["contact_name"],
            "dateCreated": row["date_created"],
            "dateUpdated": row["date_updated"] or row["date_created"],
            "cellphone": row["cellphone"],
            "billingAddress": json.loads(row["billing"]) if row["billing"] else "",
            "shippingAddress": json.loads(row["shipping"]) if row["shipping"] else "",
            "cards": cards,
        }

    def _customer_row(self, customer_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM customers WHERE id = ?", (customer_id,)
        ).fetchone()
        return row

    def require_customer(self, customer_id: int) -> sqlite3.Row:
        row = self._customer_row(customer_id)
        if row is None:
            raise StoreError(404, {"errors": "Invalid customerId"})
        return row

    def _code_owner(self, code: str) -> int | None:
        row = self.db.execute("SELECT MIN(id) FROM customers WHERE customer_code = ?", (code,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _auto_code(self) -> str:
        seq = int(self._meta("next_cst") or FIRST_CST)
        while self._code_owner(f"CST{seq}") is not None:
            seq += 1
        self._set_meta("next_cst", str(seq + 1))
        return f"CST{seq}"

    def create_customer(self, fields: dict[str, Any]) -> dict[str, Any]:
        """POST /customers. Refuses a customerCode that already exists (sandbox choice)."""
        with self.transaction() as db:
            code = fields.get("customerCode") or self._auto_code()
            if not self.allow_duplicate_codes and self._code_owner(code) is not None:
                raise StoreError(400, {"errors": {"customerCode": f"Customer code {code} already exists"}})
            billing = fields.get("billingAddress") or None
            shipping = fields.get("shippingAddress") or None
            contact = fields.get("contactName", "")
            business = fields.get("businessName", "")
            cell = fields.get("cellphone", "")
            customer_id = self.next_id("customers")
            now = self.now()
            db.execute(
                "INSERT INTO customers (id, customer_code, contact_name, business_name, cellphone, billing,"
                " shipping, search, date_created, date_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    customer_id,
                    code,
                    contact,
                    business,
                    cell,
                    json.dumps(billing) if billing else None,
                    json.dumps(shipping) if shipping else None,
                    search_text(code, contact, business, cell, billing, shipping),
                    now,
                ),
            )
            row = self.require_customer(customer_id)
        created = self._public_customer(row, [])
        created["dateUpdated"] = ZERO_DATE  # LIVE: zero-date on the create response only
        return created

    def update_customer(self, customer_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """PUT /customers/{id}: omitted fields are kept (addresses arrive merged by validation)."""
        with self.transaction() as db:
            row = self.require_customer(customer_id)
            code = fields.get("customerCode") or row["customer_code"]
            owner = self._code_owner(code)
            if not self.allow_duplicate_codes and owner is not None and owner != customer_id:
                raise StoreError(400, {"errors": {"customerCode": f"Customer code {code} already exists"}})
            contact = fields.get("contactName", row["contact_name"])
            business = fields.get("businessName", row["business_name"])
            cell = fields.get("cellphone", row["cellphone"])
            addresses = []
            for key, column in (("billingAddress", "billing"), ("shippingAddress", "shipping")):
                current = json.loads(row[column]) if row[column] else None
                if key in fields:
                    current = fields[key] or None  # already merged by validation; {} clears
                addresses.append(current)
            billing, shipping = addresses
            db.execute(
                "UPDATE customers SET customer_code = ?, contact_name = ?, business_name = ?, cellphone = ?,"
                " billing = ?, shipping = ?, search = ?, date_updated = ? WHERE id = ?",
                (
                    code,
                    contact,
                    business,
                    cell,
                    json.dumps(billing) if billing else None,
                    json.dumps(shipping) if shipping else None,
                    search_text(code, contact, business, cell, billing, shipping),
                    self.now(),
                    customer_id,
                ),
            )
        return self.get_customer(customer_id)

    def get_customer(self, customer_id: int, include_cards: bool = True) -> dict[str, Any]:
        row = self.require_customer(customer_id)
        cards = self.list_cards(customer_id) if include_cards else []
        return self._public_customer(row, cards)

    def list_customers(
        self,
        search: str = "",
        code: str | None = None,
        limit: int = 100,
        page: int = 1,
        include_cards: bool = False,
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        params: list[Any] = []
        if code is not None:
            where.append("customer_code = ?")
            params.append(code)
        if search:
            escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("search LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        sql = "SELECT * FROM customers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id LIMIT ? OFFSET ?"
        params += [limit, (page - 1) * limit]
        rows = self.db.execute(sql, params).fetchall()
        cards_by_customer: dict[int, list[dict[str, Any]]] = {}
        if include_cards and rows:
            marks = ",".join("?" * len(rows))
            for card in self.db.execute(
                f"SELECT * FROM cards WHERE deleted = 0 AND customer_id IN ({marks}) ORDER BY id",
                [r["id"] for r in rows],
            ):
                cards_by_customer.setdefault(card["customer_id"], []).append(self._public_card(card))
        return [self._public_customer(r, cards_by_customer.get(r["id"], [])) for r in rows]

    # -- cards ------------------------------------------------------------------

    @staticmethod
    def _public_card(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "cardHolderName": row["card_holder_name"],
            "cardF6L4": row["card_f6l4"],
            "cardToken": row["card_token"],
            "cardExpiry": row["card_expiry"],
            "dateCreated": row["date_created"],
            "dateUpdated": row["date_updated"],
            "default": bool(row["is_default"]),
        }

    def list_cards(self, customer_id: int, card_token: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM cards WHERE customer_id = ? AND deleted = 0"
        params: list[Any] = [customer_id]
        if card_token:
            sql += " AND card_token = ?"
            params.append(card_token)
        return [self._public_card(r) for r in self.db.execute(sql + " ORDER BY id", params)]

    def _card_row(self, customer_id: int, card_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM cards WHERE id = ? AND customer_id = ? AND deleted = 0", (card_id, customer_id)
        ).fetchone()
        return row

    def get_card(self, customer_id: int, card_id: int) -> dict[str, Any]:
        self.require_customer(customer_id)
        row = self._card_row(customer_id, card_id)
        if row is None:
            raise StoreError(404, {"errors": "Invalid cardId"})
        return self._public_card(row)

    def delete_card(self, customer_id: int, card_id: int) -> None:
        with self.transaction() as db:
            self.require_customer(customer_id)
            if self._card_row(customer_id, card_id) is None:
                raise StoreError(404, [])  # LIVE: an already-deleted card answers 404 with body []
            db.execute(
                "UPDATE cards SET deleted = 1, is_default = 0, date_updated = ? WHERE id = ?",
                (self.now(), card_id),
            )

    def set_default_card(self, customer_id: int, card_id: int) -> dict[str, Any]:
        """PATCH .../default: the card becomes the only default; its ``dateUpdated`` moves, the customer's does not.

        LIVE: Helcim leaves the customer's ``dateUpdated`` as it was (the record it
        answers and a later list read both show the earlier value).
        """
        with self.transaction() as db:
            self.require_customer(customer_id)
            if self._card_row(customer_id, card_id) is None:
                raise StoreError(400, {"errors": "Invalid card id."})
            now = self.now()
            db.execute(
                "UPDATE cards SET is_default = 0, date_updated = ? WHERE customer_id = ? AND id != ?"
                " AND is_default = 1 AND deleted = 0",
                (now, customer_id, card_id),
            )
            db.execute("UPDATE cards SET is_default = 1, date_updated = ? WHERE id = ?", (now, card_id))
        return {"customer": self.internal_customer(customer_id)}

    def internal_customer(self, customer_id: int) -> dict[str, Any]:
        """Helcim's internal customer record, as set-default-card answers it: exactly the recorded keys, in order.

        LIVE (``../shared/reference/helcim-customer-api.md``): ``defaultLanguage``
        an integer, ``cellPhone`` in camel case, ``cards`` an empty list although
        the customer holds cards.
        """
        row = self.require_customer(customer_id)
        default = self.db.execute(
            "SELECT id FROM cards WHERE customer_id = ? AND is_default = 1 AND deleted = 0 ORDER BY id LIMIT 1",
            (customer_id,),
        ).fetchone()
        return {
            "id": row["id"],
            "dateCreated": row["date_created"],
            "dateUpdated": row["date_updated"] or row["date_created"],
            "merchantId": MERCHANT_ID,
            "defaultCard": int(default[0]) if default else 0,
            "defaultLanguage": 1,
            "defaultBankAccount": row["default_bank_id"],
            "customerCode": row["customer_code"],
            "userGoogleId": "",
            "userFacebookId": "",
            "businessName": row["business_name"],
            "contactName": row["contact_name"],
            "billingAddressId": row["id"] * 2 if row["billing"] else 0,
            "shippingAddressId": row["id"] * 2 + 1 if row["shipping"] else 0,
            "createdBy": 0,
            "password": "",
            "passwordExpiry": ZERO_DATE,
            "loginStatus": 0,
            "loginAttempts": 0,
            "cellPhone": row["cellphone"],
            "lastIpAddress": "",
            "lastPIN": "",
            "lastLoginDate": ZERO_DATE,
            "acceptsMarketing": 0,
            "taxExempt": 0,
            "wholesale": 0,
            "vatNumber": "",
            "cards": [],
        }

    def add_card(
        self,
        customer_id: int,
        *,
        holder: str,
        f6l4: str,
        expiry: str,
        default: bool = False,
        token: str | None = None,
        date_created: str | None = None,
    ) -> dict[str, Any]:
        """Sandbox only: store a card as a payment would."""
        with self.transaction() as db:
            self.require_customer(customer_id)
            card_id = self.next_id("cards")
            when = date_created or self.now()
            db.execute(
                "INSERT INTO cards (id, customer_id, card_holder_name, card_f6l4, card_token, card_expiry,"
                " date_created, date_updated, is_default) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (card_id, customer_id, holder, f6l4, token or new_token(), expiry, when, when, int(default)),
            )
            row = self._card_row(customer_id, card_id)
        assert row is not None
        return self._public_card(row)

    # -- bank accounts ----------------------------------------------------------

    @staticmethod
    def _public_bank(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "customerId": row["customer_id"],
            "dateCreated": row["date_created"],
            "dateUpdated": row["date_updated"],
            "dateLastUsed": row["date_last_used"],
            "dateVerified": row["date_verified"],
            "bankToken": row["bank_token"],
            "accountType": row["account_type"],
            "accountCorporate": row["account_corporate"],
            "verified": row["verified"],
            "ready": row["ready"],
            "bankIdNumber": row["bank_id_number"],
            "transitNumber": row["transit_number"],
            "routingNumber": row["routing_number"],
            "bankAccountNumberL4": row["account_l4"],
            "address": json.loads(row["address"]),
        }

    def list_banks(
        self,
        customer_id: int,
        token: str | None = None,
        verified: int | None = None,
        ready: int | None = None,
    ) -> list[dict[str, Any]]:
        self.require_customer(customer_id)
        sql = "SELECT * FROM bank_accounts WHERE customer_id = ? AND deleted = 0"
        params: list[Any] = [customer_id]
        for column, value in (("bank_token", token), ("verified", verified), ("ready", ready)):
            if value is not None and value != "":
                sql += f" AND {column} = ?"
                params.append(value)
        return [self._public_bank(r) for r in self.db.execute(sql + " ORDER BY id", params)]

    def _bank_row(self, customer_id: int, bank_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM bank_accounts WHERE id = ? AND customer_id = ? AND deleted = 0",
            (bank_id, customer_id),
        ).fetchone()
        return row

    def require_bank(self, customer_id: int, bank_id: int) -> sqlite3.Row:
        self.require_customer(customer_id)
        row = self._bank_row(customer_id, bank_id)
        if row is None:
            raise StoreError(404, {"message": "Bank account not found."})
        return row

    def get_bank(self, customer_id: int, bank_id: int) -> dict[str, Any]:
        return self._public_bank(self.require_bank(customer_id, bank_id))

    def add_bank(
        self,
        customer_id: int,
        cleaned: dict[str, Any],
        *,
        verified: bool = False,
        ready: bool = False,
        date_created: str | None = None,
        with_pad: bool = True,
    ) -> int:
        """Create a bank account (API create, or sandbox add with chosen flags).

        The API create e-mails the customer an authorisation request: the
        sandbox records that as a pending PAD agreement when ``with_pad``.
        """
        with self.transaction() as db:
            self.require_customer(customer_id)
            bank_id = self.next_id("bank_accounts")
            when = date_created or self.now()
            db.execute(
                "INSERT INTO bank_accounts (id, customer_id, date_created, date_updated, date_last_used,"
                " date_verified, bank_token, account_type, account_corporate, verified, ready, bank_id_number,"
                " transit_number, routing_number, account_l4, address) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    bank_id,
                    customer_id,
                    when,
                    when,
                    ZERO_DATE,
                    when if verified else ZERO_DATE,
                    new_token(),
                    cleaned["account_type"],
                    cleaned["account_corporate"],
                    int(verified),
                    int(ready),
                    cleaned["bank_id_number"],
                    cleaned["transit_number"],
                    cleaned["routing_number"],
                    cleaned["account_l4"],
                    json.dumps(cleaned["address"]),
                ),
            )
            if with_pad:
                self._insert_pad(customer_id, bank_id, accepted=0, status=1, when=when)
        return bank_id

    def delete_bank(self, customer_id: int, bank_id: int) -> None:
        """DELETE a bank account; its PAD agreements are revoked too."""
        with self.transaction() as db:
            self.require_bank(customer_id, bank_id)
            now = self.now()
            db.execute(
                "UPDATE bank_accounts SET deleted = 1, ready = 0, date_updated = ? WHERE id = ?",
                (now, bank_id),
            )
            db.execute(
                "UPDATE pads SET status = 2, date_revoked = ?, date_updated = ? WHERE bank_account_id = ?"
                " AND date_revoked = ?",
                (now, now, bank_id, ZERO_DATE),
            )
            db.execute(
                "UPDATE customers SET default_bank_id = 0 WHERE id = ? AND default_bank_id = ?",
                (customer_id, bank_id),
            )

    def set_default_bank(self, customer_id: int, bank_id: int) -> list[dict[str, Any]]:
        with self.transaction() as db:
            self.require_bank(customer_id, bank_id)
            # like set-default-card (LIVE), the customer's dateUpdated stays as it was (sandbox choice)
            db.execute("UPDATE customers SET default_bank_id = ? WHERE id = ?", (bank_id, customer_id))
        return [self.get_bank(customer_id, bank_id)]

    # -- PADs -------------------------------------------------------------------

    @staticmethod
    def _public_pad(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "accepted": row["accepted"],
            "bankAccountId": row["bank_account_id"],
            "customerId": row["customer_id"],
            "merchantId": MERCHANT_ID,
            "ipAddress": row["ip_address"],
            "type": row["type"],
            "status": row["status"],
            "dateCreated": row["date_created"],
            "dateUpdated": row["date_updated"],
            "dateAccepted": row["date_accepted"],
            "dateEarliestDebit": row["date_earliest_debit"],
            "dateRevoked": row["date_revoked"],
        }

    def _insert_pad(
        self,
        customer_id: int,
        bank_id: int,
        *,
        accepted: int,
        status: int,
        when: str,
        pad_type: int = 1,
        ip: str = "",
        date_accepted: str = ZERO_DATE,
        date_revoked: str = ZERO_DATE,
        date_earliest_debit: str = ZERO_DATE,
    ) -> int:
        pad_id = self.next_id("pads")
        self.db.execute(
            "INSERT INTO pads (id, customer_id, bank_account_id, accepted, ip_address, type, status, date_created,"
            " date_updated, date_accepted, date_earliest_debit, date_revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pad_id,
                customer_id,
                bank_id,
                accepted,
                ip,
                pad_type,
                status,
                when,
                when,
                date_accepted,
                date_earliest_debit,
                date_revoked,
            ),
        )
        return pad_id

    def list_pads(self, customer_id: int) -> list[dict[str, Any]]:
        self.require_customer(customer_id)
        rows = self.db.execute("SELECT * FROM pads WHERE customer_id = ? ORDER BY id", (customer_id,))
        return [self._public_pad(r) for r in rows]

    def _pad_row(self, customer_id: int, bank_id: int, pad_id: int) -> sqlite3.Row:
        self.require_customer(customer_id)
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM pads WHERE id = ? AND customer_id = ? AND bank_account_id = ?",
            (pad_id, customer_id, bank_id),
        ).fetchone()
        if row is None:
            raise StoreError(404, {"message": "PAD not found."})
        return row

    def get_pad(self, customer_id: int, bank_id: int, pad_id: int) -> dict[str, Any]:
        return self._public_pad(self._pad_row(customer_id, bank_id, pad_id))

    def _refresh_ready(self, bank_id: int) -> None:
        """A bank account is ready while it has an accepted, active, unrevoked PAD."""
        self.db.execute(
            "UPDATE bank_accounts SET ready = EXISTS (SELECT 1 FROM pads WHERE bank_account_id = ?"
            " AND accepted = 1 AND status = 1 AND date_revoked = ?), date_updated = ? WHERE id = ?",
            (bank_id, ZERO_DATE, self.now(), bank_id),
        )

    def update_pad(
        self, customer_id: int, bank_id: int, pad_id: int, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT a PAD: accepted/status changes move the bank account's ``ready`` flag."""
        with self.transaction() as db:
            row = self._pad_row(customer_id, bank_id, pad_id)
            accepted = changes.get("accepted", row["accepted"])
            status = changes.get("status", row["status"])
            if status == 1 and row["status"] != 1:
                other = db.execute(
                    "SELECT id FROM pads WHERE bank_account_id = ? AND status = 1 AND id != ?",
                    (bank_id, pad_id),
                ).fetchone()
                if other is not None:
                    raise StoreError(
                        400,
                        {
                            "message": f"Bank account already has an active PAD (#{other[0]}); only one is allowed."
                        },
                    )
            now = self.now()
            date_accepted = row["date_accepted"]
            if accepted == 1 and row["accepted"] != 1:
                date_accepted = now
            date_revoked = row["date_revoked"]
            if status == 2 and row["status"] != 2 and date_revoked == ZERO_DATE:
                date_revoked = now
            elif status == 1 and row["status"] == 2:
                date_revoked = ZERO_DATE
            db.execute(
                "UPDATE pads SET accepted = ?, status = ?, type = ?, ip_address = ?, date_accepted = ?,"
                " date_revoked = ?, date_updated = ? WHERE id = ?",
                (
                    accepted,
                    status,
                    changes.get("type", row["type"]),
                    changes.get("ipAddress", row["ip_address"]),
                    date_accepted,
                    date_revoked,
                    now,
                    pad_id,
                ),
            )
            self._refresh_ready(bank_id)
        return self.get_pad(customer_id, bank_id, pad_id)

    def add_pad(
        self,
        customer_id: int,
        bank_id: int,
        state: str,
        *,
        date_created: str | None = None,
        pad_type: int = 1,
    ) -> dict[str, Any]:
        """Sandbox only: a PAD agreement in state pending, accepted or revoked."""
        with self.transaction():
            self.require_bank(customer_id, bank_id)
            when = date_created or self.now()
            accepted, status, date_accepted, date_revoked = pad_state_columns(state, when)
            pad_id = self._insert_pad(
                customer_id,
                bank_id,
                accepted=accepted,
                status=status,
                when=when,
                pad_type=pad_type,
                date_accepted=date_accepted,
                date_revoked=date_revoked,
                date_earliest_debit=date_accepted,
            )
            self._refresh_ready(bank_id)
        return self.get_pad(customer_id, bank_id, pad_id)

    def set_pad_state(self, pad_id: int, state: str) -> dict[str, Any]:
        """Sandbox only: move a PAD to pending, accepted or revoked, as the customer would."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM pads WHERE id = ?", (pad_id,)).fetchone()
            if row is None:
                raise StoreError(404, {"message": "PAD not found."})
            now = self.now()
            accepted, status, date_accepted, date_revoked = pad_state_columns(state, now)
            if state == "accepted" and row["date_accepted"] != ZERO_DATE:
                date_accepted = row["date_accepted"]
            db.execute(
                "UPDATE pads SET accepted = ?, status = ?, date_accepted = ?, date_revoked = ?, date_updated = ?"
                " WHERE id = ?",
                (accepted, status, date_accepted, date_revoked, now, pad_id),
            )
            self._refresh_ready(row["bank_account_id"])
        return self.get_pad(row["customer_id"], row["bank_account_id"], pad_id)

    def set_bank_flags(self, customer_id: int, bank_id: int, verified: bool) -> dict[str, Any]:
        """Sandbox only: mark a bank account verified (micro-deposits confirmed) or not."""
        with self.transaction() as db:
            self.require_bank(customer_id, bank_id)
            now = self.now()
            db.execute(
                "UPDATE bank_accounts SET verified = ?, date_verified = ?, date_updated = ? WHERE id = ?",
                (int(verified), now if verified else ZERO_DATE, now, bank_id),
            )
        return self.get_bank(customer_id, bank_id)

    # -- bulk load (seeding) ----------------------------------------------------

    def bulk_insert(
        self,
        customers: Iterable[Sequence[Any]],
        cards: Iterable[Sequence[Any]] = (),
        banks: Iterable[Sequence[Any]] = (),
        pads: Iterable[Sequence[Any]] = (),
        next_cst: int | None = None,
    ) -> None:
        """Insert pre-built rows in one transaction (column order as in SCHEMA)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO customers (id, customer_code, contact_name, business_name, cellphone, billing, shipping,"
                " search, date_created, date_updated, default_bank_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                customers,
            )
            db.executemany(
                "INSERT INTO cards (id, customer_id, card_holder_name, card_f6l4, card_token, card_expiry,"
                " date_created, date_updated, is_default, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                cards,
            )
            db.executemany(
                "INSERT INTO bank_accounts (id, customer_id, date_created, date_updated, date_last_used,"
                " date_verified, bank_token, account_type, account_corporate, verified, ready, bank_id_number,"
                " transit_number, routing_number, account_l4, address, deleted)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                banks,
            )
            db.executemany(
                "INSERT INTO pads (id, customer_id, bank_account_id, accepted, ip_address, type, status,"
                " date_created, date_updated, date_accepted, date_earliest_debit, date_revoked)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                pads,
            )
            if next_cst is not None:
                current = int(self._meta("next_cst") or FIRST_CST)
                self._set_meta("next_cst", str(max(current, next_cst)))


def pad_state_columns(state: str, when: str) -> tuple[int, int, str, str]:
    """(accepted, status, dateAccepted, dateRevoked) of a PAD in a named state."""
    if state == "pending":
        return 0, 1, ZERO_DATE, ZERO_DATE
    if state == "accepted":
        return 1, 1, when, ZERO_DATE
    if state == "revoked":
        return 1, 2, when, when
    raise StoreError(400, {"message": f"unknown PAD state {state!r}: use pending, accepted or revoked"})
