"""What runs the asset by itself: the nightly schedules, the accounts sensor, and the two-nights check.

* **One schedule per time zone** of the accounts file, at 02:30 there
  (``crmsync_nightly_America_Toronto``, …): each tick reads the file afresh
  and asks for one run per account of that zone — an invalid account's too,
  which fails at once saying why — tagged with the account and the night,
  keyed ``<account>/<night>`` so that a tick never launches one night twice,
  and none for an account whose previous run is still queued or running,
  unless that run has been so for more than :data:`STALE_HOURS` (a worker
  that died unnoticed: the new run meets the state store's lock if it did
  not). A new time zone in the file needs the code location reloaded; a new
  account in a known zone does not.
* **The sensor ``crmsync_accounts``** keeps the partitions equal to the
  accounts of the file (added, and removed when an account leaves it), and
  fails, naming them, while an account's time zone has no schedule.
* **The check ``no_account_failed_two_nights``** on the asset, reported by
  the sensor ``crmsync_failed_two_nights`` when its answer changes and after
  new runs have finished, so that it stays next to the latest materializations
  (and runnable by hand): it fails, with severity ERROR, naming each account
  whose last good night is two or more nights old — a night without a run
  counts as failed (see :mod:`crmsync.orchestrate.nights`) — each invalid
  account, each account no schedule runs, and a file that does not load. It
  reads Dagster's run records — not the state stores — because they hold every
  attempt, including the ones that never reached a store (a missing token
  variable, an export that is not there, a run killed by the executor), and
  because the daemon evaluating the sensor may not see the executors' disks.

Every reader of the file here goes through :func:`~crmsync.orchestrate.assets.read_accounts`:
a table that does not validate stops only its own account, and a file that
does not load keeps the last version that did (and fails the check).
"""

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from crmsync.errors import UsageError
from crmsync.jobs.accounts import Account
from crmsync.orchestrate.assets import (
    ACCOUNT_TAG,
    ACCOUNTS,
    EXIT_TAG,
    NIGHT_TAG,
    NO_RETRY_TAG,
    PARTITION_TAG,
    STATUS_TAG,
    LoadedAccounts,
    crmsync_nightly,
    read_accounts,
)
from crmsync.orchestrate.nights import FailedNights, RunOutcome, failed_nights

