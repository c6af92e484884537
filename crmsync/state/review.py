"""The morning review inside the state store: the latest report's findings, and the journal of approved actions.

``findings_seen`` holds the findings of the latest morning report, one row per
finding key (code, customer, payment method), with the day each was first
seen: the next report compares its findings with these to say what is new
and what is resolved, then replaces them (:meth:`ReviewLog.replace_findings`).

``proposals`` holds the actions the latest report proposed (replaced by each
report, :meth:`ReviewLog.replace_proposals`): ``crmsync act`` refuses any other.

``actions`` is the journal of ``crmsync act``, kept like the write journal:
the intent is committed **before** the request leaves (``pending``), the
outcome after (``done``, ``failed`` — certainly not performed —, ``skipped``
— its finding no longer held —, or ``uncertain`` — sent, answer lost). An
action done is never repeated; one that e-mails the customer is never sent
again once it may have left (``pending`` or ``uncertain``): it blocks its
customer, however old, until a person who looked in Helcim says whether it
was sent (:meth:`ReviewLog.resolve_email`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pandas as pd

from crmsync.errors import UsageError
from crmsync.schemas.reconciliation import SEEN_COLUMNS
from crmsync.state.clock import utcnow

__all__ = [
    "ACTION_STATES",
    "EMAIL_ACTIONS",
    "EMAIL_VERDICTS",
    "PROPOSAL_COLUMNS",
    "ActionEntry",
    "ReviewLog",
]

Transaction = Callable[[], AbstractContextManager[sqlite3.Connection]]

ACTION_STATES = ("pending", "done", "failed", "skipped", "uncertain")
#: What the state store keeps of each action the latest report proposed: what ``crmsync act`` checks a row against.
PROPOSAL_COLUMNS = ("action_id", "action", "code", "helcim_id", "customer_code", "method_id")
#: The actions that e-mail the customer (:data:`crmsync.sync.act.EMAILING`): never re-sent once they may have left.
EMAIL_ACTIONS = ("request_bank_details",)
#: What a person may find in Helcim about an uncertain e-mail → (the journal's state, the detail's wording).
EMAIL_VERDICTS = {"sent": ("done", "sent"), "not-sent": ("failed", "not sent")}
_TO_CHECK = "state IN ('pending', 'uncertain') AND action IN ({})".format(
    ", ".join(f"'{a}'" for a in EMAIL_ACTIONS)
)
_ACTION_COLUMNS = (
    "action_id, run_id, action, code, helcim_id, customer_code, method_id, state, outcome, detail,"
    " created_at, finished_at"
)


@dataclass(frozen=True)
class ActionEntry:
    action_id: str
    run_id: str
    action: str
    code: str
    helcim_id: int
    customer_code: str
    method_id: int | None
    state: str
    outcome: str
    detail: str
    created_at: str
    finished_at: str


def _entry(r: tuple[object, ...]) -> ActionEntry:
    t = [str(v) for v in r]
    method_id = None if r[6] is None else int(t[6])
    return ActionEntry(t[0], t[1], t[2], t[3], int(t[4]), t[5], method_id, t[7], t[8], t[9], t[10], t[11])


class ReviewLog:
    """The review tables of one state store (its connection and transactions)."""

    def __init__(self, db: sqlite3.Connection, transaction: Transaction) -> None:
        self.db = db
        self.transaction = transaction

    # -- the latest report's findings -------------------------------------------------

    def previous_findings(self) -> pd.DataFrame:
        """SEEN_COLUMNS of the latest report's findings (empty before the first report)."""
        return pd.read_sql_query(
            f"SELECT {', '.join(SEEN_COLUMNS)} FROM findings_seen ORDER BY key",
            self.db,
            dtype=dict.fromkeys(SEEN_COLUMNS, "str"),
        )

    def reviewed_at(self) -> str | None:
        """When the latest report's findings were recorded (None before the first report)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'reviewed_at'").fetchone()
        return None if row is None else str(row[0])

    def replace_findings(self, findings: pd.DataFrame) -> None:
        """This report's findings (SEEN_COLUMNS) replace the previous ones, with the time, in one transaction."""
        rows = findings.loc[:, list(SEEN_COLUMNS)].drop_duplicates("key").astype("str")
        marks = ", ".join("?" * len(SEEN_COLUMNS))
        with self.transaction() as db:
            db.execute("DELETE FROM findings_seen")
            db.executemany(
                f"INSERT INTO findings_seen ({', '.join(SEEN_COLUMNS)}) VALUES ({marks})",
                rows.itertuples(index=False, name=None),
            )
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('reviewed_at', ?)", (utcnow(),))

    # -- the latest report's proposed actions -------------------------------------------

    def replace_proposals(self, actions: pd.DataFrame) -> None:
        """This report's proposed actions (PROPOSAL_COLUMNS) replace the previous report's, with the time."""
        rows = actions.loc[:, list(PROPOSAL_COLUMNS)].astype("str").itertuples(index=False, name=None)
        with self.transaction() as db:
            db.execute("DELETE FROM proposals")
            # ids arrive as text: the INTEGER columns store them as integers; no method id is NULL
            db.executemany(
                f"INSERT INTO proposals ({', '.join(PROPOSAL_COLUMNS)}) VALUES (?, ?, ?, ?, ?, NULLIF(?, ''))",
                rows,
            )
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('proposed_at', ?)", (utcnow(),))

    def proposals(self) -> tuple[pd.DataFrame, str | None]:
        """The latest report's proposed actions (PROPOSAL_COLUMNS, as text; method_id "" for none) and when
        they were recorded (None before the first report)."""
        frame = pd.read_sql_query(
            f"SELECT {', '.join(PROPOSAL_COLUMNS)} FROM proposals ORDER BY action_id", self.db
        )
        frame = frame.astype({"helcim_id": "int64", "method_id": "Int64"}).astype("str").fillna("")
        row = self.db.execute("SELECT value FROM meta WHERE key = 'proposed_at'").fetchone()
        return frame, None if row is None else str(row[0])

    # -- the action journal -----------------------------------------------------------

    def _entries(self, where: str, params: Iterable[object]) -> list[ActionEntry]:
        rows = self.db.execute(
            f"SELECT {_ACTION_COLUMNS} FROM actions WHERE {where} ORDER BY created_at, action_id",
            list(params),
        ).fetchall()
        return [_entry(r) for r in rows]

    def action_entries(self, action_ids: Iterable[str]) -> dict[str, ActionEntry]:
        """The journal's entry of each of ``action_ids`` that has one."""
        ids = list(dict.fromkeys(action_ids))
        found: dict[str, ActionEntry] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start : start + 500]
            found |= {
                e.action_id: e for e in self._entries(f"action_id IN ({','.join('?' * len(chunk))})", chunk)
            }
        return found

    def actions_since(self, moment: str) -> list[ActionEntry]:
        """Actions whose outcome was recorded at or after ``moment`` (a stored moment), still pending, or
        e-mails waiting for a person's check (whenever they were tried: until :meth:`resolve_email`)."""
        return self._entries(f"finished_at >= ? OR state = 'pending' OR ({_TO_CHECK})", [moment])

    def emails_since(self, action: str, moment: str) -> dict[int, ActionEntry]:
        """helcim_id → the latest ``action`` (one that e-mails the customer) that left, or may have, since ``moment``.

        Done since ``moment``; pending or uncertain **whenever** it was tried: it may have e-mailed the
        customer, and only a person who looked in Helcim clears it (:meth:`resolve_email`), never time.
        """
        entries = self._entries(
            "action = ? AND ((state = 'done' AND created_at >= ?) OR state IN ('pending', 'uncertain'))",
            [action, moment],
        )
        return {e.helcim_id: e for e in entries}

    def bank_defaults(self) -> dict[int, int]:
        """helcim_id → the bank account crmsync act last made the customer's default (done).

        Helcim's bank-account list does not say which account is the default: this is all crmsync knows
        of it (a default changed in Helcim's own pages since is not seen).
        """
        rows = self.db.execute(
            "SELECT helcim_id, method_id FROM actions WHERE action = 'set_default_bank_account'"
            " AND state = 'done' AND method_id IS NOT NULL ORDER BY finished_at, action_id"
        ).fetchall()
        return {int(h): int(m) for h, m in rows}

    def resolve_email(self, action_id: str, verdict: str, *, record: bool = True) -> ActionEntry:
        """What a person found in Helcim about an e-mail whose outcome is uncertain (or left pending).

        ``sent``: it is recorded as done when it was tried (the customer is not asked again within the
        pending window from then); ``not-sent``: as failed (a later report may propose it again).
        Raises :class:`UsageError` for a verdict or an action that is not one of those. With ``record``
        False, only checks.
        """
        if verdict not in EMAIL_VERDICTS:
            raise UsageError(f"{action_id}: say sent or not-sent (what Helcim shows), not {verdict!r}")
        with self.transaction():
            entry = self.action_entries([action_id]).get(action_id)
            if (
                entry is None
                or entry.action not in EMAIL_ACTIONS
                or entry.state not in ("pending", "uncertain")
            ):
                found = "not in the journal" if entry is None else f"{entry.action}, {entry.state}"
                raise UsageError(f"action {action_id} is not waiting for a check ({found})")
            state, seen = EMAIL_VERDICTS[verdict]
            if record:
                self.action_outcome(action_id, state, state, f"a person found in Helcim that it was {seen}")
        return entry

    def action_intent(
        self,
        action_id: str,
        run_id: str,
        action: str,
        code: str,
        helcim_id: int,
        customer_code: str,
        method_id: int | None,
    ) -> None:
        """Record an action before its request leaves (autocommit: on disk before the send)."""
        self.db.execute(
            f"INSERT INTO actions ({_ACTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', '', '', ?, '')"
            " ON CONFLICT (action_id) DO UPDATE SET run_id = excluded.run_id, state = 'pending', outcome = '',"
            " detail = '', finished_at = ''",
            (action_id, run_id, action, code, helcim_id, customer_code, method_id, utcnow()),
        )

    def action_outcome(self, action_id: str, state: str, outcome: str, detail: str = "") -> None:
        if state not in ACTION_STATES:
            raise ValueError(f"unknown action state {state!r}")
        self.db.execute(
            "UPDATE actions SET state = ?, outcome = ?, detail = ?, finished_at = ? WHERE action_id = ?",
            (state, outcome, detail, utcnow(), action_id),
        )

    def record_skip(
        self,
        action_id: str,
        run_id: str,
        action: str,
        code: str,
        helcim_id: int,
        customer_code: str,
        method_id: int | None,
        reason: str,
    ) -> None:
        """An approved action not sent because its finding no longer holds (the next report shows why)."""
        with self.transaction():
            self.action_intent(action_id, run_id, action, code, helcim_id, customer_code, method_id)
            self.action_outcome(action_id, "skipped", "skipped", reason)
