"""pandera models of the Helcim snapshot frames: customers, cards, bank accounts, PADs.

The snapshot is built by our own parser, so types and keys are hard rules
(``strict``, unique ids). What Helcim itself might send oddly (a card number
that is not 6+4 digits, an expiry that is not MMYY) is checked too: such a row
is kept, and reported by the reconciliation rather than crashing the night.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from crmsync.schemas.crm import CRM_COLUMNS

#: The fields crmsync keeps in sync: every generic CRM column but the id.
SYNCED_FIELDS: tuple[str, ...] = tuple(c for c in CRM_COLUMNS if c != "crm_id")
PAD_STATES = ("pending", "accepted", "revoked")


def _schema(name: str, id_column: str, columns: dict[str, pa.Column]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema({id_column: pa.Column("int64", unique=True), **columns}, name=name, strict=True)


def _text() -> pa.Column:
    return pa.Column("str")


HelcimCustomer = _schema(
    "HelcimCustomer",
    "helcim_id",
    {
        "customer_code": pa.Column("str"),
        **{field: _text() for field in SYNCED_FIELDS},
        "date_created": _text(),
        "date_updated": _text(),
    },
)

Card = _schema(
    "Card",
    "card_id",
    {
        "helcim_id": pa.Column("int64"),
        "holder": _text(),
        "f6l4": _text(),
        "expiry": _text(),
        "is_default": pa.Column("bool"),
        "date_created": _text(),
    },
)

BankAccount = _schema(
    "BankAccount",
    "bank_id",
    {
        "helcim_id": pa.Column("int64"),
        "account_type": _text(),
        "corporate": _text(),
        "verified": pa.Column("bool"),
        "ready": pa.Column("bool"),
        "country": pa.Column("str", pa.Check.isin(["CAN", "USA"])),
        "institution": _text(),
        "transit": _text(),
        "routing": _text(),
        "last4": pa.Column("str", pa.Check.str_matches(r"^\d{0,4}$")),
        "date_created": _text(),
        "date_verified": _text(),
        "date_last_used": _text(),
    },
)

Pad = _schema(
    "Pad",
    "pad_id",
    {
        "helcim_id": pa.Column("int64"),
        "bank_id": pa.Column("int64"),
        "state": pa.Column("str", pa.Check.isin(list(PAD_STATES))),
        "accepted": pa.Column("bool"),
        "active": pa.Column("bool"),
        "pad_type": pa.Column("int64"),
        "date_created": _text(),
        "date_accepted": _text(),
        "date_revoked": _text(),
    },
)


#: Each frame's columns, in order, as the models above declare them (the one declaration).
CUSTOMER_COLUMNS: tuple[str, ...] = tuple(HelcimCustomer.columns)
CARD_COLUMNS: tuple[str, ...] = tuple(Card.columns)
BANK_COLUMNS: tuple[str, ...] = tuple(BankAccount.columns)
PAD_COLUMNS: tuple[str, ...] = tuple(Pad.columns)
#: The state store's snapshot table of each model (its SQL columns are the model's plus page/fetched_at).
SNAPSHOT_TABLES: dict[str, pa.DataFrameSchema] = {
    "helcim_customers": HelcimCustomer,
    "helcim_cards": Card,
    "helcim_banks": BankAccount,
    "helcim_pads": Pad,
}


def dtypes_of(schema: pa.DataFrameSchema) -> dict[str, str]:
    """The pandas dtype of each column of a model (text columns as pandas' ``str``)."""
    return {
        name: "str" if column.dtype.type is not None and "string" in str(column.dtype) else str(column.dtype)
        for name, column in schema.columns.items()
    }


def empty(schema: pa.DataFrameSchema) -> pd.DataFrame:
    """An empty frame with the model's columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in dtypes_of(schema).items()})


__all__ = [
    "BANK_COLUMNS",
    "CARD_COLUMNS",
    "CUSTOMER_COLUMNS",
    "PAD_COLUMNS",
    "PAD_STATES",
    "SNAPSHOT_TABLES",
    "SYNCED_FIELDS",
    "BankAccount",
    "Card",
    "HelcimCustomer",
    "Pad",
    "Series",
    "dtypes_of",
    "empty",
]
