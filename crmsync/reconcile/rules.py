"""The finding rules: one function per code, registered beside its severity, action and meaning.   [pure]

Each rule takes the :class:`Facts` of one reconciliation (the per-method
tables of :mod:`.tables`, who is whom, the thresholds) and returns its finding
rows (:data:`~crmsync.reconcile.tables.FINDING_COLUMNS`). :data:`FINDINGS`
holds them in the order the report lists codes (most severe first within the
code order below); :func:`crmsync.reconcile.findings.reconcile` runs them all.

A rule that needs the CRM's ids (``needs_crm``) is skipped, and the summary
says so, when no CRM export is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from crmsync.reconcile.tables import FINDING_COLUMNS, age_days, attach
from crmsync.sync.pairing import shared_code

__all__ = ["CRM_CODES", "FINDINGS", "SEVERITIES", "Facts", "FindingSpec", "finding_rows"]

SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")


@dataclass(frozen=True)
class Facts:
    """What the rules read: the tables, the identities, and the reconciliation's settings."""

    ident: pd.DataFrame  # IDENTITY_COLUMNS, one row per Helcim customer
    paired: pd.Series  # per ident row: paired with a CRM record of this export
    cards: pd.DataFrame  # CARD_REPORT_COLUMNS
    banks: pd.DataFrame  # BANK_REPORT_COLUMNS
    pads: pd.DataFrame  # PAD_REPORT_COLUMNS
    raw_cards: pd.DataFrame  # the snapshot's cards (holder, f6l4, expiry: for duplicate_card)
    links: pd.DataFrame  # crm_id, helcim_id
    crm_ids: pd.Series | None  # the export's ids, None without an export
    bank_refreshed: pd.DataFrame | None  # helcim_id, refreshed_at (None: taken as read just now)
    today: date
    expiring_days: int
    pad_pending_days: int
    stale_nights: int

    @property
    def pads_known(self) -> pd.Series:
        """Per bank account: its customer's PADs have been read (so "no PAD" means none)."""
        if self.bank_refreshed is None:
            return pd.Series(True, index=self.banks.index)
        return self.banks["helcim_id"].isin(self.bank_refreshed["helcim_id"].astype("int64"))

    def per_customer_cards(self) -> pd.DataFrame:
        """helcim_id → cards, defaults, usable_default, usable (usable: valid or expiring)."""
        usable = self.cards["status"].isin(["valid", "expiring"])
        default = self.cards["is_default"] == "yes"
        return (
            pd.DataFrame(
                {
                    "helcim_id": self.cards["helcim_id"],
                    "cards": 1,
                    "defaults": default.astype(int),
                    "usable_default": (default & usable).astype(int),
                    "usable": usable.astype(int),
                }
            )
            .groupby("helcim_id", sort=True)[["cards", "defaults", "usable_default", "usable"]]
            .sum()
        )

    def bank_read_at(self) -> pd.Series:
        """Per ident row: when its bank accounts and PADs were last read (NaN: never)."""
        assert self.bank_refreshed is not None
        read = pd.Series(
            self.bank_refreshed["refreshed_at"].astype("str").to_numpy(),
            index=self.bank_refreshed["helcim_id"].astype("int64").to_numpy(),
        )
        return self.ident["helcim_id"].map(read).astype(object)


Rule = Callable[[Facts], pd.DataFrame]


@dataclass(frozen=True)
class FindingSpec:
    severity: str
    action: str
    meaning: str
    rule: Rule
    needs_crm: bool = False


#: Every finding code, in report order: its usual severity, suggested action, meaning and rule.
FINDINGS: dict[str, FindingSpec] = {}


def finding(
    code: str, severity: str, action: str, meaning: str, *, needs_crm: bool = False
) -> Callable[[Rule], Rule]:
    """Register the decorated function as the rule of ``code``."""

    def register(rule: Rule) -> Rule:
        FINDINGS[code] = FindingSpec(severity, action, meaning, rule, needs_crm)
        return rule

    return register


