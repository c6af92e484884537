"""``crmsync act --accept actions.csv --out DIR``: the approved actions of a morning report, done through Helcim.

In order: read the filled ``actions.csv`` (a row crmsync did not propose, or
an ``approve`` that is not yes/no/empty, fails before any call: exit 2);
open the session (lock, state store, the run on record); refuse (exit 2, before
any call) a row the latest report did not propose as it stands, or any once that
report is a day old (:func:`crmsync.reconcile.actions.check_proposed`); record what
a person found about uncertain e-mails (``resolve``); send the rows with
``approve=yes`` through the paced client within ``--max-calls``
(:func:`crmsync.sync.act.execute_actions`, each action checked against a fresh
read of its customer by :func:`crmsync.reconcile.actions.still_needed`); write
``results.csv`` and ``summary.json``. Every row is counted once:
``rows_read = not_approved + done + already_done + skipped + failed + uncertain
+ check + deferred (+ would_do with --dry-run)``.

Exit 0 when every approved action is done, was done before, no longer needed
or waits for the budget; 1 when one failed or needs a person to check
(an uncertain outcome); 2 bad file or state store; 3 Helcim unreachable or the
token refused; 130/143 stopped by a signal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from crmsync.config import Settings
from crmsync.console import Progress
from crmsync.errors import EXIT_OK, EXIT_PARTIAL, Interrupted, UsageError
from crmsync.jobs.session import CallStats, Session
from crmsync.outputs import prepare_out_dir, write_csv, write_json
from crmsync.reconcile.actions import check_proposed, parse_actions, still_needed
from crmsync.stopping import StopSignal
from crmsync.sync.act import RESULT_COLUMNS, Action, ActOutcome, Fresh, execute_actions

__all__ = ["OUTCOMES", "ActResult", "act_on_file"]

#: Every outcome an approved row can have, in summary.json's order.
OUTCOMES = ("done", "already-done", "skipped", "failed", "uncertain", "check", "deferred", "would-do")


@dataclass(frozen=True)
class ActResult:
    """What ``crmsync act`` did; :meth:`to_dict` is its summary.json."""

    source: Path | None  # None: only resolving uncertain e-mails
    rows_read: int
    not_approved: int
    outcome: ActOutcome
    calls: CallStats
    budget: int
    dry_run: bool
    status: str
    exit_code: int
    duration_seconds: float
    error: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    resolved: dict[str, str] = field(default_factory=dict)  # action_id → what a person found: sent | not-sent

    def count(self, name: str) -> int:
        return self.outcome.counts().get(name, 0)

    def to_dict(self) -> dict[str, Any]:
        counts = {name.replace("-", "_"): self.count(name) for name in OUTCOMES}
        summary: dict[str, Any] = {
            "command": "act",
            "status": self.status,
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            "actions_file": "" if self.source is None else str(self.source),
            "resolved": self.resolved,
            "rows_read": self.rows_read,
            "not_approved": self.not_approved,
            "approved": self.rows_read - self.not_approved,
            **counts,
            "adds_up": self.rows_read == self.not_approved + sum(counts.values()),
            "by_action": _by_action(self.outcome),
            "customers_read_again": self.outcome.reread,
            "api_calls": self.calls.calls,
            "calls_by_operation": self.calls.by_operation,
            "budget": self.budget,
            "duration_seconds": self.duration_seconds,
            "outputs": self.outputs,
        }
        if self.error:
            summary["error"] = self.error
        return summary


def _by_action(outcome: ActOutcome) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for result in outcome.results:
        per = table.setdefault(result.action.action, {})
        per[result.outcome] = per.get(result.outcome, 0) + 1
    return table


def read_actions_file(path: Path) -> tuple[list[Action], int, int]:
    """(approved actions, rows not approved, rows read) of a filled actions.csv."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    actions, not_approved = parse_actions(table, str(path))
    return actions, not_approved, len(table)


def act_on_file(
    settings: Settings,
    actions_file: Path | None,
    out_dir: Path,
    *,
    max_calls: int | None = None,
    dry_run: bool = False,
    pad_pending_days: int = 14,
    resolve: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
) -> ActResult:
    """``crmsync act``: see the module docstring.

    ``resolve`` (action_id → ``sent`` | ``not-sent``) records first what a person found in Helcim about
    e-mails whose outcome is uncertain (:meth:`crmsync.state.ReviewLog.resolve_email`); ``actions_file``
    may then be None. Every check is as of today by the clock — never a date given: a date ahead would make a
    valid card look expired (and deletable) and move recent e-mails out of the window that keeps a customer
    from a second one.
    """
    started = time.monotonic()
    actions, not_approved, rows_read = read_actions_file(actions_file) if actions_file else ([], 0, 0)
    session = Session(settings, "act", max_calls=max_calls, stop=stop)
    prepare_out_dir(out_dir)
    day = date.today()
    start = {"actions_file": str(actions_file or ""), "dry_run": dry_run, "resolve": dict(resolve or {})}
    with session.open(start) as open_session:
        state = open_session.state
        proposed, proposed_at = state.review.proposals()
        check_proposed(actions, proposed, proposed_at, datetime.now(UTC), str(actions_file))
        for action_id, verdict in (resolve or {}).items():  # with dry_run: only checked, not recorded
            state.review.resolve_email(action_id, verdict, record=not dry_run)
        window = (day - timedelta(days=pad_pending_days)).isoformat()
        if progress:
            progress("actions", 0, total=len(actions))

        bank_defaults = state.review.bank_defaults()

        def check(action: Action, fresh: Fresh) -> str | None:
            known = bank_defaults.get(action.helcim_id)
            return still_needed(action, fresh, day, bank_default=known, pad_pending_days=pad_pending_days)

        outcome = execute_actions(
            open_session.client, state, actions, open_session.record.run_id, check=check,
            calls_left=open_session.calls_left, asked=state.review.emails_since("request_bank_details", window),
            dry_run=dry_run, progress=progress,
        )  # fmt: skip
        result = _result(actions_file, rows_read, not_approved, outcome, open_session, dry_run, started)
        result.resolved.update(resolve or {})
        frame = outcome.frame()
        result.outputs["results"] = str(write_csv(frame, out_dir / "results.csv", RESULT_COLUMNS))
        result.outputs["summary"] = str(out_dir / "summary.json")
        summary = result.to_dict()
        write_json(summary, out_dir / "summary.json")
        open_session.finish(result.status, result.exit_code, summary)
    return result


def _result(
    source: Path | None,
    rows_read: int,
    not_approved: int,
    outcome: ActOutcome,
    session: Session,
    dry_run: bool,
    started: float,
) -> ActResult:
    counts = outcome.counts()
    exit_code, status, error = EXIT_OK, "ok", ""
    if counts.get("failed") or counts.get("uncertain") or counts.get("check"):
        exit_code, status = EXIT_PARTIAL, "partial"
    fatal = outcome.fatal
    if fatal is not None:
        exit_code, error = fatal.exit_code, str(fatal)
        status = "interrupted" if isinstance(fatal, Interrupted) else "failed"
    return ActResult(
        source=source, rows_read=rows_read, not_approved=not_approved, outcome=outcome, calls=session.calls,
        budget=session.budget, dry_run=dry_run, status=status, exit_code=exit_code,
        duration_seconds=round(time.monotonic() - started, 2), error=error,
    )  # fmt: skip
