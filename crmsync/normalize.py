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
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "ADDRESS_FIELDS",
    "PROVINCE_COUNTRIES",
    "alpha3_codes",
    "digit_counts",
    "duplicated",
    "email_error",
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
    "only_digits",
    "phone_punctuation_only",
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


# -- byte-level kernels (numpy over an Arrow large_string array's buffers) ----------


def _layout(array: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(offsets, data) of a null-free large_string array: value i is ``data[offsets[i]:offsets[i + 1]]``."""
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets, data[: offsets[-1]]  # bytes past the last value (buffer padding) belong to no row


def _rows_of(offsets: np.ndarray[Any, Any], positions: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A row mask: True for the rows holding any of the byte ``positions``."""
    rows = np.zeros(len(offsets) - 1, dtype=bool)
    positions = positions[positions >= offsets[0]]  # a sliced array's buffer starts before its first row
    if len(positions):
        rows[np.searchsorted(offsets, positions, side="right") - 1] = True
    return rows


def _keep_bytes(array: Any, keep: np.ndarray[Any, Any]) -> Any:
    """The array with only the bytes where ``keep`` (a mask over its data buffer) holds."""
    offsets, data = _layout(array)
    first, last = int(offsets[0]), int(offsets[-1])
    kept = keep[first:last]
    dropped = np.flatnonzero(~kept)  # no cumulative sum over every byte: big temporaries are slow here
    new_offsets = (offsets - first) - np.searchsorted(dropped, offsets - first)
    new_data = data[first:last][kept]
    return pa.LargeStringArray.from_buffers(len(array), pa.py_buffer(new_offsets), pa.py_buffer(new_data))


def _byte_table(chars: bytes) -> np.ndarray[Any, Any]:
    """A 256-entry lookup: ``_byte_table(b"ab")[data]`` is True where data holds a or b."""
    table = np.zeros(256, dtype=bool)
    table[np.frombuffer(chars, dtype=np.uint8)] = True
    return table


_DIGITS = _byte_table(b"0123456789")
_LETTERS = _byte_table(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# Byte classes by comparisons: on tens of megabytes they run several times faster than a table lookup.


def _digit_bytes(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray((data >= 0x30) & (data <= 0x39))


def _phone_bytes(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Digits, space and ( ) - . / — the characters a typed phone may hold besides a leading +."""
    return np.asarray(((data >= 0x2D) & (data <= 0x39)) | (data == 0x20) | (data == 0x28) | (data == 0x29))


def _atext_dot_at_bytes(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """RFC 5322 atext, the dot and the @: printable ASCII except space and ( ) , : ; < > [ \\ ] \"."""
    outside = (
        (data < 0x21) | (data > 0x7E) | (data == 0x22) | (data == 0x28) | (data == 0x29) | (data == 0x2C)
    )
    outside |= (data == 0x3A) | (data == 0x3B) | (data == 0x3C) | (data == 0x3E) | (data == 0x5B)
    outside |= (data == 0x5C) | (data == 0x5D)
    return np.asarray(~outside)


def _untidy_rows(array: Any) -> np.ndarray[Any, Any]:
    """Rows that may need whitespace work: control characters, possible Unicode spaces, two
    spaces in a row, or a space at either end. A superset: the regex decides for these rows."""
    offsets, data = _layout(array)
    # Control characters, and every lead byte from C2 up: C2 starts U+0085 and U+00A0, E1-E3 the
    # other Unicode spaces (C3 and the rest only start letters, but comparing is faster than a lookup).
    suspicious = (data < 0x20) | (data > 0xC1)
    space = data == 0x20
    suspicious[:-1] |= space[:-1] & space[1:]
    rows = _rows_of(offsets, np.flatnonzero(suspicious))
    filled = offsets[1:] > offsets[:-1]
    if len(data):
        rows |= filled & (
            space[np.minimum(offsets[:-1], len(data) - 1)] | space[np.maximum(offsets[1:] - 1, 0)]
        )
    return rows


def _clean(values: pd.Series[Any]) -> Any:
    """Trimmed, whitespace-collapsed Arrow strings; missing → ""."""
    return _tidy(pc.fill_null(_arrow(values), ""))


def _tidy(array: Any) -> Any:
    """A null-free Arrow string array, trimmed and whitespace-collapsed."""
    untidy = _untidy_rows(array)
    if not untidy.any():
        return array
    mask = pa.array(untidy)
    subset = pc.filter(array, mask)
    tidy = pc.utf8_trim(pc.replace_substring_regex(subset, _SPACES, " "), " ")
    return pc.replace_with_mask(array, mask, tidy)


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


def matches(
    values: pd.Series[Any], pattern: str, *, ignore_case: bool = False, where: pd.Series[bool] | None = None
) -> pd.Series[bool]:
    """Whether each value contains a match of the RE2 ``pattern`` (anchor it for a full match).

    With ``where``, only those rows are searched (the others are False): a regex costs
    per row, so a check that needs it for a few rows asks only for those.
    """
    array = pc.fill_null(_arrow(values), "")
    if where is None:
        found = pc.match_substring_regex(array, pattern, ignore_case=ignore_case).to_numpy(
            zero_copy_only=False
        )
    else:
        rows = where.to_numpy(dtype=bool)
        found = np.zeros(len(array), dtype=bool)
        if rows.any():
            subset = pc.filter(array, pa.array(rows))
            found[rows] = pc.match_substring_regex(subset, pattern, ignore_case=ignore_case).to_numpy(
                zero_copy_only=False
            )
    return pd.Series(found, index=values.index, dtype=bool)


def phone_punctuation_only(values: pd.Series[Any]) -> pd.Series[bool]:
    """Whether each value holds only digits, spaces and ``+ ( ) - . /`` (the empty value does)."""
    array = pc.fill_null(_arrow(values), "")
    offsets, data = _layout(array)
    others = _rows_of(offsets, np.flatnonzero(~_phone_bytes(data) & (data != 0x2B)))
    return pd.Series(~others, index=values.index, dtype=bool)


def digit_counts(values: pd.Series[Any]) -> pd.Series[int]:
    """How many ASCII digits each value holds."""
    array = pc.fill_null(_arrow(values), "")
    offsets, _ = _layout(_keep_bytes(array, _digit_bytes(_layout(array)[1])))
    return pd.Series(np.diff(offsets), index=values.index, dtype="int64")


def only_digits(values: pd.Series[Any]) -> pd.Series[bool]:
    """Whether each value holds nothing but ASCII digits (the empty value does)."""
    array = pc.fill_null(_arrow(values), "")
    offsets, data = _layout(array)
    others = _rows_of(offsets, np.flatnonzero(~_digit_bytes(data)))
    return pd.Series(~others, index=values.index, dtype=bool)


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


def _filled_rows(values: Any) -> np.ndarray[Any, Any]:
    offsets, _ = _layout(values)
    return np.asarray(offsets[1:] > offsets[:-1])


def _province(text: str, country: str) -> str:
    return _province_table(country).get(_key(text), text)


def normalize_province(values: pd.Series[Any], country: pd.Series[Any]) -> pd.Series[str]:
    """Provinces and states of CAN/USA → their 2-letter code; other countries' text is only trimmed.

    ``country`` is the row's alpha-3 country as :func:`normalize_country` returns it.
    ``Alberta``, ``alta``, ``AB`` → ``AB``; ``Québec``, ``PQ`` → ``QC``; ``D.C.`` → ``DC``.
    """
    clean = _clean(values)
    country_array = pc.fill_null(_arrow(country), "")
    rows = _country_rows(country_array, PROVINCE_COUNTRIES) & _filled_rows(clean)
    return _series(_map_pairs(clean, country_array, _province, rows), values.index)


# -- postal codes ----------------------------------------------------------------


def normalize_postal_code(values: pd.Series[Any], country: pd.Series[Any]) -> pd.Series[str]:
    """Canada → ``A1A 1A1`` (upper case, one space); USA → ``12345`` or ``12345-6789``.

    Other countries (and values that do not have the country's shape) are only
    trimmed, so validation can reject them.
    """
    clean = _clean(values)
    country_array = pc.fill_null(_arrow(country), "")
    clean_data = _layout(clean)[1]
    compact = pc.utf8_upper(_keep_bytes(clean, (clean_data != 0x20) & (clean_data != 0x2D)))
    offsets, data = _layout(compact)
    count = np.diff(offsets)
    padded = np.concatenate((data, np.zeros(8, dtype=np.uint8)))
    at = offsets[:-1]
    letter, digit = _LETTERS[padded], _DIGITS[padded]
    canadian = _country_rows(country_array, ["CAN"]) & (count == 6)
    for position, table in enumerate((letter, digit, letter, digit, letter, digit)):
        canadian &= table[at + position]
    american = _country_rows(country_array, ["USA"]) & ((count == 5) | (count == 9))
    american &= ~_rows_of(offsets, np.flatnonzero(~_digit_bytes(data)))
    zip9 = american & (count == 9)
    result = clean
    for rows, cut, separator in ((canadian, 3, " "), (zip9, 5, "-"), (american & ~zip9, 5, "")):
        if rows.any():
            mask = pa.array(rows)
            subset = pc.filter(compact, mask)
            formatted = _join(
                pc.utf8_slice_codeunits(subset, 0, cut), pc.utf8_slice_codeunits(subset, cut), separator
            )
            result = pc.replace_with_mask(result, mask, formatted)
    return _series(result, values.index)


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
    clean = _clean(values)
    country_array = pc.fill_null(_arrow(country), "")
    offsets, data = _layout(clean)
    is_digit = (data >= 0x30) & (data <= 0x39)
    digits = _keep_bytes(clean, is_digit)
    digit_offsets, digit_data = _layout(digits)
    count = np.diff(digit_offsets)
    # Only digits, spaces and ( ) - . / — and "+" as the first character.
    allowed = _phone_bytes(data)
    plus_at = np.flatnonzero(data == 0x2B)
    leading_plus = plus_at == offsets[np.searchsorted(offsets, plus_at, side="right") - 1]
    bad_rows = _rows_of(offsets, np.flatnonzero(~allowed & (data != 0x2B))) | _rows_of(
        offsets, plus_at[~leading_plus]
    )
    plus = _rows_of(offsets, plus_at[leading_plus])
    # NANP: 10 digits, or 11 starting with 1; area code and exchange start with 2-9; a leading "+" needs the 1.
    padded = np.concatenate((digit_data, np.zeros(12, dtype=np.uint8)))
    first = padded[digit_offsets[:-1]]
    area = digit_offsets[:-1] + (count == 11)
    shape = (count == 10) | ((count == 11) & (first == 0x31))
    shape &= (padded[area] >= 0x32) & (padded[area + 3] >= 0x32)
    shape &= ~plus | (count == 11)
    nanp_row = pc.is_in(country_array, value_set=pa.array(_NANP_COUNTRIES)).to_numpy(zero_copy_only=False)
    fast_mask = shape & ~bad_rows & nanp_row
    fast = pa.array(fast_mask)
    national = pc.utf8_slice_codeunits(digits, -10)
    result = pc.if_else(fast, national, clean)
    slow = ~fast_mask & _filled_rows(clean)
    result = _map_pairs(result, country_array, lambda text, country: _phone(text, country), slow)
    return _series(result, values.index)


# -- e-mail ------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def email_error(text: str) -> str:
    """Why one address is invalid, in email-validator's words ("" when valid or empty)."""
    return _email(text)[1] if text else ""


@lru_cache(maxsize=65536)
def _email(text: str) -> tuple[str, str]:
    """(normalised address, "") when valid, else (text, the reason in words)."""
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        return text, str(error)
    return str(result.ascii_email or result.normalized), ""


@lru_cache(maxsize=65536)
def _domain(domain: str) -> str:
    """The normalised domain, or "" when email-validator refuses it."""
    normalised, error = _email("x@" + domain)
    return "" if error else normalised[2:]


def _emails(values: pd.Series[Any], *, errors_only: bool = False) -> tuple[Any, Any]:
    """Normalised addresses and the reason each invalid one is invalid ("" when valid or empty).

    A plain ASCII ``local@domain`` (nearly every address) is split at its @ with
    byte-level numpy over the whole column, its local part checked against RFC 5322's
    dot-atom, and only its distinct domains go through email-validator. Anything
    else, and any address whose domain email-validator refuses, goes through
    email-validator whole, once per distinct value.
    """
    # No whitespace pass over the column: whitespace is not atext, so an address holding any
    # is not "simple" and is tidied with the few others that go through email-validator.
    clean = pc.fill_null(_arrow(values), "")
    errors = pc.utf8_slice_codeunits(clean, 0, 0)
    offsets, data = _layout(clean)
    filled = offsets[1:] > offsets[:-1]
    if not filled.any():
        return clean, errors
    rows = len(clean)
    start, stop = offsets[:-1], offsets[1:]
    at_positions = np.flatnonzero(data == 0x40)
    at_rows = np.searchsorted(offsets, at_positions, side="right") - 1
    single = np.bincount(at_rows, minlength=rows) == 1
    at = np.full(rows, -1, dtype=np.int64)
    keep = single[at_rows]
    at[at_rows[keep]] = at_positions[keep]
    simple = single & (at - start >= 1) & (at - start <= 64) & (stop - at >= 2) & (stop - start <= 254)
    # Every byte an atext character, a dot or the @ (domain characters are among them; any
    # other byte, e.g. of an internationalised domain, sends the address to email-validator).
    simple &= ~_rows_of(offsets, np.flatnonzero(~_atext_dot_at_bytes(data)))
    dots = data == 0x2E
    simple &= ~_rows_of(offsets, np.flatnonzero(dots[:-1] & dots[1:]))
    padded = np.concatenate((dots, [False]))
    simple &= ~padded[np.where(simple, start, len(data))] & ~padded[np.where(simple, at - 1, len(data))]
    if simple.any():
        mask = pa.array(simple)
        parts = pc.split_pattern(pc.filter(clean, mask), "@", max_splits=1)
        domain = pc.ascii_lower(pc.list_element(parts, 1))  # simple addresses are ASCII
        normalised = _map_distinct(domain, _domain)
        accepted = pc.not_equal(normalised, "").to_numpy(zero_copy_only=False)
        simple[np.flatnonzero(simple)[~accepted]] = False
        if simple.any() and not errors_only:
            joined = pc.filter(_join(pc.list_element(parts, 0), normalised, "@"), pa.array(accepted))
            clean = pc.replace_with_mask(clean, pa.array(simple), joined)
    slow = filled & ~simple
    result = clean
    if slow.any():
        mask = pa.array(slow)
        subset = _tidy(pc.filter(clean, mask))
        if not errors_only:
            normalised = _map_distinct(subset, lambda text: _email(text)[0] if text else "")
            result = pc.replace_with_mask(result, mask, normalised)
        errors = pc.replace_with_mask(errors, mask, _map_distinct(subset, email_error))
    return result, errors


def normalize_email(values: pd.Series[Any]) -> pd.Series[str]:
    """E-mail → email-validator's normalised ASCII form (domain lower-cased, IDNA), no DNS check.

    An invalid address is kept as trimmed text so validation rejects it.
    """
    return _series(_emails(values)[0], values.index)


def email_errors(values: pd.Series[Any]) -> pd.Series[str]:
    """Why each address is invalid, in email-validator's words; "" for a valid or empty one."""
    return _series(_emails(values, errors_only=True)[1], values.index)


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
