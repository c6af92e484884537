"""Validate a normalised CRM frame with the pandera models → (valid rows, rejects).

:func:`validate_frame` is pure: it runs :class:`crmsync.schemas.crm.CrmCustomer` on the
customer columns and :class:`crmsync.schemas.address.Address` on the billing and the
shipping columns, all lazily, and turns pandera's failure cases into
``rejects``: one row per problem (``source_line, crm_id, column, value,
reason``), worded for a CRM administrator, with ``value`` as the export holds
it (before normalisation). A row with any problem is rejected whole; a row
with three problems gives three reject rows and counts once.

:func:`check_export` is the whole CRM side of a run: read, map, normalise,
validate (``crmsync validate`` is :func:`crmsync.jobs.validate.validate_file`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc

from crmsync.crm.addresses import (
    INCOMPLETE_ADDRESS_MODES,
    WARNING_SCHEMA,
    drop_phone_extensions,
    no_warnings,
    omit_incomplete_addresses,
    split_street_addresses,
)
from crmsync.crm.extract import CrmExport, read_crm
from crmsync.crm.keys import email_codes
from crmsync.crm.normalize import cell_phones_in_context, normalize_crm
from crmsync.crm.profiles import Profile, load_profile
from crmsync.errors import UsageError
from crmsync.schemas.address import (
    ADDRESS_FIELDS,
    ADDRESS_REASONS,
    MAX_LENGTHS,
    Address,
    address_frame,
    describe_region,
)
from crmsync.schemas.crm import ADDRESS_PREFIXES, CRM_COLUMNS, CRM_REASONS, CUSTOMER_COLUMNS, CrmCustomer
from crmsync.schemas.helcim import SYNCED_FIELDS
from crmsync.text import email_error

__all__ = [
    "REJECT_COLUMNS",
    "VALID_COLUMNS",
    "CheckedExport",
    "check_export",
    "shown",
    "validate_frame",
]

REJECT_COLUMNS = ("source_line", "crm_id", "column", "value", "reason")
#: valid.csv: the generic columns (so it is itself a valid generic export), then the row's first line.
VALID_COLUMNS = (*CRM_COLUMNS, "source_line")
_REASONS = {**ADDRESS_REASONS, **CRM_REASONS}


# -- failure cases → rejects --------------------------------------------------------


def _failures(model: type[pa.DataFrameModel], frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """(row label, column, rule) for each problem pandera finds in ``frame``.

    The failing rows come from each check's boolean ``check_output`` (the checks
    keep a single failure case, see :func:`crmsync.schemas.address.column_rule`).
    """
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        found = []
        for error in errors.schema_errors:
            if error.check is None or error.check_output is None:  # a missing column, a dtype: our bug
                raise RuntimeError(f"{model.__name__} failed as a whole: {error}") from errors
            name = str(error.check.name)
            field, _, rule = name.rpartition(":")
            if not field:
                field, rule = str(error.column_name), name
            failed = frame.index[~error.check_output.to_numpy(dtype=bool)]
            column = f"{prefix}_{field}" if prefix else field
            found.append(pd.DataFrame({"index": failed, "column": column, "rule": rule}))
        return pd.concat(found, ignore_index=True)
    return pd.DataFrame({"index": pd.Series(dtype="int64"), "column": [], "rule": []})


def _lines_phrase(lines: list[int]) -> str:
    shown = [str(line) for line in lines[:10]]
    if len(lines) > 10:
        shown.append(f"{len(lines) - 10} more")
    if len(shown) == 1:
        return f"line {shown[0]}"
    return f"lines {', '.join(shown[:-1])} and {shown[-1]}"


def _given(row: Callable[[str], Any], prefix: str) -> str:
    filled = [f"{prefix}_{f}" for f in ADDRESS_FIELDS if row(f"{prefix}_{f}") != ""]
    return ", ".join(filled[:3]) + (" …" if len(filled) > 3 else "")


#: A value longer than this is cut in a reason (and, past VALUE_MAX, in the value column of rejects.csv).
SHOWN_MAX = 80
VALUE_MAX = 1000


def shown(value: str, limit: int = SHOWN_MAX) -> str:
    """A value as a reason quotes it: invisible characters escaped (a BOM reads ``\\ufeff``), long ones cut."""
    cut = value if len(value) <= limit else value[:limit]
    text = "".join(c if c.isprintable() else _escape(c) for c in cut)
    return text if cut is value else f"{text}… ({len(value):,} characters)"


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _reason(
    rule: str, column: str, value: str, row: Callable[[str], Any], duplicates: dict[str, list[int]]
) -> str:
    template = _REASONS.get(rule, "{column}: " + rule)
    normalised = str(row(column))
    prefix = column.split("_", 1)[0] if column.split("_", 1)[0] in ADDRESS_PREFIXES else ""
    context: dict[str, Any] = {"column": column, "value": shown(value), "address": prefix}
    if "{max}" in template:
        context["max"] = MAX_LENGTHS[column.removeprefix(f"{prefix}_") if prefix else column]
    if "{digits}" in template:
        context["digits"] = len(re.sub(r"[^0-9]", "", normalised))
    if "{length}" in template:
        context["length"] = len(normalised)
    if "{given}" in template:
        context["given"] = _given(row, prefix)
    if "{email_error}" in template:
        context["email_error"] = email_error(normalised)
    if "{other_lines}" in template:
        line = int(row("source_line"))
        context["other_lines"] = _lines_phrase([n for n in duplicates.get(normalised, []) if n != line])
    if prefix:
        country = str(row(f"{prefix}_country"))
        context["country"] = country
        context.update(describe_region(country))
    return template.format_map(context)


class _Rows:
    """Read access to a few rows of a large frame, by label, without building a dict per row."""

    def __init__(self, frame: pd.DataFrame, labels: list[Any]) -> None:
        positions = frame.index.get_indexer(pd.Index(labels))
        self._at = {label: i for i, label in enumerate(labels)}
        self._columns = {str(c): frame[c].iloc[positions].to_numpy(dtype=object) for c in frame.columns}

    def get(self, label: Any, column: str, default: Any = "") -> Any:
        values = self._columns.get(column)
        return default if values is None else values[self._at[label]]


def _filter(frame: pd.DataFrame, keep: np.ndarray[Any, Any], columns: tuple[str, ...]) -> pd.DataFrame:
    """The rows where ``keep`` holds, as one Arrow table filter (a pandas take of a million
    Arrow-backed rows is slower and, through object arrays, several times larger in memory)."""
    arrays = {}
    for column in columns:
        values = frame[column]
        if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
            arrays[column] = values.array.__arrow_array__()
        else:
            arrays[column] = pa_arrow.array(values.to_numpy())
    table = pa_arrow.table(arrays).filter(pa_arrow.array(keep))
    out = table.to_pandas(
        types_mapper={pa_arrow.large_string(): pd.StringDtype("pyarrow", na_value=np.nan)}.get
    )
    out.index = frame.index[keep]
    return cast(pd.DataFrame, out)


def validate_frame(frame: pd.DataFrame, raw: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a normalised CRM frame into (valid rows, rejects).

    ``rejects`` has the columns of rejects.csv plus ``rule``, the id of the
    check that failed (``row_shape`` for a row of the wrong width).

    ``frame`` has the generic columns, ``source_line`` and optionally
    ``row_problem`` (a structural problem found while reading, e.g. a row of
    the wrong width: reported alone, since its values are misplaced). ``raw``
    is the same rows before normalisation, for the ``value`` column of
    rejects (defaults to ``frame``).
    """
    raw = frame if raw is None else raw
    problem_rows = (
        frame["row_problem"] != ""
        if "row_problem" in frame
        else pd.Series(False, index=frame.index, dtype=bool)
    )
    # The three models run in parallel threads: their checks are Arrow and numpy kernels
    # that release the GIL.
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [pool.submit(_failures, CrmCustomer, frame.loc[:, list(CUSTOMER_COLUMNS)])]
        jobs += [pool.submit(_failures, Address, address_frame(frame, p), p) for p in ADDRESS_PREFIXES]
        failures = pd.concat([job.result() for job in jobs], ignore_index=True)
    failures = failures[~failures["index"].isin(frame.index[problem_rows])]

    duplicates: dict[str, list[int]] = {}
    duplicated_ids = failures.loc[failures["rule"] == "crm_id_unique", "index"]
    if len(duplicated_ids):
        copies = frame.loc[duplicated_ids.unique(), ["crm_id", "source_line"]].sort_values("source_line")
        duplicates = {
            str(k): [int(v) for v in g] for k, g in copies.groupby("crm_id", sort=False)["source_line"]
        }

    labels = list(dict.fromkeys(failures["index"].tolist()))
    rows = _Rows(frame, labels)
    raws = _Rows(raw, labels)
    records: list[tuple[int, str, str, str, str, str]] = []
    for label, column, rule in failures.itertuples(index=False, name=None):
        value = raws.get(label, column)
        value = "" if not isinstance(value, str) else value
        reason = _reason(str(rule), str(column), value, functools.partial(rows.get, label), duplicates)
        if len(value) > VALUE_MAX:  # a 2 MB name stays out of rejects.csv; the reason says how long it was
            value = value[:VALUE_MAX] + "…"
        line, crm_id = int(rows.get(label, "source_line")), str(rows.get(label, "crm_id"))
        records.append((line, crm_id, str(column), value, reason, str(rule)))
    for label in frame.index[problem_rows]:
        line = int(frame.at[label, "source_line"])  # type: ignore[arg-type]
        records.append(
            (line, str(frame.at[label, "crm_id"]), "", "", str(frame.at[label, "row_problem"]), "row_shape")
        )

    rejects = pd.DataFrame.from_records(records, columns=[*REJECT_COLUMNS, "rule"])
    rejects = rejects.astype(
        {
            "source_line": "int64",
            "crm_id": "str",
            "column": "str",
            "value": "str",
            "reason": "str",
            "rule": "str",
        }
    )
    rejects = rejects.sort_values(["source_line", "column", "reason"], kind="stable", ignore_index=True)
    bad = frame.index.isin(failures["index"].unique()) | problem_rows.to_numpy()
    valid = _filter(frame, ~bad, VALID_COLUMNS)
    return valid, rejects


