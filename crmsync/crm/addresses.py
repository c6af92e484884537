"""Addresses Helcim cannot hold as given: a whole address in the street lines, and incomplete ones.   [pure]

**A whole address in the street lines.** Some exports (Salesforce's sample
data, hand-typed CRMs) put ``Springfield, IL 62701`` on the street's last line
and leave City, State and ZIP empty. :func:`split_street_addresses` moves it
into its fields when it parses *unambiguously*: the address has no city,
province or postal code of its own, the street text ends in
``City, REGION POSTAL`` (optionally followed by the country), REGION is a
state or province of the country the postal code's shape names (a US ZIP
``12345``/``12345-6789`` or a Canadian ``A1A 1A1``) — by its code or its name —,
and the address's own country, when given, is that one. Anything else is left
as it is, with a warning when the street ends in something shaped like a
postal code (validation then says the postal code is missing).

No parser library serves here: ``usaddress`` (a CRF model, US only) labels
tokens probabilistically and knows no Canadian address, ``pyap`` is
unmaintained since 2020, and ``postal`` needs libpostal's C library and a 2 GB
model. The one shape worth splitting is checked exactly, against the ISO 3166-2
subdivisions and the postal-code shapes validation already uses.

**Incomplete addresses.** Helcim stores a billing or shipping address only
with a name, street1 and a postal code, and it keeps a customer's e-mail and
phone *only* inside an address. :func:`omit_incomplete_addresses` drops an
address that lacks street1 or the postal code, so that the customer is still
created with what Helcim can hold (names, cell phone, the other address), and
lists every value that was not stored, and why, as warnings (the columns of
rejects.csv). An omitted address is never sent, so it never clears one Helcim
already has (the run keeps Helcim's address for such a customer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmsync.crm.normalize import province_code
from crmsync.schemas.address import ADDRESS_FIELDS
from crmsync.schemas.crm import ADDRESS_PREFIXES
from crmsync.text import arrow_strings, as_series, filled_rows, matches, province_codes

__all__ = [
    "INCOMPLETE_ADDRESS_MODES",
    "WARNING_SCHEMA",
    "Omitted",
    "drop_phone_extensions",
    "no_warnings",
    "omit_incomplete_addresses",
    "omitted_reason",
    "split_street_addresses",
]

INCOMPLETE_ADDRESS_MODES = ("omit", "reject")

_POSTAL = r"(?P<postal>[0-9]{5}(?:-[0-9]{4})?|[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9])"
_TAIL = re.compile(
    r"^(?P<street>.*?)[,\s]+(?P<city>[^,\n]*[^,\s\n]),?\s+(?P<region>[A-Za-z][A-Za-z .'-]*?)\.?,?\s+"
    + _POSTAL
    + r"(?:,?\s+(?P<country>USA|US|U\.S\.A?\.?|United States(?: of America)?|Canada|CAN|CA))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_POSTAL_AT_END = r"(?:[0-9]{5}(?:-[0-9]{4})?|[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9])\s*$"


# -- a whole address in the street lines -------------------------------------------------


def _region_code(region: str, country: str) -> str | None:
    """The region's 2-letter code when it is one of ``country``'s (by code or name), else None."""
    code = province_code(region.strip(), country)  # the same tables as the normaliser
    return code if code in province_codes(country) else None


def _country_named(text: str) -> str:
    key = re.sub(r"[^a-z]", "", text.lower())
    return "CAN" if key in ("canada", "can", "ca") else "USA" if key else ""


def parse_street_tail(street: str, country: str) -> tuple[str, str, str, str, str] | None:
    """(street, city, province code, postal code, country) when ``street`` ends in a whole address."""
    found = _TAIL.match(street)
    if not found or not found["street"].strip(" ,"):
        return None
    postal = found["postal"].upper()
    implied = "USA" if postal[0].isdigit() else "CAN"
    named = _country_named(found["country"] or "")
    given = _country_named(country) if country.strip() else ""
    if (named and named != implied) or (given and given != implied):
        return None
    region = _region_code(found["region"], implied)
    if region is None:
        return None
    if implied == "CAN" and " " not in postal:
        postal = f"{postal[:3]} {postal[3:]}"
    return found["street"].strip(" ,"), found["city"].strip(), region, postal, implied


def split_street_addresses(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """Move a whole address out of the street lines into its fields (see the module docstring).

    ``frame`` is the mapped export (generic columns, ``source_line``); returns
    it with such addresses split, and (row position, column, street) for each
    street that ends like a postal code but does not parse unambiguously.
    """
    notes: list[tuple[int, str, str]] = []
    out = frame
    for prefix in ADDRESS_PREFIXES:
        has = {
            f: _filled(frame[f"{prefix}_{f}"])
            for f in ("street1", "street2", "city", "province", "postal_code")
        }
        candidates = has["street1"] & ~(has["city"] | has["province"] | has["postal_code"])
        if not candidates.any():
            continue
        rows = np.flatnonzero(candidates)
        street1 = frame[f"{prefix}_street1"].iloc[rows].astype("str").fillna("")
        street2 = frame[f"{prefix}_street2"].iloc[rows].astype("str").fillna("")
        second = (street2.str.strip() != "").to_numpy()
        whole = street1.where(~second, street1 + ", " + street2)
        positions = rows[matches(whole, _POSTAL_AT_END).to_numpy()]
        if not len(positions):
            continue
        whole = pd.Series(whole.to_numpy(dtype=object), index=rows).reindex(positions)
        second_at = pd.Series(second, index=rows)
        countries = frame[f"{prefix}_country"].astype("str").fillna("")
        for at in positions.tolist():
            street_text, country_text = str(whole[at]), str(countries.iloc[at])
            parsed = parse_street_tail(street_text, country_text)
            if parsed is None:
                notes.append((at, f"{prefix}_street1", street_text))
                continue
            out = frame.copy() if out is frame else out
            street, city, region, postal, country = parsed
            first, rest = street.partition(", ")[::2] if second_at[at] else (street, "")
            targets = [f"{prefix}_{f}" for f in ("street1", "street2", "city", "province", "postal_code")]
            out.loc[out.index[at], targets] = [first, rest, city, region, postal]
            if not country_text.strip():
                out.loc[out.index[at], f"{prefix}_country"] = country
    return out, notes


# -- phone extensions -------------------------------------------------------------------------

_EXTENSION = r"^\s*(?P<number>\+?[0-9 ().\-/]*[0-9][0-9 ().\-/]*?)[\s,;]*(?:ext\.?|extension|x|#)\s*(?P<ext>[0-9]+)\s*$"
PHONE_COLUMNS = ("cell_phone", "billing_phone", "shipping_phone")


def drop_phone_extensions(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str, str, str]]]:
    """A phone with an extension (``714-520-3150 ext. 37``) keeps its number; the extension is dropped.

    Helcim stores a phone's digits only. Returns the frame and (row position,
    column, value, the extension) for each phone whose extension was dropped.
    """
    notes: list[tuple[int, str, str, str]] = []
    out = frame
    for column in PHONE_COLUMNS:
        text = frame[column].astype("str")
        has = matches(text, r"(?:ext|x|#)\s*\.?\s*[0-9]+\s*$", ignore_case=True)
        if not has.any():
            continue
        parts = text[has].str.extract(_EXTENSION, flags=re.IGNORECASE)
        found = parts["number"].notna()
        if not found.any():
            continue
        if out is frame:
            out = frame.copy()
        out.loc[parts.index[found], column] = parts.loc[found, "number"].str.strip()
        positions = np.flatnonzero(has.to_numpy())[found.to_numpy()]
        for at, value, ext in zip(
            positions.tolist(), text.to_numpy()[positions], parts.loc[found, "ext"], strict=True
        ):
            notes.append((at, column, str(value), str(ext)))
    return out, notes


# -- incomplete addresses -----------------------------------------------------------------


@dataclass(frozen=True)
class Omitted:
    """What :func:`omit_incomplete_addresses` dropped."""

    frame: pd.DataFrame  # the normalised frame, incomplete addresses emptied
    warnings: pa.Table  # REJECT_COLUMNS + rule, one row per value not stored (in no particular order)
    rows: dict[str, np.ndarray[Any, Any]]  # prefix → row mask of omitted addresses


#: What an omitted address lacks, as the reasons say it (indexed by :func:`_lacking_codes`).
_LACKING = ("no street1 and no postal code", "no street1", "no postal code")
#: The columns an omitted address can leave unstored (its name is the customer's own: Helcim keeps it).
_UNSTORED = tuple(f"{p}_{f}" for p in ADDRESS_PREFIXES for f in ADDRESS_FIELDS if f != "name")
_TEXT = pa.large_string()
_CODES = pa.dictionary(pa.int32(), _TEXT)
#: warnings.csv's columns as Arrow types: the column, the reason and the rule are dictionary-encoded
#: (a few dozen distinct values over millions of rows: a real Shopify export warns on most rows).
WARNING_SCHEMA = pa.schema(
    [
        ("source_line", pa.int64()),
        ("crm_id", _TEXT),
        ("column", _CODES),
        ("value", _TEXT),
        ("reason", _CODES),
        ("rule", _CODES),
    ]
)


def no_warnings() -> pa.Table:
    return WARNING_SCHEMA.empty_table()


def omitted_reason(column: str, lacking: str) -> str:
    prefix = column.split("_", 1)[0]
    return (
        f"{column} was not stored: Helcim keeps it only in a {prefix} address with a street and a postal "
        f"code, and this one has {lacking}"
    )


_REASONS = pa.array([omitted_reason(c, lacking) for c in _UNSTORED for lacking in _LACKING], _TEXT)


def _lacking_codes(street: np.ndarray[Any, Any], postal: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.select([street & postal, street], [0, 1], default=2).astype(np.int32)


def _filled(values: pd.Series[Any]) -> np.ndarray[Any, Any]:
    """Rows whose (normalised: trimmed, missing as "") value is not empty, from the Arrow offsets."""
    return filled_rows(pc.fill_null(arrow_strings(values), ""))


@dataclass
class _Unstored:
    """The warnings of omitted addresses, gathered column by column as arrays."""

    lines: list[np.ndarray[Any, Any]]
    ids: list[Any]
    values: list[Any]
    columns: list[np.ndarray[Any, Any]]
    reasons: list[np.ndarray[Any, Any]]

    def add(
        self, raw: pd.DataFrame, column: str, at: np.ndarray[Any, Any], ident: tuple[Any, Any], lacking: Any
    ) -> None:
        """One column of the omitted addresses: ``at`` are the rows where it holds a value, ``ident``
        their (source_line, crm_id), ``lacking`` the codes of what their address lacks."""
        code = _UNSTORED.index(column)
        self.lines.append(ident[0])
        self.ids.append(ident[1])
        self.values.append(pc.take(pc.fill_null(arrow_strings(raw[column]), ""), pa.array(at)))
        self.columns.append(np.full(len(at), code, dtype=np.int32))
        self.reasons.append(code * len(_LACKING) + lacking)

    def table(self) -> pa.Table:
        if not self.lines:
            return no_warnings()
        n = sum(len(x) for x in self.lines)
        return pa.table(
            [
                pa.array(np.concatenate(self.lines), pa.int64()),
                pa.concat_arrays(self.ids),
                pa.DictionaryArray.from_arrays(np.concatenate(self.columns), pa.array(_UNSTORED, _TEXT)),
                pa.concat_arrays(self.values),
                pa.DictionaryArray.from_arrays(np.concatenate(self.reasons), _REASONS),
                pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), pa.array(["address_omitted"], _TEXT)),
            ],
            schema=WARNING_SCHEMA,
        )


def omit_incomplete_addresses(frame: pd.DataFrame, raw: pd.DataFrame) -> Omitted:
    """Empty every address that lacks street1 or a postal code; one warning per value not stored.

    ``frame`` is normalised, ``raw`` the same rows as the export holds them
    (the warnings' ``value``). The name of an omitted address is not listed: it
    is the customer's own name, which Helcim keeps anyway. Every step is an
    Arrow or numpy kernel over whole columns: three Shopify customers in four
    have such an address, so this runs for most rows of a real export.
    """
    unstored = _Unstored([], [], [], [], [])
    rows: dict[str, np.ndarray[Any, Any]] = {}
    emptied: dict[str, Any] = {}
    lines = frame["source_line"].to_numpy(dtype="int64")
    ids = pc.fill_null(arrow_strings(frame["crm_id"]), "")
    for prefix in ADDRESS_PREFIXES:
        filled = {f: _filled(frame[f"{prefix}_{f}"]) for f in ADDRESS_FIELDS}
        given = np.logical_or.reduce([filled[f] for f in ADDRESS_FIELDS if f != "name"])
        incomplete = given & (~filled["street1"] | ~filled["postal_code"])
        rows[prefix] = incomplete
        if not incomplete.any():
            continue
        where = np.flatnonzero(incomplete)
        lacking = _lacking_codes(~filled["street1"][where], ~filled["postal_code"][where])
        for field in ADDRESS_FIELDS:
            hit = filled[field][where]
            if field != "name" and hit.any():
                at = where[hit]
                unstored.add(
                    raw, f"{prefix}_{field}", at, (lines[at], pc.take(ids, pa.array(at))), lacking[hit]
                )
        mask = pa.array(incomplete)
        for field in ADDRESS_FIELDS:
            column = f"{prefix}_{field}"
            values = pc.fill_null(arrow_strings(frame[column]), "")
            emptied[column] = as_series(pc.if_else(mask, pa.scalar("", _TEXT), values), frame.index)
    return Omitted(frame.assign(**emptied) if emptied else frame, unstored.table(), rows)
