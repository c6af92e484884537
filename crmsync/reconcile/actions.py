"""Proposed actions: what Helcim's Customer API can fix of the morning's findings.   [pure]

:func:`propose` turns findings into ``actions.csv`` rows (:data:`ACTION_COLUMNS`),
one per action (several findings may share one), each waiting for a person's
``approve=yes``:

========================== ==========================================================================
``set_default_card``       no default card, several defaults, or an expired default while another card
                           is valid: the valid card expiring last (the newest on a tie) becomes the default
``delete_card``            an expired card that is not the default, while another valid card exists
``request_bank_details``   e-mails the customer Helcim's request for bank details: no payment method, a
                           revoked PAD and no accepted one on any account, a bank account without a PAD —
                           unless bank details were requested within the pending window
``set_default_bank_account`` a revoked or not-ready account while another of the customer's is ready
``accept_pad``             a PAD pending longer than the window: records it accepted, **only** for a person
                           who holds the customer's signed agreement
========================== ==========================================================================

An action's id is ``YYYYMMDD-action-helcim_id-method_id``: the same action
proposed by two reports of one day is one action, and ``crmsync act`` never
does it twice. :func:`still_needed` is what ``crmsync act`` checks against a
fresh read just before sending: an action whose finding no longer holds is
skipped, so even an edited file cannot delete a valid card. :func:`parse_actions`
reads a filled ``actions.csv`` back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from crmsync.errors import UsageError
from crmsync.outputs import FORMULA_PREFIXES
from crmsync.reconcile.findings import Reconciliation
from crmsync.reconcile.tables import bank_table, card_table, identities, pad_table
from crmsync.sync.act import ACTIONS, Action, Fresh

__all__ = ["ACTION_COLUMNS", "Proposals", "parse_actions", "propose", "still_needed"]

ACTION_COLUMNS: tuple[str, ...] = (
    "action_id",
    "code",
    "helcim_id",
    "customer_code",
    "customer",
    "method_id",
    "method",
    "action",
    "detail",
    "approve",
)
_USABLE = ("valid", "expiring")


@dataclass(frozen=True)
class Proposals:
    """actions.csv's rows, and per finding (aligned with the findings) the id of its action ("" for none)."""

    actions: pd.DataFrame  # ACTION_COLUMNS
    of_finding: pd.Series

    def summary(self) -> dict[str, Any]:
        return {
            "proposed": len(self.actions),
            "by_action": {a: int((self.actions["action"] == a).sum()) for a in ACTIONS},
            "findings_with_an_action": int((self.of_finding != "").sum()),
        }


def _best_cards(cards: pd.DataFrame) -> pd.DataFrame:
    """Per customer, its usable card expiring last (the newest on a tie): helcim_id → card row."""
    usable = cards[cards["status"].isin(_USABLE)]
    ordered = usable.assign(_id=usable["card_id"].astype("int64")).sort_values(["expires_on", "_id"])
    return ordered.drop_duplicates("helcim_id", keep="last").set_index("helcim_id")


def _records(frame: pd.DataFrame) -> dict[int, dict[str, Any]]:
    """index → row as a dict: a row looked up per finding, without pandas' cost per lookup."""
    return {int(str(k)): {str(c): x for c, x in v.items()} for k, v in frame.to_dict("index").items()}


