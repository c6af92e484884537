"""The steps several commands share, each in the order the stages must run.

* :func:`read_customer_pages` — the customer pages the budget allows (``plan``,
  ``run`` and ``reconcile``); :func:`read_bank_data` — then bank accounts and
  PADs with what is left (``run`` and ``reconcile``);
* :func:`prepare` — read Helcim within the budget, diff, record what is
  already agreed, plan (``plan`` and ``run``);
* :func:`write_plan_outputs` — plan.json, plan.csv, conflicts.csv,
  link_proposals.csv, rejects.csv;
* :func:`morning_outputs` — reconcile the snapshot as it stands and write
  ``reconciliation/`` and ``crm_import/`` (``run`` and ``reconcile``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmsync.console import Progress
from crmsync.crm.export import CrmRows, write_crm_import
from crmsync.crm.normalize import cell_phones_in_context
from crmsync.crm.validate import REJECT_COLUMNS, CheckedExport
from crmsync.jobs.session import Session
from crmsync.outputs import write_csv, write_text
from crmsync.reconcile.findings import DEFAULT_THRESHOLDS, Reconciliation, reconcile
from crmsync.reconcile.report import ACTION_LOG_COLUMNS, ReportFiles, write_reconciliation
from crmsync.reconcile.tables import payment_methods
from crmsync.state import ActionEntry
from crmsync.sync.diff import DiffResult, Policy, diff
from crmsync.sync.load import record_agreed
from crmsync.sync.pairing import PROPOSAL_COLUMNS, importable, pair_customers, with_links
from crmsync.sync.plan import CONFLICT_CSV_COLUMNS, PLAN_CSV_COLUMNS, Plan, build_plan, conflict_rows
from crmsync.sync.snapshot import (
    BankRefresh,
    CustomerRefresh,
    Snapshot,
    bank_calls_after_writes,
    bank_reads_for,
    customers_per_night,
    load_snapshot,
    pages_to_read,
    refresh_customers,
    refresh_payment_methods,
)
from crmsync.text import arrow_strings

__all__ = [
    "MorningOutputs",
    "Prepared",
    "action_log",
    "bind_key",
    "morning_outputs",
    "prepare",
    "pure_diff",
    "read_bank_data",
    "read_customer_pages",
    "write_plan_outputs",
]

log = logging.getLogger("crmsync.sync")


@dataclass
class Prepared:
    """Everything a run knows once it has planned."""

    checked: CheckedExport
    refresh: CustomerRefresh
    snapshot: Snapshot
    result: DiffResult
    plan: Plan
    bank_calls: int
    warnings: list[str] = field(default_factory=list)


def keep_helcim_addresses(
    checked: CheckedExport, customers: pd.DataFrame, pairs: pd.DataFrame
) -> pd.DataFrame:
    """The valid rows, with each omitted (incomplete) address replaced by the one Helcim holds.

    An address the export gives incompletely is never sent (Helcim cannot hold
    it), so it must neither clear the address Helcim has nor be pushed again
    every night: the diff sees Helcim's own address there, which is "unchanged".
    Only a row the diff pairs with a Helcim customer (``pairs``: the diff's own
    pairing, PAIR_COLUMNS) takes that customer's address; any other row —
    created, held for a link decision — goes without it, never with the address
    of a customer who belongs to another row. The cell phone of a row that
    takes Helcim's billing address is normalised again with that address's
    country, as Helcim's side of the diff normalises it.
    """
    valid = checked.valid
    if not checked.omitted or pairs.empty or customers.empty:
        return valid
    helcim_at = np.full(len(valid), -1, dtype=np.int64)
    helcim_at[pairs["crm_pos"].to_numpy(dtype=np.int64)] = pairs["helcim_pos"].to_numpy(dtype=np.int64)
    out = valid.copy()
    for prefix, omitted in checked.omitted.items():
        rows = omitted & (helcim_at >= 0)
        if not rows.any():
            continue
        mask, taken = pa.array(rows), pa.array(helcim_at[rows])
        for name in (c for c in valid.columns if c.startswith(f"{prefix}_")):
            helcim_values = pc.take(arrow_strings(customers[name]), taken)
            values = pc.replace_with_mask(arrow_strings(out[name]), mask, helcim_values)
            out[name] = pd.Series(values, index=out.index, dtype="str")
        if prefix == "billing":  # the cell phone, in the context of the billing country Helcim holds
            out = cell_phones_in_context(out, rows, checked.exported_cell_phones)
    return out


def bind_key(session: Session, checked: CheckedExport, *, allow_change: bool, record_change: bool) -> str:
    """The export's key against the one this state store last synced (the profile, ``crm_id`` or
    ``email``, the column): recorded the first night; another one is refused, unless allowed (then
    recorded when ``record_change``: a run, not a plan). Returns what changed, "" when nothing did."""
    export = checked.export
    return session.state.bind_crm_key(
        export.profile, export.key, export.key_column, allow_change=allow_change, record_change=record_change
    )


def pure_diff(
    checked: CheckedExport,
    snapshot: Snapshot,
    session: Session,
    policy: Policy = "crm-wins",
    *,
    rekeyed: bool = False,
) -> DiffResult:
    """The diff of the export against the snapshot and the state store's base and links (records nothing).

    Who is whom is computed once (:func:`crmsync.sync.pairing.pair_customers`): the omitted addresses
    are filled in from it, and the diff uses the same answer.
    """
    state = session.state
    links = state.links()
    known = set(checked.crm_ids)
    pairing = pair_customers(checked.valid, snapshot.customers, links, known)
    return diff(
        keep_helcim_addresses(checked, snapshot.customers, pairing.pairs),
        snapshot.customers,
        state.base(),
        links,
        policy=policy,
        fields=checked.fields,
        known_crm_ids=known,
        rejected_links=state.rejected_links(),
        pairing=pairing,
        rekeyed=rekeyed,
    )


def read_customer_pages(session: Session, progress: Progress | None) -> CustomerRefresh:
    """Helcim's customer pages into the cache, as many as the budget allows for the customers it holds."""
    state = session.state
    return refresh_customers(
        session.client,
        state,
        max_pages=pages_to_read(state.cache.customer_count(), session.budget),
        progress=progress,
    )