# -- a whole export ------------------------------------------------------------------

_EMAIL_KEY_REASONS = {
    "crm_id_required": (
        "billing_email",
        "email_key_required",
        "billing_email: required; this export has no id column, so the e-mail is the customer's key "
        "(it becomes Helcim's customer code)",
    ),
    "crm_id_unique": (
        "billing_email",
        "email_key_unique",
        'billing_email "{value}" also appears on another line; this export has no id column, so the '
        "e-mail is the customer's key and each customer needs their own",
    ),
}


def _email_key_reasons(rejects: pd.DataFrame) -> pd.DataFrame:
    """An e-mail-keyed export's key problems, said of the e-mail (there is no crm_id column to fix)."""
    for rule, (column, new_rule, reason) in _EMAIL_KEY_REASONS.items():
        hit = rejects["rule"] == rule
        if hit.any():
            rejects.loc[hit, "column"] = column
            rejects.loc[hit, "reason"] = [reason.format(value=shown(v)) for v in rejects.loc[hit, "value"]]
            rejects.loc[hit, "rule"] = new_rule
    return rejects


@dataclass(frozen=True)
class CheckedExport:
    """The CRM side of a sync: the export as read, its valid normalised rows, its rejects and warnings."""

    export: CrmExport
    valid: pd.DataFrame
    rejects: pd.DataFrame
    #: What valid rows could not store (warnings.csv: the columns of rejects.csv, plus ``rule``).
    warnings: pd.DataFrame = field(default_factory=lambda: _no_warnings())
    #: prefix → a mask over ``valid``: the rows whose address of that prefix was omitted (incomplete,
    #: under ``omit``); a prefix no valid row omitted is absent.
    omitted: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)
    incomplete_address: str = "omit"
    #: The valid rows' cell phones as normalised with the export's own billing country (where the
    #: billing address was omitted, ``valid`` holds them in the context of no country: the one Helcim
    #: holds for a customer it creates without it). Empty when no billing address was omitted.
    exported_cell_phones: pd.Series = field(default_factory=lambda: pd.Series(dtype="str"))

    @property
    def rows_read(self) -> int:
        return len(self.export.frame)

    @property
    def rejected(self) -> int:
        return self.rows_read - len(self.valid)

    @property
    def rows_with_warnings(self) -> int:
        return int(self.warnings["source_line"].nunique())

    @property
    def fields(self) -> tuple[str, ...]:
        """The synced fields this export carries (a column it lacks is never synced)."""
        return tuple(f for f in SYNCED_FIELDS if f in self.export.mapped_columns)

    @property
    def crm_ids(self) -> pd.Series:
        """Every crm_id of the export, rejected rows included."""
        return self.export.frame["crm_id"].astype("str")

    @property
    def source_lines(self) -> dict[str, int]:
        return dict(zip(self.valid["crm_id"].astype(str), self.valid["source_line"].astype(int), strict=True))


