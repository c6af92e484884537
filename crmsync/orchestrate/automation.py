"""What runs the asset by itself: the nightly schedules, the accounts sensor, and the two-nights check.

* **One schedule per time zone** of the accounts file, at 02:30 there
  (``crmsync_nightly_America_Toronto``, …): each tick reads the file afresh
  and asks for one run per account of that zone, tagged with the account and
  the night, keyed ``<account>/<night>`` so that a tick never launches one
  night twice, and none for an account whose previous run is still queued or
  running. A new time zone in the file needs the code location reloaded; a
  new account in a known zone does not.
* **The sensor ``crmsync_accounts``** keeps the partitions equal to the
  accounts of the file (added, and removed when an account leaves it).
* **The check ``no_account_failed_two_nights``** on the asset, reported by
  the sensor ``crmsync_failed_two_nights`` when its answer changes and after
  new runs have finished, so that it stays next to the latest materializations
  (and runnable by hand): it fails, with severity ERROR, naming each account whose
  runs failed on the two latest nights that had runs (see
  :mod:`crmsync.orchestrate.nights`). It reads Dagster's run records — not
  the state stores — because they hold every attempt, including the ones that
  never reached a store (a missing token variable, an export that is not
  there, a run killed by the executor), and because the daemon evaluating the
  sensor may not see the executors' disks.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from crmsync.jobs.accounts import Account, AccountsFile, load_accounts
from crmsync.orchestrate.assets import (
    ACCOUNT_TAG,
    ACCOUNTS,
    EXIT_TAG,
    NIGHT_TAG,
    STATUS_TAG,
    crmsync_nightly,
)
from crmsync.orchestrate.nights import FailedNights, RunOutcome, failed_nights

__all__ = [
    "CHECK",
    "NIGHTLY_JOB",
    "accounts_sensor",
    "failed_nights_of",
    "nightly_job",
    "nightly_schedules",
    "two_nights_check",
    "two_nights_sensor",
]

NIGHTLY_JOB = "crmsync_nightly_job"
CHECK = "no_account_failed_two_nights"
CRON = "30 2 * * *"  # 02:30 in each account's time zone
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
#: How many of an account's latest runs the check reads (retries are inside one run).
HISTORY = 30

nightly_job = dg.define_asset_job(
    NIGHTLY_JOB,
    selection=dg.AssetSelection.assets(crmsync_nightly).without_checks(),
    description="One account's nightly run (choose the account as the partition).",
    # Run retries (dagster.yaml run_retries) would rerun exit-2 failures: exit 3 is retried by the step itself.
    tags={"dagster/retry_on_asset_or_op_failure": "false"},
)


def nightly_schedules(accounts_file: str, timezones: Sequence[str]) -> list[dg.ScheduleDefinition]:
    """One schedule per time zone: 02:30 there, every account of that zone once."""
    names = schedule_names(timezones)
    return [_schedule(accounts_file, tz, names[tz]) for tz in sorted(names)]


def schedule_names(timezones: Iterable[str]) -> dict[str, str]:
    """``crmsync_nightly_<zone>``: ``/`` and ``-`` as ``_``, an offset's sign spelled out (Etc/GMT+5 is not
    Etc/GMT-5); two zones that would still share a name get a short hash of their own each."""
    spelled = {tz: re.sub(r"-(?=\d)", "_minus_", re.sub(r"\+(?=\d)", "_plus_", tz)) for tz in set(timezones)}
    names = {tz: "crmsync_nightly_" + re.sub(r"[^A-Za-z0-9_]", "_", text) for tz, text in spelled.items()}
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    return {
        tz: f"{name}_{hashlib.sha256(tz.encode()).hexdigest()[:6]}" if name in shared else name
        for tz, name in names.items()
    }


def _schedule(accounts_file: str, timezone: str, name: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        cron_schedule=CRON,
        execution_timezone=timezone,
        job=nightly_job,
        description=f"02:30 in {timezone}: the nightly run of each account whose timezone is {timezone}.",
        default_status=dg.DefaultScheduleStatus.STOPPED,  # a person turns it on (after crmsync accounts check)
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        accounts = load_accounts(_path(accounts_file))
        due = [a for a in accounts.accounts if a.timezone == timezone]
        busy = _in_progress(context.instance)
        _ensure_partitions(context.instance, [a.name for a in due])
        when = context.scheduled_execution_time or datetime.now(UTC)
        requests, skipped = [], []
        for account in due:
            if account.name in busy:
                skipped.append(f"{account.name}: its previous run is still queued or running")
                continue
            night = account.night(when).isoformat()
            requests.append(
                dg.RunRequest(
                    run_key=f"{account.name}/{night}",
                    partition_key=account.name,
                    tags={ACCOUNT_TAG: account.name, NIGHT_TAG: night},
                )
            )
        for reason in skipped:
            context.log.info(f"skipped {reason}")
        return requests or dg.SkipReason("; ".join(skipped) or f"no account in {timezone} any more")

    return nightly


def _path(accounts_file: str) -> Path:
    return Path(accounts_file)


def _in_progress(instance: dg.DagsterInstance) -> set[str]:
    """Accounts with a run queued or running, whatever launched it (a schedule, a sensor, a person)."""
    busy: set[str] = set()
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        ours = crmsync_nightly.key in (run.asset_selection or ())
        name = run.tags.get(ACCOUNT_TAG) or (run.tags.get("dagster/partition") if ours else None)
        if name:
            busy.add(name)
    return busy


def _ensure_partitions(instance: dg.DagsterInstance, names: list[str]) -> None:
    missing = [n for n in names if not instance.has_dynamic_partition(ACCOUNTS.name or "", n)]
    if missing:
        instance.add_dynamic_partitions(ACCOUNTS.name or "", missing)


def accounts_sensor(accounts_file: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="crmsync_accounts",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps the partitions of crmsync_nightly equal to the accounts of the accounts file.",
    )
    def sync_partitions(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        names = load_accounts(_path(accounts_file)).names
        known = set(context.instance.get_dynamic_partitions(ACCOUNTS.name or ""))
        added, removed = [n for n in names if n not in known], sorted(known - set(names))
        if not added and not removed:
            return dg.SkipReason(f"the partitions are the {len(names)} accounts of {accounts_file}")
        requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if added:
            requests.append(ACCOUNTS.build_add_request(added))
        if removed:
            requests.append(ACCOUNTS.build_delete_request(removed))
        return dg.SensorResult(dynamic_partitions_requests=requests)

    return sync_partitions


# -- failed two nights in a row ----------------------------------------------------------------


def failed_nights_of(instance: dg.DagsterInstance, accounts: AccountsFile) -> list[FailedNights]:
    """Every account's run of failed nights, from the runs Dagster recorded (newest first)."""
    return [failed_nights(name, runs) for name, runs in _outcomes_by_account(instance, accounts).items()]