def finding_rows(
    rows: pd.DataFrame,
    code: str,
    *,
    detail: pd.Series | np.ndarray | str,
    method_type: str = "",
    method_id: pd.Series | None = None,
    method: pd.Series | None = None,
    severity: pd.Series | None = None,
    action: pd.Series | None = None,
) -> pd.DataFrame:
    """Finding rows of ``code`` for ``rows`` (which carry the identity columns)."""
    spec = FINDINGS[code]
    n = len(rows)

    def col(values: pd.Series | np.ndarray | str | None, default: str) -> Any:
        if values is None:
            return np.full(n, default, dtype=object)
        if isinstance(values, str):
            return np.full(n, values, dtype=object)
        return pd.Series(np.asarray(values, dtype=object)).astype("str").to_numpy(dtype=object)

    return pd.DataFrame(
        {
            "severity": col(severity, spec.severity),
            "code": code,
            "customer_code": col(rows["customer_code"], ""),
            "helcim_id": col(rows["helcim_id"], ""),
            "crm_id": col(rows["crm_id"], ""),
            "customer": col(rows["customer"], ""),
            "method_type": method_type,
            "method_id": col(method_id, ""),
            "method": col(method, ""),
            "detail": col(detail, ""),
            "action": col(action, spec.action),
            "tag": "",
        },
        columns=list(FINDING_COLUMNS),
    )


def _card_method(cards: pd.DataFrame) -> pd.Series:
    return cards["card"] + " " + cards["expiry"]


def _bank_method(banks: pd.DataFrame) -> pd.Series:
    return banks["account"] + " (" + banks["country"] + ")"


def _pad_method(pads: pd.DataFrame) -> pd.Series:
    return "PAD on " + pads["account"].where(pads["account"] != "", "a removed account")


# -- customers ------------------------------------------------------------------------


@finding(
    "duplicate_customer",
    "critical",
    "Merge these customers into one in Helcim (the API cannot delete customers); crmsync syncs the "
    "oldest and never exports the others to the CRM",
    "several Helcim customers share one customerCode (a create that landed twice, or a code typed in by hand)",
)
def duplicate_customer(facts: Facts) -> pd.DataFrame:
    rows = facts.ident[shared_code(facts.ident["customer_code"])]
    ids: dict[str, list[int]] = {}
    for code, helcim_id in zip(rows["customer_code"], rows["helcim_id"], strict=True):
        ids.setdefault(str(code), []).append(int(helcim_id))
    detail = [
        f"customerCode {code} is held by {len(ids[code])} Helcim customers (ids "
        + ", ".join(str(i) for i in sorted(ids[code]))
        + f"); crmsync syncs the oldest, {min(ids[code])}"
        for code in rows["customer_code"]
    ]
    return finding_rows(rows, "duplicate_customer", detail=pd.Series(detail, index=rows.index, dtype=object))


# -- cards ------------------------------------------------------------------------------


@finding(
    "card_expired",
    "critical",
    "Ask the customer for a new card; remove the expired one in Helcim",
    "the card's expiry month has passed (warning instead of critical when the customer's default "
    "card is another, valid one)",
)
def card_expired(facts: Facts) -> pd.DataFrame:
    cards = facts.cards
    expired = cards["status"] == "expired"
    covered = cards["helcim_id"].map(facts.per_customer_cards()["usable_default"]).fillna(0) > 0
    rows = cards[expired]
    serious = (rows["is_default"] == "yes") | ~covered[expired]
    return finding_rows(
        rows,
        "card_expired",
        detail="expired at the end of " + rows["expiry"],
        method_type="card",
        method_id=rows["card_id"],
        method=_card_method(rows),
        severity=pd.Series(np.where(serious, "critical", "warning"), index=rows.index),
        action=pd.Series(
            np.where(
                serious,
                FINDINGS["card_expired"].action,
                "Remove the expired card in Helcim (the default card is valid)",
            ),
            index=rows.index,
        ),
    )