_NO_PHONES: pd.Series = pd.Series(dtype="str")


def _no_warnings() -> pd.DataFrame:
    return _warnings_frame(no_warnings())


def _warnings_frame(table: pa_arrow.Table) -> pd.DataFrame:
    """warnings.csv's rows as a frame: Arrow-backed text, the column, reason and rule as categories
    (a million rows of a real Shopify export warn four million times: they must stay compact)."""
    out = table.to_pandas(
        types_mapper={pa_arrow.large_string(): pd.StringDtype("pyarrow", na_value=np.nan)}.get
    )
    return cast(pd.DataFrame, out)


def _notes_table(frame: pd.DataFrame, notes: list[tuple[int, str, str, str, str]]) -> pa_arrow.Table:
    """Warnings from (row position, column, value, reason, rule) notes, on the rows' final crm_ids."""
    if not notes:
        return no_warnings()
    positions = [n[0] for n in notes]

    def text(at: int) -> pa_arrow.Array:
        return pa_arrow.array([n[at] for n in notes], pa_arrow.large_string())

    return pa_arrow.table(
        [
            pa_arrow.array(frame["source_line"].iloc[positions].to_numpy(dtype="int64")),
            pa_arrow.array(frame["crm_id"].iloc[positions].astype("str").tolist(), pa_arrow.large_string()),
            text(1).dictionary_encode(),
            text(2),
            text(3).dictionary_encode(),
            text(4).dictionary_encode(),
        ],
        schema=WARNING_SCHEMA,
    )


