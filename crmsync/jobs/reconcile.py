"""``crmsync reconcile``: refresh what the budget allows, reconcile, write the morning files.

:func:`reconcile_account` is the library call behind the command; the nightly
``crmsync run`` uses the same pieces directly (:func:`~crmsync.reconcile.reconcile`,
:func:`~crmsync.reconcile.report.write_reconciliation`, :func:`~crmsync.crm.export.write_crm_import`)
and :func:`previous_reconciliation` for the "change since the previous run" figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.config import Settings
from crmsync.console import Progress
from crmsync.crm.export import write_crm_import
from crmsync.errors import Interrupted, UsageError
from crmsync.jobs.plan import CheckedExport, check_crm, pages_for
from crmsync.outputs import prepare_out_dir
from crmsync.reconcile.findings import Reconciliation, reconcile
from crmsync.reconcile.report import write_reconciliation
from crmsync.state import StateStore, open_state, state_lock
from crmsync.stopping import StopSignal
from crmsync.sync.diff import DiffResult, diff
from crmsync.sync.snapshot import (
    BankRefresh,
    CustomerRefresh,
    Snapshot,
    load_snapshot,
    refresh_customers,
    refresh_payment_methods,
)

__all__ = [
    "ReconcileOutcome",
    "previous_reconciliation",
    "reconcile_account",
    "reconcile_snapshot",
    "reconciliation_summary",
]


def reconcile_snapshot(
    snapshot: Snapshot,
    links: pd.DataFrame,
    crm_ids: pd.Series | None,
    today: date,
    *,
    expiring_days: int = 30,
    pad_pending_days: int = 14,
    stale_nights: int = 7,
) -> Reconciliation:
    """:func:`~crmsync.reconcile.reconcile` on a :class:`Snapshot` (bank refresh times included)."""
    return reconcile(
        snapshot.customers,
        snapshot.cards,
        snapshot.banks,
        snapshot.pads,
        links,
        crm_ids,
        today,
        bank_refreshed=snapshot.bank_refreshed,
        expiring_days=expiring_days,
        pad_pending_days=pad_pending_days,
        stale_nights=stale_nights,
    )


def reconciliation_summary(files: dict[str, str]) -> dict[str, Any] | None:
    """reconciliation/summary.json as written, without its list of outputs (what a run records)."""
    path = files.get("summary")
    if not path:
        return None
    written: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    written.pop("outputs", None)
    return written


def previous_reconciliation(state: StateStore) -> dict[str, Any] | None:
    """The reconciliation summary of the latest finished run that recorded one (``reconcile`` or ``run``).

    A run records it by putting the dict written to reconciliation/summary.json
    under the key ``"reconciliation"`` of the summary it gives ``finish_run``.
    """
    return state.previous_reconciliation()


@dataclass(frozen=True)
class ReconcileOutcome:
    reconciliation: Reconciliation
    summary: dict[str, Any]  # reconciliation/summary.json plus calls and snapshot facts
    out_dir: Path
    files: dict[str, str]
    exit_code: int  # 0: findings are not failures


def _pure_diff(checked: CheckedExport, snapshot: Snapshot, state: StateStore) -> DiffResult:
    """The diff for updates.csv / new_customers.csv, without recording anything in the state store."""
    return diff(
        checked.valid,
        snapshot.customers,
        state.base(),
        state.links(),
        fields=checked.fields,
        known_crm_ids=set(checked.export.frame["crm_id"].astype(str)),
        rejected_links=state.rejected_links(),
    )


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
) -> ReconcileOutcome:
    """Refresh the snapshot within ``max_calls``, reconcile, write ``out_dir/reconciliation/`` and ``crm_import/``.

    Customer pages are read as ``crmsync plan`` reads them; what is left of
    the budget goes to bank accounts and PADs (never read first, then changed,
    then oldest). Nothing is written to Helcim. The run is recorded in the state
    store so the next report shows the change since this one. Stopped by a
    signal, it reports on what it had read (status ``interrupted``).
    """
    prepare_out_dir(out_dir)
    checked = check_crm(crm_path, profile) if crm_path is not None else None
    budget = max_calls if max_calls is not None else settings.rate_limits.per_hour
    if budget < 1:
        raise UsageError("--max-calls must be at least 1")
    for name, value in (
        ("--expiring-days", expiring_days),
        ("--pad-pending-days", pad_pending_days),
        ("--stale-nights", stale_nights),
    ):
        if value < 0:
            raise UsageError(f"{name} must be 0 or more")
    day = today or date.today()
    client = settings.client(max_calls=budget, stop=stop)
    with state_lock(settings.state_path), open_state(settings.state_path) as state:
        state.bind_account(settings.api_url)
        previous = previous_reconciliation(state)
        with state.recording("reconcile", {}) as record:
            pages, banks = CustomerRefresh(), BankRefresh()
            interrupted: Interrupted | None = None
            try:
                pages = refresh_customers(
                    client, state, max_pages=pages_for(state, budget), progress=progress
                )
                left = budget - int(client.stats()["calls"])
                banks = refresh_payment_methods(client, state, max_calls=left, progress=progress)
            except Interrupted as error:  # report on what was read before the signal
                interrupted = error
            snapshot = load_snapshot(state)
            links = state.links()
            crm_ids = None if checked is None else checked.export.frame["crm_id"].astype("str")
            rec = reconcile_snapshot(
                snapshot,
                links,
                crm_ids,
                day,
                expiring_days=expiring_days,
                pad_pending_days=pad_pending_days,
                stale_nights=stale_nights,
            )
            generated_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            files = write_reconciliation(out_dir, rec, previous=previous, generated_at=generated_at)
            result = None if checked is None else _pure_diff(checked, snapshot, state)
            files |= write_crm_import(out_dir, result=result, snapshot=snapshot, links=links, profile=profile)
            written = reconciliation_summary(files)
            stats = client.stats()
            summary: dict[str, Any] = {
                "command": "reconcile",
                "reconciliation": written,
                "api_calls": stats["calls"],
                "calls_by_operation": stats["by_operation"],
                "snapshot": {
                    **snapshot.describe(),
                    "pages_read": pages.pages,
                    "complete": pages.complete,
                    "bank_customers_read": banks.customers,
                },
                "crm": None
                if checked is None
                else {"file": str(checked.export.source_file), "rows_read": checked.rows_read},
                "outputs": files,
                "status": "ok" if interrupted is None else "interrupted",
                "exit_code": 0 if interrupted is None else interrupted.exit_code,
            }
            if interrupted is not None:
                summary["error"] = str(interrupted)
            record.status, record.exit_code = summary["status"], summary["exit_code"]
            record.summary = {k: v for k, v in summary.items() if k != "outputs"}
    return ReconcileOutcome(rec, summary, out_dir, files, int(summary["exit_code"]))
