"""The asset ``crmsync_nightly``: one account's nightly run per partition.

**One asset per account run, not one per stage.** A night is one locked unit
over one state store: the lock, the call budget, the paced client and the
journal live for the whole run, and each stage reads what the one before left
in the store (the plan is made from the snapshot just refreshed, the morning
files from the snapshot the writes just updated). Stages as assets would hand
these across processes — each would retake the lock, rebuild the client and
split the budget — and a retry of one stage could run on a snapshot another
run has changed since. So the partition is the account and a materialization
is a whole ``crmsync run``, crash-safe and resumable as it already is; the
stages show in the run's log.

Each materialization records the run's figures as metadata (created, updated,
failed, deferred, api_calls, findings by severity, the report's path) and
tags its Dagster run with the account, the night, the exit code and the
status. A run that succeeded (ok, or partial: some rows were rejected or
failed, which the CRM's administrator fixes) materializes; exit 3 with Helcim
unreachable is retried after a growing delay, up to the account's
``retries``; everything else — exit 2 (bad file or settings, an invalid
account table, two accounts on one token, a busy state store, the mass-change
guard), a refused token, a run 429s stopped, a stop — fails the step at once,
without retries, and tags the run so that run retries do not re-run it either.
The run config ``allow_mass_change: true`` lets one materialization write what
the mass-change guard refused.
"""

import logging
import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg

from crmsync.console import LogProgress, RedactingFilter
from crmsync.errors import EXIT_USAGE, UsageError
from crmsync.jobs.accounting import OUTCOMES
from crmsync.jobs.accounts import Account, AccountRun, AccountsFile, load_accounts, run_account
from crmsync.reconcile.rules import SEVERITIES
from crmsync.stopping import StopSignal, stop_on_signals

__all__ = [
    "ACCOUNTS",
    "ACCOUNT_TAG",
    "EXIT_TAG",
    "NIGHTLY",
    "NIGHT_TAG",
    "NO_RETRY_TAG",
    "PARTITION_TAG",
    "STATUS_TAG",
    "CrmsyncAccounts",
    "LoadedAccounts",
    "NightlyConfig",
    "crmsync_logs_to",
    "crmsync_nightly",
    "read_accounts",
    "run_metadata",
]

NIGHTLY = "crmsync_nightly"
#: The partitions: one per account of the accounts file (kept in step by the sensor crmsync_accounts).
ACCOUNTS = dg.DynamicPartitionsDefinition(name="crmsync_accounts")
#: Run tags. ACCOUNT_TAG is the key for the run queue's per-account limit (README: deploying on Dagster).
ACCOUNT_TAG = "crmsync/account"
NIGHT_TAG = "crmsync/night"
EXIT_TAG = "crmsync/exit_code"
STATUS_TAG = "crmsync/status"
#: Dagster's own: the partition of every partitioned run, whatever launched it (the asset graph too).
PARTITION_TAG = "dagster/partition"
#: Dagster's own: false keeps run retries (dagster.yaml run_retries) from re-running a failed step.
NO_RETRY_TAG = "dagster/retry_on_asset_or_op_failure"
COUNTS = ("rows_read", *OUTCOMES)


@dataclass(frozen=True)
class LoadedAccounts:
    """The accounts file as read now, or the last version that loaded when it does not (``problem`` says why)."""

    accounts: AccountsFile
    problem: str = ""


_last_loaded: dict[str, AccountsFile] = {}
_last_loaded_lock = threading.Lock()


def read_accounts(path: Path | str) -> LoadedAccounts:
    """The accounts file, each invalid table an invalid account of its own (the others run on).

    A file that does not load at all (not TOML, a bad ``[defaults]``, gone) gives the last version this
    process loaded, with the reason in ``problem`` (the check fails on it); with none, it raises.
    """
    key = str(path)
    try:
        accounts = load_accounts(Path(path), partial=True)
    except UsageError as error:
        with _last_loaded_lock:
            last = _last_loaded.get(key)
        if last is None:
            raise
        return LoadedAccounts(
            last, f"the accounts file does not load ({error}); its last version that loaded is used"
        )
    with _last_loaded_lock:
        _last_loaded[key] = accounts
    return LoadedAccounts(accounts)


