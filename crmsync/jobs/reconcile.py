"""``crmsync reconcile``: refresh what the budget allows, reconcile, write the morning files.

Customer pages are read as ``crmsync plan`` reads them; what is left of the
budget, less a reserve, goes to bank accounts and PADs (never read first, then
those whose cards changed, then the oldest read), but not to customers whose
bank data was read in the last :data:`~crmsync.sync.snapshot.REREAD_HOURS`
hours (the night's run read them) and whose cards did not change since: a report in business hours leaves the
hour's limit to the merchant's other integrations. Nothing is written to Helcim. The run is recorded in the state store
so the next report shows the change since this one. Stopped by a signal, it
reports on what it had read (status ``interrupted``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from crmsync.config import Settings
from crmsync.console import Progress
from crmsync.crm.validate import CheckedExport, check_export
from crmsync.errors import Interrupted, UsageError
from crmsync.jobs.session import CallStats, Session
from crmsync.jobs.steps import morning_outputs, pure_diff, read_bank_data, read_customer_pages
from crmsync.outputs import prepare_out_dir
from crmsync.reconcile.findings import Reconciliation
from crmsync.stopping import StopSignal
from crmsync.sync.snapshot import (
    REREAD_HOURS,
    BankRefresh,
    CustomerRefresh,
    bank_reads_for,
    load_snapshot,
    not_read_since,
)

__all__ = ["ReconcileResult", "reconcile_account"]


@dataclass(frozen=True)
class ReconcileResult:
    """What ``crmsync reconcile`` found; :meth:`to_dict` is its summary.json."""

    reconciliation: Reconciliation
    written: dict[str, Any]  # reconciliation/summary.json, as written (without its outputs)
    calls: CallStats
    snapshot: dict[str, Any]
    crm: dict[str, Any] | None
    outputs: dict[str, str]
    out_dir: Path
    exit_code: int  # 0: findings are not failures; 130/143 when a signal stopped the refresh
    error: str = ""

    @property
    def report(self) -> str:
        return self.outputs["report"]

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "command": "reconcile",
            "reconciliation": self.written,
            "api_calls": self.calls.calls,
            "calls_by_operation": self.calls.by_operation,
            "snapshot": self.snapshot,
            "crm": self.crm,
            "outputs": self.outputs,
            "status": "ok" if not self.error else "interrupted",
            "exit_code": self.exit_code,
        }
        if self.error:
            summary["error"] = self.error
        return summary


def _thresholds(expiring_days: int, pad_pending_days: int, stale_nights: int) -> dict[str, int]:
    thresholds = {
        "expiring_days": expiring_days,
        "pad_pending_days": pad_pending_days,
        "stale_nights": stale_nights,
    }
    for name, value in thresholds.items():
        if value < 0:
            raise UsageError(f"{name.replace('_', ' ')} must be 0 or more")
    return thresholds


def _refresh(
    session: Session, progress: Progress | None
) -> tuple[CustomerRefresh, BankRefresh, Interrupted | None]:
    """Customer pages, then bank accounts and PADs with what is left; a signal ends it early, not in error."""
    pages, banks = CustomerRefresh(), BankRefresh()
    state = session.state
    # not the customers read in the last REREAD_HOURS (the night's run, an earlier report, this one)
    recent = not_read_since(REREAD_HOURS)
    try:
        pages = read_customer_pages(session, progress)
        floor = bank_reads_for(state.cache.customer_count(), session.budget)
        banks = read_bank_data(session, floor, progress, read_before=recent) or banks
    except Interrupted as error:
        return pages, banks, error
    return pages, banks, None


def reconcile_account(
    settings: Settings,
    out_dir: Path,
    *,
    crm_path: Path | None = None,
    profile: str = "generic",
    max_calls: int | None = None,
    today: date | None = None,
    expiring_days: int = 30,
    pad_pending_days: int = 14,
    stale_nights: int = 7,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
) -> ReconcileResult:
    """Refresh the snapshot within ``max_calls``, reconcile, write ``out_dir/reconciliation/`` and ``crm_import/``."""
    thresholds = _thresholds(expiring_days, pad_pending_days, stale_nights)
    session = Session(settings, "reconcile", max_calls=max_calls, stop=stop)
    prepare_out_dir(out_dir)
    checked: CheckedExport | None = check_export(crm_path, profile) if crm_path is not None else None
    with session.open() as open_session:
        pages, banks, interrupted = _refresh(open_session, progress)
        snapshot = load_snapshot(open_session.state)
        result = None if checked is None else pure_diff(checked, snapshot, open_session)
        morning = morning_outputs(
            open_session,
            out_dir,
            checked=checked,
            result=result,
            profile=profile,
            today=today,
            thresholds=thresholds,
            snapshot=snapshot,  # pure_diff records nothing: the cache is as loaded
        )
        outcome = ReconcileResult(
            reconciliation=morning.reconciliation,
            written=morning.report.summary,
            calls=open_session.calls,
            snapshot={
                **snapshot.describe(),
                "pages_read": pages.pages,
                "complete": pages.complete,
                "bank_customers_read": banks.customers,
            },
            crm=None
            if checked is None
            else {"file": str(checked.export.source_file), "rows_read": checked.rows_read},
            outputs=morning.files,
            out_dir=out_dir,
            exit_code=0 if interrupted is None else interrupted.exit_code,
            error="" if interrupted is None else str(interrupted),
        )
        summary = outcome.to_dict()
        open_session.finish(summary["status"], outcome.exit_code, summary)
    return outcome