__all__ = [
    "CHECK",
    "NIGHTLY_JOB",
    "STALE_HOURS",
    "Flagged",
    "accounts_sensor",
    "ensure_partitions",
    "failed_nights_of",
    "nightly_job",
    "nightly_schedules",
    "schedule_names",
    "timezones_of",
    "two_nights_check",
    "two_nights_sensor",
    "unscheduled",
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
#: A run queued or running for longer than this no longer keeps the schedule from launching the account.
STALE_HOURS = 20

nightly_job = dg.define_asset_job(
    NIGHTLY_JOB,
    selection=dg.AssetSelection.assets(crmsync_nightly).without_checks(),
    description="One account's nightly run (choose the account as the partition).",
    # Run retries (dagster.yaml run_retries) would rerun exit-2 failures: exit 3 is retried by the step itself.
    tags={NO_RETRY_TAG: "false"},
    # every run of the job for a partition (a backfill, the launchpad) carries the account's tag at launch,
    # so the run queue's per-account limit holds it back before it starts
    config=dg.PartitionedConfig(
        partitions_def=ACCOUNTS,
        run_config_for_partition_key_fn=lambda _key: {},
        tags_for_partition_key_fn=lambda key: {ACCOUNT_TAG: key},
    ),
)


@dataclass(frozen=True)
class _Due:
    """An account a schedule asks a run for: a valid one, or an invalid one (whose run fails saying why)."""

    name: str
    night: date


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


def timezones_of(loaded: LoadedAccounts) -> list[str]:
    """The zones the file's accounts run in, an invalid account's own included when it is valid."""
    zones = [a.timezone for a in loaded.accounts.accounts]
    return zones + [bad.timezone for bad in loaded.accounts.invalid if bad.timezone]


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
        loaded = read_accounts(accounts_file)
        if loaded.problem:
            context.log.warning(loaded.problem)
        when = context.scheduled_execution_time or datetime.now(UTC)
        due = _due(loaded, timezone, when)
        ensure_partitions(context.instance, [d.name for d in due])
        busy = _in_progress(context.instance, when)
        requests, skipped = [], []
        for account in due:
            if account.name in busy:
                skipped.append(f"{account.name}: its previous run is still queued or running")
                continue
            night = account.night.isoformat()
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


def _due(loaded: LoadedAccounts, timezone: str, when: datetime) -> list[_Due]:
    """The accounts of ``timezone``, in the file's order; an invalid one's night is a valid one's."""
    due = [_Due(a.name, a.night(when)) for a in loaded.accounts.accounts if a.timezone == timezone]
    night = Account.night_in(timezone, when)
    return due + [
        _Due(bad.name, night) for bad in loaded.accounts.invalid if bad.name and bad.timezone == timezone
    ]


def _in_progress(instance: dg.DagsterInstance, now: datetime) -> set[str]:
    """Accounts with a run queued or running, whatever launched it (a schedule, a sensor, a person).

    A run in progress for more than :data:`STALE_HOURS` does not count: its worker most likely died
    without Dagster noticing (no run monitoring), and would keep the account from running for ever.
    """
    busy: set[str] = set()
    oldest = now.timestamp() - STALE_HOURS * 3600
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        ours = crmsync_nightly.key in (run.asset_selection or ())
        name = run.tags.get(ACCOUNT_TAG) or (run.tags.get(PARTITION_TAG) if ours else None)
        since = record.start_time or record.create_timestamp.timestamp()
        if name and since >= oldest:
            busy.add(name)
    return busy


def ensure_partitions(instance: dg.DagsterInstance, names: list[str]) -> None:
    """Add the partitions of the accounts ``names`` that the instance does not have yet."""
    missing = [n for n in names if not instance.has_dynamic_partition(ACCOUNTS.name or "", n)]
    if missing:
        instance.add_dynamic_partitions(ACCOUNTS.name or "", missing)


def unscheduled(loaded: LoadedAccounts, scheduled: Iterable[str]) -> list[str]:
    """The accounts whose time zone no schedule of the code location runs (it was loaded before that zone)."""
    zones = set(scheduled)
    return [
        f"{a.name}: no schedule runs its time zone {a.timezone} (reload the code location)"
        for a in loaded.accounts.accounts
        if a.timezone not in zones
    ]


def accounts_sensor(accounts_file: str, scheduled: Sequence[str]) -> dg.SensorDefinition:
    @dg.sensor(
        name="crmsync_accounts",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps the partitions of crmsync_nightly equal to the accounts of the accounts file; "
        "fails while an account's time zone has no schedule.",
    )
    def sync_partitions(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        loaded = read_accounts(accounts_file)
        names = loaded.accounts.all_names
        known = set(context.instance.get_dynamic_partitions(ACCOUNTS.name or ""))
        added, removed = [n for n in names if n not in known], sorted(known - set(names))
        problems = unscheduled(loaded, scheduled) + ([loaded.problem] if loaded.problem else [])
        if problems:  # the partitions first, then fail loudly: the tick shows the accounts
            if added and not loaded.problem:
                context.instance.add_dynamic_partitions(ACCOUNTS.name or "", added)
            raise RuntimeError("; ".join(problems))
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


@dataclass(frozen=True)
class Flagged:
    """One line of the check: an account (or the file) and what is wrong."""

    name: str
    text: str
    key: str  # what the sensor compares from one evaluation to the next


def failed_nights_of(
    instance: dg.DagsterInstance, loaded: LoadedAccounts, scheduled: Iterable[str], now: datetime
) -> tuple[list[Flagged], float]:
    """What the check names, and the newest run's end: accounts whose last good night is two or more
    nights old (up to the night ``now`` is in their zone), invalid accounts, unscheduled ones, a file
    that does not load."""
    flagged: list[Flagged] = []
    newest = 0.0
    if loaded.problem:
        flagged.append(Flagged("(the accounts file)", loaded.problem, "file"))
    for account in loaded.accounts.accounts:
        outcomes = list(_outcomes(instance, account))
        newest = max([newest, *(o.finished_at for o in outcomes)])
        found: FailedNights = failed_nights(account.name, outcomes, tonight=account.night(now))
        if found.flagged:
            flagged.append(Flagged(account.name, found.describe(), found.nights[0].isoformat()))
    for bad in loaded.accounts.invalid:
        flagged.append(Flagged(bad.name or bad.label, f"{bad.describe()} (it never runs)", "invalid"))
    for line in unscheduled(loaded, scheduled):
        flagged.append(Flagged(line.split(":", 1)[0], line, "unscheduled"))
    return flagged, newest


def _outcomes(instance: dg.DagsterInstance, account: Account) -> Iterator[RunOutcome]:
    """The account's runs, newest first: tagged with it, or runs of the asset for its partition (a
    launch from the asset graph that failed before the asset tagged it)."""
    records: dict[str, dg.RunRecord] = {}
    for tags in ({ACCOUNT_TAG: account.name}, {PARTITION_TAG: account.name}):
        for record in instance.get_run_records(
            dg.RunsFilter(tags=tags, statuses=FINISHED + IN_PROGRESS), limit=HISTORY
        ):
            run = record.dagster_run
            if ACCOUNT_TAG in tags or crmsync_nightly.key in (run.asset_selection or ()):
                records[run.run_id] = record
    for record in sorted(records.values(), key=lambda r: r.create_timestamp, reverse=True)[:HISTORY]:
        run = record.dagster_run
        exit_code = run.tags.get(EXIT_TAG, "")
        yield RunOutcome(
            night=_night(
                run.tags.get(NIGHT_TAG, ""), record.start_time or record.create_timestamp.timestamp(), account
            ),
            succeeded=run.status == dg.DagsterRunStatus.SUCCESS,
            busy=run.tags.get(STATUS_TAG) == "busy",
            exit_code=int(exit_code) if exit_code.isdigit() else None,
            status=run.tags.get(STATUS_TAG, str(run.status.value).lower()),
            finished_at=record.end_time or 0.0,
            finished=run.status in FINISHED,
        )


def _night(tagged: str, started: float, account: Account) -> date:
    try:
        return date.fromisoformat(tagged)
    except ValueError:
        return account.night(datetime.fromtimestamp(started, UTC))


def _verdict(flagged: list[Flagged]) -> tuple[bool, str, dict[str, Any]]:
    """passed, description and metadata of the check, for the check itself and for the sensor."""
    lines = [f"- {f.text}" for f in flagged]
    metadata = {
        "accounts": dg.MetadataValue.json([f.name for f in flagged]),
        "details": dg.MetadataValue.md("\n".join(lines) or "none"),
    }
    return not flagged, "\n".join(lines) or "no account failed two nights in a row", metadata


def two_nights_check(accounts_file: str, scheduled: Sequence[str] = ()) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=crmsync_nightly,
        name=CHECK,
        description="Fails (ERROR) naming every account whose last good night is two or more nights old, "
        "and every account that cannot run (invalid, or in a time zone no schedule runs).",
    )
    def no_account_failed_two_nights(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        found, _ = _evaluate(context.instance, accounts_file, scheduled)
        passed, description, metadata = _verdict(found)
        return dg.AssetCheckResult(
            passed=passed, severity=dg.AssetCheckSeverity.ERROR, description=description, metadata=metadata
        )

    return no_account_failed_two_nights


def _evaluate(
    instance: dg.DagsterInstance, accounts_file: str, scheduled: Sequence[str]
) -> tuple[list[Flagged], float]:
    try:
        loaded = read_accounts(accounts_file)
    except UsageError as error:  # the file never loaded in this process: that is the finding
        return [Flagged("(the accounts file)", f"the accounts file does not load: {error}", "file")], 0.0
    return failed_nights_of(instance, loaded, scheduled or timezones_of(loaded), datetime.now(UTC))


def two_nights_sensor(accounts_file: str, scheduled: Sequence[str] = ()) -> dg.SensorDefinition:
    @dg.sensor(
        name="crmsync_failed_two_nights",
        minimum_interval_seconds=600,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Reports the check {CHECK} when the accounts it names change, and after new runs.",
    )
    def report(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        flagged, newest = _evaluate(context.instance, accounts_file, scheduled)
        names = sorted([f.name, f.key] for f in flagged)
        before = json.loads(context.cursor) if context.cursor else {}
        before = before if isinstance(before, dict) else {}
        if before.get("flagged") == names and before.get("newest", 0.0) >= newest:
            return dg.SkipReason(f"no new run; {len(flagged)} accounts flagged")
        passed, description, metadata = _verdict(flagged)
        evaluation = dg.AssetCheckEvaluation(
            asset_key=crmsync_nightly.key, check_name=CHECK, passed=passed, metadata=metadata,
            severity=dg.AssetCheckSeverity.ERROR, description=description,
        )  # fmt: skip
        return dg.SensorResult(
            asset_events=[evaluation], cursor=json.dumps({"flagged": names, "newest": newest})
        )

    return report
