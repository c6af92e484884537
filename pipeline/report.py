"""Rendering: the ONE CSV writer every CSV of crmsync goes through, and JSON summaries.

Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, in some, a tab or carriage return) as a formula: a CRM value such as
``=HYPERLINK(…)`` would execute on the finance team's machine. Every text cell
starting with one of those gets a leading ``'``, which spreadsheets display as
plain text (OWASP's CSV-injection advice).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FORMULA_PREFIXES", "neutralise_formulas", "write_csv", "write_json"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA = r"^[=+\-@\t\r]"


def neutralise_formulas(values: pd.Series[Any]) -> pd.Series[Any]:
    """Text cells that a spreadsheet would run as a formula, prefixed with ``'``.

    A carriage return inside a cell becomes a line feed: the csv writer would not
    quote it, and crmsync reads every CR as a line end anyway.
    """
    if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        return values
    text = values.astype("str")
    risky = text.str.match(_FORMULA).fillna(False).astype(bool)
    if risky.any():
        text = text.where(~risky, "'" + text)
    if text.str.contains("\r", regex=False).fillna(False).any():
        text = text.str.replace("\r\n", "\n", regex=False).str.replace("\r", "\n", regex=False)
    return text


def write_csv(frame: pd.DataFrame, path: Path, columns: Sequence[str] | None = None) -> Path:
    """Write ``frame`` (optionally only ``columns``, in that order) as UTF-8 CSV with formulas neutralised."""
    selected = frame if columns is None else frame.loc[:, list(columns)]
    safe = pd.DataFrame(
        {name: neutralise_formulas(selected[name]) for name in selected.columns}, index=selected.index
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    safe.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


def write_json(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
