"""Canonical values, so that the same customer written two ways compares equal.

Every public function takes a ``pd.Series`` (any string-like dtype, missing
values as NaN/None/"") and returns a ``str`` Series on the same index in which
missing is always ``""``. Every function is idempotent: normalising a
normalised value changes nothing. The same functions normalise Helcim's values
before the three-way diff, so a CRM's ``CA`` / ``(403) 555-0100`` / ``h0h0h0``
and Helcim's ``CAN`` / ``4035550100`` / ``H0H 0H0`` are the same.

A value that cannot be normalised (an unknown country, a phone that is not a
phone) is kept as trimmed text, so that validation can reject it and show the
administrator what the CRM holds.

Speed: string work runs as Arrow compute kernels over the whole column (RE2
regular expressions); a library that is slow per value (pycountry lookups,
phonenumbers, email-validator) is called once per DISTINCT value and the
answers are spread back with a take.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pycountry
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "ADDRESS_FIELDS",
    "PROVINCE_COUNTRIES",
    "duplicated",
    "email_errors",
    "lengths",
    "matches",
    "normalize_country",
    "normalize_crm",
    "normalize_email",
    "normalize_phone",
    "normalize_postal_code",
    "normalize_province",
    "normalize_text",
    "province_codes",
]

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
#: Countries whose addresses need a province, with their ISO alpha-2 code.
PROVINCE_COUNTRIES = {"CAN": "CA", "USA": "US"}
#: Countries of the North American Numbering Plan whose phones we keep as 10 national digits.
_NANP_COUNTRIES = ("", "CAN", "USA")

# RE2 (Arrow) syntax: \s is ASCII only there, so Unicode spaces (NBSP, thin space,
# ideographic space …), vertical tab and NEL are named explicitly.
_SPACES = r"[\s\x{0B}\x{85}\p{Z}]+"


# -- Arrow <-> pandas ------------------------------------------------------------


def _arrow(values: pd.Series[Any]) -> Any:
    """The column as one contiguous Arrow large_string array, missing values as nulls."""
    if not isinstance(values.dtype, pd.StringDtype) or values.dtype.storage != "pyarrow":
        values = values.astype("str")
    return values.array.__arrow_array__().cast(pa.large_string()).combine_chunks()


def _series(array: Any, index: pd.Index) -> pd.Series[str]:
    return pd.Series(array, dtype="str", index=index)


def _clean(values: pd.Series[Any]) -> Any:
    """Trimmed, whitespace-collapsed Arrow strings; missing → ""."""
    array = pc.fill_null(_arrow(values), "")
    array = pc.replace_substring_regex(array, _SPACES, " ")
    return pc.utf8_trim(array, " ")


def _map_distinct(array: Any, func: Callable[[str], str]) -> Any:
    """Apply a slow per-value ``func`` once per distinct value of an Arrow string array."""
    encoded = pc.dictionary_encode(array)
    mapped = pa.array([func(value) for value in encoded.dictionary.to_pylist()], type=pa.large_string())
    return pc.take(mapped, encoded.indices)


def _join(left: Any, right: Any, separator: str) -> Any:
    return pc.binary_join_element_wise(left, right, pa.scalar(separator, pa.large_string()))


def _replace_where(base: Any, mask: Any, values: Any) -> Any:
    """``base`` with the positions where ``mask`` holds replaced, in order, by ``values``."""
    if len(values) == 0:
        return base
    return pc.replace_with_mask(base, mask, values)


# -- vectorised predicates, for schema checks ---------------------------------------


def matches(values: pd.Series[Any], pattern: str, *, ignore_case: bool = False) -> pd.Series[bool]:
    """Whether each value contains a match of the RE2 ``pattern`` (anchor it for a full match)."""
    found = pc.match_substring_regex(pc.fill_null(_arrow(values), ""), pattern, ignore_case=ignore_case)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index, dtype=bool)


def lengths(values: pd.Series[Any]) -> pd.Series[int]:
    """Characters in each value (missing counts 0)."""
    counted = pc.utf8_length(pc.fill_null(_arrow(values), ""))
    return pd.Series(counted.to_numpy(zero_copy_only=False), index=values.index, dtype="int64")


def duplicated(values: pd.Series[Any]) -> pd.Series[bool]:
    """True for every copy of a value that occurs more than once (``keep=False``)."""
    codes = pc.dictionary_encode(pc.fill_null(_arrow(values), "")).indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(codes)
    return pd.Series(counts[codes] > 1, index=values.index, dtype=bool)


# -- text ------------------------------------------------------------------------


def normalize_text(values: pd.Series[Any]) -> pd.Series[str]:
    """Names, streets, cities: trim and collapse internal whitespace (case kept)."""
    return _series(_clean(values), values.index)


def _key(text: str) -> str:
    """A lookup key: accents removed, case folded, punctuation dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    plain = plain.replace("&", " and ").replace(".", "").replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[^0-9a-z]+", " ", plain).split())


