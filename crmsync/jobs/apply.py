"""``crmsync apply``: exactly the operations of one ``plan.json``, journaled, so applying it twice writes nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.config import Settings
from crmsync.console import Progress
from crmsync.errors import EXIT_OK, EXIT_PARTIAL, Interrupted, MassChangeError, UsageError
from crmsync.jobs.accounting import results_frame
from crmsync.jobs.session import CallStats, Session
from crmsync.outputs import prepare_out_dir, write_csv, write_json
from crmsync.stopping import StopSignal
from crmsync.sync.load import RESULT_COLUMNS, ApplyOutcome, apply_plan, resolve_pending
from crmsync.sync.plan import Plan

__all__ = ["ApplyResult", "apply_plan_file"]


@dataclass(frozen=True)
class ApplyResult:
    """What ``crmsync apply`` did; :meth:`to_dict` is its summary.json."""

    plan_path: Path
    plan: Plan
    applied: ApplyOutcome
    calls: CallStats
    status: str
    exit_code: int
    duration_seconds: float
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def outcomes(self) -> dict[str, int]:
        return self.applied.counts()

    def count(self, *names: str) -> int:
        return sum(self.outcomes.get(name, 0) for name in names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": "apply",
            "status": self.status,
            "exit_code": self.exit_code,
            "plan": str(self.plan_path),
            "plan_id": self.plan.plan_id,
            "duration_seconds": self.duration_seconds,
            "operations": len(self.plan.operations) + len(self.plan.deferred),
            "outcomes": self.outcomes,
            "created": self.count("created", "recovered"),
            "updated": self.count("updated"),
            "already_applied": self.count("already-applied"),
            "deferred": self.count("deferred"),
            "failed": self.count("failed"),
            "api_calls": self.calls.calls,
            "calls_by_operation": self.calls.by_operation,
            "retries": self.calls.retries,
            "rate_limited_429": self.calls.rate_limited,
            "error": str(self.applied.fatal) if self.applied.fatal is not None else "",
            "outputs": self.outputs,
        }


def load_plan(settings: Settings, plan_path: Path, *, allow_mass_change: bool) -> Plan:
    """The plan, if it may be applied against this account."""
    plan = Plan.load(plan_path)
    if plan.api_url and plan.api_url.rstrip("/") != settings.api_url.rstrip("/"):
        raise UsageError(
            f"{plan_path} was planned against {plan.api_url}, but this run talks to {settings.api_url}"
        )
    if plan.mass_changes and not allow_mass_change:
        raise MassChangeError(
            f"{plan_path}: refused to write anything: " + "; ".join(plan.mass_change_warnings())
        )
    return plan


def apply_plan_file(
    settings: Settings,
    plan_path: Path,
    out_dir: Path,
    *,
    allow_mass_change: bool = False,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
) -> ApplyResult:
    """Execute exactly the operations of ``plan_path``; an operation the journal records as done is not sent again.

    A plan the mass-change guard flagged is refused (MassChangeError) unless ``allow_mass_change``.
    """
    started = time.monotonic()
    plan = load_plan(settings, plan_path, allow_mass_change=allow_mass_change)
    prepare_out_dir(out_dir)
    session = Session(settings, "apply", max_calls=max(1, plan.estimate.budget), stop=stop)
    with session.open({"out_dir": str(out_dir)}) as open_session:
        state = open_session.state
        if progress:
            progress("writes", 0, total=len(plan.operations))
        resolved = resolve_pending(open_session.client, state)
        applied = apply_plan(plan, open_session.client, state, open_session.record.run_id, progress=progress)
        applied.resolved = resolved
        # the nightly carry-over stays; what this plan wrote leaves it, what it deferred joins it
        written = {r.crm_id for r in applied.results if r.outcome not in ("deferred", "failed")}
        carried = [
            (str(r.crm_id), str(r.kind), str(r.reason))
            for r in state.deferred().itertuples()
            if r.crm_id not in written
        ]
        new = [(r.crm_id, r.operation, "budget") for r in applied.results if r.outcome == "deferred"]
        state.set_deferred(list({row[0]: row for row in carried + new}.values()))
        frame = results_frame(applied, pd.DataFrame(columns=list(RESULT_COLUMNS)))
        results = write_csv(frame, out_dir / "results.csv", RESULT_COLUMNS)
        exit_code = EXIT_PARTIAL if applied.counts().get("failed") else EXIT_OK
        status = "ok" if exit_code == EXIT_OK else "partial"
        if applied.fatal is not None:
            exit_code = applied.fatal.exit_code
            status = "interrupted" if isinstance(applied.fatal, Interrupted) else "failed"
        result = ApplyResult(
            plan_path, plan, applied, open_session.calls, status, exit_code,
            round(time.monotonic() - started, 2), {"results": str(results)},
        )  # fmt: skip
        summary = result.to_dict()
        write_json(summary, out_dir / "summary.json")
        open_session.finish(status, exit_code, summary)
    return result
