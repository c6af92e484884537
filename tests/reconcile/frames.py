"""Small hand-built snapshot frames for the reconciliation's unit tests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from crmsync.schemas.helcim import BANK_COLUMNS, CARD_COLUMNS, CUSTOMER_COLUMNS, PAD_COLUMNS


def customers(*rows: tuple[int, str, str]) -> pd.DataFrame:
    """(helcim_id, customer_code, contact_name) per customer; every other field empty."""
    records = [
        dict.fromkeys(CUSTOMER_COLUMNS, "") | {"helcim_id": i, "customer_code": code, "contact_name": name}
        for i, code, name in rows
    ]
    return pd.DataFrame(records, columns=list(CUSTOMER_COLUMNS)).astype({"helcim_id": "int64"})


def card(
    card_id: int,
    helcim_id: int,
    expiry: str,
    *,
    default: bool = True,
    f6l4: str = "4111111111",
    holder: str = "Ada King",
) -> dict[str, Any]:
    return {
        "card_id": card_id,
        "helcim_id": helcim_id,
        "holder": holder,
        "f6l4": f6l4,
        "expiry": expiry,
        "is_default": default,
        "date_created": "2024-01-02 10:00:00",
    }


def cards(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(CARD_COLUMNS)).astype(
        {"card_id": "int64", "helcim_id": "int64", "is_default": "bool"}
    )


def bank(
    bank_id: int, helcim_id: int, *, verified: bool = True, ready: bool = True, last4: str = "6789"
) -> dict[str, Any]:
    return {
        "bank_id": bank_id,
        "helcim_id": helcim_id,
        "account_type": "CHECKING",
        "corporate": "PERSONAL",
        "verified": verified,
        "ready": ready,
        "country": "CAN",
        "institution": "001",
        "transit": "12345",
        "routing": "",
        "last4": last4,
        "date_created": "2026-01-05 09:00:00",
        "date_verified": "2026-01-07 09:00:00" if verified else "",
        "date_last_used": "",
    }


def banks(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(BANK_COLUMNS)).astype(
        {"bank_id": "int64", "helcim_id": "int64", "verified": "bool", "ready": "bool"}
    )


def pad(
    pad_id: int, helcim_id: int, bank_id: int, state: str, created: str = "2026-01-05 09:00:00"
) -> dict[str, Any]:
    return {
        "pad_id": pad_id,
        "helcim_id": helcim_id,
        "bank_id": bank_id,
        "state": state,
        "accepted": state != "pending",
        "active": state != "revoked",
        "pad_type": 1,
        "date_created": created,
        "date_accepted": created if state != "pending" else "",
        "date_revoked": "2026-02-01 12:00:00" if state == "revoked" else "",
    }


def pads(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(PAD_COLUMNS)).astype(
        {
            "pad_id": "int64",
            "helcim_id": "int64",
            "bank_id": "int64",
            "accepted": "bool",
            "active": "bool",
            "pad_type": "int64",
        }
    )


def links(*pairs: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "crm_id": [p[0] for p in pairs],
            "helcim_id": [p[1] for p in pairs],
            "customer_code": "",
            "how": "code",
        }
    ).astype({"crm_id": "str", "helcim_id": "int64"})


def refreshed(*pairs: tuple[int, str]) -> pd.DataFrame:
    return pd.DataFrame({"helcim_id": [p[0] for p in pairs], "refreshed_at": [p[1] for p in pairs]}).astype(
        {"helcim_id": "int64", "refreshed_at": "str"}
    )
