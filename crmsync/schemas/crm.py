"""``CrmCustomer``: what one CRM customer row must satisfy once mapped and normalised.

The customer-level columns are checked here; the ``billing_*`` and
``shipping_*`` columns are checked by :class:`crmsync.schemas.address.Address`, once
per prefix. :data:`CRM_REASONS` words each rule for a CRM administrator; a check
named ``field:rule`` spans columns and is reported against ``field``.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from crmsync.schemas.address import (
    ADDRESS_FIELDS,
    LENGTH_REASON,
    PHONE_REASONS,
    column_rule,
    phone_characters_ok,
    phone_has_extension,
    phone_length_ok,
    row_rule,
    within_length,
)
from crmsync.text import duplicated, lengths, matches

__all__ = [
    "ADDRESS_PREFIXES",
    "CRM_COLUMNS",
    "CRM_ID_MAX_LENGTH",
    "CRM_REASONS",
    "CUSTOMER_COLUMNS",
    "CrmCustomer",
]

#: The customer columns of the generic profile (DESIGN.md §3), without the addresses.
CUSTOMER_COLUMNS = ("crm_id", "contact_name", "business_name", "cell_phone")
ADDRESS_PREFIXES = ("billing", "shipping")
#: Every generic column, in the order of DESIGN.md §3.
CRM_COLUMNS = CUSTOMER_COLUMNS + tuple(
    f"{prefix}_{field}" for prefix in ADDRESS_PREFIXES for field in ADDRESS_FIELDS
)

#: Helcim's customerCode holds at most 50 printable characters.
CRM_ID_MAX_LENGTH = 50
CRM_ID_CHARACTERS = r"[A-Za-z0-9][A-Za-z0-9._:/#-]*"
#: An id a spreadsheet turned into a number and wrote back in scientific notation (7.02255E+12).
SCIENTIFIC = r"^[0-9]+(\.[0-9]+)?[Ee]\+?[0-9]+$"

CRM_REASONS = {
    **PHONE_REASONS,
    "crm_id_required": "crm_id: required; every row needs the CRM's customer id (it becomes Helcim's customer code)",
    "crm_id_characters": (
        '{column} "{value}" may only contain letters, digits and . _ : / # - (starting with a letter or digit)'
    ),
    "crm_id_length": '{column} "{value}" has {length} characters; Helcim allows at most 50',
    "crm_id_scientific": (
        '{column} "{value}" is a number in scientific notation: a spreadsheet re-saved this export and '
        "rounded its ids, so the real ids are lost; export again from the CRM and do not open and save the "
        "file in a spreadsheet before crmsync reads it"
    ),
    "crm_id_unique": '{column} "{value}" also appears on {other_lines}',
    "contact_or_business_name": "{column}: a contact name or a business name is required (both are empty)",
    "field_length": LENGTH_REASON,
}


class CrmCustomer(pa.DataFrameModel):
    """The customer columns of a normalised CRM row (``crm_id`` becomes Helcim's ``customerCode``)."""

    crm_id: Series[str]
    contact_name: Series[str]
    business_name: Series[str]
    cell_phone: Series[str]

    class Config:
        name = "CrmCustomer"
        strict = True
        coerce = False

    @column_rule("crm_id", "crm_id_required")
    @classmethod
    def _crm_id_required(cls, crm_id: Series[str]) -> Series[bool]:
        return crm_id != ""  # type: ignore[return-value]

    @column_rule("crm_id", "crm_id_characters")
    @classmethod
    def _crm_id_characters(cls, crm_id: Series[str]) -> Series[bool]:
        ok = (crm_id == "") | matches(crm_id, f"^{CRM_ID_CHARACTERS}$") | matches(crm_id, SCIENTIFIC)
        return ok  # type: ignore[return-value]

    @column_rule("crm_id", "crm_id_scientific")
    @classmethod
    def _crm_id_scientific(cls, crm_id: Series[str]) -> Series[bool]:
        return ~matches(crm_id, SCIENTIFIC)  # type: ignore[return-value]

    @column_rule("crm_id", "crm_id_length")
    @classmethod
    def _crm_id_length(cls, crm_id: Series[str]) -> Series[bool]:
        return lengths(crm_id) <= CRM_ID_MAX_LENGTH  # type: ignore[return-value]

    @column_rule("crm_id", "crm_id_unique")
    @classmethod
    def _crm_id_unique(cls, crm_id: Series[str]) -> Series[bool]:
        """Every copy of a duplicated id fails; empty and rounded (scientific) ids are reported as such instead."""
        return (crm_id == "") | ~duplicated(crm_id) | matches(crm_id, SCIENTIFIC)  # type: ignore[return-value]

    @column_rule("contact_name", "field_length")
    @classmethod
    def _contact_name_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "contact_name")  # type: ignore[return-value]

    @column_rule("business_name", "field_length")
    @classmethod
    def _business_name_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "business_name")  # type: ignore[return-value]

    @column_rule("cell_phone", "phone_extension")
    @classmethod
    def _phone_extension(cls, phone: Series[str]) -> Series[bool]:
        return ~phone_has_extension(phone)  # type: ignore[return-value]

    @column_rule("cell_phone", "phone_characters")
    @classmethod
    def _phone_characters(cls, phone: Series[str]) -> Series[bool]:
        return phone_characters_ok(phone)  # type: ignore[return-value]

    @column_rule("cell_phone", "phone_length")
    @classmethod
    def _phone_length(cls, phone: Series[str]) -> Series[bool]:
        return phone_length_ok(phone)  # type: ignore[return-value]

    @row_rule("contact_name", "contact_or_business_name")
    @classmethod
    def _a_name(cls, frame: pd.DataFrame) -> pd.Series[bool]:
        return (frame["contact_name"] != "") | (frame["business_name"] != "")