# -- countries ---------------------------------------------------------------------

_COUNTRY_ALIASES = {
    "america": "USA",
    "united states of america": "USA",
    "us": "USA",
    "usa": "USA",
    "uk": "GBR",
    "great britain": "GBR",
    "britain": "GBR",
    "england": "GBR",
    "scotland": "GBR",
    "wales": "GBR",
    "northern ireland": "GBR",
    "russia": "RUS",
    "south korea": "KOR",
    "korea": "KOR",
    "north korea": "PRK",
    "vietnam": "VNM",
    "iran": "IRN",
    "syria": "SYR",
    "bolivia": "BOL",
    "venezuela": "VEN",
    "tanzania": "TZA",
    "moldova": "MDA",
    "laos": "LAO",
    "taiwan": "TWN",
    "holland": "NLD",
    "the netherlands": "NLD",
    "czech republic": "CZE",
    "ivory coast": "CIV",
}


@lru_cache(maxsize=1)
def _country_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for country in pycountry.countries:
        alpha3 = str(country.alpha_3)
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(country, attribute, None)
            if name:
                table.setdefault(_key(str(name)), alpha3)
        table[_key(str(country.alpha_2))] = alpha3
        table[_key(alpha3)] = alpha3
    table.update(_COUNTRY_ALIASES)
    return table


@lru_cache(maxsize=1)
def alpha3_codes() -> frozenset[str]:
    """Every ISO 3166-1 alpha-3 code."""
    return frozenset(str(country.alpha_3) for country in pycountry.countries)


def _country(text: str) -> str:
    if not text:
        return ""
    return _country_table().get(_key(text), text)


def normalize_country(values: pd.Series[Any]) -> pd.Series[str]:
    """Country names, alpha-2 and alpha-3 codes (any case, with or without dots) → alpha-3.

    ``Canada``, ``CA``, ``can`` → ``CAN``; ``United States``, ``U.S.A.``, ``US`` → ``USA``.
    Unknown text is kept (trimmed) so validation can name it.
    """
    return _series(_map_distinct(_clean(values), _country), values.index)


# -- provinces and states ----------------------------------------------------------

_PROVINCE_ALIASES: dict[str, dict[str, str]] = {
    "CAN": {
        "alta": "AB",
        "b c": "BC",
        "colombie britannique": "BC",
        "man": "MB",
        "nouveau brunswick": "NB",
        "newfoundland": "NL",
        "labrador": "NL",
        "nfld": "NL",
        "nf": "NL",
        "nl": "NL",
        "terre neuve et labrador": "NL",
        "nouvelle ecosse": "NS",
        "northwest territories": "NT",
        "territoires du nord ouest": "NT",
        "nwt": "NT",
        "nvt": "NU",
        "ont": "ON",
        "pei": "PE",
        "p e i": "PE",
        "ile du prince edouard": "PE",
        "pq": "QC",
        "que": "QC",
        "quebec": "QC",
        "sask": "SK",
        "yukon": "YT",
        "yk": "YT",
    },
    "USA": {
        "dc": "DC",
        "d c": "DC",
        "washington dc": "DC",
        "washington d c": "DC",
        "ariz": "AZ",
        "calif": "CA",
        "colo": "CO",
        "conn": "CT",
        "fla": "FL",
        "ill": "IL",
        "mass": "MA",
        "mich": "MI",
        "minn": "MN",
        "penn": "PA",
        "penna": "PA",
        "tex": "TX",
        "wash": "WA",
        "virgin islands": "VI",
        "us virgin islands": "VI",
    },
}


@lru_cache(maxsize=4)
def province_codes(country: str) -> frozenset[str]:
    """The 2-letter province/state codes of ``CAN`` or ``USA`` (empty for other countries)."""
    alpha2 = PROVINCE_COUNTRIES.get(country)
    if alpha2 is None:
        return frozenset()
    subdivisions = pycountry.subdivisions.get(country_code=alpha2) or []  # type: ignore[no-untyped-call]
    codes = {str(sub.code).split("-", 1)[1] for sub in subdivisions}
    return frozenset(code for code in codes if len(code) == 2)


@lru_cache(maxsize=4)
def _province_table(country: str) -> dict[str, str]:
    alpha2 = PROVINCE_COUNTRIES[country]
    table: dict[str, str] = {}
    for sub in pycountry.subdivisions.get(country_code=alpha2) or []:  # type: ignore[no-untyped-call]
        code = str(sub.code).split("-", 1)[1]
        if len(code) != 2:
            continue
        table[_key(code)] = code
        table[_key(str(sub.name))] = code
    table.update(_PROVINCE_ALIASES.get(country, {}))
    return table


