"""``crmsync plan``: everything a run would do, and what it costs, without writing to Helcim."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmsync.config import Settings
from crmsync.console import Progress
from crmsync.crm.validate import check_export
from crmsync.errors import EXIT_OK, EXIT_PARTIAL, CrmsyncError
from crmsync.jobs.session import CallStats, Session
from crmsync.jobs.steps import bind_key, prepare, write_plan_outputs
from crmsync.outputs import prepare_out_dir, try_write_json, write_json
from crmsync.stopping import StopSignal
from crmsync.sync.diff import Policy
from crmsync.sync.plan import Plan

__all__ = ["PlanResult", "plan_sync"]


@dataclass(frozen=True)
class PlanResult:
    """What ``crmsync plan`` found; :meth:`to_dict` is its summary.json."""

    plan: Plan
    rows_read: int
    valid: int
    rejected: int
    calls: CallStats
    warnings: list[str]
    outputs: dict[str, str]
    out_dir: Path
    exit_code: int
    profile: str = "generic"
    profile_fit: dict[str, Any] = field(default_factory=dict)
    rows_with_warnings: int = 0
    key: str = "crm_id"  # where the customerCode comes from: the export's id column, or the e-mail
    command: str = field(default="plan", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "profile": self.profile,
            "profile_fit": self.profile_fit,
            "key": self.key,
            "rows_read": self.rows_read,
            "valid": self.valid,
            "rejected": self.rejected,
            "rows_with_warnings": self.rows_with_warnings,
            **self.plan.summary(),
            "api_calls": self.calls.calls,
            "calls_by_operation": self.calls.by_operation,
            "snapshot": self.plan.snapshot,
            "mass_changes": self.plan.mass_changes,
            "warnings": self.warnings,
            "outputs": self.outputs,
            "exit_code": self.exit_code,
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
    incomplete_address: str = "omit",
    allow_key_change: bool = False,
) -> PlanResult:
    """Read Helcim within the budget, diff against the export and the state store, write the plan files.

    An export keyed otherwise than the state store last synced is refused (KeyChangeError) unless
    ``allow_key_change``; a plan never records the new key (the run that writes does).
    A failure leaves ``summary.json`` with the error, as far as the disk allows.
    """
    session = Session(settings, "plan", max_calls=max_calls, stop=stop)
    prepare_out_dir(out_dir)
    try:
        checked = check_export(crm_path, profile, incomplete_address)
        chosen = checked.export.profile
        with session.open() as open_session:
            changed = bind_key(open_session, checked, allow_change=allow_key_change, record_change=False)
            prepared = prepare(
                open_session, checked, policy=policy, profile=chosen, progress=progress, key_change=changed
            )
            outputs = write_plan_outputs(out_dir, prepared)
            result = PlanResult(
                plan=prepared.plan,
                rows_read=checked.rows_read,
                valid=len(checked.valid),
                rejected=checked.rejected,
                calls=session.calls,
                warnings=prepared.warnings + prepared.plan.mass_change_warnings(),
                outputs=outputs,
                out_dir=out_dir,
                exit_code=EXIT_PARTIAL if checked.rejected else EXIT_OK,
                profile=chosen,
                profile_fit=checked.export.profile_fit.to_dict() if checked.export.profile_fit else {},
                rows_with_warnings=checked.rows_with_warnings,
                key=checked.export.key,
            )
            summary = result.to_dict()
            open_session.finish("ok", result.exit_code, summary)
    except CrmsyncError as error:
        failed = {"command": "plan", "status": "failed", "exit_code": error.exit_code, "error": str(error)}
        try_write_json(failed | {"api_calls": session.calls.calls}, out_dir / "summary.json")
        raise
    write_json(summary, out_dir / "summary.json")
    return result