@finding(
    "card_expiring",
    "warning",
    "Ask the customer to update the card before it expires",
    "the card expires within the expiring window (this month's cards included)",
)
def card_expiring(facts: Facts) -> pd.DataFrame:
    rows = facts.cards[facts.cards["status"] == "expiring"]
    return finding_rows(
        rows,
        "card_expiring",
        detail="expires "
        + rows["expires_on"]
        + " (in "
        + rows["days_left"].astype("str")
        + " days)"
        + np.where(rows["is_default"] == "yes", ", the default card", ""),
        method_type="card",
        method_id=rows["card_id"],
        method=_card_method(rows),
    )


@finding(
    "no_default_card",
    "warning",
    "Set one of the customer's cards as default in Helcim",
    "cards, but none is the default",
)
def no_default_card(facts: Facts) -> pd.DataFrame:
    counts = facts.per_customer_cards()
    none = counts[(counts["cards"] > 0) & (counts["defaults"] == 0)]
    rows = attach(pd.DataFrame({"helcim_id": none.index.to_numpy()}), facts.ident)
    detail = none["cards"].astype("str").to_numpy() + " card(s), none default" if len(rows) else ""
    return finding_rows(rows, "no_default_card", detail=detail, method_type="card")


@finding(
    "multiple_default_cards",
    "warning",
    "Keep a single default card in Helcim",
    "more than one card is marked default",
)
def multiple_default_cards(facts: Facts) -> pd.DataFrame:
    counts = facts.per_customer_cards()
    several = counts[counts["defaults"] > 1]
    rows = attach(pd.DataFrame({"helcim_id": several.index.to_numpy()}), facts.ident)
    if rows.empty:
        return finding_rows(rows, "multiple_default_cards", detail="", method_type="card")
    defaults = facts.cards[facts.cards["is_default"] == "yes"]
    methods = defaults.groupby("helcim_id")["card"].agg(lambda v: ", ".join(v))
    return finding_rows(
        rows,
        "multiple_default_cards",
        detail=several["defaults"].astype("str").to_numpy() + " default cards",
        method_type="card",
        method=rows["helcim_id"].map(methods),
    )


@finding(
    "no_payment_method",
    "warning",
    "Ask the customer for a card or bank account",
    "a CRM record whose Helcim customer has no card and no bank account",
    needs_crm=True,
)
def no_payment_method(facts: Facts) -> pd.DataFrame:
    ident = facts.ident
    has_bank_data = (
        ident["helcim_id"].notna() if facts.bank_refreshed is None else facts.bank_read_at().notna()
    )
    with_cards = ident["helcim_id"].isin(facts.cards["helcim_id"])
    with_banks = ident["helcim_id"].isin(facts.banks["helcim_id"])
    bare = facts.paired & ~with_cards & ~with_banks & has_bank_data
    return finding_rows(ident[bare], "no_payment_method", detail="no card and no bank account in Helcim")


@finding(
    "duplicate_card",
    "warning",
    "Check whether these customers are one person (merge) or share a card",
    "the same card (first 6 / last 4, expiry and holder) is stored on different customers",
)
def duplicate_card(facts: Facts) -> pd.DataFrame:
    cards, raw = facts.cards, facts.raw_cards
    holder = raw["holder"].astype("str").str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()
    key = pd.Series(
        (raw["f6l4"].astype("str") + "|" + raw["expiry"].astype("str") + "|" + holder).to_numpy(),
        index=cards.index,
    )
    spread = key.groupby(cards["helcim_id"].to_numpy()).unique().explode()
    owners = pd.Series(spread.index, index=spread.to_numpy()).groupby(level=0).nunique()
    shared = key.map(owners).fillna(0) > 1
    rows = cards[shared]
    detail: pd.Series | str = ""
    if len(rows):
        # name the other customers by code, or by Helcim id where they share this one's code
        owners_of = (
            pd.Series(
                list(zip(rows["customer_code"], rows["helcim_id"].astype("int64"), strict=True)),
                index=rows.index,
            )
            .groupby(key[shared])
            .agg(lambda v: sorted(set(v)))
        )
        others = [
            ", ".join(
                code if code and code != own_code else f"Helcim {hid}"
                for code, hid in owners_of[k]
                if hid != own_id
            )
            for k, own_code, own_id in zip(
                key[shared], rows["customer_code"], rows["helcim_id"].astype("int64"), strict=True
            )
        ]
        detail = pd.Series(["also stored on " + o for o in others], index=rows.index)
    return finding_rows(
        rows, "duplicate_card", detail=detail, method_type="card", method_id=rows["card_id"],
        method=_card_method(rows),
    )  # fmt: skip