class _Proposer:
    """Works out each finding's action from the reconciliation's tables."""

    def __init__(self, rec: Reconciliation) -> None:
        self.rec = rec
        cards = rec.cards.astype({"helcim_id": "int64", "card_id": "int64"})
        self.best = _records(_best_cards(cards))
        self.usable = cards[cards["status"].isin(_USABLE)].groupby("helcim_id")["card_id"].count().to_dict()
        banks = rec.banks.astype({"helcim_id": "int64", "bank_id": "int64"})
        self.ready = _records(
            banks[banks["ready"] == "yes"].drop_duplicates("helcim_id").set_index("helcim_id")
        )
        pads = rec.pads.astype({"helcim_id": "int64", "pad_id": "int64", "bank_id": "int64"})
        self.accepted = set(pads.loc[pads["state"] == "accepted", "helcim_id"])
        self.cards = _records(cards.set_index("card_id"))
        self.pads = _records(pads.set_index("pad_id"))

    def for_finding(
        self, code: str, helcim_id: int, method_id: str, tag: str
    ) -> tuple[str, str, str, str] | None:
        """(action, method_id, method, detail) for one finding, or None."""
        if code in ("no_default_card", "multiple_default_cards") or (
            code == "card_expired" and self.cards[int(method_id)]["is_default"] == "yes"
        ):
            return self._set_default(helcim_id, code)
        if code == "card_expired" and self.usable.get(helcim_id, 0) > 0:
            card = self.cards[int(method_id)]
            return ("delete_card", method_id, f"{card['brand']} {card['card']} {card['expiry']}",
                    "delete the expired card: the customer has another valid card")  # fmt: skip
        if code in ("pad_revoked", "bank_not_ready") and helcim_id in self.ready:
            bank = self.ready[helcim_id]
            label = f"{bank['account']} ({bank['country']})"
            if code == "pad_revoked" or self._bank_of(code, method_id) != int(str(bank["bank_id"])):
                return ("set_default_bank_account", str(bank["bank_id"]), label,
                        "make the customer's ready bank account the default for debits")  # fmt: skip
        if code == "pad_pending":
            pad = self.pads[int(method_id)]
            return ("accept_pad", method_id, f"PAD on {pad['account']}",
                    "ONLY if you hold the customer's signed PAD agreement: record it as accepted in Helcim")  # fmt: skip
        wants_details = code in ("no_payment_method", "bank_without_pad") or (
            code == "pad_revoked" and helcim_id not in self.accepted
        )
        if wants_details and tag != "details_requested":
            return ("request_bank_details", "", "",
                    "Helcim e-mails the customer a request for bank details (a PAD agreement comes with them)")  # fmt: skip
        return None

    def _bank_of(self, code: str, method_id: str) -> int:
        return int(method_id) if code == "bank_not_ready" else int(self.pads[int(method_id)]["bank_id"])

    def _set_default(self, helcim_id: int, code: str) -> tuple[str, str, str, str] | None:
        if helcim_id not in self.best:
            return None
        best = self.best[helcim_id]
        why = {
            "no_default_card": "no card is the default",
            "multiple_default_cards": "several cards are marked default",
            "card_expired": "the default card has expired",
        }[code]
        label = f"{best['brand']} {best['card']} {best['expiry']}"
        return ("set_default_card", str(best["card_id"]), label,
                f"{why}: make the valid card expiring last ({best['expiry']}) the default")  # fmt: skip


def propose(rec: Reconciliation) -> Proposals:
    """Every action the API can take on ``rec``'s findings (see the module docstring)."""
    findings = rec.findings
    proposer = _Proposer(rec)
    stamp = rec.today.strftime("%Y%m%d")
    rows: dict[str, dict[str, Any]] = {}
    of_finding = []
    for f in findings.itertuples(index=False):
        found = (
            proposer.for_finding(str(f.code), int(str(f.helcim_id)), str(f.method_id), str(f.tag))
            if f.helcim_id
            else None
        )
        if found is None:
            of_finding.append("")
            continue
        action, method_id, method, detail = found
        action_id = f"{stamp}-{action}-{f.helcim_id}-{method_id or 0}"
        of_finding.append(action_id)
        rows.setdefault(
            action_id,
            {
                "action_id": action_id, "code": f.code, "helcim_id": str(f.helcim_id),
                "customer_code": f.customer_code, "customer": f.customer, "method_id": method_id,
                "method": method, "action": action, "detail": detail, "approve": "",
            },
        )  # fmt: skip
    actions = pd.DataFrame(list(rows.values()), columns=list(ACTION_COLUMNS), dtype="str")
    return Proposals(actions, pd.Series(of_finding, index=findings.index, dtype="str"))


# -- checked again just before sending -------------------------------------------------------


def _fresh_tables(fresh: Fresh, today: date) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ident, _ = identities(
        pd.DataFrame(
            {
                "helcim_id": [fresh.helcim_id],
                "customer_code": [""],
                "contact_name": [""],
                "business_name": [""],
            }
        ),
        pd.DataFrame({"helcim_id": pd.Series(dtype="int64"), "crm_id": pd.Series(dtype="str")}),
        None,
    )
    cards = card_table(fresh.cards, ident, today, 30)
    return cards, bank_table(fresh.banks, fresh.pads, ident), pad_table(fresh.pads, fresh.banks, ident, today)