def _valid_warnings(tables: list[pa_arrow.Table], valid: pd.DataFrame) -> pd.DataFrame:
    """The warnings of valid rows only, by line then column: the order from numpy's sort of the codes,
    then one Arrow take per column, each original column freed once taken (``tables`` is emptied:
    four million warnings are never held twice over)."""
    kept = [t for t in tables if t.num_rows]
    tables.clear()
    if not kept:
        return _no_warnings()
    table = pa_arrow.concat_tables(kept).unify_dictionaries() if len(kept) > 1 else kept[0]
    del kept
    wanted = pa_arrow.array(valid["source_line"].to_numpy(dtype="int64"))
    rows = np.flatnonzero(np.asarray(pc.is_in(table["source_line"], value_set=wanted), dtype=bool))
    codes = np.empty(table.num_rows, dtype=np.int32)
    start = 0
    for chunk in table["column"].chunks:  # each chunk's codes, as ranks of the column names in sorted order
        names = np.asarray(chunk.dictionary.to_pylist(), dtype=object)
        rank = np.empty(len(names), dtype=np.int32)
        rank[np.argsort(names, kind="stable")] = np.arange(len(names), dtype=np.int32)
        codes[start : start + len(chunk)] = rank[chunk.indices.to_numpy(zero_copy_only=False)]
        start += len(chunk)
    lines = table["source_line"].to_numpy()[rows]
    order = pa_arrow.array(rows[np.lexsort((codes[rows], lines))])
    del rows, codes, lines
    names, columns = table.column_names, []
    while table.num_columns:
        columns.append(table.column(0).take(order))
        table = table.remove_column(0)
    return _warnings_frame(pa_arrow.table(columns, names=names))


