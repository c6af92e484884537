"""``crmsync validate``: read, map, normalise and validate one CRM export; nothing is sent anywhere.

Writes ``valid.csv``, ``rejects.csv``, ``warnings.csv`` (what valid rows could
not store) and ``summary.json`` (a :class:`ValidationSummary`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crmsync.crm.extract import DELIMITER_NAMES
from crmsync.crm.validate import REJECT_COLUMNS, VALID_COLUMNS, check_export
from crmsync.errors import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, UsageError
from crmsync.outputs import prepare_out_dir, write_csv, write_json

__all__ = ["ValidationSummary", "parse_rate", "validate_file"]


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
    #: How the profile fits the export's headers (and the runners-up when ``auto`` chose it).
    profile_fit: dict[str, Any] = field(default_factory=dict)
    #: "crm_id" (the export's id column) or "email" (the code derived from the e-mail).
    key: str = "crm_id"
    incomplete_address: str = "omit"
    #: Valid rows with something Helcim could not store (warnings.csv), by rule.
    rows_with_warnings: int = 0
    warnings_by_rule: dict[str, int] = field(default_factory=dict)
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
            f"maximum reject rate {text!r}: give a fraction such as 0.05 or a percentage such as 5%"
        ) from None
    if not 0.0 <= rate <= 1.0 or rate != rate:
        raise UsageError(f"maximum reject rate {text!r}: must be between 0 and 1 (0% and 100%)")
    return rate


def validate_file(
    path: Path,
    profile: str,
    out_dir: Path,
    max_reject_rate: float | None = None,
    incomplete_address: str = "omit",
) -> ValidationSummary:
    """``crmsync validate``: read, map, normalise and validate one export; write its four outputs."""
    started = time.perf_counter()
    prepare_out_dir(out_dir)
    checked = check_export(path, profile, incomplete_address)
    export, valid, rejects = checked.export, checked.valid, checked.rejects

    rows, rejected = checked.rows_read, checked.rejected
    rate = rejected / rows if rows else 0.0
    if max_reject_rate is not None and rate > max_reject_rate:
        exit_code = EXIT_USAGE
        export.warnings.append(
            f"{rate:.1%} of the rows were rejected, above the maximum reject rate of {max_reject_rate:.1%}: the run fails"
        )
    else:
        exit_code = EXIT_PARTIAL if rejected else EXIT_OK

    outputs = {
        "valid": str(write_csv(valid, out_dir / "valid.csv", VALID_COLUMNS)),
        "rejects": str(write_csv(rejects, out_dir / "rejects.csv", REJECT_COLUMNS)),
        "warnings": str(write_csv(checked.warnings, out_dir / "warnings.csv", REJECT_COLUMNS)),
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
        profile_fit=export.profile_fit.to_dict() if export.profile_fit else {},
        key=export.key,
        incomplete_address=incomplete_address,
        rows_with_warnings=checked.rows_with_warnings,
        warnings_by_rule={
            str(k): int(v) for k, v in checked.warnings["rule"].value_counts().sort_index().items()
        },
        outputs=outputs,
    )
    summary.outputs["summary"] = str(out_dir / "summary.json")
    summary.seconds = round(time.perf_counter() - started, 3)
    write_json(summary.to_dict(), out_dir / "summary.json")
    return summary
