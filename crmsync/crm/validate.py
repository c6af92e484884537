"""Validate a normalised CRM frame with the pandera models → (valid rows, rejects).

:func:`validate_frame` is pure: it runs :class:`crmsync.schemas.crm.CrmCustomer` on the
customer columns and :class:`crmsync.schemas.address.Address` on the billing and the
shipping columns, all lazily, and turns pandera's failure cases into
``rejects``: one row per problem (``source_line, crm_id, column, value,
reason``), worded for a CRM administrator, with ``value`` as the export holds
it (before normalisation). A row with any problem is rejected whole; a row
with three problems gives three reject rows and counts once.

:func:`validate_file` is the ``crmsync validate`` command: read, map,
normalise, validate, write ``valid.csv``, ``rejects.csv`` and ``summary.json``.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow

from crmsync.crm.extract import DELIMITER_NAMES, read_crm
from crmsync.crm.normalize import normalize_crm
from crmsync.crm.profiles import load_profile
from crmsync.errors import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, UsageError
from crmsync.outputs import write_csv, write_json
from crmsync.schemas.address import (
    ADDRESS_FIELDS,
    ADDRESS_REASONS,
    MAX_LENGTHS,
    Address,
    address_frame,
    describe_region,
)
from crmsync.schemas.crm import ADDRESS_PREFIXES, CRM_COLUMNS, CRM_REASONS, CUSTOMER_COLUMNS, CrmCustomer
from crmsync.text import email_error

__all__ = [
    "REJECT_COLUMNS",
    "VALID_COLUMNS",
    "ValidationSummary",
    "parse_rate",
    "validate_file",
    "validate_frame",
]

REJECT_COLUMNS = ("source_line", "crm_id", "column", "value", "reason")
#: valid.csv: the generic columns (so it is itself a valid generic export), then the row's first line.
VALID_COLUMNS = (*CRM_COLUMNS, "source_line")
_REASONS = {**ADDRESS_REASONS, **CRM_REASONS}


@dataclass
class ValidationSummary:
    """What ``crmsync validate`` reports in summary.json (and its exit code)."""

    source_file: str
    profile: str
    rows_read: int
    valid: int
    rejected: int
    reject_rate: float
    encoding: str
    encoding_guessed: bool
    delimiter: str
    delimiter_name: str
    parser: str
    problems: int
    problems_by_column: dict[str, int]
    problems_by_rule: dict[str, int]
    warnings: list[str]
    ignored_columns: list[str]
    max_reject_rate: float | None
    exit_code: int
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_rate(text: str) -> float:
    """``0.05``, ``5%`` → 0.05; a fraction from 0 to 1."""
    raw = text.strip()
    try:
        rate = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(
            f"--max-reject-rate {text!r}: give a fraction such as 0.05 or a percentage such as 5%"
        ) from None
    if not 0.0 <= rate <= 1.0 or rate != rate:
        raise UsageError(f"--max-reject-rate {text!r}: must be between 0 and 1 (0% and 100%)")
    return rate


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


# -- the command ----------------------------------------------------------------------


def validate_file(
    path: Path, profile: str, out_dir: Path, max_reject_rate: float | None = None
) -> ValidationSummary:
    """``crmsync validate``: read, map, normalise and validate one export; write its three outputs."""
    started = time.perf_counter()
    mapping = load_profile(profile)
    export = read_crm(path, mapping)
    normalised = normalize_crm(export.frame)
    valid, rejects = validate_frame(normalised, export.frame)

    rows = len(export.frame)
    rejected = rows - len(valid)
    rate = rejected / rows if rows else 0.0
    if max_reject_rate is not None and rate > max_reject_rate:
        exit_code = EXIT_USAGE
        export.warnings.append(
            f"{rate:.1%} of the rows were rejected, above --max-reject-rate {max_reject_rate:.1%}: the run fails"
        )
    else:
        exit_code = EXIT_PARTIAL if rejected else EXIT_OK

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {
        "valid": str(write_csv(valid, out_dir / "valid.csv", VALID_COLUMNS)),
        "rejects": str(write_csv(rejects, out_dir / "rejects.csv", REJECT_COLUMNS)),
    }
    summary = ValidationSummary(
        source_file=export.source_file,
        profile=export.profile,
        rows_read=rows,
        valid=len(valid),
        rejected=rejected,
        reject_rate=round(rate, 6),
        encoding=export.encoding,
        encoding_guessed=export.encoding_guessed,
        delimiter=export.delimiter,
        delimiter_name=DELIMITER_NAMES[export.delimiter],
        parser=export.parser,
        problems=len(rejects),
        problems_by_column={str(k): int(v) for k, v in rejects["column"].value_counts().sort_index().items()},
        problems_by_rule={str(k): int(v) for k, v in rejects["rule"].value_counts().sort_index().items()},
        warnings=export.warnings,
        ignored_columns=export.ignored_headers,
        max_reject_rate=max_reject_rate,
        exit_code=exit_code,
        outputs=outputs,
    )
    summary.outputs["summary"] = str(out_dir / "summary.json")
    summary.seconds = round(time.perf_counter() - started, 3)
    write_json(summary.to_dict(), out_dir / "summary.json")
    return summary
