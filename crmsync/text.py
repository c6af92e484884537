"""Text kernels shared by the schemas' checks and the CRM normaliser, and the reference data they use.

Vectorised over Arrow string arrays: simple byte tests run as numpy over the
arrays' buffers, regular expressions as Arrow (RE2) kernels, and a library that
is slow per value (email-validator, pycountry) once per distinct value. The
checks in :mod:`crmsync.schemas` and the normaliser in
:mod:`crmsync.crm.normalize` both build on these, so "is this a phone" and "make
this a phone" read the same bytes the same way.

Every public predicate takes a ``pd.Series`` (any string-like dtype, missing
values as NaN/None/"") and returns a Series on the same index.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pycountry
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "DIGITS",
    "LETTERS",
    "PROVINCE_COUNTRIES",
    "SPACES",
    "alpha3_codes",
    "arrow_strings",
    "as_series",
    "clean",
    "digit_bytes",
    "digit_counts",
    "duplicated",
    "email_error",
    "email_errors",
    "emails",
    "filled_rows",
    "join_with",
    "keep_bytes",
    "layout",
    "lengths",
    "map_distinct",
    "matches",
    "only_digits",
    "phone_bytes",
    "phone_punctuation_only",
    "province_codes",
    "rows_holding",
]

#: Countries whose addresses need a province, with their ISO alpha-2 code.
PROVINCE_COUNTRIES = {"CAN": "CA", "USA": "US"}

# RE2 (Arrow) syntax: \s is ASCII only there, so Unicode spaces (NBSP, thin space,
# ideographic space …), vertical tab and NEL are named explicitly.
SPACES = r"[\s\x{0B}\x{85}\p{Z}]+"


# -- Arrow <-> pandas ------------------------------------------------------------


def arrow_strings(values: pd.Series[Any]) -> Any:
    """The column as one contiguous Arrow large_string array, missing values as nulls."""
    if not isinstance(values.dtype, pd.StringDtype) or values.dtype.storage != "pyarrow":
        values = values.astype("str")
    return values.array.__arrow_array__().cast(pa.large_string()).combine_chunks()


def as_series(array: Any, index: pd.Index) -> pd.Series[str]:
    return pd.Series(array, dtype="str", index=index)


# -- byte-level kernels (numpy over an Arrow large_string array's buffers) ----------


def layout(array: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(offsets, data) of a null-free large_string array: value i is ``data[offsets[i]:offsets[i + 1]]``."""
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets, data[: offsets[-1]]  # bytes past the last value (buffer padding) belong to no row


def filled_rows(array: Any) -> np.ndarray[Any, Any]:
    """A row mask: True for the non-empty values of a null-free large_string array (from its offsets)."""
    offsets, _ = layout(array)
    return np.asarray(offsets[1:] > offsets[:-1])


