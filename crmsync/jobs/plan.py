"""The sync's library calls: check the CRM export, read Helcim, diff, plan.

``crmsync plan`` is :func:`plan_sync`; ``crmsync link`` is :func:`accept_links`.
The nightly ``crmsync run`` builds on :func:`prepare`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.config import Settings
from crmsync.console import Progress
from crmsync.crm.extract import CrmExport, read_crm
from crmsync.crm.normalize import normalize_crm
from crmsync.crm.profiles import load_profile
from crmsync.crm.validate import REJECT_COLUMNS, validate_frame
from crmsync.errors import StateError, UsageError
from crmsync.helcim.client import HelcimClient
from crmsync.outputs import prepare_out_dir, write_csv, write_json, write_text
from crmsync.schemas.helcim import SYNCED_FIELDS
from crmsync.state import StateStore, open_state, state_lock
from crmsync.stopping import StopSignal
from crmsync.sync.diff import PROPOSAL_COLUMNS, DiffResult, Policy, diff
from crmsync.sync.plan import CONFLICT_CSV_COLUMNS, PLAN_CSV_COLUMNS, Plan, build_plan, conflict_rows
from crmsync.sync.snapshot import CustomerRefresh, Snapshot, load_snapshot, refresh_customers

log = logging.getLogger("crmsync.sync")


#: Each customer's bank accounts and PADs are read at least once every this many runs.
BANK_REFRESH_NIGHTS = 7
#: At most this share of a run's budget goes to reading customer pages; the rest waits for the next run.
PAGE_SHARE = 0.5
#: At most this share of a run's budget goes to reading bank accounts and PADs.
BANK_SHARE = 0.25


@dataclass(frozen=True)
class CheckedExport:
    """The CRM side: the export as read, its valid normalised rows and its rejects."""

    export: CrmExport
    valid: pd.DataFrame
    rejects: pd.DataFrame

    @property
    def rows_read(self) -> int:
        return len(self.export.frame)

    @property
    def rejected(self) -> int:
        return self.rows_read - len(self.valid)

    @property
    def fields(self) -> tuple[str, ...]:
        """The synced fields this export carries (a column it lacks is never synced)."""
        return tuple(f for f in SYNCED_FIELDS if f in self.export.mapped_columns)


def check_crm(path: Path, profile: str) -> CheckedExport:
    """Read, map, normalise and validate a CRM export (raises InputFileError on a bad file)."""
    export = read_crm(path, load_profile(profile))
    valid, rejects = validate_frame(normalize_crm(export.frame), export.frame)
    return CheckedExport(export, valid, rejects)


def pages_for(state: StateStore, budget: int) -> int | None:
    """How many customer pages to read now: all of them when they fit in PAGE_SHARE of the budget."""
    cached = state.cache.customer_count()
    needed = cached // 100 + 1
    allowed = max(1, int(budget * PAGE_SHARE))
    return None if needed <= allowed else allowed


def bank_calls_for(customers: int, budget: int) -> int:
    """Calls for this run's share of the rolling bank/PAD refresh (about 1.2 per customer read)."""
    wanted = math.ceil(customers / BANK_REFRESH_NIGHTS * 1.2)
    return min(wanted, int(budget * BANK_SHARE))


@dataclass
class Prepared:
    checked: CheckedExport
    refresh: CustomerRefresh
    snapshot: Snapshot
    result: DiffResult
    plan: Plan
    bank_calls: int
    new_code_links: int = 0
    warnings: list[str] = field(default_factory=list)


def prepare(
    settings: Settings,
    state: StateStore,
    client: HelcimClient,
    checked: CheckedExport,
    *,
    policy: Policy,
    budget: int,
    profile: str,
    progress: Progress | None = None,
) -> Prepared:
    """Refresh the snapshot within the budget, diff, record what is already agreed, and plan."""
    state.bind_account(settings.api_url)
    refresh = refresh_customers(client, state, max_pages=pages_for(state, budget), progress=progress)
    snapshot = load_snapshot(state)
    valid = checked.valid
    result = diff(
        valid,
        snapshot.customers,
        state.base(),
        state.links(),
        policy=policy,
        fields=checked.fields,
        known_crm_ids=set(checked.export.frame["crm_id"].astype(str)),
        rejected_links=state.rejected_links(),
    )
    # Facts that hold whatever is applied later: customers found under their own code, agreed values.
    with state.transaction():
        code_pairs = pd.concat(
            [
                result.unchanged,
                result.updates,
                result.conflicts,
                result.exports[result.exports["crm_id"] != ""],
            ]
        )
        linked = set(state.links()["crm_id"])
        fresh = code_pairs[~code_pairs["crm_id"].isin(linked)]
        for crm_id, helcim_id, code in zip(
            fresh["crm_id"].tolist(),
            fresh["helcim_id"].tolist(),
            fresh["customer_code"].tolist(),
            strict=True,
        ):
            state.link(str(crm_id), int(helcim_id), str(code), "code")
        state.set_base(result.agreed)
    bank_calls = bank_calls_for(len(snapshot.customers), budget)
    lines = dict(zip(valid["crm_id"].astype(str), valid["source_line"].astype(int), strict=True))
    plan = build_plan(
        result,
        budget=budget,
        reads_spent=client.stats()["calls"],
        reads_planned=bank_calls,
        carried_over=state.deferred()["crm_id"],
        source_lines=lines,
        api_url=settings.api_url,
        crm_file=checked.export.source_file,
        profile=profile,
        snapshot={**snapshot.describe(), "pages_read": refresh.pages, "complete": refresh.complete},
    )
    warnings = list(checked.export.warnings)
    if not refresh.complete:
        warnings.append(
            f"read {refresh.pages} pages of Helcim customers this run (budget); the rest of the diff uses data "
            f"cached since {snapshot.customers_fetched_oldest or 'never'}"
        )
    if refresh.missing_links:
        warnings.append(f"{len(refresh.missing_links)} linked customers are no longer in Helcim")
    return Prepared(checked, refresh, snapshot, result, plan, bank_calls, len(fresh), warnings)


