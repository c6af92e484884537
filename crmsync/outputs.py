"""The one writer of every file crmsync leaves behind: CSV with spreadsheet formulas neutralised, JSON, text.

Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, in some, a tab or carriage return) as a formula: a CRM value such as
``=HYPERLINK(…)`` would execute on the finance team's machine. Every text cell
starting with one of those gets a leading ``'``, which spreadsheets display as
plain text (OWASP's CSV-injection advice).

A full disk or a folder without permission is an :class:`~crmsync.errors.OutputError`
naming the file, never an ``OSError`` traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.errors import OutputError

__all__ = [
    "FORMULA_PREFIXES",
    "neutralise_formulas",
    "prepare_out_dir",
    "try_write_json",
    "write_csv",
    "write_json",
    "write_text",
]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA = r"^[=+\-@\t\r]"


def neutralise_formulas(values: pd.Series[Any]) -> pd.Series[Any]:
    """Text cells that a spreadsheet would run as a formula, prefixed with ``'``.

    A carriage return inside a cell becomes a line feed: the csv writer would not
    quote it, and crmsync reads every CR as a line end anyway.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):  # each distinct value once (warnings.csv's reasons)
        categories = pd.Series(values.cat.categories)
        if not (pd.api.types.is_string_dtype(categories.dtype) or categories.dtype == object):
            return values
        safe = neutralise_formulas(categories)
        if safe.is_unique:
            return pd.Series(
                pd.Categorical.from_codes(values.cat.codes, categories=safe.tolist()),  # type: ignore[call-overload]
                index=values.index,
            )
        values = values.astype(object)  # "=x" and "'=x" both there: neutralised, they would be one
    if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        return values
    text = values.astype("str")
    risky = text.str.match(_FORMULA).fillna(False).astype(bool)
    if risky.any():
        text = text.where(~risky, "'" + text)
    if text.str.contains("\r", regex=False).fillna(False).any():
        text = text.str.replace("\r\n", "\n", regex=False).str.replace("\r", "\n", regex=False)
    return text


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A full disk or a folder without permission is an :class:`OutputError` naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the output folder first thing, so that even a run that fails early leaves its summary."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    if not out_dir.is_dir():
        raise OutputError(f"the output folder {out_dir} is not a folder")
    return out_dir


def write_csv(frame: pd.DataFrame, path: Path, columns: Sequence[str] | None = None) -> Path:
    """Write ``frame`` (optionally only ``columns``, in that order) as UTF-8 CSV with formulas neutralised."""
    selected = frame if columns is None else frame.loc[:, list(columns)]
    safe = pd.DataFrame(
        {name: neutralise_formulas(selected[name]) for name in selected.columns}, index=selected.index
    )
    with _writing(path):
        safe.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


def write_text(text: str, path: Path) -> Path:
    with _writing(path):
        path.write_text(text, encoding="utf-8")
    return path


def write_json(document: dict[str, Any], path: Path) -> Path:
    return write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", path)


def try_write_json(document: dict[str, Any], path: Path) -> OutputError | None:
    """:func:`write_json` after an error already happened: a full disk may leave no room for this either."""
    try:
        write_json(document, path)
    except OutputError as error:
        return error
    return None
