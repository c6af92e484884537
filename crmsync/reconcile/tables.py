"""The per-method tables of the morning reconciliation, with every value masked.   [pure]

One row per card, bank account and PAD, each with the identity of its
customer (``helcim_id, customer_code, crm_id, customer``) and its computed
status; and one table of payment methods per customer for the CRM's import.
Built once per reconciliation; the finding rules (:mod:`.rules`) and the files
(:mod:`.report`, :mod:`crmsync.crm.export`) all read these.

Only masked values ever enter these frames: a card is ``first6******last4``,
a bank account ``****last4``. Tokens are not in the snapshot to begin with.

Dates: a card's ``MMYY`` expiry is valid through the last day of that month, so
a card expiring this month is *expiring*, not expired. Ages are whole days
between ``today`` and the date part of the stored moment.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from crmsync.schemas.reconciliation import PAYMENT_METHOD_COLUMNS

__all__ = [
    "BANK_REPORT_COLUMNS",
    "CARD_REPORT_COLUMNS",
    "FINDING_COLUMNS",
    "IDENTITY_COLUMNS",
    "PAD_REPORT_COLUMNS",
    "age_days",
    "attach",
    "bank_table",
    "card_brand",
    "card_table",
    "identities",
    "mask_bank",
    "mask_card",
    "pad_status_of_banks",
    "pad_table",
    "payment_methods",
]

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
    "tag",  # created_this_run | details_requested | "" (see crmsync.reconcile.findings)
)
IDENTITY_COLUMNS = ("helcim_id", "customer_code", "crm_id", "customer")
CARD_REPORT_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS,
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
    *IDENTITY_COLUMNS,
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
    *IDENTITY_COLUMNS,
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


def yes(values: pd.Series) -> pd.Series:
    return values.astype(bool).map({True: "yes", False: "no"}).astype("str")


def _day(moments: pd.Series) -> pd.Series:
    """The date part of stored moments (``YYYY-MM-DD HH:MM:SS`` or ISO ``…T…Z``); NaT where empty."""
    return pd.to_datetime(moments.astype("str").str[:10], format="%Y-%m-%d", errors="coerce")


def age_days(moments: pd.Series, today: date) -> pd.Series:
    days: pd.Series = (pd.Timestamp(today) - _day(moments)).dt.days
    return days


# -- who is whom ---------------------------------------------------------------------------


def identities(
    customers: pd.DataFrame, links: pd.DataFrame, pairs: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.Series]:
    """helcim_id, customer_code, crm_id, customer per Helcim customer; and which are paired with a CRM record.

    ``pairs`` (crm_id, helcim_id) is the diff's pairing of the CRM export with
    Helcim, computed once (:mod:`crmsync.sync.pairing`); None when there is no
    CRM export: then a customer's crm_id is its link, and nobody is paired.
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
    if pairs is None:
        ident["crm_id"] = by_link.fillna("").astype("str")
        return ident.loc[:, list(IDENTITY_COLUMNS)], pd.Series(False, index=ident.index)
    paired_to = dict(zip(pairs["helcim_id"].astype("int64"), pairs["crm_id"].astype("str"), strict=True))
    by_pair = ident["helcim_id"].map(paired_to).astype(object)
    ident["crm_id"] = by_pair.fillna(by_link).fillna("").astype("str")
    return ident.loc[:, list(IDENTITY_COLUMNS)], by_pair.notna()


def attach(frame: pd.DataFrame, ident: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with helcim_id) with the customer's identity columns in front."""
    joined = frame.merge(ident, on="helcim_id", how="left", sort=False)
    for column in ("customer_code", "crm_id", "customer"):
        joined[column] = joined[column].fillna("").astype("str")
    return joined


# -- the tables ------------------------------------------------------------------------------


def card_table(cards: pd.DataFrame, ident: pd.DataFrame, today: date, expiring_days: int) -> pd.DataFrame:
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
    table = attach(cards.loc[:, ["card_id", "helcim_id"]], ident)
    table["holder"] = cards["holder"].astype("str").to_numpy()
    table["card"] = mask_card(cards["f6l4"]).to_numpy()
    table["brand"] = card_brand(cards["f6l4"]).to_numpy()
    table["expiry"] = np.where(readable, expiry.str[:2] + "/" + expiry.str[2:], expiry).astype(str)
    table["expires_on"] = expires_on.dt.strftime("%Y-%m-%d").fillna("").to_numpy()
    table["days_left"] = days_left.astype("Int64").array  # .to_numpy() would turn them into floats
    table["status"] = status
    table["is_default"] = yes(cards["is_default"]).to_numpy()
    table["date_created"] = cards["date_created"].astype("str").to_numpy()
    return table.loc[:, list(CARD_REPORT_COLUMNS)]


def pad_status_of_banks(pads: pd.DataFrame) -> pd.Series:
    """bank_id → the best PAD state it has: accepted, else pending, else revoked."""
    if pads.empty:
        return pd.Series(dtype="str")
    rank = pads["state"].map({"accepted": 0, "pending": 1, "revoked": 2}).fillna(3)
    best = pads.assign(rank=rank).sort_values(["bank_id", "rank"]).drop_duplicates("bank_id")
    return pd.Series(best["state"].astype("str").to_numpy(), index=best["bank_id"].astype("int64").to_numpy())