def _by_country(
    values: Any, country: pd.Series[Any], func: Callable[[str, str], str], countries: Iterable[str]
) -> Any:
    """Apply ``func(value, country)`` once per distinct value, for rows of the given countries."""
    country_array = pc.fill_null(_arrow(country), "")
    result = values
    for name in countries:
        mask = pc.and_(pc.equal(country_array, name), pc.not_equal(values, ""))
        if not pc.any(mask).as_py():
            continue
        subset = pc.filter(values, mask)
        mapped = _map_distinct(subset, lambda value, name=name: func(value, name))  # type: ignore[misc]
        result = _replace_where(result, mask, mapped)
    return result


def _province(text: str, country: str) -> str:
    return _province_table(country).get(_key(text), text)


def normalize_province(values: pd.Series[Any], country: pd.Series[Any]) -> pd.Series[str]:
    """Provinces and states of CAN/USA → their 2-letter code; other countries' text is only trimmed.

    ``country`` is the row's alpha-3 country as :func:`normalize_country` returns it.
    ``Alberta``, ``alta``, ``AB`` → ``AB``; ``Québec``, ``PQ`` → ``QC``; ``D.C.`` → ``DC``.
    """
    return _series(_by_country(_clean(values), country, _province, PROVINCE_COUNTRIES), values.index)


# -- postal codes ----------------------------------------------------------------


def normalize_postal_code(values: pd.Series[Any], country: pd.Series[Any]) -> pd.Series[str]:
    """Canada → ``A1A 1A1`` (upper case, one space); USA → ``12345`` or ``12345-6789``.

    Other countries (and values that do not have the country's shape) are only
    trimmed, so validation can reject them.
    """
    clean = _clean(values)
    country_array = pc.fill_null(_arrow(country), "")
    compact = pc.utf8_upper(pc.replace_substring_regex(clean, r"[ \-]", ""))
    canadian = pc.and_(
        pc.equal(country_array, "CAN"), pc.match_substring_regex(compact, r"^[A-Z][0-9][A-Z][0-9][A-Z][0-9]$")
    )
    canadian_form = _join(pc.utf8_slice_codeunits(compact, 0, 3), pc.utf8_slice_codeunits(compact, 3, 6), " ")
    us_form = pc.replace_substring_regex(compact, r"^([0-9]{5})([0-9]{4})$", r"\1-\2")
    american = pc.and_(
        pc.equal(country_array, "USA"), pc.match_substring_regex(compact, r"^[0-9]{5}([0-9]{4})?$")
    )
    result = pc.if_else(canadian, canadian_form, pc.if_else(american, us_form, clean))
    return _series(result, values.index)


# -- phones ------------------------------------------------------------------------

_PHONE_CHARACTERS = r"^\+?[0-9 ().\-/]+$"
_NANP = r"^1?[2-9][0-9]{2}[2-9][0-9]{6}$"


@lru_cache(maxsize=300)
def _region(country: str) -> str:
    if country in _NANP_COUNTRIES:
        return "CA"
    found = pycountry.countries.get(alpha_3=country)
    return str(found.alpha_2) if found is not None else "CA"


