"""The nightly job and ``crmsync apply``: one locked run over one state store, fully accounted.

``crmsync run`` is :func:`run_nightly`:

1. take the state store's lock (a second run on the same store exits at once);
2. settle writes a killed run left in flight (:func:`crmsync.sync.load.resolve_pending`);
3. extract → validate → snapshot → diff → plan (:func:`~crmsync.sync.prepare`);
4. apply the plan within the budget, creates first (:func:`~crmsync.sync.load.apply_plan`);
5. spend what is left of the budget on bank accounts and PADs;
6. write the output folder (``summary.json``, ``results.csv``, ``plan.*``,
   ``conflicts.csv``, ``rejects.csv``, and the CRM import files and the
   reconciliation when those stages are installed).

Every CRM row ends in exactly one of: created, updated, unchanged, rejected,
deferred, failed, conflicts (skipped) — :func:`account` decides which, and
``summary.json`` shows that they add up to ``rows_read``.

``crmsync apply`` is :func:`apply_plan_file`: exactly the operations of a
``plan.json``, journaled, so applying it twice writes nothing the second time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.config import Settings
from crmsync.console import Progress
from crmsync.crm.export import write_crm_import
from crmsync.errors import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CrmsyncError,
    HelcimError,
    Interrupted,
    MassChangeError,
    OutputError,
    UsageError,
)
from crmsync.helcim.client import HelcimClient
from crmsync.jobs.plan import CheckedExport, Prepared, check_crm, prepare, write_plan_outputs
from crmsync.jobs.reconcile import previous_reconciliation, reconcile_snapshot, reconciliation_summary
from crmsync.outputs import prepare_out_dir, write_csv, write_json
from crmsync.reconcile.report import write_reconciliation
from crmsync.state import RunRecord, StateStore, open_state, state_lock
from crmsync.stopping import StopSignal
from crmsync.sync.diff import DiffResult, Policy
from crmsync.sync.load import RESULT_COLUMNS, ApplyOutcome, OpResult, apply_plan, resolve_pending
from crmsync.sync.plan import Plan
from crmsync.sync.snapshot import load_snapshot, refresh_payment_methods

log = logging.getLogger("crmsync.run")

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


# -- accounting (pure) -------------------------------------------------------------------


def account(
    checked: CheckedExport,
    result: DiffResult,
    plan: Plan,
    applied: ApplyOutcome | None,
    not_applied: str = "dry run",
) -> tuple[dict[str, int], pd.DataFrame]:
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
        crm_id, reason = held["crm_id"], held["reason"]
        if crm_id in bucket:
            continue
        bucket[crm_id], outcome = _BUCKET_OF_HOLD[held["kind"]]
        extra.append((crm_id, "", "hold", outcome, "", reason))
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
    valid_ids = checked.valid["crm_id"].astype(str)
    counts = dict.fromkeys(OUTCOMES, 0)
    counts["rejected"] = checked.rejected
    for crm_id in valid_ids:
        counts[bucket.get(crm_id, "unchanged")] += 1
    return counts, pd.DataFrame.from_records(extra, columns=list(RESULT_COLUMNS))


def _results_frame(applied: ApplyOutcome | None, extra: pd.DataFrame) -> pd.DataFrame:
    frames = [extra]
    if applied is not None:
        resolved = [
            OpResult(r.crm_id, r.customer_code, r.operation, f"resolved: {r.outcome}", r.helcim_id, r.error)
            for r in applied.resolved
        ]
        frames.insert(0, ApplyOutcome(resolved + applied.results, []).frame())
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(RESULT_COLUMNS))


# -- crmsync run ---------------------------------------------------------------------------


def _morning_outputs(
    state: StateStore, out_dir: Path, checked: CheckedExport, result: DiffResult, profile: str
) -> dict[str, str]:
    """crm_import/ and reconciliation/ from the snapshot as this run left it (no further calls)."""
    snapshot = load_snapshot(state)
    links = state.links()
    rec = reconcile_snapshot(snapshot, links, checked.export.frame["crm_id"].astype("str"), date.today())
    generated_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    files = write_reconciliation(
        out_dir, rec, previous=previous_reconciliation(state), generated_at=generated_at
    )
    files |= write_crm_import(out_dir, result=result, snapshot=snapshot, links=links, profile=profile)
    return files


@dataclass(frozen=True)
class RunOutcome:
    summary: dict[str, Any]
    out_dir: Path
    exit_code: int


def _stopped_early(
    command: str,
    checked: CheckedExport | None,
    error: CrmsyncError,
    stats: dict[str, Any] | None,
    started: float,
) -> dict[str, Any]:
    """summary.json of a run that stopped before its plan was applied: every valid row is deferred."""
    counts = dict.fromkeys(OUTCOMES, 0)
    rows_read = checked.rows_read if checked is not None else 0
    if checked is not None:
        counts["rejected"] = checked.rejected
        counts["deferred"] = len(checked.valid)
    interrupted = isinstance(error, Interrupted)
    return {
        "command": command,
        "status": "interrupted" if interrupted else "failed",
        "exit_code": error.exit_code,
        "error": str(error),
        "duration_seconds": round(time.monotonic() - started, 2),
        "rows_read": rows_read,
        **counts,
        "accounted": sum(counts.values()),
        "adds_up": sum(counts.values()) == rows_read,
        "api_calls": int(stats["calls"]) if stats else 0,
        "calls_by_operation": stats["by_operation"] if stats else {},
        "warnings": [f"the run stopped before writing anything to Helcim: {error}"],
    }


def _write_summary_best_effort(summary: dict[str, Any], out_dir: Path) -> None:
    """summary.json even after an error; on a full disk there may be no room for it either."""
    try:
        write_json(summary, out_dir / "summary.json")
    except OutputError as error:
        log.error("%s", error)


def run_nightly(
    settings: Settings,
    crm_path: Path,
    profile: str,
    out_dir: Path,
    *,
    policy: Policy = "crm-wins",
    max_calls: int | None = None,
    dry_run: bool = False,
    allow_mass_change: bool = False,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
) -> RunOutcome:
    """``crmsync run``: see the module docstring.

    The output folder is made first: a run that fails (bad file, Helcim
    unreachable, a signal, a full disk) still leaves ``summary.json`` saying
    why, as far as the disk allows, and the state store records its outcome.
    """
    started = time.monotonic()
    budget = max_calls if max_calls is not None else settings.rate_limits.per_hour
    if budget < 1:
        raise UsageError("--max-calls must be at least 1")
    prepare_out_dir(out_dir)
    checked: CheckedExport | None = None
    client: HelcimClient | None = None
    try:
        checked = check_crm(crm_path, profile)  # a bad file fails before any call or lock
        log.info(
            "read %d rows from %s: %d valid, %d rejected",
            checked.rows_read,
            crm_path,
            len(checked.valid),
            checked.rejected,
        )
        client = settings.client(max_calls=budget, stop=stop)
        with state_lock(settings.state_path), open_state(settings.state_path) as state:
            state.bind_account(settings.api_url)
            always = {"out_dir": str(out_dir)}
            with state.recording("run", always, always=lambda: {"api_calls": _calls(client)}) as record:
                summary = _night(
                    settings, state, client, checked, out_dir, record,
                    profile=profile, policy=policy, budget=budget, dry_run=dry_run,
                    allow_mass_change=allow_mass_change, progress=progress, started=started,
                )  # fmt: skip
    except CrmsyncError as error:
        summary = _stopped_early("run", checked, error, client.stats() if client else None, started)
        _write_summary_best_effort(summary, out_dir)
        raise
    return RunOutcome(summary, out_dir, int(summary["exit_code"]))


def _calls(client: HelcimClient | None) -> int:
    return int(client.stats()["calls"]) if client is not None else 0


def _night(
    settings: Settings,
    state: StateStore,
    client: HelcimClient,
    checked: CheckedExport,
    out_dir: Path,
    record: RunRecord,
    *,
    profile: str,
    policy: Policy,
    budget: int,
    dry_run: bool,
    allow_mass_change: bool,
    progress: Progress | None,
    started: float,
) -> dict[str, Any]:
    """The body of a locked, recorded run: settle, prepare, guard, apply, refresh, write the outputs."""
    pending: list[OpResult] = []
    if not dry_run:
        pending = resolve_pending(client, state)
        if pending:
            log.info("settled %d writes a previous run left in flight", len(pending))
    prepared = prepare(
        settings,
        state,
        client,
        checked,
        policy=policy,
        budget=budget,
        profile=profile,
        progress=progress,
    )
    plan = prepared.plan
    log.info(
        "plan: %d creates, %d updates, %d deferred, %d held",
        sum(op.kind == "create" for op in plan.operations),
        sum(op.kind == "update" for op in plan.operations),
        len(plan.deferred),
        len(plan.held),
    )
    files = write_plan_outputs(out_dir, prepared)
    guarded = bool(plan.mass_changes) and not allow_mass_change and not dry_run
    applied: ApplyOutcome | None = None
    if guarded:
        for message in plan.mass_change_warnings():
            log.error("mass-change guard: %s", message)
    elif not dry_run:
        applied = _apply_and_refresh(plan, client, state, record.run_id, prepared, budget, progress)
        applied.resolved = pending + applied.resolved
    warnings = list(prepared.warnings)
    if guarded:
        warnings += [f"refused to write anything: {w}" for w in plan.mass_change_warnings()]
    counts, extra = account(
        checked,
        prepared.result,
        plan,
        applied,
        not_applied="held by the mass-change guard" if guarded else "dry run",
    )
    unwritten: OutputError | None = None
    try:
        results = _results_frame(applied, extra)
        files["results"] = str(write_csv(results, out_dir / "results.csv", RESULT_COLUMNS))
        files |= _morning_outputs(state, out_dir, checked, prepared.result, profile)
    except OutputError as error:  # a full disk after the writes: what was written is journaled; say so
        unwritten = error
    exit_code = EXIT_PARTIAL if counts["rejected"] or counts["failed"] else EXIT_OK
    status = "ok" if exit_code == EXIT_OK else "partial"
    if guarded:
        exit_code, status = EXIT_USAGE, "refused"
    stop = client.stop
    if applied is not None and applied.fatal is not None:  # Helcim down, the token refused, a signal
        interrupted = isinstance(applied.fatal, Interrupted)
        exit_code, status = applied.fatal.exit_code, "interrupted" if interrupted else "failed"
        warnings.append(f"stopped writing: {applied.fatal}")
    elif stop is not None and stop.is_set():  # the signal came while reading bank accounts
        exit_code, status = stop.exit_code, "interrupted"
        warnings.append(f"stopped: {stop.reason}")
    if unwritten is not None:
        exit_code, status = unwritten.exit_code, "failed"
        warnings.append(f"the outputs are incomplete: {unwritten}")
    summary = _summary(
        "run", checked, prepared, counts, client.stats(), applied, files, warnings, started,
        dry_run=dry_run, status=status, exit_code=exit_code,
    )  # fmt: skip
    record.status, record.exit_code = status, exit_code
    record.summary = {k: v for k, v in summary.items() if k != "outputs"}
    record.summary["reconciliation"] = reconciliation_summary(files) if unwritten is None else None
    if unwritten is not None:
        summary["error"] = record.summary["error"] = str(unwritten)
        _write_summary_best_effort(summary, out_dir)
    else:
        write_json(summary, out_dir / "summary.json")
    return summary


def _apply_and_refresh(
    plan: Plan,
    client: HelcimClient,
    state: StateStore,
    run_id: str,
    prepared: Prepared,
    budget: int,
    progress: Progress | None,
) -> ApplyOutcome:
    """Write the plan, remember what the budget deferred, then read bank accounts with what is left."""
    if progress:
        progress("writes", 0, total=len(plan.operations))
    applied = apply_plan(plan, client, state, run_id, progress=progress)
    deferred_rows = [(r.crm_id, r.operation, "budget") for r in applied.results if r.outcome == "deferred"]
    state.set_deferred(deferred_rows)
    left = budget - int(client.stats()["calls"])
    if applied.fatal is None and left > 0 and prepared.bank_calls > 0:
        try:
            refresh_payment_methods(
                client, state, max_calls=min(left, prepared.bank_calls), progress=progress
            )
        except Interrupted:
            pass  # the caller sees the stop signal set
        except HelcimError as error:  # reads only: the run's writes and outputs stand
            prepared.warnings.append(f"bank accounts and PADs not all read: {error}")
    return applied


def _summary(
    command: str,
    checked: CheckedExport,
    prepared: Prepared,
    counts: dict[str, int],
    stats: dict[str, Any],
    applied: ApplyOutcome | None,
    files: dict[str, str],
    warnings: list[str],
    started: float,
    *,
    dry_run: bool,
    status: str,
    exit_code: int,
) -> dict[str, Any]:
    plan = prepared.plan
    accounted = sum(counts.values())
    return {
        "command": command,
        "status": status,
        "exit_code": exit_code,
        "dry_run": dry_run,
        "duration_seconds": round(time.monotonic() - started, 2),
        "rows_read": checked.rows_read,
        **counts,
        "accounted": accounted,
        "adds_up": accounted == checked.rows_read,
        "exported": int((prepared.result.exports["crm_id"] != "").sum()),
        "helcim_only": int((prepared.result.exports["crm_id"] == "").sum()),
        "link_proposals": len(prepared.result.link_proposals),
        "recovered_from_earlier_run": sum(r.outcome == "recovered" for r in applied.resolved)
        if applied
        else 0,
        "api_calls": int(stats["calls"]),
        "calls": {**plan.summary()["calls"], "spent": int(stats["calls"])},
        "calls_by_operation": stats["by_operation"],
        "calls_by_status": stats["by_status"],
        "retries": int(stats.get("retries", 0)),
        "rate_limited_429": int(stats["rate_limited"]),
        "waited_for_limits_seconds": stats["waited_seconds"],
        "snapshot": plan.snapshot,
        "plan_id": plan.plan_id,
        "warnings": warnings,
        "outputs": files,
    }


# -- crmsync apply ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyFileOutcome:
    summary: dict[str, Any]
    out_dir: Path
    exit_code: int


def apply_plan_file(
    settings: Settings,
    plan_path: Path,
    out_dir: Path,
    *,
    allow_mass_change: bool = False,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
) -> ApplyFileOutcome:
    """``crmsync apply``: execute exactly the operations of ``plan_path``; twice writes nothing new.

    A plan the mass-change guard flagged is refused (MassChangeError, exit 2)
    unless ``allow_mass_change``.
    """
    started = time.monotonic()
    plan = Plan.load(plan_path)
    if plan.api_url and plan.api_url.rstrip("/") != settings.api_url.rstrip("/"):
        raise UsageError(
            f"{plan_path} was planned against {plan.api_url}, but this run talks to {settings.api_url}"
        )
    if plan.mass_changes and not allow_mass_change:
        raise MassChangeError(
            f"{plan_path}: refused to write anything: " + "; ".join(plan.mass_change_warnings())
        )
    prepare_out_dir(out_dir)
    writes = len(plan.operations)
    client = settings.client(max_calls=max(1, plan.estimate.budget), stop=stop)
    with state_lock(settings.state_path), open_state(settings.state_path) as state:
        state.bind_account(settings.api_url)
        start = {"out_dir": str(out_dir)}
        with state.recording("apply", start, always=lambda: {"api_calls": client.stats()["calls"]}) as record:
            if progress:
                progress("writes", 0, total=writes)
            applied = apply_plan(plan, client, state, record.run_id, progress=progress)
            # the nightly carry-over stays; what this plan wrote leaves it, what it deferred joins it
            written = {r.crm_id for r in applied.results if r.outcome not in ("deferred", "failed")}
            carried = [
                (str(r.crm_id), str(r.kind), str(r.reason))
                for r in state.deferred().itertuples()
                if r.crm_id not in written
            ]
            new = [(r.crm_id, r.operation, "budget") for r in applied.results if r.outcome == "deferred"]
            state.set_deferred(list({row[0]: row for row in carried + new}.values()))
            frame = _results_frame(applied, pd.DataFrame(columns=list(RESULT_COLUMNS)))
            results = write_csv(frame, out_dir / "results.csv", RESULT_COLUMNS)
            by_outcome = applied.counts()
            exit_code = EXIT_PARTIAL if by_outcome.get("failed") else EXIT_OK
            status = "ok" if exit_code == EXIT_OK else "partial"
            if applied.fatal is not None:
                exit_code = applied.fatal.exit_code
                status = "interrupted" if isinstance(applied.fatal, Interrupted) else "failed"
            stats = client.stats()
            summary = {
                "command": "apply",
                "status": status,
                "exit_code": exit_code,
                "plan": str(plan_path),
                "plan_id": plan.plan_id,
                "duration_seconds": round(time.monotonic() - started, 2),
                "operations": len(plan.operations) + len(plan.deferred),
                "outcomes": by_outcome,
                "created": by_outcome.get("created", 0) + by_outcome.get("recovered", 0),
                "updated": by_outcome.get("updated", 0),
                "already_applied": by_outcome.get("already-applied", 0),
                "deferred": by_outcome.get("deferred", 0),
                "failed": by_outcome.get("failed", 0),
                "api_calls": int(stats["calls"]),
                "calls_by_operation": stats["by_operation"],
                "retries": int(stats.get("retries", 0)),
                "rate_limited_429": int(stats["rate_limited"]),
                "error": str(applied.fatal) if applied.fatal is not None else "",
                "outputs": {"results": str(results)},
            }
            write_json(summary, out_dir / "summary.json")
            record.status, record.exit_code, record.summary = status, exit_code, dict(summary)
    return ApplyFileOutcome(summary, out_dir, exit_code)
