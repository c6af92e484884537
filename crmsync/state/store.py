"""The SQLite state store: what crmsync remembers between nights.

One file per merchant account (``--state FILE``, ``CRMSYNC_STATE_DB``, default
``$XDG_STATE_HOME/crmsync/state.db``), created with mode 0600 because it holds
customer data. Its schema is versioned (``PRAGMA user_version``) and migrated
forward on open.

Tables:

``links``
    crm_id ↔ Helcim customer id and code, and how the link was made
    (``created`` by crmsync, ``code`` found under the same code, ``approved``
    match); ``link_rejections`` the proposals a person turned down.
``base``
    per linked customer, the value of every synced field that both sides last
    agreed on (normalised): the third side of the three-way diff.
``helcim_customers``, ``helcim_cards``, ``helcim_banks``, ``helcim_pads``
    the snapshot cache (normalised, no tokens, no full numbers), each row with
    the time it was fetched, so a budget-limited run still diffs against the
    last known data and says how old it is.
``bank_refresh``, ``card_signatures``
    when each customer's bank accounts and PADs were last read, and a digest
    of its cards then and now (the refresh's "changed" signal).
``snapshot_cursor``
    where the rolling customer paging resumes.
``runs``
    one row per command run: start, end, status, exit code, summary.
``journal``
    the write-ahead log of Helcim writes: the intent before, the outcome
    after. Writes left ``pending`` by a killed run are resolved by looking
    them up on the next run.
``deferred``
    operations a run could not afford, so the next night starts with them.
``findings_seen``
    the findings of the latest morning report, one row per finding key, with
    when each was first seen: the next report says what is new and resolved.
``actions``
    the journal of ``crmsync act``: each approved action's intent before it is
    sent, its outcome after (see :mod:`crmsync.state.review`).
``proposals``
    the actions the latest morning report proposed (with ``meta``'s
    ``proposed_at``): ``crmsync act`` does no other.

A state file belongs to one Helcim account: the API URL is recorded on first
use and another URL is refused (:class:`~crmsync.errors.AccountMismatchError`).
Likewise the CRM's key (the profile, ``crm_id`` or ``email``, the column): a
night whose export is keyed otherwise is refused unless the change is allowed
(:class:`~crmsync.errors.KeyChangeError`, :meth:`StateStore.bind_crm_key`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.errors import (
    EXIT_PARTIAL,
    AccountMismatchError,
    CrmsyncError,
    Interrupted,
    KeyChangeError,
    StateError,
)
from crmsync.schemas.helcim import SYNCED_FIELDS
from crmsync.state.cache import SnapshotCache
from crmsync.state.clock import utcnow
from crmsync.state.review import ReviewLog

_FIELD_COLUMNS = ", ".join(f"{f} TEXT NOT NULL DEFAULT ''" for f in SYNCED_FIELDS)
_BASE_COLUMNS = ", ".join(f"{f} TEXT" for f in SYNCED_FIELDS)  # NULL: no agreed value yet

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    f"""
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE links (
        crm_id TEXT PRIMARY KEY,
        helcim_id INTEGER NOT NULL UNIQUE,
        customer_code TEXT NOT NULL,
        how TEXT NOT NULL CHECK (how IN ('created', 'code', 'approved')),
        linked_at TEXT NOT NULL
    );
    CREATE TABLE base (crm_id TEXT PRIMARY KEY, {_BASE_COLUMNS}, agreed_at TEXT NOT NULL);
    CREATE TABLE helcim_customers (
        helcim_id INTEGER PRIMARY KEY,
        customer_code TEXT NOT NULL,
        {_FIELD_COLUMNS},
        date_created TEXT NOT NULL DEFAULT '',
        date_updated TEXT NOT NULL DEFAULT '',
        page INTEGER NOT NULL,
        fetched_at TEXT NOT NULL
    );
    CREATE INDEX helcim_customers_code ON helcim_customers (customer_code);
    CREATE TABLE helcim_cards (
        card_id INTEGER PRIMARY KEY,
        helcim_id INTEGER NOT NULL,
        holder TEXT NOT NULL,
        f6l4 TEXT NOT NULL,
        expiry TEXT NOT NULL,
        is_default INTEGER NOT NULL,
        date_created TEXT NOT NULL,
        fetched_at TEXT NOT NULL
    );
    CREATE INDEX helcim_cards_customer ON helcim_cards (helcim_id);
    CREATE TABLE helcim_banks (
        bank_id INTEGER PRIMARY KEY,
        helcim_id INTEGER NOT NULL,
        account_type TEXT NOT NULL,
        corporate TEXT NOT NULL,
        verified INTEGER NOT NULL,
        ready INTEGER NOT NULL,
        country TEXT NOT NULL,
        institution TEXT NOT NULL,
        transit TEXT NOT NULL,
        routing TEXT NOT NULL,
        last4 TEXT NOT NULL,
        date_created TEXT NOT NULL,
        date_verified TEXT NOT NULL,
        date_last_used TEXT NOT NULL,
        fetched_at TEXT NOT NULL
    );
    CREATE INDEX helcim_banks_customer ON helcim_banks (helcim_id);
    CREATE TABLE helcim_pads (
        pad_id INTEGER PRIMARY KEY,
        helcim_id INTEGER NOT NULL,
        bank_id INTEGER NOT NULL,
        state TEXT NOT NULL,
        accepted INTEGER NOT NULL,
        active INTEGER NOT NULL,
        pad_type INTEGER NOT NULL,
        date_created TEXT NOT NULL,
        date_accepted TEXT NOT NULL,
        date_revoked TEXT NOT NULL,
        fetched_at TEXT NOT NULL
    );
    CREATE INDEX helcim_pads_customer ON helcim_pads (helcim_id);
    CREATE TABLE bank_refresh (
        helcim_id INTEGER PRIMARY KEY,
        refreshed_at TEXT NOT NULL,
        customer_updated TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE snapshot_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), next_page INTEGER NOT NULL,
                                  complete_at TEXT NOT NULL DEFAULT '');
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'running',
        exit_code INTEGER,
        summary TEXT NOT NULL DEFAULT '{{}}'
    );
    CREATE TABLE journal (
        op_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        plan_id TEXT NOT NULL,
        crm_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        customer_code TEXT NOT NULL,
        helcim_id INTEGER,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        outcome TEXT NOT NULL DEFAULT '',
        body TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        finished_at TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX journal_state ON journal (state);
    CREATE INDEX journal_crm ON journal (crm_id);
    CREATE TABLE link_rejections (
        crm_id TEXT NOT NULL,
        helcim_id INTEGER NOT NULL,
        decided_at TEXT NOT NULL,
        PRIMARY KEY (crm_id, helcim_id)
    );
    CREATE TABLE deferred (
        crm_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL
    );
    """,
    # 2: the morning review (issue 13): the bank refresh's card signal, the findings of the latest report,
    # the journal of approved actions
    """
    ALTER TABLE bank_refresh ADD COLUMN cards_seen TEXT NOT NULL DEFAULT '';
    CREATE TABLE card_signatures (helcim_id INTEGER PRIMARY KEY, signature TEXT NOT NULL);
    CREATE TABLE findings_seen (
        key TEXT PRIMARY KEY,
        code TEXT NOT NULL,
        severity TEXT NOT NULL,
        customer_code TEXT NOT NULL,
        helcim_id TEXT NOT NULL,
        crm_id TEXT NOT NULL,
        customer TEXT NOT NULL,
        method TEXT NOT NULL,
        detail TEXT NOT NULL,
        first_seen TEXT NOT NULL
    );
    CREATE TABLE actions (
        action_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        action TEXT NOT NULL,
        code TEXT NOT NULL,
        helcim_id INTEGER NOT NULL,
        customer_code TEXT NOT NULL,
        method_id INTEGER,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'skipped', 'uncertain')),
        outcome TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        finished_at TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX actions_customer ON actions (helcim_id, action);
    CREATE INDEX actions_finished ON actions (finished_at);
    """,
    # 3: the review's fixes: the latest report's proposed actions, so that crmsync act does only those
    """
    CREATE TABLE proposals (
        action_id TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        code TEXT NOT NULL,
        helcim_id INTEGER NOT NULL,
        customer_code TEXT NOT NULL,
        method_id INTEGER
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class JournalEntry:
    op_id: str
    run_id: str
    plan_id: str
    crm_id: str
    kind: str
    customer_code: str
    helcim_id: int | None
    state: str
    outcome: str
    body: dict[str, Any]
    error: str


def _base_upsert(fields: Sequence[str]) -> str:
    """INSERT … ON CONFLICT for crm_id, ``fields`` and agreed_at; a NULL leaves a stored field as it is."""
    columns = ("crm_id", *fields, "agreed_at")
    updates = ", ".join(
        [*(f"{f} = COALESCE(excluded.{f}, base.{f})" for f in fields), "agreed_at = excluded.agreed_at"]
    )
    return (
        f"INSERT INTO base ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT (crm_id) DO UPDATE SET {updates}"
    )


@dataclass
class RunRecord:
    """A run in progress, as :meth:`StateStore.recording` will finish it."""

    run_id: str
    status: str = "failed"
    exit_code: int = EXIT_PARTIAL
    summary: dict[str, Any] = field(default_factory=dict)


class StateStore:
    """The state file of one merchant account. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._open()

    # -- opening, permissions, migrations ------------------------------------------

    def _open(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            mode = self.path.stat().st_mode & 0o777
        except OSError as exc:
            raise StateError(f"cannot create the state store {self.path}: {exc.strerror}") from None
        if not os.access(self.path, os.W_OK) or not mode & 0o200:
            raise StateError(
                f"the state store {self.path} is read-only (mode {mode:o}): crmsync records every run and "
                "write in it; make it writable by its owner (chmod 600) or use another state store"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StateError(
                f"cannot write in the folder of the state store {folder}: SQLite keeps its journal "
                f"({self.path.name}-wal) beside the file; make the folder writable or use another state store"
            )
        if mode & 0o077:  # customer data: owner only (never loosened, never made writable here)
            with contextlib.suppress(OSError):
                os.chmod(self.path, mode & 0o700)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # the journal must survive a power cut
            self.db.execute("PRAGMA foreign_keys=ON")
            version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.OperationalError as exc:
            raise StateError(f"cannot open the state store {self.path} (SQLite says: {exc})") from None
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{self.path} is not a crmsync state store (SQLite says: {exc})") from None
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path} was written by a newer crmsync (schema {version}; this one knows {SCHEMA_VERSION})"
            )
        if version > 0:
            names = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "links" not in names:
                raise StateError(f"{self.path} is an SQLite file, but not a crmsync state store")
        elif self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            raise StateError(f"{self.path} is an SQLite file, but not a crmsync state store")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits on its own, so the migration carries its transaction.
            self.db.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[number - 1]}\nPRAGMA user_version = {number};\nCOMMIT;"
            )
        self.cache = SnapshotCache(self.db, self.transaction)
        self.review = ReviewLog(self.db, self.transaction)
        for suffix in ("-wal", "-shm"):
            sidecar = Path(f"{self.path}{suffix}")
            if sidecar.exists():
                with contextlib.suppress(OSError):
                    os.chmod(sidecar, 0o600)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta and account ----------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def bind_account(self, api_url: str) -> None:
        """Record the API this state belongs to, or refuse a different one."""
        known = self.meta("api_url")
        if known is None:
            self.set_meta("api_url", api_url)
            self.set_meta("created_at", utcnow())
        elif known != api_url:
            raise AccountMismatchError(
                f"the state store {self.path} belongs to {known}, but this run talks to {api_url}; "
                "use another state store for another account"
            )

    # -- the CRM's key -------------------------------------------------------------

    def crm_key(self) -> tuple[str, str, str] | None:
        """(profile, key kind, key column) this state store last synced the CRM's rows with, if recorded."""
        profile, key = self.meta("crm_profile"), self.meta("crm_key")
        if profile is None or key is None:
            return None
        return profile, key, self.meta("crm_key_column") or ""

    def bind_crm_key(
        self, profile: str, key: str, column: str, *, allow_change: bool = False, record_change: bool = True
    ) -> str:
        """Record how the CRM's rows are keyed — the profile, ``crm_id`` or ``email``, the column —
        or refuse another key (:class:`~crmsync.errors.KeyChangeError`): every customer would get a new
        customerCode, and every one the diff cannot match otherwise would be created a second time.

        With ``allow_change`` a change is let through (and, with ``record_change``, becomes the
        binding); the return value then says what changed ("" when nothing did). A store that recorded no key
        yet (first night, or written before this binding existed) takes this one, unless its links
        say otherwise: every linked crm_id an e-mail key (``em-…``) or none.
        """
        known = self.crm_key() or self._key_of_links(key)
        now = (profile, key, column)
        changed = known is not None and _key_differs(known, now)
        if changed and not allow_change:
            assert known is not None
            raise KeyChangeError(
                f"this export is read with {_describe_key(*now)}, but the state store {self.path} last "
                f"synced the CRM with {_describe_key(*known)}: every customer would get a new key (their "
                "customerCode), and each one Helcim cannot match otherwise would be created a second time. "
                "Export the file as before; if the new key is right, allow the change once: that night "
                "each customer is proposed as a link to its new key (link_proposals.csv) and held"
            )
        if (self.crm_key() is None and not changed) or (changed and record_change):
            for name, value in zip(("crm_profile", "crm_key", "crm_key_column"), now, strict=True):
                self.set_meta(name, value)
            if changed:
                self.set_meta("crm_key_changed_at", utcnow())
        return f"from {_describe_key(*known)} to {_describe_key(*now)}" if changed and known else ""

    def rekeyed(self) -> bool:
        """Whether a recorded change of the CRM's key still has customers to move to their new keys."""
        return bool(self.meta("crm_key_changed_at"))

    def rekeyed_done(self) -> None:
        """No customer is left to move to a new key (no proposal replaces a linked one any more)."""
        self.set_meta("crm_key_changed_at", "")

    def _key_of_links(self, key: str) -> tuple[str, str, str] | None:
        """The key kind the links imply when none was recorded: a store synced before the binding existed."""
        row = self.db.execute("SELECT COUNT(*), COALESCE(SUM(crm_id LIKE 'em-%'), 0) FROM links").fetchone()
        total, emails = int(row[0]), int(row[1])
        implied = "email" if total and emails == total else "crm_id" if total and emails == 0 else None
        return None if implied is None or implied == key else ("", implied, "")

    # -- links ----------------------------------------------------------------------

    def links(self) -> pd.DataFrame:
        """crm_id, helcim_id, customer_code, how — one row per linked customer."""
        return pd.read_sql_query(
            "SELECT crm_id, helcim_id, customer_code, how FROM links ORDER BY crm_id",
            self.db,
            dtype={"crm_id": "str", "helcim_id": "int64", "customer_code": "str", "how": "str"},
        )

    def link(self, crm_id: str, helcim_id: int, customer_code: str, how: str, *, replaces: str = "") -> None:
        """Link a CRM record and a Helcim customer; ``replaces``: the crm_id whose link moves to this one.

        A move (a CRM record whose key changed: a new e-mail, where the e-mail is the key) takes the
        old key's base and deferred writes along, so the next run still knows what both sides last
        agreed on; call it inside :meth:`transaction`, so the three move together. ``replaces``
        must still be the Helcim customer's link (else the proposal is out of date and nothing is
        unlinked); the move done already (this crm_id holds the link) is nothing to do.
        """
        existing = self.db.execute("SELECT crm_id FROM links WHERE helcim_id = ?", (helcim_id,)).fetchone()
        if replaces and (existing is None or existing[0] not in (replaces, crm_id)):
            holder = "not linked to crm_id" if existing is None else f"linked to crm_id {existing[0]}, not"
            raise StateError(
                f"Helcim customer {helcim_id} is {holder} {replaces}: the link proposal is out of date "
                "(the links changed since it was written); plan again and decide on the new proposals"
            )
        if replaces and existing is not None and existing[0] == replaces and replaces != crm_id:
            self._move_key(replaces, crm_id)
        elif existing is not None and existing[0] != crm_id:
            raise StateError(f"Helcim customer {helcim_id} is already linked to crm_id {existing[0]}")
        self.db.execute(
            "INSERT INTO links (crm_id, helcim_id, customer_code, how, linked_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (crm_id) DO UPDATE SET helcim_id = excluded.helcim_id,"
            " customer_code = excluded.customer_code, how = excluded.how, linked_at = excluded.linked_at",
            (crm_id, helcim_id, customer_code, how, utcnow()),
        )

    def _move_key(self, old: str, new: str) -> None:
        """A CRM record's link, base and deferred writes move from crm_id ``old`` to ``new``."""
        self.db.execute("DELETE FROM links WHERE crm_id = ?", (old,))
        for table in ("base", "deferred"):
            if self.db.execute(f"SELECT 1 FROM {table} WHERE crm_id = ?", (old,)).fetchone() is not None:
                self.db.execute(f"DELETE FROM {table} WHERE crm_id = ?", (new,))
                self.db.execute(f"UPDATE {table} SET crm_id = ? WHERE crm_id = ?", (new, old))

    def created_since(self, moment: str) -> set[int]:
        """Helcim ids of the customers crmsync created (linked as ``created``) at or after ``moment``."""
        rows = self.db.execute(
            "SELECT helcim_id FROM links WHERE how = 'created' AND linked_at >= ?", (moment,)
        )
        return {int(r[0]) for r in rows}

    def reject_link(self, crm_id: str, helcim_id: int) -> None:
        """A person said this CRM row and this Helcim customer are not the same."""
        self.db.execute(
            "INSERT OR REPLACE INTO link_rejections (crm_id, helcim_id, decided_at) VALUES (?, ?, ?)",
            (crm_id, helcim_id, utcnow()),
        )

    def rejected_links(self) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT crm_id, helcim_id FROM link_rejections ORDER BY crm_id, helcim_id",
            self.db,
            dtype={"crm_id": "str", "helcim_id": "int64"},
        )

    # -- base -----------------------------------------------------------------------

    def base(self) -> pd.DataFrame:
        """crm_id plus every synced field, as both sides last agreed (normalised)."""
        columns = ", ".join(("crm_id", *SYNCED_FIELDS))
        return pd.read_sql_query(
            f"SELECT {columns} FROM base ORDER BY crm_id",
            self.db,
            dtype=dict.fromkeys(("crm_id", *SYNCED_FIELDS), "str"),
        )

    def set_base(self, rows: pd.DataFrame) -> int:
        """Record agreed values: ``rows`` holds crm_id and some synced fields; None/NaN leaves a field as is."""
        if rows.empty:
            return 0
        fields = [f for f in SYNCED_FIELDS if f in rows.columns]
        now = utcnow()
        columns = ["crm_id", *fields]
        values = rows.loc[:, columns].astype(object).where(rows.loc[:, columns].notna(), None)
        self.db.executemany(
            _base_upsert(fields), ((*row, now) for row in values.itertuples(index=False, name=None))
        )
        return len(values)

    def set_base_row(self, crm_id: str, values: dict[str, str | None]) -> None:
        """:meth:`set_base` for one customer, without a DataFrame (the loader calls it per write)."""
        fields = [f for f in SYNCED_FIELDS if f in values]
        self.db.execute(
            _base_upsert(fields),
            (crm_id, *(values[f] for f in fields), utcnow()),
        )

    # -- runs -----------------------------------------------------------------------

    def start_run(self, command: str) -> str:
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
        self.db.execute(
            "INSERT INTO runs (run_id, command, started_at) VALUES (?, ?, ?)", (run_id, command, utcnow())
        )
        return run_id

    def finish_run(self, run_id: str, status: str, exit_code: int, summary: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished_at = ?, status = ?, exit_code = ?, summary = ? WHERE run_id = ?",
            (utcnow(), status, exit_code, json.dumps(summary, default=str), run_id),
        )

    @contextmanager
    def recording(
        self, command: str, summary: dict[str, Any], *, always: Callable[[], dict[str, Any]] | None = None
    ) -> Iterator[RunRecord]:
        """Record a run from start to finish, whatever ends it.

        The caller fills ``record.status``, ``record.exit_code`` and
        ``record.summary`` on success; an exception finishes the run as failed
        with the exception's exit code (1 for one that is not crmsync's own).
        ``always`` adds facts known only at the end (calls spent), either way.
        """
        record = RunRecord(self.start_run(command), summary=dict(summary))
        try:
            yield record
        except CrmsyncError as error:
            record.status = "interrupted" if isinstance(error, Interrupted) else "failed"
            record.exit_code = error.exit_code
            record.summary.setdefault("error", str(error))
            raise
        except Exception as error:  # not ours (a bug): the run still ends on record
            record.status, record.exit_code = "failed", EXIT_PARTIAL
            record.summary.setdefault("error", f"{type(error).__name__}: {error}")
            raise
        except BaseException as error:  # a second Ctrl-C, SystemExit: stopped at once, journal intact
            record.status = "interrupted"
            record.exit_code = (
                error.code if isinstance(error, SystemExit) and isinstance(error.code, int) else 130
            )
            record.summary.setdefault("error", f"stopped at once ({type(error).__name__})")
            raise
        finally:
            if always is not None:
                record.summary |= always()
            self.finish_run(record.run_id, record.status, record.exit_code, record.summary)

    def previous_run(self, command: str, before: str | None = None) -> dict[str, Any] | None:
        """The latest finished run of ``command`` (before ``before``), with its summary."""
        sql = "SELECT run_id, started_at, finished_at, status, exit_code, summary FROM runs WHERE command = ?"
        params: list[Any] = [command]
        sql += " AND finished_at != ''"
        if before is not None:
            sql += " AND run_id < ?"
            params.append(before)
        row = self.db.execute(sql + " ORDER BY run_id DESC LIMIT 1", params).fetchone()
        if row is None:
            return None
        return {
            "run_id": row[0],
            "started_at": row[1],
            "finished_at": row[2],
            "status": row[3],
            "exit_code": row[4],
            "summary": json.loads(row[5]),
        }

    def previous_reconciliation(self) -> dict[str, Any] | None:
        """The reconciliation summary the latest finished ``run`` or ``reconcile`` recorded (key ``reconciliation``)."""
        rows = self.db.execute(
            "SELECT summary FROM runs WHERE finished_at != '' AND status IN ('ok', 'partial')"
            " ORDER BY run_id DESC LIMIT 50"
        ).fetchall()
        for (text,) in rows:
            summary = json.loads(text)
            found = summary.get("reconciliation") if isinstance(summary, dict) else None
            if isinstance(found, dict):
                return found
        return None

    # -- journal --------------------------------------------------------------------

    def journal_intent(
        self,
        op_id: str,
        run_id: str,
        plan_id: str,
        crm_id: str,
        kind: str,
        code: str,
        helcim_id: int | None,
        body: dict[str, Any],
    ) -> None:
        """Record a write before it is sent (committed to disk before the request leaves)."""
        self.db.execute(
            "INSERT INTO journal (op_id, run_id, plan_id, crm_id, kind, customer_code, helcim_id, state, body,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)"
            " ON CONFLICT (op_id) DO UPDATE SET run_id = excluded.run_id, state = 'pending', error = ''",
            (op_id, run_id, plan_id, crm_id, kind, code, helcim_id, json.dumps(body), utcnow()),
        )

    def journal_outcome(
        self, op_id: str, state: str, outcome: str, helcim_id: int | None = None, error: str = ""
    ) -> None:
        self.db.execute(
            "UPDATE journal SET state = ?, outcome = ?, helcim_id = COALESCE(?, helcim_id), error = ?,"
            " finished_at = ? WHERE op_id = ?",
            (state, outcome, helcim_id, error, utcnow(), op_id),
        )

    def journal_entries(
        self, *, state: str | None = None, op_ids: Iterable[str] | None = None
    ) -> list[JournalEntry]:
        sql = (
            "SELECT op_id, run_id, plan_id, crm_id, kind, customer_code, helcim_id, state, outcome, body, error"
            " FROM journal"
        )
        clauses: list[str] = []
        params: list[Any] = []
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if op_ids is not None:
            ids = list(op_ids)
            if not ids:
                return []
            clauses.append(f"op_id IN ({','.join('?' * len(ids))})")
            params += ids
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self.db.execute(sql + " ORDER BY created_at, op_id", params).fetchall()
        return [
            JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]), r[10])
            for r in rows
        ]

    # -- deferred -------------------------------------------------------------------

    def deferred(self) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT crm_id, kind, reason, since FROM deferred ORDER BY since, crm_id",
            self.db,
            dtype={"crm_id": "str", "kind": "str", "reason": "str", "since": "str"},
        )

    def set_deferred(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Replace the deferred list with (crm_id, kind, reason); keep the first ``since`` of each."""
        now = utcnow()
        with self.transaction() as db:
            old = {r[0]: r[1] for r in db.execute("SELECT crm_id, since FROM deferred")}
            db.execute("DELETE FROM deferred")
            db.executemany(
                "INSERT INTO deferred (crm_id, kind, reason, since) VALUES (?, ?, ?, ?)",
                ((crm_id, kind, reason, old.get(crm_id, now)) for crm_id, kind, reason in rows),
            )


def _key_differs(known: tuple[str, str, str], now: tuple[str, str, str]) -> bool:
    """Another profile (when one was recorded), key kind or key column (spelled in any case)."""
    profile, key, column = known
    if key != now[1] or (profile and profile != now[0]):
        return True
    return bool(column) and column.strip().casefold() != now[2].strip().casefold()


def _describe_key(profile: str, key: str, column: str) -> str:
    how = (
        f'its id column "{column}"'
        if key == "crm_id"
        else f'the e-mail ("{column}")'
        if column
        else "the e-mail"
    )
    if key == "crm_id" and not column:
        how = "its id column"
    return f"the {profile} profile, keyed by {how}" if profile else f"rows keyed by {how}"


def real_state_path(path: Path) -> Path:
    """The state file's real path: symlinks and ``..`` resolved, so every name for it is one store."""
    return Path(os.path.realpath(path))


def open_state(path: Path) -> StateStore:
    """Open (creating and migrating as needed) the state store at ``path`` (its real path)."""
    return StateStore(real_state_path(path))
