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

Speed (a million rows in a few seconds): simple byte tests — is this row tidy,
which bytes are digits, where is the @ — run as numpy over the Arrow string
buffers; string rewriting runs as Arrow compute kernels (RE2 regular
expressions), on the rows that need it only; a library that is slow per value
(pycountry lookups, phonenumbers, email-validator) is called once per DISTINCT
value, or (value, country) pair, and the answers are spread back with a take.
North American phones and plain ASCII e-mails never reach their library: a
vectorised fast path gives the library's answer (tests check the two agree).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from crmsync.text import (
    DIGITS,
    LETTERS,
    PROVINCE_COUNTRIES,
    arrow_strings,
    as_series,
    clean,
    digit_bytes,
    emails,
    filled_rows,
    join_with,
    keep_bytes,
    layout,
    map_distinct,
    phone_bytes,
    rows_holding,
)

__all__ = [
    "cell_phones_in_context",
    "normalize_country",
    "normalize_crm",
    "normalize_email",
    "normalize_phone",
    "normalize_postal_code",
    "normalize_province",
    "normalize_text",
    "province_code",
]

#: Countries of the North American Numbering Plan whose phones we keep as 10 national digits.
_NANP_COUNTRIES = ("", "CAN", "USA")


# -- text ------------------------------------------------------------------------


def normalize_text(values: pd.Series[Any]) -> pd.Series[str]:
    """Names, streets, cities: trim and collapse internal whitespace (case kept)."""
    return as_series(clean(values), values.index)


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


def _country(text: str) -> str:
    if not text:
        return ""
    return _country_table().get(_key(text), text)


def normalize_country(values: pd.Series[Any]) -> pd.Series[str]:
    """Country names, alpha-2 and alpha-3 codes (any case, with or without dots) → alpha-3.

    ``Canada``, ``CA``, ``can`` → ``CAN``; ``United States``, ``U.S.A.``, ``US`` → ``USA``.
    Unknown text is kept (trimmed) so validation can name it.
    """
    return as_series(map_distinct(clean(values), _country), values.index)


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