def read_bank_data(
    session: Session, floor: int, progress: Progress | None, *, read_before: str
) -> BankRefresh | None:
    """Bank accounts and PADs into the cache with what is left of the budget, less a reserve, but at
    least ``floor`` calls when that many are left (:func:`bank_calls_after_writes`); not the customers
    read at or after ``read_before``. None, and no read, when no call is left for them."""
    calls = bank_calls_after_writes(session.calls_left(), floor, session.budget)
    if calls <= 0:
        return None
    return refresh_payment_methods(
        session.client, session.state, max_calls=calls, read_before=read_before, progress=progress
    )


def prepare(
    session: Session,
    checked: CheckedExport,
    *,
    policy: Policy,
    profile: str,
    progress: Progress | None = None,
    key_change: str = "",
) -> Prepared:
    """Refresh the snapshot within the budget, diff, record what is already agreed, and plan.

    ``key_change``: what :func:`bind_key` said changed in the CRM's key (allowed by a person). Until
    no proposal replaces a linked customer any more, the diff proposes every linked customer whose
    row left the export on its name alone too (``rekeyed``): they may all be back under new keys.
    """
    state = session.state
    refresh = read_customer_pages(session, progress)
    snapshot = load_snapshot(state)
    result = pure_diff(checked, snapshot, session, policy, rekeyed=bool(key_change) or state.rekeyed())
    record_agreed(state, result)
    bank_calls = bank_reads_for(len(snapshot.customers), session.budget)
    plan = build_plan(
        result,
        budget=session.budget,
        reads_spent=session.calls.calls,
        reads_planned=bank_calls,
        carried_over=state.deferred()["crm_id"],
        source_lines=checked.source_lines,
        api_url=session.settings.api_url,
        crm_file=checked.export.source_file,
        profile=profile,
        snapshot={**snapshot.describe(), "pages_read": refresh.pages, "complete": refresh.complete},
    )
    warnings = list(checked.export.warnings)
    if key_change:
        warnings.append(
            f"the CRM's key changed {key_change}, as allowed: customers under a new key are proposed as "
            "links to the customers they were (link_proposals.csv) and held until a person decides"
        )
    if not refresh.complete:
        warnings.append(
            f"read {refresh.pages} pages of Helcim customers this run (budget); the rest of the diff uses data "
            f"cached since {snapshot.customers_fetched_oldest or 'never'}"
        )
    if refresh.missing_links:
        warnings.append(f"{len(refresh.missing_links)} linked customers are no longer in Helcim")
    return Prepared(checked, refresh, snapshot, result, plan, bank_calls, warnings)


def write_plan_outputs(out_dir: Path, prepared: Prepared) -> dict[str, str]:
    plan, result, checked = prepared.plan, prepared.result, prepared.checked
    proposals = result.link_proposals.assign(
        ambiguous=result.link_proposals["ambiguous"].map({True: "yes", False: "no"}), accept=""
    )
    return {
        "plan": str(write_text(plan.to_json(), out_dir / "plan.json")),
        "plan_csv": str(write_csv(plan.rows(), out_dir / "plan.csv", PLAN_CSV_COLUMNS)),
        "conflicts": str(write_csv(conflict_rows(result), out_dir / "conflicts.csv", CONFLICT_CSV_COLUMNS)),
        "link_proposals": str(
            write_csv(proposals, out_dir / "link_proposals.csv", (*PROPOSAL_COLUMNS, "accept"))
        ),
        "rejects": str(write_csv(checked.rejects, out_dir / "rejects.csv", REJECT_COLUMNS)),
        "warnings": str(write_csv(checked.warnings, out_dir / "warnings.csv", REJECT_COLUMNS)),
    }


