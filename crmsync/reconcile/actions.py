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
                           only when the customer has no valid card and no ready bank account, and
                           unless bank details were requested within the pending window
``set_default_bank_account`` a revoked or not-ready account while the customer has exactly one ready
                           account (Helcim's list does not say which is the default: with several
                           ready, which to choose is a person's call), unless ``crmsync act`` already
                           made that one the default
``accept_pad``             a PAD pending longer than the window: records it accepted, **only** for a person
                           who holds the customer's signed agreement
========================== ==========================================================================

An action's id is ``YYYYMMDD-action-helcim_id-method_id``: the same action
proposed by two reports of one day is one action, and ``crmsync act`` never
does it twice. :func:`still_needed` is what ``crmsync act`` checks against a
fresh read just before sending: an action whose finding no longer holds is
skipped, so even an edited file cannot delete a valid card. :func:`parse_actions`
reads a filled ``actions.csv`` back; :func:`check_proposed` refuses a row the
latest report (the state store keeps its proposals) did not propose as it
stands, or any once that report is :data:`PROPOSALS_VALID_HOURS` old.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from crmsync.errors import UsageError
from crmsync.outputs import FORMULA_PREFIXES
from crmsync.reconcile.findings import Reconciliation
from crmsync.reconcile.tables import bank_table, card_table, identities, pad_table
from crmsync.sync.act import ACTIONS, EMAILING, Action, Fresh

__all__ = [
    "ACTION_COLUMNS",
    "PROPOSALS_VALID_HOURS",
    "SIGNED_ACTIONS",
    "Proposals",
    "check_proposed",
    "parse_actions",
    "propose",
    "still_needed",
]

#: Actions that record the customer's consent: approved one by one with ``signed`` (never a group's tick, never yes).
SIGNED_ACTIONS = frozenset({"accept_pad"})
#: How long the latest report's proposals may be acted on, by the clock: after that their findings are stale.
PROPOSALS_VALID_HOURS = 24
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


_WHY = {
    "no_default_card": "no card is the default",
    "multiple_default_cards": "several cards are marked default",
    "card_expired": "the default card has expired",
}
_CHOICE = ("action", "method_id", "method", "detail")


def _best_cards(cards: pd.DataFrame) -> pd.DataFrame:
    """Per customer, its usable card expiring last (the newest on a tie)."""
    usable = cards[cards["status"].isin(_USABLE)]
    ordered = usable.assign(_id=usable["card_id"].astype("int64")).sort_values(["expires_on", "_id"])
    return ordered.drop_duplicates("helcim_id", keep="last").drop(columns="_id")


def _ids(values: pd.Series) -> np.ndarray:
    """Ids as int64, -1 where there is none (a finding on a customer has no method id)."""
    return pd.to_numeric(values, errors="coerce").fillna(-1).astype("int64").to_numpy()


class _Table:
    """A table's rows as text, looked up by an id column (the last row per id)."""

    def __init__(self, table: pd.DataFrame, key: str, keep: Literal["first", "last"] = "last") -> None:
        self.rows = table.drop_duplicates(key, keep=keep)
        self.index = pd.Index(self.rows[key].astype("int64"))

    def at(self, ids: np.ndarray, column: str) -> np.ndarray:
        """``column`` of the row of each of ``ids`` ("" where none), as an object array of text."""
        where = self.index.get_indexer(pd.Index(ids))
        values = np.append(self.rows[column].astype("str").to_numpy(dtype=object), "")
        return values[where]  # -1, no row: the "" appended last


class _Pointed:
    """Per finding, the row of a table it points at — by its method id or by its customer — as text."""

    def __init__(self, rec: Reconciliation) -> None:
        findings, cards, banks, pads = rec.findings, rec.cards, rec.banks, rec.pads
        self.index = findings.index
        self.keys = {"method": _ids(findings["method_id"]), "customer": _ids(findings["helcim_id"])}
        self.cards = _Table(cards, "card_id")
        self.best = _Table(_best_cards(cards), "helcim_id")
        self.ready = _Table(banks[banks["ready"] == "yes"], "helcim_id", keep="first")
        self.pads = _Table(pads, "pad_id")
        self.usable = self.customer_in(cards.loc[cards["status"].isin(_USABLE), "helcim_id"])
        per_customer = banks.loc[banks["ready"] == "yes", "helcim_id"].astype("int64").value_counts()
        self.ready_accounts = pd.Series(
            per_customer.reindex(self.keys["customer"]).fillna(0).astype("int64").to_numpy(), index=self.index
        )
        self.accepted = self.customer_in(pads.loc[pads["state"] == "accepted", "helcim_id"])

    def customer_in(self, helcim_ids: pd.Series) -> pd.Series:
        """Whether each finding's customer is one of ``helcim_ids``."""
        return pd.Series(
            np.isin(self.keys["customer"], helcim_ids.astype("int64").to_numpy()), index=self.index
        )

    def at(self, table: _Table, column: str, by: str = "method") -> pd.Series:
        """``column`` of the row of ``table`` at each finding's method id (or its customer); "" where none."""
        return pd.Series(table.at(self.keys[by], column), index=self.index, dtype=object)

    def card_label(self, table: _Table, by: str) -> pd.Series:
        return (
            self.at(table, "brand", by)
            + " "
            + self.at(table, "card", by)
            + " "
            + self.at(table, "expiry", by)
        )


def _choose(rec: Reconciliation) -> pd.DataFrame:
    """Per finding (aligned with ``rec.findings``): action, method_id, method and detail ("" for none).

    Each step takes the findings no earlier step decided (the module docstring says when each applies).
    """
    p, code = _Pointed(rec), rec.findings["code"].astype("str")
    method_id = rec.findings["method_id"].astype("str").astype(object)
    chosen = pd.DataFrame("", index=code.index, columns=list(_CHOICE), dtype=object)
    undecided = pd.Series((rec.findings["helcim_id"].astype("str") != "").to_numpy(), index=code.index)

    def choose(mask: pd.Series, *values: pd.Series | str) -> None:
        rows = mask & undecided
        for column, value in zip(_CHOICE, values, strict=True):
            chosen.loc[rows, column] = value[rows] if isinstance(value, pd.Series) else value
        undecided[mask] = False

    default_expired = (code == "card_expired") & (p.at(p.cards, "is_default") == "yes")
    wants_default = code.isin(["no_default_card", "multiple_default_cards"]) | default_expired
    best, expiry = p.at(p.best, "card_id", "customer"), p.at(p.best, "expiry", "customer")
    why = code.map(_WHY).fillna("").astype(object) + ": make the valid card expiring last ("
    choose(
        wants_default & (best != ""), "set_default_card", best, p.card_label(p.best, "customer"),
        why + expiry + ") the default",
    )  # fmt: skip
    undecided[wants_default] = False  # decided, even where no valid card can become the default
    choose(
        (code == "card_expired") & p.usable, "delete_card", method_id, p.card_label(p.cards, "method"),
        "delete the expired card: the customer has another valid card",
    )  # fmt: skip
    # set_default_bank_account: Helcim does not say which account is the default, so only where the target is
    # plain — the customer's one ready account — and not the default crmsync act already made it
    ready = p.at(p.ready, "bank_id", "customer")
    bank = method_id.where(code == "bank_not_ready", p.at(p.pads, "bank_id"))
    known = pd.Series(p.keys["customer"], index=code.index).map(rec.bank_defaults).astype("Int64")
    plain = (p.ready_accounts == 1) & (known.astype("str").fillna("") != ready)
    choose(
        code.isin(["pad_revoked", "bank_not_ready"]) & (ready != "") & (bank != ready) & plain,
        "set_default_bank_account", ready,
        p.at(p.ready, "account", "customer") + " (" + p.at(p.ready, "country", "customer") + ")",
        "make the customer's one ready bank account the default for debits (Helcim does not say which is now)",
    )  # fmt: skip
    choose(
        code == "pad_pending", "accept_pad", method_id, "PAD on " + p.at(p.pads, "account"),
        "ONLY if you hold the customer's signed PAD agreement: record it as accepted in Helcim",
    )  # fmt: skip
    wants_details = code.isin(["no_payment_method", "bank_without_pad"]) | (
        (code == "pad_revoked") & ~p.accepted
    )
    payable = p.usable | (ready != "")  # a valid card or a ready bank account: no e-mail, whatever the code
    choose(
        wants_details & ~payable & (rec.findings["tag"] != "details_requested"), "request_bank_details", "", "",
        "Helcim e-mails the customer a request for bank details (a PAD agreement comes with them)",
    )  # fmt: skip
    return chosen


def propose(rec: Reconciliation) -> Proposals:
    """Every action the API can take on ``rec``'s findings (see the module docstring)."""
    findings, chosen = rec.findings, _choose(rec)
    has = chosen["action"] != ""
    action_id = (
        rec.today.strftime("%Y%m%d") + "-" + chosen["action"] + "-" + findings["helcim_id"].astype(object)
    )
    action_id = (action_id + "-" + chosen["method_id"].where(chosen["method_id"] != "", "0")).where(has, "")
    rows = pd.DataFrame(
        {
            "action_id": action_id, "code": findings["code"], "helcim_id": findings["helcim_id"],
            "customer_code": findings["customer_code"], "customer": findings["customer"],
            "method_id": chosen["method_id"], "method": chosen["method"], "action": chosen["action"],
            "detail": chosen["detail"], "approve": "",
        },
        index=findings.index,
    )[has]  # fmt: skip
    actions = rows.drop_duplicates("action_id").reset_index(drop=True).astype("str")
    return Proposals(
        actions.loc[:, list(ACTION_COLUMNS)],
        pd.Series(action_id.to_numpy(), index=findings.index, dtype="str"),
    )


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


def still_needed(
    action: Action, fresh: Fresh, today: date, *, bank_default: int | None = None, pad_pending_days: int = 14
) -> str | None:
    """Why ``action`` should not be sent now (its finding no longer holds on ``fresh``), or None.

    ``bank_default``: the customer's default bank account as far as crmsync knows (the one ``crmsync act``
    last set, None when unknown); ``pad_pending_days``: how long a PAD waits before it may be accepted.
    """
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
        return _default_bank_needed(action, banks, bank_default)
    if action.action == "accept_pad":
        pad = pads[pads["pad_id"] == action.method_id]
        if pad.empty:
            return "the PAD is no longer in Helcim"
        if pad["state"].iloc[0] != "pending":
            return f"the PAD is {pad['state'].iloc[0]} now"
        age = pad["age_days"].iloc[0]
        if pd.isna(age) or age <= pad_pending_days:
            waited = "an unknown time" if pd.isna(age) else f"{age} days"
            return f"the PAD has waited {waited}, not more than {pad_pending_days}: the customer may still accept it"
        return None
    return _details_needed(action.code, cards[usable], banks, pads)


def _default_bank_needed(action: Action, banks: pd.DataFrame, bank_default: int | None) -> str | None:
    bank = banks[banks["bank_id"] == action.method_id]
    if bank.empty:
        return "the bank account is no longer in Helcim"
    if bank["ready"].iloc[0] != "yes":
        return "the bank account is not ready any more"
    ready = int((banks["ready"] == "yes").sum())
    if ready > 1:
        return f"the customer has {ready} ready bank accounts now: which is the default is a person's call"
    if bank_default == action.method_id:
        return "it is the default bank account already (crmsync act made it so)"
    return None


def _details_needed(code: str, usable: pd.DataFrame, banks: pd.DataFrame, pads: pd.DataFrame) -> str | None:
    if code == "no_payment_method" and (len(usable) or len(banks)):
        return "the customer has a card or bank account now"
    if code == "pad_revoked" and (pads["state"] == "accepted").any():
        return "the customer has an accepted PAD now"
    if code == "bank_without_pad" and not (banks["pad_status"] == "none").any():
        return "every bank account of the customer has a PAD now"
    if len(usable) or (banks["ready"] == "yes").any():  # whatever the code says: never e-mail such a customer
        return "the customer has a valid card or a ready bank account: no request for bank details"
    return None


# -- only what the latest report proposed ----------------------------------------------------


def check_proposed(
    actions: Sequence[Action], proposed: pd.DataFrame, proposed_at: str | None, now: datetime, source: str
) -> None:
    """Refuse (:class:`UsageError`) approved ``actions`` the latest report did not propose exactly so, or
    any once that report is :data:`PROPOSALS_VALID_HOURS` old (by the clock, ``now``).

    ``proposed`` (:data:`crmsync.state.review.PROPOSAL_COLUMNS`, as text) and ``proposed_at`` (a stored
    moment, None before any report) are the state store's: a file approving a row crmsync never proposed,
    an edited row, or an earlier report's row (a newer report replaced its findings) is not acted on.
    """
    if not actions:
        return
    if proposed_at is None:
        raise UsageError(f"{source}: no report of this state store has proposed actions yet")
    made = datetime.strptime(proposed_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    if now - made >= timedelta(hours=PROPOSALS_VALID_HOURS):
        raise UsageError(
            f"{source}: the latest report proposed its actions at {proposed_at[:16].replace('T', ' ')} UTC, a day "
            "or more ago: its findings may no longer hold; make a new report (crmsync reconcile) and approve its actions"
        )
    known = dict(
        zip(proposed["action_id"], zip(proposed["code"], proposed["customer_code"], strict=True), strict=True)
    )
    for action in actions:
        where = f"{source} line {action.line}: action {action.action_id}"
        if action.action_id not in known:
            raise UsageError(
                f"{where} is not one the latest report proposed: approve the latest report's actions"
            )
        code, customer_code = known[action.action_id]
        if (action.code, action.customer_code) != (code, customer_code):
            raise UsageError(
                f"{where} is not as the latest report proposed it (code {code}, customer {customer_code})"
            )


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
    bad = sorted(set(decision) - {"yes", "y", "no", "n", "", "signed"})
    if bad:
        raise UsageError(f"{source}: approve must be yes, no or empty (found {', '.join(bad)})")
    _signed_only(rows, decision, source)
    approved = rows[decision.isin(["yes", "y", "signed"])]
    actions = [_action(dict(r), int(str(line)) + 2, source) for line, r in approved.iterrows()]
    doubled = pd.Series([a.action_id for a in actions]).duplicated()
    if doubled.any():
        raise UsageError(f"{source}: action {actions[int(np.argmax(doubled))].action_id} is listed twice")
    _one_e_mail_each(actions, source)
    return actions, len(rows) - len(approved)


def _signed_only(rows: pd.DataFrame, decision: pd.Series, source: str) -> None:
    """An action that records the customer's consent is approved with ``signed``, one row at a time, and only it."""
    signs = rows["action"].isin(list(SIGNED_ACTIONS))
    wrong = (signs & decision.isin(["yes", "y"])) | (~signs & (decision == "signed"))
    if wrong.any():
        line = int(str(wrong.idxmax())) + 2
        if signs[wrong].iloc[0]:
            raise UsageError(
                f"{source} line {line}: accept_pad records the customer's PAD agreement as accepted: write signed "
                "in approve, and only if you hold their signed agreement (yes is not enough)"
            )
        raise UsageError(f"{source} line {line}: approve signed is only for accept_pad; write yes")


def _one_e_mail_each(actions: list[Action], source: str) -> None:
    """A report proposes at most one e-mail per customer: a file approving two (two reports' rows) is refused."""
    first: dict[int, Action] = {}
    for action in actions:
        if action.action not in EMAILING:
            continue
        earlier = first.setdefault(action.helcim_id, action)
        if earlier is not action:
            raise UsageError(
                f"{source} lines {earlier.line} and {action.line}: two actions would e-mail customer "
                f"{action.helcim_id} ({action.customer_code}); a report proposes one: approve one of them"
            )


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
