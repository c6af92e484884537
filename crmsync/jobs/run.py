"""``crmsync run``, the nightly job: one locked run over one state store, fully accounted.

In order (:func:`run_nightly`):

1. create the output folder, then read and check the export (a bad file fails
   before any call or lock);
2. open the session: lock, open and bind the state store, record the run;
3. settle writes a killed run left in flight (:func:`crmsync.sync.load.resolve_pending`);
4. read Helcim within the budget, diff, plan (:func:`crmsync.jobs.steps.prepare`);
5. stop at the mass-change guard, or apply the plan, creates first
   (:func:`crmsync.sync.load.apply_plan`), and spend what is left of the
   budget, less a reserve, on bank accounts and PADs
   (:func:`crmsync.sync.snapshot.bank_calls_after_writes`);
6. write the output folder: results.csv, the plan files, crm_import/,
   reconciliation/ and summary.json (:meth:`RunResult.to_dict`).

Every CRM row ends in exactly one of created, updated, unchanged, rejected,
deferred, failed, conflicts (:mod:`crmsync.jobs.accounting`). A run that fails
at any step still writes ``summary.json`` as far as the disk allows, and the
state store records its outcome.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from crmsync.config import Settings
from crmsync.console import Progress
from crmsync.crm.validate import CheckedExport, check_export
from crmsync.errors import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CrmsyncError,
    HelcimError,
    Interrupted,
    OutputError,
    StateLockedError,
)
from crmsync.jobs.accounting import RowCounts, account, results_frame
from crmsync.jobs.session import CallStats, Session
from crmsync.jobs.steps import (
    Prepared,
    bind_key,
    morning_outputs,
    prepare,
    read_bank_data,
    write_plan_outputs,
)
from crmsync.outputs import prepare_out_dir, try_write_json, write_csv, write_json
from crmsync.stopping import StopSignal
from crmsync.sync.diff import Policy
from crmsync.sync.load import RESULT_COLUMNS, ApplyOutcome, OpResult, apply_plan, resolve_pending
from crmsync.sync.snapshot import (
    REREAD_HOURS,
    BankRefresh,
    bank_reserve,
    not_read_since,
)

__all__ = ["RunResult", "run_nightly"]

log = logging.getLogger("crmsync.run")


@dataclass
class RunResult:
    """What one nightly run did; :meth:`to_dict` is its summary.json."""

    status: str  # ok | partial | failed | refused | interrupted
    exit_code: int
    counts: RowCounts
    calls: CallStats
    budget: int
    duration_seconds: float
    dry_run: bool = False
    prepared: Prepared | None = None  # None: the run stopped before it had a plan
    applied: ApplyOutcome | None = None
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    error: str = ""
    reconciliation: dict[str, Any] | None = None  # reconciliation/summary.json, as written
    bank: BankRefresh | None = None  # the bank/PAD refresh after the writes (None: not run)

    def to_dict(self) -> dict[str, Any]:
        if self.prepared is None:
            return {
                "command": "run",
                "status": self.status,
                "exit_code": self.exit_code,
                "error": self.error,
                "duration_seconds": self.duration_seconds,
                **self.counts.to_dict(),
                "api_calls": self.calls.calls,
                "calls_by_operation": self.calls.by_operation,
                "warnings": self.warnings,
            }
        plan, result = self.prepared.plan, self.prepared.result
        recovered = sum(r.outcome == "recovered" for r in self.applied.resolved) if self.applied else 0
        export = self.prepared.checked.export
        summary: dict[str, Any] = {
            "command": "run",
            "status": self.status,
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "duration_seconds": self.duration_seconds,
            "profile": export.profile,
            "profile_fit": export.profile_fit.to_dict() if export.profile_fit else {},
            "key": export.key,
            **self.counts.to_dict(),
            "rows_with_warnings": self.prepared.checked.rows_with_warnings,
            "exported": int((result.exports["crm_id"] != "").sum()),
            "helcim_only": int((result.exports["crm_id"] == "").sum()),
            "link_proposals": len(result.link_proposals),
            "recovered_from_earlier_run": recovered,
            "api_calls": self.calls.calls,
            "calls": {**plan.summary()["calls"], "spent": self.calls.calls},
            "calls_by_operation": self.calls.by_operation,
            "calls_by_status": self.calls.by_status,
            "retries": self.calls.retries,
            "rate_limited_429": self.calls.rate_limited,
            "waited_for_limits_seconds": round(self.calls.waited_seconds, 3),
            "snapshot": plan.snapshot,
            "bank_refresh": self._bank_refresh(),
            "payment_data": (self.reconciliation or {}).get("payment_data"),
            "plan_id": plan.plan_id,
            "warnings": self.warnings,
            "outputs": self.outputs,
        }
        if self.error:
            summary["error"] = self.error
        return summary

    def _bank_refresh(self) -> dict[str, Any]:
        """What the bank/PAD refresh was allowed and spent (the floor held even on a short budget)."""
        floor = self.prepared.bank_calls if self.prepared is not None else 0
        return {
            "floor_calls": floor,
            "reserve_calls": bank_reserve(self.budget),
            "calls": self.bank.calls if self.bank else 0,
            "customers_read": self.bank.customers if self.bank else 0,
        }


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
    incomplete_address: str = "omit",
    today: date | None = None,
    allow_key_change: bool = False,
) -> RunResult:
    """``crmsync run``: see the module docstring. Settings come in as arguments: nothing is read from the environment.

    ``today`` is the date the reconciliation is made as of (default: the machine's local date); an
    orchestrator running accounts in several time zones gives each account's own.
    An export keyed otherwise than the state store last synced (another profile, id column, or the
    e-mail instead of the id) is refused with KeyChangeError unless ``allow_key_change``, which then
    records the new key.
    """
    started = time.monotonic()
    session = Session(settings, "run", max_calls=max_calls, stop=stop)
    prepare_out_dir(out_dir)
    checked: CheckedExport | None = None
    try:
        checked = check_export(crm_path, profile, incomplete_address)
        profile = checked.export.profile
        log.info(
            "read %d rows from %s: %d valid, %d rejected",
            checked.rows_read, crm_path, len(checked.valid), checked.rejected,
        )  # fmt: skip
        with session.open({"out_dir": str(out_dir)}) as open_session:
            changed = bind_key(
                open_session, checked, allow_change=allow_key_change, record_change=not dry_run
            )
            night = _Night(open_session, checked, out_dir, profile, progress, today)
            result = night.run(
                policy=policy, dry_run=dry_run, allow_mass_change=allow_mass_change, key_change=changed
            )
            result.duration_seconds = round(time.monotonic() - started, 2)
            summary = result.to_dict()
            _write_summary(summary, result.error, out_dir)
            # the state store keeps the summary (finish drops its outputs) with the reconciliation
            open_session.finish(
                result.status, result.exit_code, {**summary, "reconciliation": result.reconciliation}
            )
    except CrmsyncError as error:
        stopped = RunResult(
            status="interrupted" if isinstance(error, Interrupted) else "failed",
            exit_code=error.exit_code,
            counts=RowCounts.nothing_done(checked),
            calls=session.calls,
            budget=session.budget,
            duration_seconds=round(time.monotonic() - started, 2),
            warnings=[f"the run stopped before writing anything to Helcim: {error}"],
            error=str(error),
        )
        if not isinstance(error, StateLockedError):  # locked: the folder is the running night's, left alone
            try_write_json(stopped.to_dict(), out_dir / "summary.json")
        raise
    return result


def _write_summary(summary: dict[str, Any], error: str, out_dir: Path) -> None:
    if error:  # the outputs already failed to be written: try, do not fail again
        problem = try_write_json(summary, out_dir / "summary.json")
        if problem is not None:
            log.error("%s", problem)
    else:
        write_json(summary, out_dir / "summary.json")


class _Night:
    """The body of one locked, recorded run, a step per method."""

    def __init__(
        self,
        session: Session,
        checked: CheckedExport,
        out_dir: Path,
        profile: str,
        progress: Progress | None,
        today: date | None = None,
    ) -> None:
        self.session, self.checked, self.out_dir = session, checked, out_dir
        self.profile, self.progress, self.today = profile, progress, today

    def run(
        self, *, policy: Policy, dry_run: bool, allow_mass_change: bool, key_change: str = ""
    ) -> RunResult:
        self.bank: BankRefresh | None = None
        pending = [] if dry_run else self._settle()
        prepared = prepare(
            self.session, self.checked, policy=policy, profile=self.profile, progress=self.progress,
            key_change=key_change,
        )  # fmt: skip
        plan = prepared.plan
        moving = (prepared.result.link_proposals["replaces"].astype(str) != "").any()
        if not dry_run and not moving and self.session.state.rekeyed():
            self.session.state.rekeyed_done()  # every customer is under its new key, or decided
        log.info(
            "plan: %d creates, %d updates, %d deferred, %d held",
            sum(op.kind == "create" for op in plan.operations),
            sum(op.kind == "update" for op in plan.operations),
            len(plan.deferred),
            len(plan.held),
        )
        outputs = write_plan_outputs(self.out_dir, prepared)
        guarded = bool(plan.mass_changes) and not allow_mass_change and not dry_run
        applied: ApplyOutcome | None = None
        if guarded:
            for message in plan.mass_change_warnings():
                log.error("mass-change guard: %s", message)
        elif not dry_run:
            applied = self._apply(prepared)
            applied.resolved = pending
        not_applied = "held by the mass-change guard" if guarded else "dry run"
        counts, extra = account(self.checked, prepared.result, plan, applied, not_applied)
        result = RunResult(
            status="", exit_code=EXIT_OK, counts=counts, calls=self.session.calls, budget=self.session.budget,
            duration_seconds=0.0, dry_run=dry_run, prepared=prepared, applied=applied,
            warnings=list(prepared.warnings), outputs=outputs, bank=self.bank,
        )  # fmt: skip
        if guarded:
            result.warnings += [f"refused to write anything: {w}" for w in plan.mass_change_warnings()]
        self._write_outputs(result, extra)
        self._settle_status(result, guarded)
        result.calls = self.session.calls
        return result

    def _settle(self) -> list[OpResult]:
        pending = resolve_pending(self.session.client, self.session.state)
        if pending:
            log.info("settled %d writes a previous run left in flight", len(pending))
        return pending

    def _apply(self, prepared: Prepared) -> ApplyOutcome:
        """Write the plan, remember what the budget deferred, then read bank accounts with what is left."""
        session, plan = self.session, prepared.plan
        if self.progress:
            self.progress("writes", 0, total=len(plan.operations))
        applied = apply_plan(
            plan, session.client, session.state, session.record.run_id, progress=self.progress
        )
        session.state.set_deferred(
            [(r.crm_id, r.operation, "budget") for r in applied.results if r.outcome == "deferred"]
        )
        if applied.fatal is None:
            try:  # nor those read in the last REREAD_HOURS: this run, an earlier one tonight, crmsync's creates
                self.bank = read_bank_data(
                    session, prepared.bank_calls, self.progress, read_before=not_read_since(REREAD_HOURS)
                )
            except Interrupted:
                pass  # the status says so: the stop signal is set
            except HelcimError as error:  # reads only: the run's writes and outputs stand
                prepared.warnings.append(f"bank accounts and PADs not all read: {error}")
        return applied

    def _write_outputs(self, result: RunResult, extra: Any) -> None:
        """results.csv, crm_import/ and reconciliation/; a full disk here is said in the result, not raised."""
        assert result.prepared is not None
        try:
            frame = results_frame(result.applied, extra)
            result.outputs["results"] = str(write_csv(frame, self.out_dir / "results.csv", RESULT_COLUMNS))
            created = {
                r.helcim_id
                for r in (result.applied.results if result.applied else [])
                if r.operation == "create" and r.outcome in ("created", "recovered") and r.helcim_id
            }
            morning = morning_outputs(
                self.session,
                self.out_dir,
                checked=self.checked,
                result=result.prepared.result,
                profile=self.profile,
                created=created,
                today=self.today,
            )
            result.outputs |= morning.files
            result.warnings += morning.warnings
            result.reconciliation = morning.report.summary
        except OutputError as error:  # what was written is in the journal; the summary says the rest
            result.error = str(error)

    def _settle_status(self, result: RunResult, guarded: bool) -> None:
        counts, applied, stop = result.counts, result.applied, self.session.stop
        result.exit_code = EXIT_PARTIAL if counts.rejected or counts.failed else EXIT_OK
        result.status = "ok" if result.exit_code == EXIT_OK else "partial"
        if guarded:
            result.exit_code, result.status = EXIT_USAGE, "refused"
        if applied is not None and applied.fatal is not None:  # Helcim down, the token refused, a signal
            interrupted = isinstance(applied.fatal, Interrupted)
            result.exit_code, result.status = (
                applied.fatal.exit_code,
                "interrupted" if interrupted else "failed",
            )
            result.warnings.append(f"stopped writing: {applied.fatal}")
        elif self.session.stopped:  # the signal came while reading bank accounts
            assert stop is not None
            result.exit_code, result.status = stop.exit_code, "interrupted"
            result.warnings.append(f"stopped: {stop.reason}")
        if result.error:
            result.exit_code, result.status = EXIT_USAGE, "failed"
            result.warnings.append(f"the outputs are incomplete: {result.error}")