@dataclass(frozen=True)
class MorningOutputs:
    reconciliation: Reconciliation
    report: ReportFiles
    files: dict[str, str]  # every file of reconciliation/ and crm_import/
    warnings: list[str] = field(default_factory=list)  # what a person must know about crm_import/


def morning_outputs(
    session: Session,
    out_dir: Path,
    *,
    checked: CheckedExport | None,
    result: DiffResult | None,
    profile: str,
    today: date | None = None,
    thresholds: dict[str, int] | None = None,
    created: Set[int] = frozenset(),
    snapshot: Snapshot | None = None,
) -> MorningOutputs:
    """reconciliation/ and crm_import/ from the snapshot as it stands (no calls).

    Who is whom is the diff's pairing (``result.pairs``), plus the links this
    run made since (customers it created: ``created``, their Helcim ids, are
    tagged). What is new and resolved is measured against the previous report's
    findings, which this report's then replace in the state store; the actions
    journaled since the previous report are listed with their outcome.

    ``snapshot``: the cache as the caller just loaded it, when nothing wrote to it since (else it is
    loaded here).
    """
    state = session.state
    snapshot = snapshot if snapshot is not None else load_snapshot(state)
    links = state.links()
    pairs = None
    if checked is not None and result is not None:
        pairs = with_links(pd.concat([result.pairs, result.unexamined_pairs]), links, checked.crm_ids)
    day = today or date.today()
    limits = DEFAULT_THRESHOLDS | (thresholds or {})
    window = (day - timedelta(days=limits["pad_pending_days"])).isoformat()
    asked = state.review.emails_since("request_bank_details", window)
    rec = reconcile(
        snapshot.customers, snapshot.cards, snapshot.banks, snapshot.pads, links,
        None if checked is None else checked.crm_ids, day, pairs=pairs, bank_refreshed=snapshot.bank_refreshed,
        created=created, created_recently=state.created_since(window), requested={h: e.created_at[:10] for h, e in asked.items()},
        refresh_per_night=customers_per_night(len(snapshot.customers), session.budget), **limits,
        bank_defaults=state.review.bank_defaults(),
    )  # fmt: skip
    previous_findings = state.review.previous_findings()
    reviewed_at = state.review.reviewed_at()
    report = write_reconciliation(
        out_dir, rec, previous=state.previous_reconciliation(),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        previous_findings=previous_findings if reviewed_at is not None else None,
        action_log=action_log(state.review.actions_since(reviewed_at or "")),
    )  # fmt: skip
    state.review.replace_findings(report.review.seen())
    state.review.replace_proposals(report.proposals.actions)  # crmsync act does these and no other
    new = _new_customers(result, snapshot, checked)
    changes = result.changes if result is not None else pd.DataFrame()
    files = dict(report.outputs)
    mapping = checked.export.mapping if checked is not None else None
    written = write_crm_import(
        out_dir,
        profile=mapping or ("generic" if profile == "auto" else profile),
        new=new,
        changes=changes,
        customers=snapshot.customers,
        methods=payment_methods(rec.cards, rec.banks),
        crm=None if checked is None else crm_rows(checked),
    )
    return MorningOutputs(rec, report, files | written.files, written.warnings)


def crm_rows(checked: CheckedExport) -> CrmRows:
    """What the export holds for its valid rows, by crm_id, for crm_import/ (how the CRM names a record,
    and its own values of the system's import columns)."""
    valid, export = checked.valid, checked.export
    ids = pd.Index(valid["crm_id"].astype("str"))
    own = None if export.own is None else export.own.loc[valid.index].set_axis(ids)
    keys = pd.Series(valid["billing_email"].astype("str").to_numpy(), index=ids)
    return CrmRows(export.key, export.key_column, keys if export.key == "email" else keys.iloc[:0], own)


def action_log(entries: Sequence[ActionEntry]) -> pd.DataFrame:
    """The action journal's entries as report.html lists them (ACTION_LOG_COLUMNS)."""
    rows = [
        (e.finished_at or e.created_at, e.action_id, e.action, e.customer_code, e.helcim_id, e.method_id or "",
         "pending" if e.state == "pending" else e.outcome, e.detail)
        for e in entries
    ]  # fmt: skip
    return pd.DataFrame.from_records(rows, columns=list(ACTION_LOG_COLUMNS))


def _new_customers(
    result: DiffResult | None, snapshot: Snapshot, checked: CheckedExport | None
) -> pd.DataFrame:
    if result is None or checked is None:
        return snapshot.customers.iloc[:0]
    known: set[Any] = set(checked.crm_ids) | set(result.orphaned["crm_id"])
    return importable(result.helcim_only, snapshot.customers["customer_code"], known - {""})