def _outcomes_by_account(instance: dg.DagsterInstance, accounts: AccountsFile) -> dict[str, list[RunOutcome]]:
    return {account.name: list(_outcomes(instance, account)) for account in accounts.accounts}


def _outcomes(instance: dg.DagsterInstance, account: Account) -> Iterator[RunOutcome]:
    records = instance.get_run_records(
        dg.RunsFilter(tags={ACCOUNT_TAG: account.name}, statuses=FINISHED), limit=HISTORY
    )
    for record in records:
        tags = record.dagster_run.tags
        exit_code = tags.get(EXIT_TAG, "")
        yield RunOutcome(
            night=_night(tags.get(NIGHT_TAG, ""), record.start_time, account),
            succeeded=record.dagster_run.status == dg.DagsterRunStatus.SUCCESS,
            busy=tags.get(STATUS_TAG) == "busy",
            exit_code=int(exit_code) if exit_code.isdigit() else None,
            status=tags.get(STATUS_TAG, str(record.dagster_run.status.value).lower()),
            finished_at=record.end_time or 0.0,
        )


def _night(tagged: str, started: float | None, account: Account) -> date:
    try:
        return date.fromisoformat(tagged)
    except ValueError:
        return account.night(datetime.fromtimestamp(started or 0, UTC))


def _verdict(flagged: list[FailedNights]) -> tuple[bool, str, dict[str, Any]]:
    """passed, description and metadata of the check, for the check itself and for the sensor."""
    lines = [f"- {f.describe()}" for f in flagged]
    metadata = {
        "accounts": dg.MetadataValue.json([f.account for f in flagged]),
        "details": dg.MetadataValue.md("\n".join(lines) or "none"),
    }
    return not flagged, "\n".join(lines) or "no account failed two nights in a row", metadata


def two_nights_check(accounts_file: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=crmsync_nightly,
        name=CHECK,
        description="Fails (ERROR) naming every account whose runs failed on its two latest nights.",
    )
    def no_account_failed_two_nights(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        found = failed_nights_of(context.instance, load_accounts(_path(accounts_file)))
        passed, description, metadata = _verdict([f for f in found if f.flagged])
        return dg.AssetCheckResult(
            passed=passed, severity=dg.AssetCheckSeverity.ERROR, description=description, metadata=metadata
        )

    return no_account_failed_two_nights


def two_nights_sensor(accounts_file: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="crmsync_failed_two_nights",
        minimum_interval_seconds=600,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Reports the check {CHECK} when the accounts it names change, and after new runs.",
    )
    def report(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        outcomes = _outcomes_by_account(context.instance, load_accounts(_path(accounts_file)))
        flagged = [f for f in (failed_nights(n, runs) for n, runs in outcomes.items()) if f.flagged]
        newest = max((run.finished_at for runs in outcomes.values() for run in runs), default=0.0)
        names = sorted([f.account, f.nights[0].isoformat()] for f in flagged)
        before = json.loads(context.cursor) if context.cursor else {}
        before = before if isinstance(before, dict) else {}
        if before.get("flagged") == names and before.get("newest", 0.0) >= newest:
            return dg.SkipReason(f"no new run; {len(flagged)} accounts failed two nights in a row")
        passed, description, metadata = _verdict(flagged)
        evaluation = dg.AssetCheckEvaluation(
            asset_key=crmsync_nightly.key, check_name=CHECK, passed=passed, metadata=metadata,
            severity=dg.AssetCheckSeverity.ERROR, description=description,
        )  # fmt: skip
        return dg.SensorResult(
            asset_events=[evaluation], cursor=json.dumps({"flagged": names, "newest": newest})
        )

    return report