def _possible(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def _phone(text: str, country: str) -> str:
    """One phone, the slow way (phonenumbers). See :func:`normalize_phone` for the rules."""
    if not re.fullmatch(_PHONE_CHARACTERS, text):
        return text
    digits = re.sub(r"[^0-9]", "", text)
    number = None
    if not text.startswith("+") and text.isdigit() and len(text) >= 11:
        number = _possible("+" + text, "ZZ")
    if number is None:
        number = _possible(text, _region(country))
    if number is None:
        return digits
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    if number.country_code == 1 and country in _NANP_COUNTRIES:
        return e164[1:]
    return e164


def normalize_phone(values: pd.Series[Any], country: pd.Series[Any]) -> pd.Series[str]:
    """Phones → digits only.

    North American numbers (rows in CAN, USA or without a country) become their
    10 national digits: ``(403) 555-0100``, ``+1 403 555 0100``, ``1-403-555-0100``
    → ``4035550100``. Others become their full international digits with the
    country code, parsed with the row's country as the region: ``020 7946 0958``
    in GBR → ``442079460958``. A number phonenumbers cannot make out keeps its
    digits (validation counts them); text that is not a phone at all (letters,
    an extension) is kept as it is, so validation rejects it with a reason.

    ``country`` is the row's alpha-3 country as :func:`normalize_country` returns it.
    """
    clean = _clean(values)
    country_array = pc.fill_null(_arrow(country), "")
    digits = pc.replace_substring_regex(clean, r"[^0-9]", "")
    plus = pc.starts_with(clean, "+")
    nanp_row = pc.is_in(country_array, value_set=pa.array(_NANP_COUNTRIES))
    fast = pc.and_(
        pc.and_(nanp_row, pc.match_substring_regex(clean, _PHONE_CHARACTERS)),
        pc.and_(
            pc.match_substring_regex(digits, _NANP), pc.or_(pc.invert(plus), pc.starts_with(digits, "1"))
        ),
    )
    national = pc.utf8_slice_codeunits(digits, -10)
    result = pc.if_else(fast, national, clean)
    slow = pc.and_(pc.invert(fast), pc.not_equal(clean, ""))
    if pc.any(slow).as_py():
        keys = _join(pc.filter(country_array, slow), pc.filter(clean, slow), "\x1f")
        mapped = _map_distinct(keys, lambda key: _phone(*reversed(key.split("\x1f", 1))))
        result = _replace_where(result, slow, mapped)
    return _series(result, values.index)


# -- e-mail ------------------------------------------------------------------------

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+"
_SIMPLE_EMAIL = rf"^(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>[A-Za-z0-9.\-]+)$"


@lru_cache(maxsize=65536)
def _email(text: str) -> tuple[str, str]:
    """(normalised address, "") when valid, else (text, the reason in words)."""
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        return text, str(error)
    return str(result.ascii_email or result.normalized), ""


@lru_cache(maxsize=65536)
def _domain(domain: str) -> tuple[str, str]:
    normalised, error = _email("x@" + domain)
    return (normalised[2:] if not error else domain), error


def _emails(values: pd.Series[Any]) -> tuple[Any, Any]:
    """Normalised addresses and the reason each invalid one is invalid ("" when valid or empty).

    Plain ASCII ``local@domain`` addresses (nearly all) are split with one
    regular expression over the column; only their distinct domains go through
    email-validator. Anything else goes through email-validator per distinct value.
    """
    clean = _clean(values)
    empty = pc.utf8_slice_codeunits(clean, 0, 0)
    parts = pc.extract_regex(clean, _SIMPLE_EMAIL)
    simple = pc.and_(
        pc.is_valid(parts),
        pc.and_(
            pc.less_equal(pc.utf8_length(clean), 254), pc.less_equal(pc.utf8_length(parts.field("local")), 64)
        ),
    )
    simple = pc.fill_null(simple, False)
    local = pc.filter(parts.field("local"), simple)
    domains = pc.utf8_lower(pc.filter(parts.field("domain"), simple))
    normalised = _map_distinct(domains, lambda d: _domain(d)[0])
    domain_errors = _map_distinct(domains, lambda d: _domain(d)[1])
    joined = pc.if_else(pc.equal(domain_errors, ""), _join(local, normalised, "@"), pc.filter(clean, simple))
    result = _replace_where(clean, simple, joined)
    errors = _replace_where(empty, simple, domain_errors)
    slow = pc.and_(pc.invert(simple), pc.not_equal(clean, ""))
    if pc.any(slow).as_py():
        subset = pc.filter(clean, slow)
        result = _replace_where(result, slow, _map_distinct(subset, lambda text: _email(text)[0]))
        errors = _replace_where(errors, slow, _map_distinct(subset, lambda text: _email(text)[1]))
    return result, errors


def normalize_email(values: pd.Series[Any]) -> pd.Series[str]:
    """E-mail → email-validator's normalised ASCII form (domain lower-cased, IDNA), no DNS check.

    An invalid address is kept as trimmed text so validation rejects it.
    """
    return _series(_emails(values)[0], values.index)


def email_errors(values: pd.Series[Any]) -> pd.Series[str]:
    """Why each address is invalid, in email-validator's words; "" for a valid or empty one."""
    return _series(_emails(values)[1], values.index)


# -- a whole CRM frame -------------------------------------------------------------


def normalize_crm(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalise every generic CRM column of ``frame`` (other columns pass through unchanged)."""
    out = frame.copy()
    for column in ("crm_id", "contact_name", "business_name"):
        out[column] = normalize_text(frame[column])
    for prefix in ("billing", "shipping"):
        country = normalize_country(frame[f"{prefix}_country"])
        out[f"{prefix}_country"] = country
        for field in ("name", "street1", "street2", "city"):
            out[f"{prefix}_{field}"] = normalize_text(frame[f"{prefix}_{field}"])
        out[f"{prefix}_province"] = normalize_province(frame[f"{prefix}_province"], country)
        out[f"{prefix}_postal_code"] = normalize_postal_code(frame[f"{prefix}_postal_code"], country)
        out[f"{prefix}_phone"] = normalize_phone(frame[f"{prefix}_phone"], country)
        out[f"{prefix}_email"] = normalize_email(frame[f"{prefix}_email"])
    # The cell phone belongs to no address: its region is the billing country's, else North America.
    out["cell_phone"] = normalize_phone(frame["cell_phone"], out["billing_country"])
    return out
