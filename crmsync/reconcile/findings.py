"""The morning reconciliation: what is wrong with the stored cards, bank accounts and PADs.   [pure]

:func:`reconcile` takes the snapshot frames (:mod:`crmsync.schemas.helcim`),
the state store's links, and, with a CRM export, its ids and the diff's
pairing (who is whom, computed once by :mod:`crmsync.sync.pairing`); and
``today`` (always given, never read from the clock). It builds the per-method
tables (:mod:`.tables`), runs every finding rule (:mod:`.rules`), and returns a
:class:`Reconciliation`: the tables and the findings, each with a code, a
severity and a suggested action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from crmsync.reconcile.rules import CRM_CODES, FINDINGS, SEVERITIES, Facts, finding_rows
from crmsync.reconcile.tables import bank_table, card_table, identities, pad_table

__all__ = ["Reconciliation", "reconcile"]

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
    expiring_days: int = 30,
    pad_pending_days: int = 14,
    stale_nights: int = 7,
) -> Reconciliation:
    """Reconcile the snapshot frames; see the module docstring and :data:`~crmsync.reconcile.rules.FINDINGS`.

    ``links`` has crm_id and helcim_id (the state store's links). ``crm_ids`` are
    the CRM export's ids, or None: then the CRM-dependent codes are skipped and
    the summary says so; with them, ``pairs`` (crm_id, helcim_id) is the diff's
    pairing. ``bank_refreshed`` (helcim_id, refreshed_at) says whose bank
    accounts and PADs have been read and when; None takes every customer's as
    read just now (no ``stale_payment_data``).
    """
    thresholds = {
        "expiring_days": expiring_days,
        "pad_pending_days": pad_pending_days,
        "stale_nights": stale_nights,
    }
    for name, value in thresholds.items():
        if value < 0:
            raise ValueError(f"{name} must be 0 or more, not {value}")
    if crm_ids is not None and pairs is None:
        raise ValueError("with the CRM's ids, give the diff's pairs too (who is whom)")
    ident, paired = identities(customers, links, pairs if crm_ids is not None else None)
    facts = Facts(
        ident=ident,
        paired=paired,
        cards=card_table(cards, ident, today, expiring_days),
        banks=bank_table(banks, pads, ident),
        pads=pad_table(pads, banks, ident, today),
        raw_cards=cards,
        links=links,
        crm_ids=crm_ids,
        bank_refreshed=bank_refreshed,
        today=today,
        expiring_days=expiring_days,
        pad_pending_days=pad_pending_days,
        stale_nights=stale_nights,
    )
    skipped = CRM_CODES if crm_ids is None else ()
    found = [spec.rule(facts) for code, spec in FINDINGS.items() if code not in skipped]
    notes = []
    if bank_refreshed is None:
        notes.append("bank refresh times not given: stale_payment_data not checked")
    if crm_ids is not None:
        crm_records: int | None = len(set(crm_ids.astype("str")) - {""})
        linked: int | None = int(paired.sum())
    else:
        crm_records = linked = None
        notes.append(
            "no CRM export given: " + ", ".join(CRM_CODES) + " were not checked (they need the CRM export)"
        )
    return Reconciliation(
        cards=facts.cards.reset_index(drop=True),
        banks=facts.banks.reset_index(drop=True),
        pads=facts.pads.reset_index(drop=True),
        findings=_sorted(found, ident),
        today=today,
        thresholds=thresholds,
        customers=len(ident),
        crm_records=crm_records,
        linked=linked,
        customers_with_bank_data=None if bank_refreshed is None else int(facts.bank_read_at().notna().sum()),
        skipped_codes=skipped,
        notes=tuple(notes),
    )