class CrmsyncAccounts(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The accounts file, read afresh by every run; ``out_root`` set: each account writes to ``out_root/<name>/``."""

    accounts_file: str
    out_root: str = ""

    def load(self) -> LoadedAccounts:
        return read_accounts(self.accounts_file)

    def out_dir(self, account: Account, night: date) -> Path:
        return Path(self.out_root) / account.name if self.out_root else account.out_dir(night)


class NightlyConfig(dg.Config):
    """Run config of one materialization (never a standing setting: the schedules give none)."""

    #: This one run may write a plan the mass-change guard refused (a new e-mail domain for everyone).
    allow_mass_change: bool = False


@dg.asset(
    name=NIGHTLY,
    partitions_def=ACCOUNTS,
    group_name="crmsync",
    kinds={"python"},
    description="One merchant account's nightly crmsync run (CRM export ↔ Helcim, and the morning report).",
)
def crmsync_nightly(
    context: dg.AssetExecutionContext,
    crmsync: CrmsyncAccounts,
    config: NightlyConfig,
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    name, run_id = context.partition_key, context.run.run_id
    context.instance.add_run_tags(run_id, {ACCOUNT_TAG: name})  # first: a run that fails now still counts
    account = _account(context, crmsync, name)
    night = _night_of(context.run.tags, account)
    context.instance.add_run_tags(run_id, {NIGHT_TAG: night.isoformat()})
    out_dir = crmsync.out_dir(account, night)
    context.log.info(f"{account.name}: the night of {night}, outputs in {out_dir}")
    if config.allow_mass_change:
        context.log.warning(f"{account.name}: this run may write what the mass-change guard would refuse")
    with crmsync_logs_to(context.log, account), stop_on_signals(StopSignal()) as stop:
        outcome = run_account(
            account, os.environ, out_dir, stop=stop, progress=LogProgress(),
            allow_mass_change=config.allow_mass_change,
        )  # fmt: skip
    context.instance.add_run_tags(run_id, {EXIT_TAG: str(outcome.exit_code), STATUS_TAG: outcome.status})
    metadata = run_metadata(outcome)
    if outcome.succeeded:
        context.log.info(f"{account.name}: {outcome.status} (exit {outcome.exit_code})")
        return dg.MaterializeResult(metadata=metadata)
    if outcome.retriable and context.retry_number < account.retries:
        wait = backoff(account.retry_delay, context.retry_number)
        context.log.warning(
            f"{account.name}: Helcim could not be reached (exit {outcome.exit_code}): {outcome.error}; "
            f"trying again in {wait:.0f} s (retry {context.retry_number + 1} of {account.retries})"
        )
        raise dg.RetryRequested(max_retries=account.retries, seconds_to_wait=wait)
    _fail(context, f"{account.name}: exit {outcome.exit_code} ({outcome.status}): {outcome.error}", metadata)


def _account(context: dg.AssetExecutionContext, crmsync: CrmsyncAccounts, name: str) -> Account:
    """The partition's account; one the file does not hold as a valid account fails the run (exit 2)."""
    try:
        loaded = crmsync.load()
        account = loaded.accounts.get(name)
    except UsageError as error:
        context.instance.add_run_tags(context.run.run_id, {EXIT_TAG: str(EXIT_USAGE), STATUS_TAG: "invalid"})
        metadata = {"status": "invalid", "exit_code": EXIT_USAGE, "error": str(error)}
        _fail(context, f"{name}: exit {EXIT_USAGE} (invalid): {error}", metadata)
    if loaded.problem:
        context.log.warning(loaded.problem)
    return account


def _fail(context: dg.AssetExecutionContext, description: str, metadata: dict[str, Any]) -> NoReturn:
    """Fail the step for good: no step retry, and none by run retries whatever launched the run."""
    context.instance.add_run_tags(context.run.run_id, {NO_RETRY_TAG: "false"})
    raise dg.Failure(description=description, metadata=metadata, allow_retries=False)


def backoff(delay: float, retry_number: int) -> float:
    """``delay`` doubled for each retry so far, ±25 % so that accounts hit by one outage spread out."""
    return float(delay * 2**retry_number * random.uniform(0.75, 1.25))


def _night_of(tags: dict[str, str] | Any, account: Account) -> date:
    """The night the schedule launched the run for (its tag), else the one it starts in."""
    tagged = tags.get(NIGHT_TAG, "")
    try:
        return date.fromisoformat(tagged)
    except ValueError:
        return account.night(datetime.now(UTC))


def run_metadata(run: AccountRun) -> dict[str, Any]:
    """The figures of one run, as the materialization (or the failure) records them."""
    summary = run.summary
    metadata: dict[str, Any] = {"status": str(summary.get("status", run.status)), "exit_code": run.exit_code}
    metadata |= {name: int(summary.get(name, 0)) for name in COUNTS}
    metadata["api_calls"] = int(summary.get("api_calls", 0))
    if run.result is not None and run.result.reconciliation is not None:
        found = run.findings_by_severity
        metadata |= {f"findings_{severity}": found.get(severity, 0) for severity in SEVERITIES}
    report = summary.get("outputs", {}).get("report")
    if report:
        metadata["report"] = dg.MetadataValue.path(str(report))
    metadata["out_dir"] = dg.MetadataValue.path(str(run.out_dir))
    if run.crm_file is not None:
        metadata["crm_file"] = dg.MetadataValue.path(str(run.crm_file))
    if run.error:
        metadata["error"] = run.error
    return metadata


@contextmanager
def crmsync_logs_to(log: dg.DagsterLogManager, account: Account) -> Iterator[None]:
    """crmsync's log lines (its stages and progress) into the run's log, the token filtered out."""
    handler = _DagsterHandler(log)
    raw = os.environ.get(account.token_env, "")  # Account.token strips what surrounds it: both go
    handler.addFilter(RedactingFilter(sorted({raw, raw.strip()}, key=len, reverse=True)))
    logger = logging.getLogger("crmsync")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class _DagsterHandler(logging.Handler):
    def __init__(self, log: dg.DagsterLogManager) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.log(record.levelno, self.format(record))
