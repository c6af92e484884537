"""Every CRM row in exactly one bucket, and the rows of results.csv that are not writes.   [pure]

``rows_read = created + updated + unchanged + rejected + deferred + failed + conflicts``
holds for every run, a failed, refused or interrupted one included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from crmsync.crm.validate import CheckedExport
from crmsync.sync.diff import DiffResult
from crmsync.sync.load import RESULT_COLUMNS, ApplyOutcome, OpResult
from crmsync.sync.plan import Plan

__all__ = ["OUTCOMES", "RowCounts", "account", "results_frame"]

#: The buckets every CRM row is counted in, exactly once.
OUTCOMES = ("created", "updated", "unchanged", "rejected", "deferred", "failed", "conflicts")
#: Operation outcomes (results.csv) → the bucket of the row.
_BUCKET_OF_OUTCOME = {
    "created": "created",
    "recovered": "created",
    "updated": "updated",
    "deferred": "deferred",
    "failed": "failed",
}
#: Why a plan holds a row back → (bucket, results.csv outcome).
_BUCKET_OF_HOLD = {
    "awaiting_link": ("deferred", "deferred"),
    "missing_in_helcim": ("failed", "failed"),
    "manual_conflict": ("conflicts", "conflict"),
}


@dataclass(frozen=True)
class RowCounts:
    """How many CRM rows ended in each bucket."""

    rows_read: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    deferred: int = 0
    failed: int = 0
    conflicts: int = 0

    @property
    def accounted(self) -> int:
        return sum(getattr(self, name) for name in OUTCOMES)

    @property
    def adds_up(self) -> bool:
        return self.accounted == self.rows_read

    @classmethod
    def nothing_done(cls, checked: CheckedExport | None) -> RowCounts:
        """A run that stopped before writing: every valid row is deferred."""
        if checked is None:
            return cls(0)
        return cls(checked.rows_read, rejected=checked.rejected, deferred=len(checked.valid))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            **{name: getattr(self, name) for name in OUTCOMES},
            "accounted": self.accounted,
            "adds_up": self.adds_up,
        }


def account(
    checked: CheckedExport,
    result: DiffResult,
    plan: Plan,
    applied: ApplyOutcome | None,
    not_applied: str = "dry run",
) -> tuple[RowCounts, pd.DataFrame]:
    """Put every CRM row in exactly one bucket; return the counts and the non-write rows of results.csv.

    ``applied`` is None when the plan was not applied (a dry run, or a plan the
    mass-change guard stopped): what would have been written is counted as
    deferred, with ``not_applied`` as the reason.
    """
    bucket: dict[str, str] = {}
    extra: list[tuple[str, str, str, str, str, str]] = []
    if applied is not None:
        for r in applied.results:
            bucket[r.crm_id] = _BUCKET_OF_OUTCOME.get(r.outcome, "unchanged")
            if r.outcome == "already-applied":
                bucket[r.crm_id] = "created" if r.operation == "create" else "updated"
    else:
        for op in [*plan.operations, *plan.deferred]:
            bucket[op.crm_id] = "deferred"
            extra.append(
                (op.crm_id, op.customer_code, op.kind, "deferred", str(op.helcim_id or ""), not_applied)
            )
    for held in plan.held:
        if held.crm_id in bucket:
            continue
        bucket[held.crm_id], outcome = _BUCKET_OF_HOLD[held.kind]
        extra.append((held.crm_id, "", "hold", outcome, "", held.reason))
    for row in result.conflicts.itertuples():
        crm_id = str(row.crm_id)
        if crm_id not in bucket:  # helcim-wins: Helcim's values are exported, nothing is written
            bucket[crm_id] = "conflicts"
            extra.append(
                (
                    crm_id,
                    str(row.customer_code),
                    "hold",
                    "conflict",
                    str(row.helcim_id),
                    "Helcim's values kept",
                )
            )
    counts = dict.fromkeys(OUTCOMES, 0)
    counts["rejected"] = checked.rejected
    for crm_id in checked.valid["crm_id"].astype(str):
        counts[bucket.get(crm_id, "unchanged")] += 1
    return RowCounts(checked.rows_read, **counts), pd.DataFrame.from_records(
        extra, columns=list(RESULT_COLUMNS)
    )


def results_frame(applied: ApplyOutcome | None, extra: pd.DataFrame) -> pd.DataFrame:
    """results.csv: the writes (the settled ones of an earlier run first), then the other rows."""
    frames = [extra]
    if applied is not None:
        resolved = [
            OpResult(r.crm_id, r.customer_code, r.operation, f"resolved: {r.outcome}", r.helcim_id, r.error)
            for r in applied.resolved
        ]
        frames.insert(0, ApplyOutcome(resolved + applied.results, []).frame())
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(RESULT_COLUMNS))
