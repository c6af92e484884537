"""The morning reconciliation: what is wrong with the stored cards, bank accounts and PADs.   [pure]

:func:`reconcile` takes the snapshot frames (``schemas/helcim.py``), the links
(crm_id ↔ helcim_id), optionally the CRM's ids, and ``today`` (always given,
never read from the clock), and returns a :class:`Reconciliation`: one row per
card, bank account and PAD with its computed status, and the **findings**, each
with a code, a severity and a suggested action (see :data:`FINDINGS`).

Only masked values ever enter these frames: a card is ``first6******last4``,
a bank account ``****last4``. Tokens are not in the snapshot to begin with.

Dates: a card's ``MMYY`` expiry is valid through the last day of that month, so
a card expiring this month is *expiring*, not expired. Ages are whole days
between ``today`` and the date part of the stored moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from crmsync.sync.diff import pair_customers

__all__ = [
    "BANK_REPORT_COLUMNS",
    "CARD_REPORT_COLUMNS",
    "CRM_CODES",
    "FINDINGS",
    "FINDING_COLUMNS",
    "PAD_REPORT_COLUMNS",
    "SEVERITIES",
    "FindingSpec",
    "Reconciliation",
    "card_brand",
    "mask_bank",
    "mask_card",
    "pad_status_of_banks",
    "reconcile",
    "shared_code",
]

SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")


@dataclass(frozen=True)
class FindingSpec:
    severity: str
    action: str
    meaning: str


#: Every finding code: its usual severity, the suggested action, and what it means.
FINDINGS: dict[str, FindingSpec] = {
    "duplicate_customer": FindingSpec(
        "critical",
        "Merge these customers into one in Helcim (the API cannot delete customers); crmsync syncs the "
        "oldest and never exports the others to the CRM",
        "several Helcim customers share one customerCode (a create that landed twice, or a code typed in by hand)",
    ),
    "card_expired": FindingSpec(
        "critical",
        "Ask the customer for a new card; remove the expired one in Helcim",
        "the card's expiry month has passed (warning instead of critical when the customer's default "
        "card is another, valid one)",
    ),
    "card_expiring": FindingSpec(
        "warning",
        "Ask the customer to update the card before it expires",
        "the card expires within the expiring window (this month's cards included)",
    ),
    "no_default_card": FindingSpec(
        "warning", "Set one of the customer's cards as default in Helcim", "cards, but none is the default"
    ),
    "multiple_default_cards": FindingSpec(
        "warning", "Keep a single default card in Helcim", "more than one card is marked default"
    ),
    "no_payment_method": FindingSpec(
        "warning",
        "Ask the customer for a card or bank account",
        "a CRM record whose Helcim customer has no card and no bank account",
    ),
    "duplicate_card": FindingSpec(
        "warning",
        "Check whether these customers are one person (merge) or share a card",
        "the same card (first 6 / last 4, expiry and holder) is stored on different customers",
    ),
    "bank_unverified": FindingSpec(
        "warning",
        "Follow up on the bank account's verification in Helcim before debiting it",
        "the bank account is not verified",
    ),
    "bank_not_ready": FindingSpec(
        "warning",
        "Do not debit this account yet; see the PAD finding for it",
        "Helcim cannot debit the bank account yet (no accepted, active PAD)",
    ),
    "pad_pending": FindingSpec(
        "warning",
        "Remind the customer to accept the PAD agreement Helcim e-mailed",
        "a PAD agreement has waited for the customer longer than the pending window",
    ),
    "pad_revoked": FindingSpec(
        "critical",
        "Stop debits; agree a new PAD or another payment method with the customer",
        "the customer revoked the PAD agreement and the account has no other accepted one",
    ),
    "bank_without_pad": FindingSpec(
        "warning",
        "Send the customer a PAD agreement (request new bank details in Helcim)",
        "a bank account with no PAD agreement at all",
    ),
    "helcim_only_customer": FindingSpec(
        "info",
        "Import the customer into the CRM (crm_import/new_customers.csv)",
        "a Helcim customer no CRM record is linked to",
    ),
    "crm_only_customer": FindingSpec(
        "info",
        "The next crmsync run creates it in Helcim (unless rejected or awaiting a link decision)",
        "a CRM record with no Helcim customer",
    ),
    "stale_payment_data": FindingSpec(
        "info",
        "Nothing to do: the rolling refresh reads it again soon (or raise --max-calls)",
        "the customer's bank accounts and PADs were read longer ago than the stale window, or never",
    ),
}
#: Codes that need the CRM's ids: skipped (and said so) when no CRM export is given.
CRM_CODES: tuple[str, ...] = ("no_payment_method", "helcim_only_customer", "crm_only_customer")
_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_CODE_RANK = {name: rank for rank, name in enumerate(FINDINGS)}

FINDING_COLUMNS: tuple[str, ...] = (
    "severity",
    "code",
    "customer_code",
    "helcim_id",
    "crm_id",
    "customer",
    "method_type",
    "method_id",
    "method",
    "detail",
    "action",
)
_IDENT = ("helcim_id", "customer_code", "crm_id", "customer")
CARD_REPORT_COLUMNS: tuple[str, ...] = (
    *_IDENT,
    "card_id",
    "holder",
    "card",
    "brand",
    "expiry",
    "expires_on",
    "days_left",
    "status",
    "is_default",
    "date_created",
)
BANK_REPORT_COLUMNS: tuple[str, ...] = (
    *_IDENT,
    "bank_id",
    "account",
    "country",
    "institution",
    "transit",
    "routing",
    "account_type",
    "corporate",
    "verified",
    "ready",
    "pad_status",
    "date_created",
    "date_verified",
    "date_last_used",
)
PAD_REPORT_COLUMNS: tuple[str, ...] = (
    *_IDENT,
    "pad_id",
    "bank_id",
    "account",
    "state",
    "accepted",
    "active",
    "pad_type",
    "date_created",
    "date_accepted",
    "date_revoked",
    "age_days",
)


# -- masking and labels --------------------------------------------------------------


def mask_card(f6l4: pd.Series) -> pd.Series:
    """``first6******last4`` from Helcim's 10-digit first 6 + last 4; never more digits than those."""
    text = f6l4.astype("str").str.replace(r"\D", "", regex=True)
    good = text.str.len() == 10
    return pd.Series(
        np.where(good, text.str[:6] + "******" + text.str[-4:], "******" + text.str[-4:].where(~good, "")),
        index=f6l4.index,
        dtype="str",
    )