def rows_holding(offsets: np.ndarray[Any, Any], positions: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A row mask: True for the rows holding any of the byte ``positions``."""
    rows = np.zeros(len(offsets) - 1, dtype=bool)
    positions = positions[positions >= offsets[0]]  # a sliced array's buffer starts before its first row
    if len(positions):
        rows[np.searchsorted(offsets, positions, side="right") - 1] = True
    return rows


def keep_bytes(array: Any, keep: np.ndarray[Any, Any]) -> Any:
    """The array with only the bytes where ``keep`` (a mask over its data buffer) holds."""
    offsets, data = layout(array)
    first, last = int(offsets[0]), int(offsets[-1])
    kept = keep[first:last]
    dropped = np.flatnonzero(~kept)  # no cumulative sum over every byte: big temporaries are slow here
    new_offsets = (offsets - first) - np.searchsorted(dropped, offsets - first)
    new_data = data[first:last][kept]
    return pa.LargeStringArray.from_buffers(len(array), pa.py_buffer(new_offsets), pa.py_buffer(new_data))


def byte_table(chars: bytes) -> np.ndarray[Any, Any]:
    """A 256-entry lookup: ``byte_table(b"ab")[data]`` is True where data holds a or b."""
    table = np.zeros(256, dtype=bool)
    table[np.frombuffer(chars, dtype=np.uint8)] = True
    return table


DIGITS = byte_table(b"0123456789")
LETTERS = byte_table(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# Byte classes by comparisons: on tens of megabytes they run several times faster than a table lookup.


def digit_bytes(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray((data >= 0x30) & (data <= 0x39))


def phone_bytes(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Digits, space and ( ) - . / — the characters a typed phone may hold besides a leading +."""
    return np.asarray(((data >= 0x2D) & (data <= 0x39)) | (data == 0x20) | (data == 0x28) | (data == 0x29))


def atext_dot_at_bytes(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """RFC 5322 atext, the dot and the @: printable ASCII except space and ( ) , : ; < > [ \\ ] \"."""
    outside = (
        (data < 0x21) | (data > 0x7E) | (data == 0x22) | (data == 0x28) | (data == 0x29) | (data == 0x2C)
    )
    outside |= (data == 0x3A) | (data == 0x3B) | (data == 0x3C) | (data == 0x3E) | (data == 0x5B)
    outside |= (data == 0x5C) | (data == 0x5D)
    return np.asarray(~outside)


def untidy_rows(array: Any) -> np.ndarray[Any, Any]:
    """Rows that may need whitespace work: control characters, possible Unicode spaces, two
    spaces in a row, or a space at either end. A superset: the regex decides for these rows."""
    offsets, data = layout(array)
    # Control characters, and every lead byte from C2 up: C2 starts U+0085 and U+00A0, E1-E3 the
    # other Unicode spaces (C3 and the rest only start letters, but comparing is faster than a lookup).
    suspicious = (data < 0x20) | (data > 0xC1)
    space = data == 0x20
    suspicious[:-1] |= space[:-1] & space[1:]
    rows = rows_holding(offsets, np.flatnonzero(suspicious))
    filled = filled_rows(array)
    if len(data):
        rows |= filled & (
            space[np.minimum(offsets[:-1], len(data) - 1)] | space[np.maximum(offsets[1:] - 1, 0)]
        )
    return rows


def clean(values: pd.Series[Any]) -> Any:
    """Trimmed, whitespace-collapsed Arrow strings; missing → ""."""
    return tidy(pc.fill_null(arrow_strings(values), ""))


def tidy(array: Any) -> Any:
    """A null-free Arrow string array, trimmed and whitespace-collapsed."""
    untidy = untidy_rows(array)
    if not untidy.any():
        return array
    mask = pa.array(untidy)
    subset = pc.filter(array, mask)
    tidy = pc.utf8_trim(pc.replace_substring_regex(subset, SPACES, " "), " ")
    return pc.replace_with_mask(array, mask, tidy)


def map_distinct(array: Any, func: Callable[[str], str]) -> Any:
    """Apply a slow per-value ``func`` once per distinct value of an Arrow string array."""
    encoded = pc.dictionary_encode(array)
    mapped = pa.array([func(value) for value in encoded.dictionary.to_pylist()], type=pa.large_string())
    return pc.take(mapped, encoded.indices)


def join_with(left: Any, right: Any, separator: str) -> Any:
    return pc.binary_join_element_wise(left, right, pa.scalar(separator, pa.large_string()))


# -- vectorised predicates, for schema checks ---------------------------------------


def matches(
    values: pd.Series[Any], pattern: str, *, ignore_case: bool = False, where: pd.Series[bool] | None = None
) -> pd.Series[bool]:
    """Whether each value contains a match of the RE2 ``pattern`` (anchor it for a full match).

    With ``where``, only those rows are searched (the others are False): a regex costs
    per row, so a check that needs it for a few rows asks only for those.
    """
    array = pc.fill_null(arrow_strings(values), "")
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
    array = pc.fill_null(arrow_strings(values), "")
    offsets, data = layout(array)
    others = rows_holding(offsets, np.flatnonzero(~phone_bytes(data) & (data != 0x2B)))
    return pd.Series(~others, index=values.index, dtype=bool)


def digit_counts(values: pd.Series[Any]) -> pd.Series[int]:
    """How many ASCII digits each value holds."""
    array = pc.fill_null(arrow_strings(values), "")
    offsets, _ = layout(keep_bytes(array, digit_bytes(layout(array)[1])))
    return pd.Series(np.diff(offsets), index=values.index, dtype="int64")


def only_digits(values: pd.Series[Any]) -> pd.Series[bool]:
    """Whether each value holds nothing but ASCII digits (the empty value does)."""
    array = pc.fill_null(arrow_strings(values), "")
    offsets, data = layout(array)
    others = rows_holding(offsets, np.flatnonzero(~digit_bytes(data)))
    return pd.Series(~others, index=values.index, dtype=bool)


def lengths(values: pd.Series[Any]) -> pd.Series[int]:
    """Characters in each value (missing counts 0)."""
    counted = pc.utf8_length(pc.fill_null(arrow_strings(values), ""))
    return pd.Series(counted.to_numpy(zero_copy_only=False), index=values.index, dtype="int64")


def duplicated(values: pd.Series[Any]) -> pd.Series[bool]:
    """True for every copy of a value that occurs more than once (``keep=False``)."""
    codes = pc.dictionary_encode(pc.fill_null(arrow_strings(values), "")).indices.to_numpy(
        zero_copy_only=False
    )
    counts = np.bincount(codes)
    return pd.Series(counts[codes] > 1, index=values.index, dtype=bool)


# -- reference data ----------------------------------------------------------------


@lru_cache(maxsize=1)
def alpha3_codes() -> frozenset[str]:
    """Every ISO 3166-1 alpha-3 code."""
    return frozenset(str(country.alpha_3) for country in pycountry.countries)


@lru_cache(maxsize=4)
def province_codes(country: str) -> frozenset[str]:
    """The 2-letter province/state codes of ``CAN`` or ``USA`` (empty for other countries)."""
    alpha2 = PROVINCE_COUNTRIES.get(country)
    if alpha2 is None:
        return frozenset()
    subdivisions = pycountry.subdivisions.get(country_code=alpha2) or []  # type: ignore[no-untyped-call]
    codes = {str(sub.code).split("-", 1)[1] for sub in subdivisions}
    return frozenset(code for code in codes if len(code) == 2)


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


def emails(values: pd.Series[Any], *, errors_only: bool = False) -> tuple[Any, Any]:
    """Normalised addresses and the reason each invalid one is invalid ("" when valid or empty).

    A plain ASCII ``local@domain`` (nearly every address) is split at its @ with
    byte-level numpy over the whole column, its local part checked against RFC 5322's
    dot-atom, and only its distinct domains go through email-validator. Anything
    else, and any address whose domain email-validator refuses, goes through
    email-validator whole, once per distinct value.
    """
    # No whitespace pass over the column: whitespace is not atext, so an address holding any
    # is not "simple" and is tidied with the few others that go through email-validator.
    cleaned = pc.fill_null(arrow_strings(values), "")
    errors = pc.utf8_slice_codeunits(cleaned, 0, 0)
    offsets, data = layout(cleaned)
    filled = filled_rows(cleaned)
    if not filled.any():
        return cleaned, errors
    rows = len(cleaned)
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
    simple &= ~rows_holding(offsets, np.flatnonzero(~atext_dot_at_bytes(data)))
    dots = data == 0x2E
    simple &= ~rows_holding(offsets, np.flatnonzero(dots[:-1] & dots[1:]))
    padded = np.concatenate((dots, [False]))
    simple &= ~padded[np.where(simple, start, len(data))] & ~padded[np.where(simple, at - 1, len(data))]
    if simple.any():
        mask = pa.array(simple)
        parts = pc.split_pattern(pc.filter(cleaned, mask), "@", max_splits=1)
        domain = pc.ascii_lower(pc.list_element(parts, 1))  # simple addresses are ASCII
        normalised = map_distinct(domain, _domain)
        accepted = pc.not_equal(normalised, "").to_numpy(zero_copy_only=False)
        simple[np.flatnonzero(simple)[~accepted]] = False
        if simple.any() and not errors_only:
            joined = pc.filter(join_with(pc.list_element(parts, 0), normalised, "@"), pa.array(accepted))
            cleaned = pc.replace_with_mask(cleaned, pa.array(simple), joined)
    slow = filled & ~simple
    result = cleaned
    if slow.any():
        mask = pa.array(slow)
        subset = tidy(pc.filter(cleaned, mask))
        if not errors_only:
            normalised = map_distinct(subset, lambda text: _email(text)[0] if text else "")
            result = pc.replace_with_mask(result, mask, normalised)
        errors = pc.replace_with_mask(errors, mask, map_distinct(subset, email_error))
    return result, errors


def email_errors(values: pd.Series[Any]) -> pd.Series[str]:
    """Why each address is invalid, in email-validator's words; "" for a valid or empty one."""
    return as_series(emails(values, errors_only=True)[1], values.index)