@dataclass(frozen=True)
class PlanOutcome:
    plan: Plan
    summary: dict[str, Any]
    out_dir: Path
    exit_code: int


def write_plan_outputs(out_dir: Path, prepared: Prepared) -> dict[str, str]:
    plan, result, checked = prepared.plan, prepared.result, prepared.checked
    write_text(plan.to_json(), out_dir / "plan.json")
    return {
        "plan": str(out_dir / "plan.json"),
        "plan_csv": str(write_csv(plan.rows(), out_dir / "plan.csv", PLAN_CSV_COLUMNS)),
        "conflicts": str(write_csv(conflict_rows(result), out_dir / "conflicts.csv", CONFLICT_CSV_COLUMNS)),
        "link_proposals": str(
            write_csv(
                result.link_proposals.assign(
                    ambiguous=result.link_proposals["ambiguous"].map({True: "yes", False: "no"}), accept=""
                ),
                out_dir / "link_proposals.csv",
                (*PROPOSAL_COLUMNS, "accept"),
            )
        ),
        "rejects": str(write_csv(checked.rejects, out_dir / "rejects.csv", REJECT_COLUMNS)),
    }


def plan_sync(
    settings: Settings,
    crm_path: Path,
    profile: str,
    out_dir: Path,
    *,
    policy: Policy = "crm-wins",
    max_calls: int | None = None,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
) -> PlanOutcome:
    """``crmsync plan``: everything a run would do, and its cost, without writing to Helcim."""
    budget = max_calls if max_calls is not None else settings.rate_limits.per_hour
    if budget < 1:
        raise UsageError("--max-calls must be at least 1")
    prepare_out_dir(out_dir)
    checked = check_crm(crm_path, profile)
    client = settings.client(max_calls=budget, stop=stop)
    with state_lock(settings.state_path), open_state(settings.state_path) as state:
        prepared = prepare(
            settings, state, client, checked, policy=policy, budget=budget, profile=profile, progress=progress
        )
    files = write_plan_outputs(out_dir, prepared)
    summary = {
        "command": "plan",
        "rows_read": checked.rows_read,
        "valid": len(checked.valid),
        "rejected": checked.rejected,
        **prepared.plan.summary(),
        "api_calls": client.stats()["calls"],
        "calls_by_operation": client.stats()["by_operation"],
        "snapshot": prepared.plan.snapshot,
        "mass_changes": prepared.plan.mass_changes,
        "warnings": prepared.warnings + prepared.plan.mass_change_warnings(),
        "outputs": files,
    }
    exit_code = 1 if checked.rejected else 0
    summary["exit_code"] = exit_code
    write_json(summary, out_dir / "summary.json")
    return PlanOutcome(prepared.plan, summary, out_dir, exit_code)


@dataclass(frozen=True)
class LinkOutcome:
    linked: list[tuple[str, int]]
    rejected: list[tuple[str, int]]
    undecided: int


def accept_links(settings: Settings, proposals_file: Path) -> LinkOutcome:
    """``crmsync link --accept FILE``: record a person's decisions on link proposals.

    The file is ``link_proposals.csv`` as ``crmsync plan`` wrote it, edited:
    rows with ``accept`` = yes are linked, no are remembered as rejected (the
    CRM row is then created on the next run unless another candidate remains),
    blank stay undecided. Without an ``accept`` column, every row is accepted.
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
    with state_lock(settings.state_path), open_state(settings.state_path) as state:
        state.bind_account(settings.api_url)
        links = state.links()
        with state.transaction():
            codes = yes["helcim_code"].tolist() if "helcim_code" in yes.columns else [""] * len(yes)
            for crm_id, helcim_id, code in _pairs(yes, codes):
                clash = links[(links["helcim_id"] == helcim_id) & (links["crm_id"] != crm_id)]
                if not clash.empty:
                    raise StateError(
                        f"Helcim customer {helcim_id} is already linked to crm_id {clash['crm_id'].iloc[0]}"
                    )
                state.link(crm_id, helcim_id, code, "approved")
            for crm_id, helcim_id, _ in _pairs(no):
                state.reject_link(crm_id, helcim_id)
    return LinkOutcome(
        linked=[(c, h) for c, h, _ in _pairs(yes)],
        rejected=[(c, h) for c, h, _ in _pairs(no)],
        undecided=int((decision == "").sum()),
    )


def _pairs(table: pd.DataFrame, codes: list[Any] | None = None) -> list[tuple[str, int, str]]:
    """(crm_id, helcim_id, helcim_code) of each row of a proposals table."""
    names = codes if codes is not None else [""] * len(table)
    return [
        (str(c), int(h), str(n or ""))
        for c, h, n in zip(table["crm_id"].tolist(), table["helcim_id"].tolist(), names, strict=True)
    ]