def mask_bank(last4: pd.Series) -> pd.Series:
    """``****1234``: the account's last 4 digits are all crmsync ever has."""
    return ("****" + last4.astype("str").str.replace(r"\D", "", regex=True).str[-4:]).astype("str")


def card_brand(f6l4: pd.Series) -> pd.Series:
    """The card network from the first digits (IIN ranges); ``other`` when none matches."""
    text = f6l4.astype("str")
    two = pd.to_numeric(text.str[:2], errors="coerce").fillna(-1)
    three = pd.to_numeric(text.str[:3], errors="coerce").fillna(-1)
    four = pd.to_numeric(text.str[:4], errors="coerce").fillna(-1)
    six = pd.to_numeric(text.str[:6], errors="coerce").fillna(-1)
    conditions = [
        text.str[:1] == "4",
        two.between(51, 55) | four.between(2221, 2720),
        two.isin([34, 37]),
        (four == 6011) | (two == 65) | three.between(644, 649) | six.between(622126, 622925),
    ]
    brands = np.select(conditions, ["Visa", "Mastercard", "Amex", "Discover"], default="other")
    return pd.Series(brands, index=f6l4.index, dtype="str")


def _yes(values: pd.Series) -> pd.Series:
    return values.astype(bool).map({True: "yes", False: "no"}).astype("str")


def _day(moments: pd.Series) -> pd.Series:
    """The date part of stored moments (``YYYY-MM-DD HH:MM:SS`` or ISO ``…T…Z``); NaT where empty."""
    return pd.to_datetime(moments.astype("str").str[:10], format="%Y-%m-%d", errors="coerce")


def _age_days(moments: pd.Series, today: date) -> pd.Series:
    days: pd.Series = (pd.Timestamp(today) - _day(moments)).dt.days
    return days