def bank_table(banks: pd.DataFrame, pads: pd.DataFrame, ident: pd.DataFrame) -> pd.DataFrame:
    """BANK_REPORT_COLUMNS: one row per bank account, ``pad_status`` its best PAD (or none)."""
    pad_status = pad_status_of_banks(pads)
    table = attach(banks.loc[:, ["bank_id", "helcim_id"]], ident)
    table["account"] = mask_bank(banks["last4"]).to_numpy()
    for column in ("country", "institution", "transit", "routing", "account_type", "corporate"):
        table[column] = banks[column].astype("str").to_numpy()
    table["verified"] = yes(banks["verified"]).to_numpy()
    table["ready"] = yes(banks["ready"]).to_numpy()
    table["pad_status"] = (
        banks["bank_id"]
        .astype("int64")
        .map(pad_status)
        .astype(object)
        .fillna("none")
        .astype("str")
        .to_numpy()
    )
    for column in ("date_created", "date_verified", "date_last_used"):
        table[column] = banks[column].astype("str").to_numpy()
    table = table.loc[:, list(BANK_REPORT_COLUMNS)]
    return table


def pad_table(pads: pd.DataFrame, banks: pd.DataFrame, ident: pd.DataFrame, today: date) -> pd.DataFrame:
    """PAD_REPORT_COLUMNS: one row per PAD agreement, with the masked account it is for."""
    table = attach(pads.loc[:, ["pad_id", "helcim_id"]], ident)
    bank_accounts = pd.Series(
        mask_bank(banks["last4"]).to_numpy(), index=banks["bank_id"].astype("int64").to_numpy()
    )
    table["bank_id"] = pads["bank_id"].astype("int64").to_numpy()
    table["account"] = table["bank_id"].map(bank_accounts).astype(object).fillna("").astype("str")
    table["state"] = pads["state"].astype("str").to_numpy()
    table["accepted"] = yes(pads["accepted"]).to_numpy()
    table["active"] = yes(pads["active"]).to_numpy()
    table["pad_type"] = (
        pads["pad_type"].map({1: "personal", 2: "business"}).fillna("").astype("str").to_numpy()
    )
    for column in ("date_created", "date_accepted", "date_revoked"):
        table[column] = pads[column].astype("str").to_numpy()
    table["age_days"] = age_days(pads["date_created"], today).astype("Int64").array
    table = table.loc[:, list(PAD_REPORT_COLUMNS)]
    return table


def payment_methods(cards: pd.DataFrame, banks: pd.DataFrame) -> pd.DataFrame:
    """``crm_id`` and PAYMENT_METHOD_COLUMNS (:mod:`crmsync.schemas.reconciliation`) from the card and
    bank tables: one row per card and bank account.

    ``crm_id`` is the customer's CRM record (its link or pairing), else its
    customerCode; ``default`` is blank for bank accounts (Helcim's bank list
    does not say).
    """
    card_rows = pd.DataFrame(
        {
            "crm_id": cards["crm_id"].where(cards["crm_id"] != "", cards["customer_code"]).to_numpy(),
            "helcim_id": cards["helcim_id"].astype("int64").to_numpy(),
            "customer_code": cards["customer_code"].to_numpy(),
            "method": "card",
            "method_id": cards["card_id"].astype("int64").to_numpy(),
            "default": cards["is_default"].to_numpy(),
            "card_brand": cards["brand"].to_numpy(),
            "card_last4": cards["card"].astype("str").str[-4:].to_numpy(),
            "card_expiry": cards["expiry"].to_numpy(),
            "bank_last4": "",
            "bank_verified": "",
            "bank_ready": "",
            "pad_status": "",
        }
    )
    bank_rows = pd.DataFrame(
        {
            "crm_id": banks["crm_id"].where(banks["crm_id"] != "", banks["customer_code"]).to_numpy(),
            "helcim_id": banks["helcim_id"].astype("int64").to_numpy(),
            "customer_code": banks["customer_code"].to_numpy(),
            "method": "bank",
            "method_id": banks["bank_id"].astype("int64").to_numpy(),
            "default": "",
            "card_brand": "",
            "card_last4": "",
            "card_expiry": "",
            "bank_last4": banks["account"].astype("str").str[-4:].to_numpy(),
            "bank_verified": banks["verified"].to_numpy(),
            "bank_ready": banks["ready"].to_numpy(),
            "pad_status": banks["pad_status"].to_numpy(),
        }
    )
    table = pd.concat([card_rows, bank_rows], ignore_index=True).astype(
        {"crm_id": "str", "customer_code": "str"}
    )[["crm_id", *PAYMENT_METHOD_COLUMNS]]
    return table.sort_values(["crm_id", "helcim_id", "method", "method_id"], kind="stable").reset_index(
        drop=True
    )