def _map_pairs(values: Any, country: Any, func: Callable[[str, str], str], rows: np.ndarray[Any, Any]) -> Any:
    """``func(value, country)`` once per distinct (value, country) pair among ``rows``; other rows unchanged."""
    if not rows.any():
        return values
    mask = pa.array(rows)
    value_codes = pc.dictionary_encode(pc.filter(values, mask))
    country_codes = pc.dictionary_encode(pc.filter(country, mask))
    width = len(country_codes.dictionary)
    pair = value_codes.indices.to_numpy(zero_copy_only=False).astype(np.int64) * width
    pair += country_codes.indices.to_numpy(zero_copy_only=False)
    if width * len(value_codes.dictionary) <= 4 * len(pair) + 1024:  # a dense key space: no sort needed
        seen = np.zeros(width * len(value_codes.dictionary), dtype=bool)
        seen[pair] = True
        distinct = np.flatnonzero(seen)
        rank = np.cumsum(seen) - 1
        inverse = rank[pair]
    else:
        distinct, inverse = np.unique(pair, return_inverse=True)
    value_names = value_codes.dictionary.to_pylist()
    country_names = country_codes.dictionary.to_pylist()
    mapped = pa.array(
        [func(value_names[p // width], country_names[p % width]) for p in distinct.tolist()],
        pa.large_string(),
    )
    return pc.replace_with_mask(values, mask, pc.take(mapped, pa.array(inverse)))


def _country_rows(country: Any, names: Iterable[str]) -> np.ndarray[Any, Any]:
    return np.asarray(
        pc.is_in(country, value_set=pa.array(list(names))).to_numpy(zero_copy_only=False), dtype=bool
    )


def province_code(text: str, country: str) -> str:
    """One province or state of ``CAN``/``USA`` (by code, name or alias) → its 2-letter code, else ``text``."""
    return _province_table(country).get(_key(text), text)


def normalize_province(values: pd.Series[Any], country: pd.Series[Any]) -> pd.Series[str]:
    """Provinces and states of CAN/USA → their 2-letter code; other countries' text is only trimmed.

    ``country`` is the row's alpha-3 country as :func:`normalize_country` returns it.
    ``Alberta``, ``alta``, ``AB`` → ``AB``; ``Québec``, ``PQ`` → ``QC``; ``D.C.`` → ``DC``.
    """
    cleaned = clean(values)
    country_array = pc.fill_null(arrow_strings(country), "")
    rows = _country_rows(country_array, PROVINCE_COUNTRIES) & filled_rows(cleaned)
    return as_series(_map_pairs(cleaned, country_array, province_code, rows), values.index)


# -- postal codes ----------------------------------------------------------------


def normalize_postal_code(values: pd.Series[Any], country: pd.Series[Any]) -> pd.Series[str]:
    """Canada → ``A1A 1A1`` (upper case, one space); USA → ``12345`` or ``12345-6789``.

    Other countries (and values that do not have the country's shape) are only
    trimmed, so validation can reject them.
    """
    cleaned = clean(values)
    country_array = pc.fill_null(arrow_strings(country), "")
    clean_data = layout(cleaned)[1]
    compact = pc.utf8_upper(keep_bytes(cleaned, (clean_data != 0x20) & (clean_data != 0x2D)))
    offsets, data = layout(compact)
    count = np.diff(offsets)
    padded = np.concatenate((data, np.zeros(8, dtype=np.uint8)))
    at = offsets[:-1]
    letter, digit = LETTERS[padded], DIGITS[padded]
    canadian = _country_rows(country_array, ["CAN"]) & (count == 6)
    for position, table in enumerate((letter, digit, letter, digit, letter, digit)):
        canadian &= table[at + position]
    american = _country_rows(country_array, ["USA"]) & ((count == 5) | (count == 9))
    american &= ~rows_holding(offsets, np.flatnonzero(~digit_bytes(data)))
    zip9 = american & (count == 9)
    result = cleaned
    for rows, cut, separator in ((canadian, 3, " "), (zip9, 5, "-"), (american & ~zip9, 5, "")):
        if rows.any():
            mask = pa.array(rows)
            subset = pc.filter(compact, mask)
            formatted = join_with(
                pc.utf8_slice_codeunits(subset, 0, cut), pc.utf8_slice_codeunits(subset, cut), separator
            )
            result = pc.replace_with_mask(result, mask, formatted)
    return as_series(result, values.index)


# -- phones ------------------------------------------------------------------------

_PHONE_CHARACTERS = r"^\+?[0-9 ().\-/]+$"


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


@lru_cache(maxsize=65536)
def _phone(text: str, country: str) -> str:
    """One phone, the slow way (phonenumbers). See :func:`normalize_phone` for the rules.

    phonenumbers reads some digit strings differently once they are normalised
    (junk such as ``200000000000``): the result is the value that normalising
    again leaves alone.
    """
    result = _phone_once(text, country)
    for _ in range(3):  # settle on a value that normalising again leaves alone
        again = _phone_once(result, country)
        if again == result:
            return result
        result = again
    return re.sub(r"[^0-9]", "", text)


def _phone_once(text: str, country: str) -> str:
    if not re.fullmatch(_PHONE_CHARACTERS, text):
        return text
    digits = re.sub(r"[^0-9]", "", text)
    nanp_row = country in _NANP_COUNTRIES
    number = None
    # Bare digits long enough to carry a country code are first read as international
    # (that is what this function outputs for them, so normalising again changes nothing).
    if text.isdigit() and (len(text) >= 11 or (len(text) == 10 and not nanp_row)):
        number = _possible("+" + text, "ZZ")
    if number is None:
        number = _possible(text, _region(country))
    if number is None:
        # Not a number phonenumbers can place: 10+ digits are kept as digits (Helcim counts them),
        # fewer are kept as typed, so that the reject shows what the CRM holds.
        return digits if len(digits) >= 10 else text
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    if number.country_code == 1 and nanp_row:
        e164 = e164[1:]
    # Fewer than 10 digits can never reach Helcim: keep what was typed, for the reject reason.
    return e164 if len(e164) >= 10 else text


def normalize_phone(values: pd.Series[Any], country: pd.Series[Any]) -> pd.Series[str]:
    """Phones → digits only.

    North American numbers (rows in CAN, USA or without a country) become their
    10 national digits: ``(403) 555-0100``, ``+1 403 555 0100``, ``1-403-555-0100``
    → ``4035550100``. Others become their full international digits with the
    country code, parsed with the row's country as the region: ``020 7946 0958``
    in GBR → ``442079460958``. A number phonenumbers cannot place keeps its
    digits when it has 10 or more (Helcim counts them), else its text; text that
    is not a phone at all (letters, an extension) is kept as it is, so validation
    rejects it with a reason.

    ``country`` is the row's alpha-3 country as :func:`normalize_country` returns it.
    """
    cleaned = clean(values)
    country_array = pc.fill_null(arrow_strings(country), "")
    offsets, data = layout(cleaned)
    digits = keep_bytes(cleaned, digit_bytes(data))
    digit_offsets, digit_data = layout(digits)
    count = np.diff(digit_offsets)
    # Only digits, spaces and ( ) - . / — and "+" as the first character.
    allowed = phone_bytes(data)
    plus_at = np.flatnonzero(data == 0x2B)
    leading_plus = plus_at == offsets[np.searchsorted(offsets, plus_at, side="right") - 1]
    bad_rows = rows_holding(offsets, np.flatnonzero(~allowed & (data != 0x2B))) | rows_holding(
        offsets, plus_at[~leading_plus]
    )
    plus = rows_holding(offsets, plus_at[leading_plus])
    # NANP: 10 digits, or 11 starting with 1; area code and exchange start with 2-9; a leading "+" needs the 1.
    padded = np.concatenate((digit_data, np.zeros(12, dtype=np.uint8)))
    first = padded[digit_offsets[:-1]]
    area = digit_offsets[:-1] + (count == 11)
    shape = (count == 10) | ((count == 11) & (first == 0x31))
    shape &= (padded[area] >= 0x32) & (padded[area + 3] >= 0x32)
    shape &= ~plus | (count == 11)
    nanp_row = _country_rows(country_array, _NANP_COUNTRIES)
    fast_mask = shape & ~bad_rows & nanp_row
    fast = pa.array(fast_mask)
    national = pc.utf8_slice_codeunits(digits, -10)
    result = pc.if_else(fast, national, cleaned)
    slow = ~fast_mask & filled_rows(cleaned)
    result = _map_pairs(result, country_array, _phone, slow)
    return as_series(result, values.index)


# -- e-mail ------------------------------------------------------------------------


def normalize_email(values: pd.Series[Any]) -> pd.Series[str]:
    """E-mail → email-validator's normalised ASCII form (domain lower-cased, IDNA), no DNS check.

    An invalid address is kept as trimmed text so validation rejects it.
    """
    return as_series(emails(values)[0], values.index)


# -- a whole CRM frame -------------------------------------------------------------


def normalize_crm(frame: pd.DataFrame, *, workers: int = 2) -> pd.DataFrame:
    """Normalise every generic CRM column of ``frame`` (other columns pass through unchanged).

    Columns are normalised as parallel tasks: Arrow kernels and numpy release the
    GIL, so two cores do the work of two. Countries come first: provinces, postal
    codes and phones depend on them.
    """
    out = frame.copy()
    countries = {prefix: normalize_country(frame[f"{prefix}_country"]) for prefix in ("billing", "shipping")}
    jobs: dict[str, Callable[[], pd.Series[str]]] = {}
    for column in ("crm_id", "contact_name", "business_name"):
        jobs[column] = functools.partial(normalize_text, frame[column])
    for prefix, country in countries.items():
        out[f"{prefix}_country"] = country
        for field in ("name", "street1", "street2", "city"):
            jobs[f"{prefix}_{field}"] = functools.partial(normalize_text, frame[f"{prefix}_{field}"])
        jobs[f"{prefix}_province"] = functools.partial(
            normalize_province, frame[f"{prefix}_province"], country
        )
        jobs[f"{prefix}_postal_code"] = functools.partial(
            normalize_postal_code, frame[f"{prefix}_postal_code"], country
        )
        jobs[f"{prefix}_phone"] = functools.partial(normalize_phone, frame[f"{prefix}_phone"], country)
        jobs[f"{prefix}_email"] = functools.partial(normalize_email, frame[f"{prefix}_email"])
    # The cell phone belongs to no address: its region is the billing country's, else North America.
    jobs["cell_phone"] = functools.partial(normalize_phone, frame["cell_phone"], countries["billing"])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {column: pool.submit(job) for column, job in jobs.items()}
        for column, future in futures.items():
            out[column] = future.result()
    return out


def cell_phones_in_context(
    frame: pd.DataFrame, rows: np.ndarray[Any, Any], phones: pd.Series[Any] | None = None
) -> pd.DataFrame:
    """``frame`` with the cell phones of ``rows`` (a mask) normalised again with the billing country
    those rows hold now; ``phones`` (aligned with ``frame``, default its own cell phones) are the
    values to start from: the cell phones as normalised in the export's own context.

    The cell phone belongs to no address, so its region is the billing country's;
    but Helcim reads it back with the billing country *it* holds. Where the
    export's billing address is left out (incomplete) that is another one — none
    for a customer created without it, Helcim's own for one it already has —
    and a ``+1`` phone of a Chilean row (``13054062391``) would read back as
    ``3054062391``: a difference every night. Normalising the normalised value
    again in the new context gives what Helcim's side will give (normalising is
    idempotent in one context).
    """
    if not rows.any():
        return frame
    mask = pa.array(rows)
    source = pc.fill_null(arrow_strings(frame["cell_phone"] if phones is None else phones), "")
    countries = pc.fill_null(arrow_strings(frame["billing_country"]), "")
    picked = pd.RangeIndex(int(rows.sum()))
    again = normalize_phone(
        as_series(pc.filter(source, mask), picked), as_series(pc.filter(countries, mask), picked)
    )
    current = pc.fill_null(arrow_strings(frame["cell_phone"]), "")
    out = pc.replace_with_mask(current, mask, arrow_strings(again))
    return frame.assign(cell_phone=as_series(out, frame.index))
