"""``crmsync link --accept FILE``: record a person's decisions on link proposals (no call to Helcim)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.config import Settings
from crmsync.errors import StateError, UsageError
from crmsync.jobs.session import locked_state

__all__ = ["LinkResult", "accept_links"]


@dataclass(frozen=True)
class LinkResult:
    """What ``crmsync link`` recorded."""

    linked: list[tuple[str, int]]
    rejected: list[tuple[str, int]]
    undecided: int


def accept_links(settings: Settings, proposals_file: Path) -> LinkResult:
    """``crmsync link --accept FILE``: record a person's decisions on link proposals.

    The file is ``link_proposals.csv`` as ``crmsync plan`` wrote it, edited:
    rows with ``accept`` = yes are linked, no are remembered as rejected (the
    CRM row is then created on the next run unless another candidate remains),
    blank stay undecided. A proposal with ``replaces`` (a linked customer whose
    CRM record left the export, as when the e-mail key changed) moves that link,
    with its base and deferred writes. A proposal that no longer holds (the CRM
    row or the Helcim customer linked otherwise since it was written) is refused,
    and nothing in the file is recorded.
    Without an ``accept`` column, every row is accepted.
    A CRM row accepted for two Helcim customers, or a Helcim customer for two
    CRM rows, is refused.
    """
    try:
        table = pd.read_csv(proposals_file, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {proposals_file}: {exc}") from None
    missing = {"crm_id", "helcim_id"} - set(table.columns)
    if missing:
        raise UsageError(
            f"{proposals_file} needs the columns crm_id and helcim_id (missing: {', '.join(sorted(missing))})"
        )
    if "accept" not in table.columns:
        table["accept"] = "yes"
    decision = table["accept"].str.strip().str.lower()
    bad = sorted(set(decision) - {"yes", "y", "no", "n", ""})
    if bad:
        raise UsageError(f"{proposals_file}: accept must be yes, no or empty (found {', '.join(bad)})")
    try:
        table["helcim_id"] = table["helcim_id"].str.strip().astype("int64")
    except ValueError:
        raise UsageError(f"{proposals_file}: helcim_id must be a number on every row") from None
    table["crm_id"] = table["crm_id"].str.strip()
    yes = table[decision.isin(["yes", "y"])]
    no = table[decision.isin(["no", "n"])]
    for column, other in (("crm_id", "Helcim customers"), ("helcim_id", "CRM rows")):
        doubled = yes[yes[column].duplicated(keep=False)][column].unique()
        if len(doubled):
            raise UsageError(f"{proposals_file}: {column} {doubled[0]} is accepted for two {other}; keep one")
    with locked_state(settings) as state:
        links = state.links()
        with state.transaction():
            codes = yes["helcim_code"].tolist() if "helcim_code" in yes.columns else [""] * len(yes)
            moves = (
                yes["replaces"].fillna("").astype(str).tolist()
                if "replaces" in yes.columns
                else [""] * len(yes)
            )
            for (crm_id, helcim_id, code), replaces in zip(_pairs(yes, codes), moves, strict=True):
                _refuse_stale(links, crm_id, helcim_id, replaces.strip())
                state.link(crm_id, helcim_id, code, "approved", replaces=replaces.strip())
            for crm_id, helcim_id, _ in _pairs(no):
                state.reject_link(crm_id, helcim_id)
    return LinkResult(
        linked=[(c, h) for c, h, _ in _pairs(yes)],
        rejected=[(c, h) for c, h, _ in _pairs(no)],
        undecided=int((decision == "").sum()),
    )


def _refuse_stale(links: pd.DataFrame, crm_id: str, helcim_id: int, replaces: str) -> None:
    """A proposal that no longer holds unlinks nothing: the CRM row linked to another customer since,
    or the Helcim customer to another row (other than the one it ``replaces``)."""
    mine = links.loc[(links["crm_id"] == crm_id) & (links["helcim_id"] != helcim_id), "helcim_id"]
    if not mine.empty:
        raise StateError(
            f"crm_id {crm_id} is already linked to Helcim customer {int(mine.iloc[0])}: the link proposal is "
            "out of date (the links changed since it was written); plan again and decide on the new proposals"
        )
    clash = links.loc[(links["helcim_id"] == helcim_id) & (links["crm_id"] != crm_id), "crm_id"]
    if not clash.empty and not replaces:
        raise StateError(f"Helcim customer {helcim_id} is already linked to crm_id {clash.iloc[0]}")


def _pairs(table: pd.DataFrame, codes: list[Any] | None = None) -> list[tuple[str, int, str]]:
    """(crm_id, helcim_id, helcim_code) of each row of a proposals table."""
    names = codes if codes is not None else [""] * len(table)
    return [
        (str(c), int(h), str(n or ""))
        for c, h, n in zip(table["crm_id"].tolist(), table["helcim_id"].tolist(), names, strict=True)
    ]