# -- bank accounts and PADs --------------------------------------------------------------


@finding(
    "bank_unverified",
    "warning",
    "Follow up on the bank account's verification in Helcim before debiting it",
    "the bank account is not verified",
)
def bank_unverified(facts: Facts) -> pd.DataFrame:
    rows = facts.banks[facts.banks["verified"] == "no"]
    return finding_rows(
        rows,
        "bank_unverified",
        detail="added " + rows["date_created"].str[:10] + ", not verified",
        method_type="bank",
        method_id=rows["bank_id"],
        method=_bank_method(rows),
    )


#: bank_not_ready: what the account's PAD state says, and what to do about it.
_NOT_READY_BECAUSE = {
    "none": ("no PAD agreement", "Send the customer a PAD agreement (request new bank details in Helcim)"),
    "pending": (
        "PAD agreement not accepted yet",
        "Remind the customer to accept the PAD agreement Helcim e-mailed",
    ),
    "revoked": (
        "PAD agreement revoked",
        "Stop debits; agree a new PAD or another payment method with the customer",
    ),
    "accepted": (
        "PAD accepted, but Helcim does not mark the account ready",
        "Check the bank account and its PAD in Helcim",
    ),
    "unknown": (
        "its PAD agreements are not read yet",
        "Check the account's PAD in Helcim (the next runs read it)",
    ),
}


@finding(
    "bank_not_ready",
    "warning",
    "Do not debit this account yet; see the PAD finding for it",
    "Helcim cannot debit the bank account yet (no accepted, active PAD)",
)
def bank_not_ready(facts: Facts) -> pd.DataFrame:
    not_ready = facts.banks["ready"] == "no"
    rows = facts.banks[not_ready]
    # without its PADs read, "no PAD" is only "not known yet": never ask the customer for a new one on that
    pad_state = rows["pad_status"].where(facts.pads_known[not_ready], "unknown")
    reason = pad_state.map(_NOT_READY_BECAUSE)
    return finding_rows(
        rows,
        "bank_not_ready",
        detail=reason.str[0] if len(rows) else "",
        method_type="bank",
        method_id=rows["bank_id"],
        method=_bank_method(rows),
        action=reason.str[1] if len(rows) else None,
    )


@finding(
    "pad_pending",
    "warning",
    "Remind the customer to accept the PAD agreement Helcim e-mailed",
    "a PAD agreement has waited for the customer longer than the pending window",
)
def pad_pending(facts: Facts) -> pd.DataFrame:
    pads = facts.pads
    rows = pads[(pads["state"] == "pending") & (pads["age_days"].fillna(0) > facts.pad_pending_days)]
    return finding_rows(
        rows,
        "pad_pending",
        detail="pending since "
        + rows["date_created"].str[:10]
        + " ("
        + rows["age_days"].astype("str")
        + " days)",
        method_type="pad",
        method_id=rows["pad_id"],
        method=_pad_method(rows),
    )


@finding(
    "pad_revoked",
    "critical",
    "Stop debits; agree a new PAD or another payment method with the customer",
    "the customer revoked the PAD agreement and the account has no other accepted one",
)
def pad_revoked(facts: Facts) -> pd.DataFrame:
    pads = facts.pads
    live_banks = set(facts.banks["bank_id"].astype("int64"))
    accepted_banks = set(pads.loc[pads["state"] == "accepted", "bank_id"])
    revoked = (
        (pads["state"] == "revoked")
        & pads["bank_id"].isin(live_banks)
        & ~pads["bank_id"].isin(accepted_banks)
    )
    rows = pads[revoked]
    return finding_rows(
        rows,
        "pad_revoked",
        detail="revoked " + rows["date_revoked"].str[:10],
        method_type="pad",
        method_id=rows["pad_id"],
        method=_pad_method(rows),
    )