def _prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str, str, str, str]]]:
    """Before normalising: whole addresses out of the street lines, extensions off the phones."""
    frame, unsplit = split_street_addresses(frame)
    frame, extensions = drop_phone_extensions(frame)
    notes = [
        (at, column, value, f'{column} "{shown(value)}" looks like a whole address, but it does not split '
         "unambiguously into a city, a province and a postal code: put them in their own columns", "address_unsplit")
        for at, column, value in unsplit
    ]  # fmt: skip
    notes += [
        (at, column, value, f'{column} "{shown(value)}": the extension {ext} was not stored; Helcim keeps a '
         "phone's digits only", "phone_extension_dropped")
        for at, column, value, ext in extensions
    ]  # fmt: skip
    return frame, notes


def check_export(path: Path, profile: str | Profile, incomplete_address: str = "omit") -> CheckedExport:
    """Read, map, normalise and validate a CRM export (raises InputFileError on a bad file).

    ``profile`` is a profile, its name or path, or ``auto`` (the built-in one
    that fits best). ``incomplete_address``: ``omit`` creates a customer whose
    address lacks street1 or a postal code without that address (listing what
    was not stored as warnings), ``reject`` rejects the row.
    """
    if incomplete_address not in INCOMPLETE_ADDRESS_MODES:
        raise UsageError(f"incomplete addresses: {incomplete_address!r} is not one of omit, reject")
    mapping = (
        None if profile == "auto" else profile if isinstance(profile, Profile) else load_profile(profile)
    )
    export = read_crm(path, mapping)
    frame, notes = _prepare(export.frame)
    if export.key == "email":  # the rejects show the e-mail where the key is missing or repeated
        frame = frame.assign(crm_id=frame["billing_email"])
    normalised = normalize_crm(frame)
    if export.key == "email":
        normalised["crm_id"] = email_codes(normalised["billing_email"])
        export.frame["crm_id"] = normalised["crm_id"]
    warnings = [_notes_table(normalised, notes)]
    omitted_rows: dict[str, np.ndarray[Any, Any]] = {}
    exported_phones = _NO_PHONES
    if incomplete_address == "omit":
        omitted = omit_incomplete_addresses(normalised, frame)
        normalised, omitted_rows = omitted.frame, omitted.rows
        exported_phones = normalised["cell_phone"]
        normalised = cell_phones_in_context(normalised, omitted_rows["billing"])
        warnings.append(omitted.warnings)
        del omitted
    valid, rejects = validate_frame(normalised, frame)
    if export.key == "email":
        rejects = _email_key_reasons(rejects)
    omitted_valid = _omitted_of_valid(normalised, valid, omitted_rows)
    phones = exported_phones.reindex(valid.index) if "billing" in omitted_valid else _NO_PHONES
    del normalised, frame  # the valid rows are a copy: free the rest before the warnings are sorted
    return CheckedExport(
        export, valid, rejects, _valid_warnings(warnings, valid), omitted_valid, incomplete_address, phones
    )


def _omitted_of_valid(
    frame: pd.DataFrame, valid: pd.DataFrame, rows: dict[str, np.ndarray[Any, Any]]
) -> dict[str, np.ndarray[Any, Any]]:
    """prefix → a mask over the valid rows: where that address was omitted (from the masks over ``frame``)."""
    at = frame.index.get_indexer(valid.index)
    return {prefix: np.asarray(mask[at], dtype=bool) for prefix, mask in rows.items() if mask[at].any()}
