"""``Address``: the rules of one address as Helcim takes it, shared by billing and shipping.

The model's columns carry no prefix (``name``, ``street1`` …, ``email``);
:func:`address_frame` cuts the ``billing_`` or ``shipping_`` columns out of a
CRM frame under those names, and validation puts the prefix back in front of
every column it reports. Values are expected normalised
(:mod:`~crmsync.crm.normalize`; the shared kernels are :mod:`crmsync.text`): missing is ``""``, countries are alpha-3, provinces
of CAN/USA are 2-letter codes, phones are digits.

Each check is named by a rule id; :data:`ADDRESS_REASONS` words it for a CRM
administrator. A check named ``field:rule`` looks at several columns and its
failures are reported against ``field``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from crmsync.text import (
    PROVINCE_COUNTRIES,
    alpha3_codes,
    digit_counts,
    email_errors,
    lengths,
    matches,
    only_digits,
    phone_punctuation_only,
    province_codes,
)

__all__ = [
    "ADDRESS_FIELDS",
    "ADDRESS_REASONS",
    "LENGTH_REASON",
    "MAX_LENGTHS",
    "PHONE_REASONS",
    "Address",
    "address_frame",
    "column_rule",
    "phone_characters_ok",
    "phone_has_extension",
    "phone_length_ok",
    "row_rule",
]

T = TypeVar("T")

#: The fields of an address, as the generic columns name them after ``billing_`` / ``shipping_``.
ADDRESS_FIELDS = (
    "name",
    "street1",
    "street2",
    "city",
    "province",
    "country",
    "postal_code",
    "phone",
    "email",
)
_EXTENSION = r"(?:ext\.?|extension|x|#) ?[0-9]+$"

#: How each phone rule reads in rejects.csv ({column}, {value}, {digits} are filled in).
PHONE_REASONS = {
    "phone_extension": '{column} "{value}" has an extension; Helcim stores digits only, so keep the extension elsewhere',
    "phone_characters": '{column} "{value}" is not a phone number: only digits, spaces and + ( ) - . / are allowed',
    "phone_length": '{column} "{value}" has {digits} digits; Helcim needs 10 to 15',
}

#: The longest value crmsync sends, per field. Helcim documents no limits, so these are conservative
#: choices (helcim-sandbox answers 400 past the same numbers); phones are bounded by their 15 digits.
MAX_LENGTHS = {
    "contact_name": 100,
    "business_name": 100,
    "name": 100,
    "street1": 100,
    "street2": 100,
    "city": 60,
    "province": 60,
    "postal_code": 16,
    "email": 254,
}
LENGTH_REASON = (
    "{column} has {length} characters; crmsync sends at most {max} (a conservative limit: "
    "Helcim does not document its own)"
)

#: How each address rule reads in rejects.csv.
ADDRESS_REASONS = {
    **PHONE_REASONS,
    "field_length": LENGTH_REASON,
    "required_with_address": "{column}: required when a {address} address is given ({given} filled in)",
    "country_code": '{column} "{value}" is not a known country; use its name or ISO code (CAN, USA, …)',
    "province_required": "{column}: required when the country is {country}",
    "province_code": '{column} "{value}" is not {region_kind}',
    "postal_format": '{column} "{value}" is not {postal_kind}',
    "email_syntax": '{column} "{value}" is not a valid e-mail address: {email_error}',
}

_POSTAL_PATTERNS = {
    # Canada Post: no D, F, I, O, Q, U anywhere; no W or Z in the first position.
    "CAN": r"^[ABCEGHJ-NPRSTVXY][0-9][ABCEGHJ-NPRSTV-Z] [0-9][ABCEGHJ-NPRSTV-Z][0-9]$",
    "USA": r"^[0-9]{5}(-[0-9]{4})?$",
}


def phone_has_extension(phone: pd.Series[str]) -> pd.Series[bool]:
    return matches(phone, _EXTENSION, ignore_case=True, where=~only_digits(phone))


def phone_characters_ok(phone: pd.Series[str]) -> pd.Series[bool]:
    """Only digits and phone punctuation (an extension is reported by its own rule)."""
    return phone_punctuation_only(phone) | phone_has_extension(phone)


def phone_length_ok(phone: pd.Series[str]) -> pd.Series[bool]:
    """True unless a phone made of digits and punctuation has fewer than 10 or more than 15 digits."""
    count = digit_counts(phone)
    return ~phone_punctuation_only(phone) | (lengths(phone) == 0) | ((count >= 10) & (count <= 15))


def within_length(values: pd.Series[str], field: str) -> pd.Series[bool]:
    return lengths(values) <= MAX_LENGTHS[field]


def column_rule(field: str, rule: str) -> Callable[[T], T]:
    """A pandera column check named by its rule id.

    pandera keeps one failure case only (``n_failure_cases=1``): reshaping every
    failing row into failure cases costs seconds on a million rows, and validation
    reads the failing rows from each error's ``check_output`` mask instead.
    """
    return cast(Callable[[T], T], pa.check(field, name=rule, n_failure_cases=1))


def row_rule(field: str, rule: str) -> Callable[[T], T]:
    """A pandera dataframe check spanning columns, reported against ``field`` (named ``field:rule``)."""
    check = pa.dataframe_check(name=f"{field}:{rule}", n_failure_cases=1, ignore_na=False)
    return cast(Callable[[T], T], check)


def _given(frame: pd.DataFrame) -> pd.Series[bool]:
    """Rows where any field of the address is filled in."""
    given = pd.Series(False, index=frame.index)
    for field in ADDRESS_FIELDS:
        given |= frame[field] != ""
    return given


class Address(pa.DataFrameModel):
    """One address as Helcim takes it: when any field is given, it needs a name, street1 and postal code."""

    name: Series[str]
    street1: Series[str]
    street2: Series[str]
    city: Series[str]
    province: Series[str]
    country: Series[str]
    postal_code: Series[str]
    phone: Series[str]
    email: Series[str]

    class Config:
        name = "Address"
        strict = True
        coerce = False

    @column_rule("name", "field_length")
    @classmethod
    def _name_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "name")  # type: ignore[return-value]

    @column_rule("street1", "field_length")
    @classmethod
    def _street1_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "street1")  # type: ignore[return-value]

    @column_rule("street2", "field_length")
    @classmethod
    def _street2_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "street2")  # type: ignore[return-value]

    @column_rule("city", "field_length")
    @classmethod
    def _city_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "city")  # type: ignore[return-value]

    @column_rule("province", "field_length")
    @classmethod
    def _province_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "province")  # type: ignore[return-value]

    @column_rule("postal_code", "field_length")
    @classmethod
    def _postal_code_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "postal_code")  # type: ignore[return-value]

    @column_rule("email", "field_length")
    @classmethod
    def _email_length(cls, values: Series[str]) -> Series[bool]:
        return within_length(values, "email")  # type: ignore[return-value]

    @column_rule("country", "country_code")
    @classmethod
    def _country_code(cls, country: Series[str]) -> Series[bool]:
        return (country == "") | country.isin(alpha3_codes())  # type: ignore[return-value]

    @column_rule("phone", "phone_extension")
    @classmethod
    def _phone_extension(cls, phone: Series[str]) -> Series[bool]:
        return ~phone_has_extension(phone)  # type: ignore[return-value]

    @column_rule("phone", "phone_characters")
    @classmethod
    def _phone_characters(cls, phone: Series[str]) -> Series[bool]:
        return phone_characters_ok(phone)  # type: ignore[return-value]

    @column_rule("phone", "phone_length")
    @classmethod
    def _phone_length(cls, phone: Series[str]) -> Series[bool]:
        return phone_length_ok(phone)  # type: ignore[return-value]

    @column_rule("email", "email_syntax")
    @classmethod
    def _email_syntax(cls, email: Series[str]) -> Series[bool]:
        return email_errors(email) == ""  # type: ignore[return-value]

    @row_rule("name", "required_with_address")
    @classmethod
    def _name_required(cls, frame: pd.DataFrame) -> pd.Series[bool]:
        return ~_given(frame) | (frame["name"] != "")

    @row_rule("street1", "required_with_address")
    @classmethod
    def _street1_required(cls, frame: pd.DataFrame) -> pd.Series[bool]:
        return ~_given(frame) | (frame["street1"] != "")

    @row_rule("postal_code", "required_with_address")
    @classmethod
    def _postal_code_required(cls, frame: pd.DataFrame) -> pd.Series[bool]:
        return ~_given(frame) | (frame["postal_code"] != "")

    @row_rule("province", "province_required")
    @classmethod
    def _province_required(cls, frame: pd.DataFrame) -> pd.Series[bool]:
        return ~frame["country"].isin(list(PROVINCE_COUNTRIES)) | (frame["province"] != "")

    @row_rule("province", "province_code")
    @classmethod
    def _province_code(cls, frame: pd.DataFrame) -> pd.Series[bool]:
        ok = pd.Series(True, index=frame.index)
        for country in PROVINCE_COUNTRIES:
            wrong = (frame["country"] == country) & (frame["province"] != "")
            wrong &= ~frame["province"].isin(province_codes(country))
            ok &= ~wrong
        return ok

    @row_rule("postal_code", "postal_format")
    @classmethod
    def _postal_format(cls, frame: pd.DataFrame) -> pd.Series[bool]:
        ok = pd.Series(True, index=frame.index)
        for country, pattern in _POSTAL_PATTERNS.items():
            wrong = (frame["country"] == country) & (frame["postal_code"] != "")
            wrong &= ~matches(frame["postal_code"], pattern, where=wrong)
            ok &= ~wrong
        return ok


def address_frame(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The ``prefix_`` address columns of a CRM frame, renamed to the :class:`Address` columns."""
    return frame[[f"{prefix}_{field}" for field in ADDRESS_FIELDS]].set_axis(list(ADDRESS_FIELDS), axis=1)


def describe_region(country: str) -> dict[str, Any]:
    """Words for the province and postal-code reasons of a CAN or USA address."""
    if country == "CAN":
        return {
            "region_kind": "a Canadian province or territory; use its 2-letter code such as AB, ON or QC",
            "postal_kind": "a Canadian postal code (A1A 1A1)",
        }
    return {
        "region_kind": "a US state or territory; use its 2-letter code such as WA, NY or DC",
        "postal_kind": "a US ZIP code (12345 or 12345-6789)",
    }