@finding(
    "bank_without_pad",
    "warning",
    "Send the customer a PAD agreement (request new bank details in Helcim)",
    "a bank account with no PAD agreement at all",
)
def bank_without_pad(facts: Facts) -> pd.DataFrame:
    rows = facts.banks[(facts.banks["pad_status"] == "none") & facts.pads_known]
    return finding_rows(
        rows,
        "bank_without_pad",
        detail="no PAD agreement for this account",
        method_type="bank",
        method_id=rows["bank_id"],
        method=_bank_method(rows),
    )


# -- the CRM side ---------------------------------------------------------------------------


@finding(
    "helcim_only_customer",
    "info",
    "Import the customer into the CRM (crm_import/new_customers.csv)",
    "a Helcim customer no CRM record is linked to",
    needs_crm=True,
)
def helcim_only_customer(facts: Facts) -> pd.DataFrame:
    ident = facts.ident
    alone = ident[~facts.paired & ~shared_code(ident["customer_code"])]  # duplicates have their own finding
    linked_elsewhere = alone["crm_id"] != ""
    detail = np.where(
        linked_elsewhere,
        "linked to crm_id " + alone["crm_id"] + ", which is not in this CRM export",
        "no CRM record has this customer's code or a link to it",
    )
    return finding_rows(alone, "helcim_only_customer", detail=pd.Series(detail, index=alone.index))


@finding(
    "crm_only_customer",
    "info",
    "The next crmsync run creates it in Helcim (unless rejected or awaiting a link decision)",
    "a CRM record with no Helcim customer",
    needs_crm=True,
)
def crm_only_customer(facts: Facts) -> pd.DataFrame:
    assert facts.crm_ids is not None
    known = pd.Series(sorted(set(facts.crm_ids.astype("str")) - {""}), dtype="str")
    missing = known[~known.isin(facts.ident.loc[facts.paired, "crm_id"])]
    lost = set(facts.links["crm_id"].astype("str"))
    rows = pd.DataFrame({"helcim_id": "", "customer_code": "", "crm_id": missing.to_numpy(), "customer": ""})
    detail = np.where(
        rows["crm_id"].isin(lost),
        "linked to a Helcim customer that is no longer in Helcim",
        "no Helcim customer has this code or a link to it",
    )
    return finding_rows(rows, "crm_only_customer", detail=pd.Series(detail, index=rows.index))


# -- freshness --------------------------------------------------------------------------------


@finding(
    "stale_payment_data",
    "info",
    "Nothing to do: the rolling refresh reads it again soon (or give the run a larger call budget)",
    "the customer's bank accounts and PADs were read longer ago than the stale window, or never",
)
def stale_payment_data(facts: Facts) -> pd.DataFrame:
    if facts.bank_refreshed is None:
        return finding_rows(facts.ident.iloc[:0], "stale_payment_data", detail="")
    read_at = facts.bank_read_at()
    has_bank_data = read_at.notna()
    nights = age_days(read_at.fillna(""), facts.today)
    stale = ~has_bank_data | (nights > facts.stale_nights)
    rows = facts.ident[stale]
    detail = np.where(
        has_bank_data[stale],
        "bank accounts and PADs last read "
        + read_at[stale].fillna("").str[:10]
        + " ("
        + nights[stale].astype("Int64").astype("str")
        + " nights ago)",
        "bank accounts and PADs never read",
    )
    return finding_rows(
        rows, "stale_payment_data", detail=pd.Series(detail, index=rows.index), method_type="bank"
    )


#: Codes that need the CRM's ids: skipped (and said so) when no CRM export is given.
CRM_CODES: tuple[str, ...] = tuple(code for code, spec in FINDINGS.items() if spec.needs_crm)