# -- the result ------------------------------------------------------------------------


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


# -- building blocks -------------------------------------------------------------------


def _findings(
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
    """Finding rows for ``rows`` (which carry the _IDENT columns)."""
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
        },
        columns=list(FINDING_COLUMNS),
    )


def _identities(
    customers: pd.DataFrame, links: pd.DataFrame, crm_ids: pd.Series | None
) -> tuple[pd.DataFrame, pd.Series]:
    """helcim_id, customer_code, crm_id, customer per Helcim customer; and which are paired with a CRM record.

    A customer is paired through the state store's links (to a crm_id the export
    still has, when one is given), else when its customerCode is one of the CRM's ids.
    """
    name = customers["contact_name"].astype("str")
    name = name.where(name.str.strip() != "", customers["business_name"].astype("str"))
    ident = pd.DataFrame(
        {
            "helcim_id": customers["helcim_id"].astype("int64").to_numpy(),
            "customer_code": customers["customer_code"].astype("str").to_numpy(),
            "customer": name.to_numpy(dtype=object),
        }
    )
    linked = dict(zip(links["helcim_id"].astype("int64"), links["crm_id"].astype("str"), strict=True))
    by_link = ident["helcim_id"].map(linked).astype(object)
    if crm_ids is None:
        ident["crm_id"] = by_link.fillna("").astype("str")
        return ident.loc[:, list(_IDENT)], pd.Series(False, index=ident.index)
    # the diff's own pairing: links first (also to customers Helcim no longer has), then the oldest
    # customer holding a crm_id as its code
    ids = crm_ids.astype("str")
    crm = pd.DataFrame({"crm_id": ids[ids != ""].drop_duplicates().reset_index(drop=True)})
    pairs = pair_customers(crm, ident[["helcim_id", "customer_code"]], links, None)[0]
    paired_to = dict(zip(pairs["helcim_id"].astype("int64"), pairs["crm_id"].astype("str"), strict=True))
    by_pair = ident["helcim_id"].map(paired_to).astype(object)
    ident["crm_id"] = by_pair.fillna(by_link).fillna("").astype("str")
    paired = by_pair.notna()
    return ident.loc[:, list(_IDENT)], paired


def _attach(frame: pd.DataFrame, ident: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with helcim_id) with the customer's identity columns in front."""
    joined = frame.merge(ident, on="helcim_id", how="left", sort=False)
    for column in ("customer_code", "crm_id", "customer"):
        joined[column] = joined[column].fillna("").astype("str")
    return joined


