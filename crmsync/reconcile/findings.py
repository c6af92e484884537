"""The morning reconciliation: what is wrong with the stored cards, bank accounts and PADs.   [pure]

:func:`reconcile` takes the snapshot frames (:mod:`crmsync.schemas.helcim`),
the state store's links, and, with a CRM export, its ids and the diff's
pairing (who is whom, computed once by :mod:`crmsync.sync.pairing`); and
``today`` (always given, never read from the clock). It builds the per-method
tables (:mod:`.tables`), runs every finding rule (:mod:`.rules`), and returns a
:class:`Reconciliation`: the tables and the findings, each with a code, a
severity and a suggested action.

Findings are *tagged* where the review treats them apart (:data:`TAGS`): a
customer this run created has no payment method yet as a matter of course
(``created_this_run``: one group, for information, not one warning each; and
``created_recently`` on the nights after, within the pending window), and
a customer who was already e-mailed a request for bank details within the
pending window is waiting on that request (``details_requested``). A revoked
PAD or an account not ready is no longer critical once the customer's default
bank account — the one ``crmsync act`` last set, all crmsync can know of it —
is ready (``default_ready``: a warning, no action).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from crmsync.reconcile.rules import CRM_CODES, FINDINGS, SEVERITIES, Facts, finding_rows
from crmsync.reconcile.tables import age_days, bank_table, card_table, identities, pad_table

__all__ = ["DEFAULT_THRESHOLDS", "TAGS", "Reconciliation", "reconcile"]

#: The thresholds :func:`reconcile` takes when none is given (days, days, nights).
DEFAULT_THRESHOLDS: dict[str, int] = {"expiring_days": 30, "pad_pending_days": 14, "stale_nights": 7}

#: Tags a finding may carry, and what they mean in the report.
TAGS: dict[str, str] = {
    "created_this_run": "customers this run created in Helcim: no payment method yet",
    "created_recently": "customers crmsync created within the pending window: no payment method yet",
    "details_requested": "bank details already requested: waiting for the customer",
    "default_ready": "the default bank account crmsync act set is ready: debits go there",
}
#: Codes whose finding waits on the customer once bank details were requested (and a new card or account comes).
_REQUEST_CODES = ("no_payment_method", "bank_without_pad", "pad_revoked")

_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_CODE_RANK = {name: rank for rank, name in enumerate(FINDINGS)}


@dataclass(frozen=True)
class Reconciliation:
    """Per-method tables and the findings of one reconciliation, plus what was checked."""

    cards: pd.DataFrame  # CARD_REPORT_COLUMNS
    banks: pd.DataFrame  # BANK_REPORT_COLUMNS
    pads: pd.DataFrame  # PAD_REPORT_COLUMNS
    findings: pd.DataFrame  # FINDING_COLUMNS, most severe first
    today: date
    thresholds: dict[str, int]
    customers: int
    crm_records: int | None  # None: no CRM export given
    linked: int | None
    customers_with_bank_data: int | None  # None: unknown (every customer's bank data taken as read)
    skipped_codes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    bank_read_at: pd.Series | None = None  # per customer (helcim_id index): when its bank data was read
    refresh_per_night: int | None = None  # customers the rolling refresh reads a night at least
    bank_defaults: Mapping[int, int] = field(default_factory=dict)  # helcim_id → bank_id crmsync made default

    def payment_data(self) -> dict[str, Any] | None:
        """How fresh the bank/PAD data is: read within a day of ``today``, or not; when the rest will be read."""
        if self.bank_read_at is None:
            return None
        ages = age_days(self.bank_read_at.fillna(""), self.today)
        fresh = int((ages <= 1).sum())
        rest = self.customers - fresh
        per_night = self.refresh_per_night or 0
        nights = math.ceil(rest / per_night) if rest and per_night else (0 if not rest else None)
        return {
            "customers": self.customers,
            "fresh": fresh,  # read on today or the day before: this night's data
            "not_fresh": rest,
            "never_read": int(self.bank_read_at.isna().sum()),
            "stale": int((self.bank_read_at.isna() | (ages > self.thresholds["stale_nights"])).sum()),
            "read_per_night_at_least": per_night,
            "rest_read_within_nights": nights,
            "rest_read_by": None if nights is None else (self.today + timedelta(days=nights)).isoformat(),
        }

    def expiring_by_month(self, months: int = 12) -> dict[str, int]:
        """Cards whose expiry month is this month or one of the next ``months - 1``: {"YYYY-MM": count}."""
        first = self.today.year * 12 + self.today.month - 1
        keys = [f"{(first + i) // 12:04d}-{(first + i) % 12 + 1:02d}" for i in range(months)]
        counts = self.cards["expires_on"].astype("str").str[:7].value_counts()
        return {key: int(counts.get(key, 0)) for key in keys}

    def summary(self) -> dict[str, Any]:
        """Counts only: deterministic for the same inputs and ``today`` (no clock, no paths)."""
        by_code = self.findings["code"].value_counts()
        by_severity = self.findings["severity"].value_counts()
        checked = [code for code in FINDINGS if code not in self.skipped_codes]
        return {
            "today": self.today.isoformat(),
            "thresholds": dict(self.thresholds),
            "counts": {
                "customers": self.customers,
                "cards": len(self.cards),
                "bank_accounts": len(self.banks),
                "pads": len(self.pads),
                "customers_with_bank_data": self.customers_with_bank_data,
                "crm_records": self.crm_records,
                "linked": self.linked,
            },
            "cards_by_status": {
                status: int((self.cards["status"] == status).sum())
                for status in ("expired", "expiring", "valid", "unreadable")
            },
            "bank_accounts": {
                "verified": int((self.banks["verified"] == "yes").sum()),
                "ready": int((self.banks["ready"] == "yes").sum()),
            },
            "pads_by_state": {
                state: int((self.pads["state"] == state).sum())
                for state in ("accepted", "pending", "revoked")
            },
            "findings": len(self.findings),
            "findings_by_severity": {s: int(by_severity.get(s, 0)) for s in SEVERITIES},
            "findings_by_code": {code: int(by_code.get(code, 0)) for code in checked},
            "customers_with_findings": int(self.findings["customer_code"].replace("", np.nan).nunique()),
            "cards_expiring_by_month": self.expiring_by_month(),
            "skipped_codes": list(self.skipped_codes),
            "notes": list(self.notes),
            "payment_data": self.payment_data(),
            "findings_by_tag": {tag: int((self.findings["tag"] == tag).sum()) for tag in TAGS},
        }


def _sorted(found: list[pd.DataFrame], ident: pd.DataFrame) -> pd.DataFrame:
    """Every finding, most severe first, then by code, customer and method."""
    findings = pd.concat(
        [f for f in found if len(f)] or [finding_rows(ident.iloc[:0], "card_expired", detail="")]
    )
    return (
        findings.assign(
            _s=findings["severity"].map(_SEVERITY_RANK),
            _c=findings["code"].map(_CODE_RANK),
            _m=pd.to_numeric(findings["method_id"], errors="coerce"),
        )
        .sort_values(["_s", "_c", "customer_code", "crm_id", "_m"], kind="stable")
        .drop(columns=["_s", "_c", "_m"])
        .reset_index(drop=True)
    )


def reconcile(
    customers: pd.DataFrame,
    cards: pd.DataFrame,
    banks: pd.DataFrame,
    pads: pd.DataFrame,
    links: pd.DataFrame,
    crm_ids: pd.Series | None,
    today: date,
    *,
    pairs: pd.DataFrame | None = None,
    bank_refreshed: pd.DataFrame | None = None,
    expiring_days: int = DEFAULT_THRESHOLDS["expiring_days"],
    pad_pending_days: int = DEFAULT_THRESHOLDS["pad_pending_days"],
    stale_nights: int = DEFAULT_THRESHOLDS["stale_nights"],
    created: Set[int] = frozenset(),
    created_recently: Set[int] = frozenset(),
    requested: Mapping[int, str] | None = None,
    refresh_per_night: int | None = None,
    bank_defaults: Mapping[int, int] | None = None,
) -> Reconciliation:
    """Reconcile the snapshot frames; see the module docstring and :data:`~crmsync.reconcile.rules.FINDINGS`.

    ``links`` has crm_id and helcim_id (the state store's links). ``crm_ids`` are
    the CRM export's ids, or None: then the CRM-dependent codes are skipped and
    the summary says so; with them, ``pairs`` (crm_id, helcim_id) is the diff's
    pairing. ``bank_refreshed`` (helcim_id, refreshed_at) says whose bank
    accounts and PADs have been read and when; None takes every customer's as
    read just now (no ``stale_payment_data``). ``created`` (this run's),
    ``created_recently`` (crmsync's, within the pending window) and ``requested``
    (Helcim id → the day bank details were requested) tag findings (:data:`TAGS`).
    ``refresh_per_night`` is the rolling refresh's floor ("when the rest will be read");
    ``bank_defaults`` (Helcim id → bank account id) the default bank accounts ``crmsync act`` set.
    """
    thresholds = _checked(
        expiring_days=expiring_days, pad_pending_days=pad_pending_days, stale_nights=stale_nights
    )
    if crm_ids is not None and pairs is None:
        raise ValueError("with the CRM's ids, give the diff's pairs too (who is whom)")
    ident, paired = identities(customers, links, pairs if crm_ids is not None else None)
    facts = Facts(
        ident=ident, paired=paired, cards=card_table(cards, ident, today, expiring_days),
        banks=bank_table(banks, pads, ident), pads=pad_table(pads, banks, ident, today), raw_cards=cards,
        links=links, crm_ids=crm_ids, bank_refreshed=bank_refreshed, today=today, **thresholds,
    )  # fmt: skip
    skipped = CRM_CODES if crm_ids is None else ()
    found = [spec.rule(facts) for code, spec in FINDINGS.items() if code not in skipped]
    notes = (
        [] if bank_refreshed is not None else ["bank refresh times not given: stale_payment_data not checked"]
    )
    crm_records = None if crm_ids is None else len(set(crm_ids.astype("str")) - {""})
    linked = None if crm_ids is None else int(paired.sum())
    if crm_ids is None:
        notes.append(
            "no CRM export given: " + ", ".join(CRM_CODES) + " were not checked (they need the CRM export)"
        )
    read_at = None if bank_refreshed is None else facts.bank_read_at()
    tagged = _default_ready(
        _tagged(found, created, created_recently, requested or {}), facts, bank_defaults or {}
    )
    return Reconciliation(
        cards=facts.cards.reset_index(drop=True),
        banks=facts.banks.reset_index(drop=True),
        pads=facts.pads.reset_index(drop=True),
        findings=_sorted(tagged, ident),
        today=today,
        thresholds=thresholds,
        customers=len(ident),
        crm_records=crm_records,
        linked=linked,
        customers_with_bank_data=None if read_at is None else int(read_at.notna().sum()),
        skipped_codes=skipped,
        notes=tuple(notes),
        bank_read_at=None
        if read_at is None
        else pd.Series(read_at.to_numpy(), index=ident["helcim_id"].to_numpy()),
        refresh_per_night=refresh_per_night,
        bank_defaults=dict(bank_defaults or {}),
    )


def _checked(**thresholds: int) -> dict[str, int]:
    for name, value in thresholds.items():
        if value < 0:
            raise ValueError(f"{name} must be 0 or more, not {value}")
    return thresholds


def _tagged(
    found: list[pd.DataFrame], created: Set[int], recently: Set[int], requested: Mapping[int, str]
) -> list[pd.DataFrame]:
    """Tag the findings of customers crmsync created, and of those bank details were requested from."""
    found = [f for f in found if len(f)]
    if not found:
        return []
    out = pd.concat(found, ignore_index=True)
    ids = out["helcim_id"].astype("str")
    new = (out["code"] == "no_payment_method") & ids.isin({str(i) for i in created})
    out.loc[new, ["severity", "tag"]] = ["info", "created_this_run"]
    out.loc[new, "detail"] = "created in Helcim by this run; no card or bank account yet"
    out.loc[new, "action"] = "Ask these customers for bank details (the group's request_bank_details actions)"
    lately = (out["code"] == "no_payment_method") & ids.isin({str(i) for i in recently}) & ~new
    out.loc[lately, ["severity", "tag"]] = ["info", "created_recently"]
    out.loc[lately, "detail"] = "created in Helcim by crmsync lately; no card or bank account yet"
    out.loc[lately, "action"] = (
        "Ask these customers for bank details (the group's request_bank_details actions)"
    )
    asked = {str(k): v for k, v in requested.items()}
    waiting = out["code"].isin(_REQUEST_CODES) & ids.isin(asked) & out["tag"].isin(["", "created_recently"])
    when = ids[waiting].map(asked).astype("str")
    out.loc[waiting, "tag"] = "details_requested"
    out.loc[waiting, "detail"] = out.loc[waiting, "detail"] + "; bank details requested " + when
    out.loc[waiting, "action"] = "Wait for the customer's bank details (requested " + when + ")"
    out.loc[waiting & (out["code"] != "pad_revoked"), "severity"] = "info"
    return [out]


def _default_ready(
    found: list[pd.DataFrame], facts: Facts, defaults: Mapping[int, int]
) -> list[pd.DataFrame]:
    """``pad_revoked`` and ``bank_not_ready`` of another account than the customer's default — when that is
    one crmsync act set and it is ready — become warnings without an action (``default_ready``)."""
    if not found or not defaults:
        return found
    out, banks = found[0], facts.banks
    ready = banks.loc[banks["ready"] == "yes", ["bank_id", "account"]].astype({"bank_id": "int64"})
    known = pd.DataFrame({"helcim_id": list(defaults), "bank_id": list(defaults.values())}, dtype="int64")
    usable = known.merge(ready, on="bank_id").set_index("helcim_id")
    pad_bank = dict(zip(facts.pads["pad_id"].astype("str"), facts.pads["bank_id"].astype("str"), strict=True))
    bank = (
        out["method_id"].where(out["code"] == "bank_not_ready", out["method_id"].map(pad_bank)).astype("str")
    )
    hid = pd.to_numeric(out["helcim_id"], errors="coerce")
    default = hid.map(usable["bank_id"]).astype("Int64").astype("str").fillna("")
    hit = out["code"].isin(["pad_revoked", "bank_not_ready"]) & (out["tag"] == "") & (default != "")
    hit &= default != bank
    account = hid[hit].map(usable["account"]).astype("str")
    out.loc[hit, ["severity", "tag"]] = ["warning", "default_ready"]
    out.loc[hit, "detail"] = out.loc[hit, "detail"] + "; debits go to the default " + account + " (ready)"
    out.loc[hit, "action"] = (
        "Nothing urgent: the default account "
        + account
        + ", set by crmsync act, is ready; renew or remove this one"
    )
    return [out]
