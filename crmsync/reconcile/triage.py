"""Triage of the morning's findings: groups, and what is new or resolved since the previous report.   [pure]

Each finding has a stable key — its code, its customer (the Helcim id, or the
CRM id for a CRM record with no Helcim customer) and its payment method — so
that two reports can be compared finding by finding, not only as counts
(:func:`finding_keys`). :func:`triage` marks each finding ``new`` or ``open``
(with the day it was first seen), lists the previous report's findings that are
gone (resolved), and groups them all by code and tag, most severe first: the
page shows one group per line, with its count, what is new and resolved, and
the action that fixes them.

A code that one of the two reports did not check (no CRM export given) has
nothing new and nothing resolved: its findings are neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from crmsync.reconcile.findings import TAGS
from crmsync.reconcile.rules import FINDINGS, SEVERITIES
from crmsync.schemas.reconciliation import SEEN_COLUMNS

__all__ = ["Triage", "finding_keys", "triage"]

_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_CODE_RANK = {name: rank for rank, name in enumerate(FINDINGS)}


def finding_keys(findings: pd.DataFrame) -> pd.Series:
    """``code:customer:method`` per finding: the customer is its Helcim id, else ``crm:`` and its CRM id."""
    helcim = findings["helcim_id"].astype("str")
    who = helcim.where(helcim != "", "crm:" + findings["crm_id"].astype("str"))
    return findings["code"].astype("str") + ":" + who + ":" + findings["method_id"].astype("str")


@dataclass(frozen=True)
class Triage:
    """The findings with ``key``, ``status`` (new | open) and ``first_seen``; the resolved; the groups."""

    findings: pd.DataFrame
    resolved: pd.DataFrame  # SEEN_COLUMNS of the previous report's findings that are gone
    groups: list[dict[str, Any]]  # code, tag, severity, label, count, new, resolved, by_severity
    compared: bool  # False on the first report (nothing to compare with)

    def seen(self) -> pd.DataFrame:
        """What the state store keeps for the next report."""
        return self.findings.loc[:, list(SEEN_COLUMNS)]

    def summary(self) -> dict[str, Any]:
        return {
            "compared_with_previous": self.compared,
            "new": int((self.findings["status"] == "new").sum()) if self.compared else None,
            "resolved": len(self.resolved) if self.compared else None,
            "groups": [{k: v for k, v in g.items() if k != "label"} for g in self.groups],
        }


def triage(
    findings: pd.DataFrame,
    previous: pd.DataFrame | None,
    today: date,
    *,
    skipped_now: Sequence[str] = (),
    skipped_before: Sequence[str] = (),
) -> Triage:
    """Compare ``findings`` (most severe first) with the ``previous`` report's (SEEN_COLUMNS; None: first report)."""
    current = findings.assign(key=finding_keys(findings)).reset_index(drop=True)
    unchecked = set(skipped_now) | set(skipped_before)
    if previous is None:
        current["status"], current["first_seen"] = "new", today.isoformat()
        resolved = pd.DataFrame(columns=list(SEEN_COLUMNS), dtype="str")
    else:
        first_seen = dict(zip(previous["key"], previous["first_seen"], strict=True))
        known = current["key"].map(first_seen)
        current["status"] = known.isna().map({True: "new", False: "open"})
        current.loc[current["code"].isin(unchecked), "status"] = "open"
        current["first_seen"] = known.fillna(today.isoformat()).astype("str")
        gone = ~previous["key"].isin(current["key"]) & ~previous["code"].isin(unchecked)
        resolved = previous[gone].reset_index(drop=True)
    return Triage(current, resolved, _groups(current, resolved, previous is not None), previous is not None)


def _groups(findings: pd.DataFrame, resolved: pd.DataFrame, compared: bool) -> list[dict[str, Any]]:
    """One group per code and tag, most severe first, then in code order; resolved ones count in their code's."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for (code, tag), rows in findings.groupby(["code", "tag"], sort=False):
        by_severity = rows["severity"].value_counts()
        groups[(str(code), str(tag))] = {
            "code": str(code),
            "tag": str(tag),
            "severity": min(by_severity.index, key=lambda s: _SEVERITY_RANK[str(s)]),
            "label": f"{code} — {TAGS[str(tag)]}" if tag else str(code),
            "count": len(rows),
            "action": str(rows["action"].iloc[0])
            if rows["action"].nunique() == 1
            else FINDINGS[str(code)].action,
            "by_severity": {str(s): int(n) for s, n in by_severity.items()},
            "new": int((rows["status"] == "new").sum()) if compared else None,
            "resolved": 0 if compared else None,
        }
    for code, count in resolved["code"].value_counts().items():
        group = groups.setdefault(
            (str(code), ""),
            {
                "code": str(code), "tag": "", "severity": FINDINGS[str(code)].severity, "label": str(code),
                "count": 0, "action": FINDINGS[str(code)].action, "by_severity": {}, "new": 0, "resolved": 0,
            },
        )  # fmt: skip
        group["resolved"] = int(count)
    return sorted(
        groups.values(),
        key=lambda g: (_SEVERITY_RANK[g["severity"]], g["count"] == 0, _CODE_RANK[g["code"]], g["tag"]),
    )