def _card_table(cards: pd.DataFrame, ident: pd.DataFrame, today: date, expiring_days: int) -> pd.DataFrame:
    expiry = cards["expiry"].astype("str")
    readable = expiry.str.fullmatch(r"\d{4}")
    month = pd.to_numeric(expiry.str[:2].where(readable), errors="coerce")
    readable &= month.between(1, 12)
    year = 2000 + pd.to_numeric(expiry.str[2:].where(readable), errors="coerce")
    index = (year * 12 + month - 1).where(readable)
    following = index + 1
    first_of_next = pd.to_datetime(
        pd.DataFrame({"year": following // 12, "month": following % 12 + 1, "day": 1}), errors="coerce"
    )
    expires_on = first_of_next - pd.Timedelta(days=1)
    days_left = (expires_on - pd.Timestamp(today)).dt.days
    this_month = today.year * 12 + today.month - 1
    status = np.select(
        [~readable, index < this_month, (days_left <= expiring_days) | (index == this_month)],
        ["unreadable", "expired", "expiring"],
        default="valid",
    )
    table = _attach(cards.loc[:, ["card_id", "helcim_id"]], ident)
    table["holder"] = cards["holder"].astype("str").to_numpy()
    table["card"] = mask_card(cards["f6l4"]).to_numpy()
    table["brand"] = card_brand(cards["f6l4"]).to_numpy()
    table["expiry"] = np.where(readable, expiry.str[:2] + "/" + expiry.str[2:], expiry).astype(str)
    table["expires_on"] = expires_on.dt.strftime("%Y-%m-%d").fillna("").to_numpy()
    table["days_left"] = days_left.astype("Int64").array  # .to_numpy() would turn them into floats
    table["status"] = status
    table["is_default"] = _yes(cards["is_default"]).to_numpy()
    table["date_created"] = cards["date_created"].astype("str").to_numpy()
    return table.loc[:, list(CARD_REPORT_COLUMNS)]


def shared_code(codes: pd.Series) -> pd.Series:
    """True for every customer whose (non-empty) customerCode another Helcim customer holds too."""
    text = codes.astype("str")
    return text.duplicated(keep=False) & (text != "")


def _duplicate_customers(ident: pd.DataFrame) -> pd.DataFrame:
    """``duplicate_customer``: one finding per customer of each group sharing a customerCode."""
    rows = ident[shared_code(ident["customer_code"])]
    if rows.empty:
        return _findings(rows, "duplicate_customer", detail="")
    ids: dict[str, list[int]] = {}
    for code, helcim_id in zip(rows["customer_code"], rows["helcim_id"], strict=True):
        ids.setdefault(str(code), []).append(int(helcim_id))
    detail = [
        f"customerCode {code} is held by {len(ids[code])} Helcim customers (ids "
        + ", ".join(str(i) for i in sorted(ids[code]))
        + f"); crmsync syncs the oldest, {min(ids[code])}"
        for code in rows["customer_code"]
    ]
    return _findings(rows, "duplicate_customer", detail=pd.Series(detail, index=rows.index))


def pad_status_of_banks(pads: pd.DataFrame) -> pd.Series:
    """bank_id → the best PAD state it has: accepted, else pending, else revoked."""
    if pads.empty:
        return pd.Series(dtype="str")
    rank = pads["state"].map({"accepted": 0, "pending": 1, "revoked": 2}).fillna(3)
    best = pads.assign(rank=rank).sort_values(["bank_id", "rank"]).drop_duplicates("bank_id")
    return pd.Series(best["state"].astype("str").to_numpy(), index=best["bank_id"].astype("int64").to_numpy())


# -- the reconciliation ----------------------------------------------------------------


def reconcile(
    customers: pd.DataFrame,
    cards: pd.DataFrame,
    banks: pd.DataFrame,
    pads: pd.DataFrame,
    links: pd.DataFrame,
    crm_ids: pd.Series | None,
    today: date,
    *,
    bank_refreshed: pd.DataFrame | None = None,
    expiring_days: int = 30,
    pad_pending_days: int = 14,
    stale_nights: int = 7,
) -> Reconciliation:
    """Reconcile the snapshot frames; see the module docstring and :data:`FINDINGS`.

    ``links`` has crm_id and helcim_id (the state store's links). ``crm_ids`` are
    the CRM export's ids, or None: then the CRM-dependent codes (:data:`CRM_CODES`)
    are skipped and the summary says so. ``bank_refreshed`` (helcim_id,
    refreshed_at) says whose bank accounts and PADs have been read and when;
    None takes every customer's as read just now (no ``stale_payment_data``).
    """
    for name, value in (
        ("expiring_days", expiring_days),
        ("pad_pending_days", pad_pending_days),
        ("stale_nights", stale_nights),
    ):
        if value < 0:
            raise ValueError(f"{name} must be 0 or more, not {value}")
    ident, paired = _identities(customers, links, crm_ids)
    found: list[pd.DataFrame] = [_duplicate_customers(ident)]
    notes: list[str] = []

    # -- cards -------------------------------------------------------------------------
    card_table = _card_table(cards, ident, today, expiring_days)
    usable = card_table["status"].isin(["valid", "expiring"])
    default = card_table["is_default"] == "yes"
    per_customer = (
        pd.DataFrame(
            {
                "helcim_id": card_table["helcim_id"],
                "cards": 1,
                "defaults": default.astype(int),
                "usable_default": (default & usable).astype(int),
                "usable": usable.astype(int),
            }
        )
        .groupby("helcim_id", sort=True)[["cards", "defaults", "usable_default", "usable"]]
        .sum()
    )
    method = card_table["card"] + " " + card_table["expiry"]

    expired = card_table["status"] == "expired"
    covered = card_table["helcim_id"].map(per_customer["usable_default"]).fillna(0) > 0
    rows = card_table[expired]
    found.append(
        _findings(
            rows,
            "card_expired",
            detail="expired at the end of " + rows["expiry"],
            method_type="card",
            method_id=rows["card_id"],
            method=method[expired],
            severity=pd.Series(
                np.where((rows["is_default"] == "yes") | ~covered[expired], "critical", "warning"),
                index=rows.index,
            ),
            action=pd.Series(
                np.where(
                    (rows["is_default"] == "yes") | ~covered[expired],
                    FINDINGS["card_expired"].action,
                    "Remove the expired card in Helcim (the default card is valid)",
                ),
                index=rows.index,
            ),
        )
    )
    expiring = card_table["status"] == "expiring"
    rows = card_table[expiring]
    found.append(
        _findings(
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
            method=method[expiring],
        )
    )
    no_default = per_customer[(per_customer["cards"] > 0) & (per_customer["defaults"] == 0)]
    rows = _attach(pd.DataFrame({"helcim_id": no_default.index.to_numpy()}), ident)
    found.append(
        _findings(
            rows,
            "no_default_card",
            detail=no_default["cards"].astype("str").to_numpy() + " card(s), none default"
            if len(rows)
            else "",
            method_type="card",
        )
    )
    several = per_customer[per_customer["defaults"] > 1]
    rows = _attach(pd.DataFrame({"helcim_id": several.index.to_numpy()}), ident)
    default_methods = (
        card_table[default].groupby("helcim_id")["card"].agg(lambda v: ", ".join(v)) if len(rows) else None
    )
    found.append(
        _findings(
            rows,
            "multiple_default_cards",
            detail=several["defaults"].astype("str").to_numpy() + " default cards" if len(rows) else "",
            method_type="card",
            method=rows["helcim_id"].map(default_methods) if default_methods is not None else None,
        )
    )
    holder = cards["holder"].astype("str").str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()
    key = pd.Series(
        (cards["f6l4"].astype("str") + "|" + cards["expiry"].astype("str") + "|" + holder).to_numpy(),
        index=card_table.index,
    )
    spread = key.groupby(card_table["helcim_id"].to_numpy()).unique().explode()
    owners = pd.Series(spread.index, index=spread.to_numpy()).groupby(level=0).nunique()
    shared = key.map(owners).fillna(0) > 1
    rows = card_table[shared]
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
        detail: pd.Series | str = pd.Series(["also stored on " + o for o in others], index=rows.index)
    else:
        detail = ""
    found.append(
        _findings(
            rows,
            "duplicate_card",
            detail=detail,
            method_type="card",
            method_id=rows["card_id"],
            method=method[shared],
        )
    )

    # -- bank accounts and PADs --------------------------------------------------------
    pad_status = pad_status_of_banks(pads)
    bank_table = _attach(banks.loc[:, ["bank_id", "helcim_id"]], ident)
    bank_table["account"] = mask_bank(banks["last4"]).to_numpy()
    for column in ("country", "institution", "transit", "routing", "account_type", "corporate"):
        bank_table[column] = banks[column].astype("str").to_numpy()
    bank_table["verified"] = _yes(banks["verified"]).to_numpy()
    bank_table["ready"] = _yes(banks["ready"]).to_numpy()
    bank_table["pad_status"] = (
        banks["bank_id"]
        .astype("int64")
        .map(pad_status)
        .astype(object)
        .fillna("none")
        .astype("str")
        .to_numpy()
    )
    for column in ("date_created", "date_verified", "date_last_used"):
        bank_table[column] = banks[column].astype("str").to_numpy()
    bank_table = bank_table.loc[:, list(BANK_REPORT_COLUMNS)]
    bank_method = bank_table["account"] + " (" + bank_table["country"] + ")"

    unverified = bank_table["verified"] == "no"
    rows = bank_table[unverified]
    found.append(
        _findings(
            rows,
            "bank_unverified",
            detail="added " + rows["date_created"].str[:10] + ", not verified",
            method_type="bank",
            method_id=rows["bank_id"],
            method=bank_method[unverified],
        )
    )
    if bank_refreshed is None:
        pads_known = pd.Series(True, index=bank_table.index)
    else:
        pads_known = bank_table["helcim_id"].isin(bank_refreshed["helcim_id"].astype("int64"))
    not_ready = bank_table["ready"] == "no"
    rows = bank_table[not_ready]
    # without its PADs read, "no PAD" is only "not known yet": never ask the customer for a new one on that
    pad_state = rows["pad_status"].where(pads_known[not_ready], "unknown")
    reason = pad_state.map(
        {
            "none": ("no PAD agreement", FINDINGS["bank_without_pad"].action),
            "pending": ("PAD agreement not accepted yet", FINDINGS["pad_pending"].action),
            "revoked": ("PAD agreement revoked", FINDINGS["pad_revoked"].action),
            "accepted": (
                "PAD accepted, but Helcim does not mark the account ready",
                "Check the bank account and its PAD in Helcim",
            ),
            "unknown": (
                "its PAD agreements are not read yet",
                "Check the account's PAD in Helcim (the next runs read it)",
            ),
        }
    )
    found.append(
        _findings(
            rows,
            "bank_not_ready",
            detail=reason.str[0] if len(rows) else "",
            method_type="bank",
            method_id=rows["bank_id"],
            method=bank_method[not_ready],
            action=reason.str[1] if len(rows) else None,
        )
    )
    without = (bank_table["pad_status"] == "none") & pads_known
    rows = bank_table[without]
    found.append(
        _findings(
            rows,
            "bank_without_pad",
            detail="no PAD agreement for this account",
            method_type="bank",
            method_id=rows["bank_id"],
            method=bank_method[without],
        )
    )

    pad_table = _attach(pads.loc[:, ["pad_id", "helcim_id"]], ident)
    bank_accounts = pd.Series(
        bank_table["account"].to_numpy(), index=bank_table["bank_id"].astype("int64").to_numpy()
    )
    pad_table["bank_id"] = pads["bank_id"].astype("int64").to_numpy()
    pad_table["account"] = pad_table["bank_id"].map(bank_accounts).astype(object).fillna("").astype("str")
    pad_table["state"] = pads["state"].astype("str").to_numpy()
    pad_table["accepted"] = _yes(pads["accepted"]).to_numpy()
    pad_table["active"] = _yes(pads["active"]).to_numpy()
    pad_table["pad_type"] = (
        pads["pad_type"].map({1: "personal", 2: "business"}).fillna("").astype("str").to_numpy()
    )
    for column in ("date_created", "date_accepted", "date_revoked"):
        pad_table[column] = pads[column].astype("str").to_numpy()
    pad_table["age_days"] = _age_days(pads["date_created"], today).astype("Int64").array
    pad_table = pad_table.loc[:, list(PAD_REPORT_COLUMNS)]
    pad_method = "PAD on " + pad_table["account"].where(pad_table["account"] != "", "a removed account")

    waiting = (pad_table["state"] == "pending") & (pad_table["age_days"].fillna(0) > pad_pending_days)
    rows = pad_table[waiting]
    found.append(
        _findings(
            rows,
            "pad_pending",
            detail="pending since "
            + rows["date_created"].str[:10]
            + " ("
            + rows["age_days"].astype("str")
            + " days)",
            method_type="pad",
            method_id=rows["pad_id"],
            method=pad_method[waiting],
        )
    )
    live_banks = set(bank_table["bank_id"].astype("int64"))
    accepted_banks = set(pad_table.loc[pad_table["state"] == "accepted", "bank_id"])
    revoked = (
        (pad_table["state"] == "revoked")
        & pad_table["bank_id"].isin(live_banks)
        & ~pad_table["bank_id"].isin(accepted_banks)
    )
    rows = pad_table[revoked]
    found.append(
        _findings(
            rows,
            "pad_revoked",
            detail="revoked " + rows["date_revoked"].str[:10],
            method_type="pad",
            method_id=rows["pad_id"],
            method=pad_method[revoked],
        )
    )

    # -- freshness of bank data ----------------------------------------------------------
    with_bank_data: int | None = None
    has_bank_data = pd.Series(True, index=ident.index)
    if bank_refreshed is not None:
        read_at = (
            ident["helcim_id"]
            .map(
                pd.Series(
                    bank_refreshed["refreshed_at"].astype("str").to_numpy(),
                    index=bank_refreshed["helcim_id"].astype("int64").to_numpy(),
                )
            )
            .astype(object)
        )
        has_bank_data = read_at.notna()
        with_bank_data = int(has_bank_data.sum())
        nights = _age_days(read_at.fillna(""), today)
        stale = ~has_bank_data | (nights > stale_nights)
        rows = ident[stale]
        found.append(
            _findings(
                rows,
                "stale_payment_data",
                detail=pd.Series(
                    np.where(
                        has_bank_data[stale],
                        "bank accounts and PADs last read "
                        + read_at[stale].fillna("").str[:10]
                        + " ("
                        + nights[stale].astype("Int64").astype("str")
                        + " nights ago)",
                        "bank accounts and PADs never read",
                    ),
                    index=rows.index,
                ),
                method_type="bank",
            )
        )
    else:
        notes.append("bank refresh times not given: stale_payment_data not checked")

    # -- the CRM side ------------------------------------------------------------------
    crm_records: int | None = None
    linked_count: int | None = None
    skipped: tuple[str, ...] = ()
    if crm_ids is None:
        skipped = (*CRM_CODES,)
        notes.append(
            "no CRM export given: " + ", ".join(CRM_CODES) + " were not checked (pass --crm to check them)"
        )
    else:
        known = pd.Series(sorted(set(crm_ids.astype("str")) - {""}), dtype="str")
        crm_records = len(known)
        linked_count = int(paired.sum())
        with_cards = ident["helcim_id"].isin(card_table["helcim_id"])
        with_banks = ident["helcim_id"].isin(bank_table["helcim_id"])
        bare = paired & ~with_cards & ~with_banks & has_bank_data
        found.append(
            _findings(ident[bare], "no_payment_method", detail="no card and no bank account in Helcim")
        )
        alone = ident[~paired & ~shared_code(ident["customer_code"])]  # duplicates have their own finding
        linked_elsewhere = alone["crm_id"] != ""
        found.append(
            _findings(
                alone,
                "helcim_only_customer",
                detail=pd.Series(
                    np.where(
                        linked_elsewhere,
                        "linked to crm_id " + alone["crm_id"] + ", which is not in this CRM export",
                        "no CRM record has this customer's code or a link to it",
                    ),
                    index=alone.index,
                ),
            )
        )
        missing = known[~known.isin(ident.loc[paired, "crm_id"])]
        lost = set(links["crm_id"].astype("str"))
        rows = pd.DataFrame(
            {"helcim_id": "", "customer_code": "", "crm_id": missing.to_numpy(), "customer": ""}
        )
        found.append(
            _findings(
                rows,
                "crm_only_customer",
                detail=pd.Series(
                    np.where(
                        rows["crm_id"].isin(lost),
                        "linked to a Helcim customer that is no longer in Helcim",
                        "no Helcim customer has this code or a link to it",
                    ),
                    index=rows.index,
                ),
            )
        )

    findings = pd.concat(
        [f for f in found if len(f)] or [_findings(ident.iloc[:0], "card_expired", detail="")]
    )
    findings = (
        findings.assign(
            _s=findings["severity"].map(_SEVERITY_RANK),
            _c=findings["code"].map(_CODE_RANK),
            _m=pd.to_numeric(findings["method_id"], errors="coerce"),
        )
        .sort_values(["_s", "_c", "customer_code", "crm_id", "_m"], kind="stable")
        .drop(columns=["_s", "_c", "_m"])
        .reset_index(drop=True)
    )
    return Reconciliation(
        cards=card_table.reset_index(drop=True),
        banks=bank_table.reset_index(drop=True),
        pads=pad_table.reset_index(drop=True),
        findings=findings,
        today=today,
        thresholds={
            "expiring_days": expiring_days,
            "pad_pending_days": pad_pending_days,
            "stale_nights": stale_nights,
        },
        customers=len(ident),
        crm_records=crm_records,
        linked=linked_count,
        customers_with_bank_data=with_bank_data,
        skipped_codes=skipped,
        notes=tuple(notes),
    )