def still_needed(action: Action, fresh: Fresh, today: date) -> str | None:
    """Why ``action`` should not be sent now (its finding no longer holds on ``fresh``), or None."""
    cards, banks, pads = _fresh_tables(fresh, today)
    card = cards[cards["card_id"] == action.method_id]
    usable = cards["status"].isin(_USABLE)
    defaults = cards[cards["is_default"] == "yes"]
    if action.action in ("set_default_card", "delete_card") and card.empty:
        return "the card is no longer in Helcim"
    if action.action == "set_default_card":
        if card["status"].iloc[0] not in _USABLE:
            return f"the card is {card['status'].iloc[0]} now"
        if len(defaults) == 1 and defaults["status"].iloc[0] in _USABLE:
            return f"the customer has a valid default card now ({defaults['card'].iloc[0]})"
        return None
    if action.action == "delete_card":
        if card["status"].iloc[0] != "expired":
            return f"the card is {card['status'].iloc[0]} now, not expired"
        if card["is_default"].iloc[0] == "yes":
            return "the card is the default now"
        return (
            None
            if (usable & (cards["card_id"] != action.method_id)).any()
            else "it is the customer's only card"
        )
    if action.action == "set_default_bank_account":
        bank = banks[banks["bank_id"] == action.method_id]
        if bank.empty:
            return "the bank account is no longer in Helcim"
        return None if bank["ready"].iloc[0] == "yes" else "the bank account is not ready any more"
    if action.action == "accept_pad":
        pad = pads[pads["pad_id"] == action.method_id]
        if pad.empty:
            return "the PAD is no longer in Helcim"
        return None if pad["state"].iloc[0] == "pending" else f"the PAD is {pad['state'].iloc[0]} now"
    return _details_needed(action.code, cards[usable], banks, pads)


def _details_needed(code: str, usable: pd.DataFrame, banks: pd.DataFrame, pads: pd.DataFrame) -> str | None:
    if code == "no_payment_method" and (len(usable) or len(banks)):
        return "the customer has a card or bank account now"
    if code == "pad_revoked" and (pads["state"] == "accepted").any():
        return "the customer has an accepted PAD now"
    if code == "bank_without_pad" and not (banks["pad_status"] == "none").any():
        return "every bank account of the customer has a PAD now"
    return None


# -- reading a filled actions.csv back -------------------------------------------------------


def _unneutralised(text: pd.Series) -> pd.Series:
    """A cell the CSV writer prefixed with ``'`` (a formula-like value), as it was."""
    risky = text.str.startswith("'") & text.str[1:2].isin(list(FORMULA_PREFIXES))
    return text.where(~risky, text.str[1:])


def parse_actions(table: pd.DataFrame, source: str = "actions.csv") -> tuple[list[Action], int]:
    """The approved actions of a filled actions.csv (all text), and how many rows were not approved.

    Raises :class:`UsageError` naming the line for a row that is not one crmsync proposed.
    """
    missing = [c for c in ACTION_COLUMNS if c not in table.columns]
    if missing:
        raise UsageError(f"{source} is not an actions.csv: missing the columns {', '.join(missing)}")
    rows = table.loc[:, list(ACTION_COLUMNS)].astype("str").apply(lambda c: _unneutralised(c.str.strip()))
    decision = rows["approve"].str.lower()
    bad = sorted(set(decision) - {"yes", "y", "no", "n", ""})
    if bad:
        raise UsageError(f"{source}: approve must be yes, no or empty (found {', '.join(bad)})")
    approved = rows[decision.isin(["yes", "y"])]
    actions = [_action(dict(r), int(str(line)) + 2, source) for line, r in approved.iterrows()]
    doubled = pd.Series([a.action_id for a in actions]).duplicated()
    if doubled.any():
        raise UsageError(f"{source}: action {actions[int(np.argmax(doubled))].action_id} is listed twice")
    return actions, len(rows) - len(approved)


def _action(row: Mapping[str, str], line: int, source: str) -> Action:
    where = f"{source} line {line}"
    action = row["action"]
    if action not in ACTIONS:
        raise UsageError(f"{where}: unknown action {action!r} (crmsync proposes {', '.join(ACTIONS)})")
    if not row["helcim_id"].isdigit() or (ACTIONS[action] and not row["method_id"].isdigit()):
        raise UsageError(f"{where}: helcim_id and method_id must be Helcim ids")
    method_id = int(row["method_id"]) if ACTIONS[action] else None
    parts = row["action_id"].split("-")
    if (
        len(parts) != 4
        or not (parts[0].isdigit() and len(parts[0]) == 8)
        or parts[1:]
        != [
            action,
            row["helcim_id"],
            str(method_id or 0),
        ]
    ):
        raise UsageError(
            f"{where}: action_id {row['action_id']!r} does not match its action, helcim_id and method_id"
        )
    return Action(
        row["action_id"], action, row["code"], int(row["helcim_id"]), row["customer_code"], method_id, line
    )
