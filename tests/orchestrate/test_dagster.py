"""The Dagster code location against three real sandboxes, run in-process through Dagster's own API.

north is a plain account, west's sandbox injects faults, and east is the
account whose token the accounts file gets wrong: it names north's variable.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.definitions.schedule_definition import ScheduleExecutionData

from crmsync.errors import UsageError
from crmsync.jobs.accounts import load_accounts
from crmsync.orchestrate.assets import (
    ACCOUNT_TAG,
    ACCOUNTS,
    EXIT_TAG,
    NIGHT_TAG,
    NIGHTLY,
    NO_RETRY_TAG,
    PARTITION_TAG,
    STATUS_TAG,
    CrmsyncAccounts,
    crmsync_logs_to,
    crmsync_nightly,
    read_accounts,
)
from crmsync.orchestrate.automation import (
    CHECK,
    CRON,
    NIGHTLY_JOB,
    STALE_HOURS,
    failed_nights_of,
    schedule_names,
    timezones_of,
    two_nights_check,
    two_nights_sensor,
)
from crmsync.orchestrate.fanout import AccountLine, fanout, instance_at, line_of, run_worker, table
from crmsync.orchestrate.location import build_definitions
from crmsync.state import open_state
from helcim_sandbox.launcher import SandboxProcess, running_sandbox
from tests.jobs.test_plan_cli import row, write_export

ROOT = Path(__file__).resolve().parents[2]
ROWS = {"north": 5, "west": 4, "east": 3}
TOKENS = {"north": "north-token", "west": "west-token", "east": "east-token"}
WEST_FAULTS = "error500=0.2,seed=3"
TIMEZONES = {"east": "America/Halifax", "north": "America/Toronto", "west": "Pacific/Kiritimati"}  # UTC+14
OUTPUTS = ("summary.json", "results.csv", "plan.json", "rejects.csv", "reconciliation/report.html",
           "reconciliation/findings.csv", "crm_import/new_customers.csv")  # fmt: skip


@dataclass
class Fleet:
    folder: Path
    accounts_file: Path
    sandboxes: dict[str, SandboxProcess]

    def writes(self, name: str) -> dict[str, Any]:
        ops = self.sandboxes[name].stats()["by_operation"]
        return {k: v for k, v in ops.items() if k in ("create-customer", "update-customer")}

    def creates(self, name: str) -> int:
        return sum(self.sandboxes[name].stats()["by_operation"].get("create-customer", {}).values())

    def job(self, out_root: Path | None = None) -> dg.JobDefinition:
        return build_definitions(self.accounts_file, out_root=out_root).resolve_job_def(NIGHTLY_JOB)


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SandboxProcess]]:
    folder = tmp_path_factory.mktemp("sandboxes")
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(running_sandbox(tokens=(token,), limits="off", workdir=folder))
            for name, token in TOKENS.items()
        }


@pytest.fixture
def fleet(tmp_path: Path, sandboxes: dict[str, SandboxProcess], monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """Empty sandboxes, a fresh folder of exports and state stores, and the accounts file over them."""
    for name, sandbox in sandboxes.items():
        sandbox.configure(
            limits="off", faults=WEST_FAULTS if name == "west" else "", duplicate_codes="refuse"
        )
        sandbox.reset()
    (tmp_path / "exports").mkdir()
    for name, count in ROWS.items():
        rows = [row(f"{name.upper()}-{n}", f"Person {n} of {name}") for n in range(count)]
        write_export(tmp_path / "exports" / f"{name}-2026-11-28.csv", rows)
    accounts = [  # east first: its failure comes before the others run
        ("east", TIMEZONES["east"], "FLEET_NORTH_TOKEN"),  # wrong: north's variable
        ("north", TIMEZONES["north"], "FLEET_NORTH_TOKEN"),
        ("west", TIMEZONES["west"], "FLEET_WEST_TOKEN"),
    ]
    text = '[defaults]\nrate_limits = "off"\ntimeout = 5\nretries = 1\nretry_delay = 0.1\ncrm = "exports/{name}-*.csv"\n'
    for name, tz, variable in accounts:
        text += f'\n[[account]]\nname = "{name}"\nurl = "{sandboxes[name].base_url}"\n'
        text += f'token_env = "{variable}"\ntimezone = "{tz}"\n'
    (tmp_path / "accounts.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("FLEET_NORTH_TOKEN", TOKENS["north"])
    monkeypatch.setenv("FLEET_WEST_TOKEN", TOKENS["west"])
    return Fleet(tmp_path, tmp_path / "accounts.toml", sandboxes)


def evaluate(
    schedule: dg.ScheduleDefinition,
    instance: dg.DagsterInstance,
    when: datetime,
    repo: dg.RepositoryDefinition | None = None,
) -> ScheduleExecutionData:
    """One tick, its context closed at once: an open one, collected later, would put back Dagster's
    state storage of an instance another test has deleted."""
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=repo
    ) as context:
        return schedule.evaluate_tick(context)


def sense(
    sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None = None
) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return sensor.evaluate_tick(context)  # type: ignore[return-value]


def temp_instance(folder: Path, names: list[str]) -> dg.DagsterInstance:
    instance = instance_at(folder)
    instance.add_dynamic_partitions(ACCOUNTS.name or "", names)
    return instance


def test_fanout_runs_every_account_and_a_failed_one_stops_no_other(fleet: Fleet) -> None:
    out = fleet.folder / "out"
    local_dates = {name: {datetime.now(ZoneInfo(tz)).date().isoformat()} for name, tz in TIMEZONES.items()}
    lines = {line.account: line for line in fanout(fleet.accounts_file, out, jobs=2)}
    for name, tz in TIMEZONES.items():
        local_dates[name].add(datetime.now(ZoneInfo(tz)).date().isoformat())  # a run across midnight
    assert (lines["east"].status, lines["east"].exit_code, lines["east"].retries) == ("failed", 3, 0)
    assert "FLEET_NORTH_TOKEN (the token_env of account east)" in lines["east"].error
    for name in ("north", "west"):
        line = lines[name]
        assert (line.status, line.exit_code, line.figures["created"]) == ("ok", 0, ROWS[name]), line
        assert line.figures["api_calls"] >= ROWS[name] + 1
        assert {"findings_critical", "findings_warning", "findings_info"} <= set(line.figures)
        for output in OUTPUTS:
            assert (out / name / output).is_file(), (name, output)
        assert json.loads((out / name / "summary.json").read_text())["created"] == ROWS[name]
        report = json.loads((out / name / "reconciliation" / "summary.json").read_text())
        assert report["today"] in local_dates[name]  # the account's own date, not the machine's
        assert fleet.creates(name) >= ROWS[name]
    assert fleet.sandboxes["west"].stats()["faults_injected"]  # its run succeeded through the faults
    assert json.loads((out / "east" / "summary.json").read_text())["exit_code"] == 3
    assert json.loads((out / "fanout.json").read_text())["exit_code"] == 3
    rows = table(list(lines.values()))
    assert len(rows) == 1 + 3 + 1
    assert rows[-1] == "3 accounts: 1 failed, 2 ok; exit 3 (the worst)"

    with instance_at(out) as instance:  # what Dagster itself recorded
        east_runs = instance.get_run_records(dg.RunsFilter(tags={ACCOUNT_TAG: "east"}))
        assert [r.dagster_run.status for r in east_runs] == [dg.DagsterRunStatus.FAILURE]
        assert east_runs[0].dagster_run.tags[EXIT_TAG] == "3"
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(NIGHTLY), asset_partitions=["north"]), limit=1
        ).records[0]
        assert latest.asset_materialization is not None
        metadata = latest.asset_materialization.metadata
        assert (metadata["created"].value, metadata["exit_code"].value) == (ROWS["north"], 0)
        assert str(metadata["report"].value).endswith("north/reconciliation/report.html")

    before = {name: fleet.writes(name) for name in ("north", "west")}
    again = {line.account: line for line in fanout(fleet.accounts_file, out, jobs=3)}
    for name in ("north", "west"):
        assert (again[name].exit_code, again[name].figures["created"], again[name].figures["updated"]) == (
            0,
            0,
            0,
        )
        assert fleet.writes(name) == before[name]  # the second night writes nothing to Helcim
    assert again["east"].exit_code == 3


def test_helcim_unreachable_is_retried_later_and_exit_2_never_is(fleet: Fleet) -> None:
    fleet.sandboxes["north"].configure(faults="error503=1,count=6")  # the first call's 6 sends, then healthy
    (fleet.folder / "exports" / "west-2026-11-28.csv").unlink()  # west's crm glob matches nothing: exit 2
    job = fleet.job(out_root=fleet.folder / "out")
    with temp_instance(fleet.folder / "dagster", ["north", "west"]) as instance:
        north = job.execute_in_process(partition_key="north", instance=instance, raise_on_error=False)
        west = job.execute_in_process(partition_key="west", instance=instance, raise_on_error=False)
    retried = line_of("north", north)
    assert (north.success, retried.exit_code, retried.retries, retried.figures["created"]) == (True, 0, 1, 5)
    assert fleet.creates("north") == ROWS["north"]
    refused = line_of("west", west)
    assert (west.success, refused.exit_code, refused.retries) == (False, 2, 0)
    assert "no file matches its crm pattern" in refused.error


def test_two_launches_for_one_account_at_once_never_both_run(fleet: Fleet) -> None:
    """One launch in a worker process (as a deployment would), the other in this one, on one instance."""
    fleet.sandboxes["north"].configure(faults="latency_ms=1000-1200")  # a run of several seconds
    out = fleet.folder / "out"
    defs = build_definitions(fleet.accounts_file, out_root=out)
    with temp_instance(out, ["north", "east", "west"]) as instance:
        command = [sys.executable, "-m", "crmsync.orchestrate.fanout", str(fleet.accounts_file)]
        (out / ".logs").mkdir(parents=True)
        with (out / ".logs" / "north.log").open("wb") as log:
            first = subprocess.Popen(
                [*command, "--out", str(out), "--worker", "north"], stdout=log, stderr=log
            )
        started = _wait_for_run(instance, "north")
        _wait_for_a_call(fleet.sandboxes["north"])  # the first launch holds the state store now
        schedule = defs.resolve_schedule_def("crmsync_nightly_America_Toronto")
        tick = evaluate(schedule, instance, datetime.now(ZoneInfo("UTC")))
        assert not tick.run_requests  # Dagster's own check: north's run is in progress
        assert "north: its previous run is still queued or running" in (tick.skip_message or "")
        second = defs.resolve_job_def(NIGHTLY_JOB).execute_in_process(
            partition_key="north", instance=instance, tags={ACCOUNT_TAG: "north"}, raise_on_error=False
        )
        assert first.wait(timeout=120) in (0, 2)
        runs = {
            r.dagster_run.run_id: r.dagster_run
            for r in instance.get_run_records(dg.RunsFilter(tags={ACCOUNT_TAG: "north"}))
        }
    assert started in runs
    assert (runs[started].tags[STATUS_TAG], runs[started].tags[EXIT_TAG]) == ("ok", "0")
    assert (runs[second.run_id].tags[STATUS_TAG], runs[second.run_id].tags[EXIT_TAG]) == ("busy", "2")
    loser = line_of("north", second)
    assert (second.success, loser.retries, loser.exit_code) == (False, 0, 2)  # refused at once, not retried
    assert "another crmsync run is using the state store" in loser.error
    assert fleet.creates("north") == ROWS["north"]  # written once
    with open_state(fleet.folder / "state" / "north.db") as state:
        latest = state.previous_run("run")
        assert latest is not None
        assert state.previous_run("run", before=latest["run_id"]) is None  # the store saw one run


def _wait_for_a_call(sandbox: SandboxProcess) -> None:
    deadline = time.monotonic() + 60
    while sandbox.stats()["total"] + sandbox.stats()["in_flight"] == 0:
        if time.monotonic() > deadline:
            raise AssertionError("the first launch never called Helcim")
        time.sleep(0.05)


def _wait_for_run(instance: dg.DagsterInstance, name: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = instance.get_run_records(
            dg.RunsFilter(tags={ACCOUNT_TAG: name}, statuses=[dg.DagsterRunStatus.STARTED])
        )
        if records:
            return records[0].dagster_run.run_id
        time.sleep(0.05)
    raise AssertionError(f"no run of {name} started")


def test_the_schedules_ask_for_each_account_once_a_night_at_0230_local(fleet: Fleet) -> None:
    defs = build_definitions(fleet.accounts_file)
    names = {s.name for s in defs.schedules or ()}
    assert names == {f"crmsync_nightly_{zone.replace('/', '_')}" for zone in TIMEZONES.values()}
    toronto = defs.resolve_schedule_def("crmsync_nightly_America_Toronto")
    assert (toronto.cron_schedule, toronto.execution_timezone) == ("30 2 * * *", "America/Toronto")
    assert toronto.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance:
        when = datetime(2026, 11, 28, 2, 30, tzinfo=ZoneInfo("America/Toronto"))
        tick = evaluate(toronto, instance, when, defs.get_repository_def())
        ours = [
            (r.partition_key, r.run_key, {k: v for k, v in r.tags.items() if k.startswith("crmsync/")})
            for r in tick.run_requests or ()
        ]
        assert ours == [("north", "north/2026-11-28", {ACCOUNT_TAG: "north", NIGHT_TAG: "2026-11-28"})]
        assert instance.has_dynamic_partition(ACCOUNTS.name or "", "north")


def test_the_accounts_sensor_keeps_the_partitions_equal_to_the_file(fleet: Fleet) -> None:
    sensor = build_definitions(fleet.accounts_file).resolve_sensor_def("crmsync_accounts")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name or "", ["gone"])
        result = sense(sensor, instance)
        requests = {
            type(r).__name__: sorted(r.partition_keys) for r in result.dynamic_partitions_requests or ()
        }
        assert requests == {
            "AddDynamicPartitionsRequest": ["east", "north", "west"],
            "DeleteDynamicPartitionsRequest": ["gone"],
        }


def test_an_account_that_failed_two_nights_in_a_row_is_flagged(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = build_definitions(fleet.accounts_file, out_root=fleet.folder / "out")
    job = defs.resolve_job_def(NIGHTLY_JOB)
    sensor = defs.resolve_sensor_def("crmsync_failed_two_nights")
    accounts = load_accounts(fleet.accounts_file)
    tonight = {name: accounts.get(name).night(datetime.now(UTC)) for name in ("east", "north")}
    yesterday = {name: (night - timedelta(days=1)).isoformat() for name, night in tonight.items()}
    with temp_instance(fleet.folder / "dagster", ["east", "north", "west"]) as instance:
        for name, night in (
            ("east", yesterday["east"]),
            ("north", yesterday["north"]),
            ("east", str(tonight["east"])),
        ):
            job.execute_in_process(
                partition_key=name, instance=instance, tags={NIGHT_TAG: night}, raise_on_error=False
            )
        result = sense(sensor, instance)
        (evaluation,) = result.asset_events
        assert isinstance(evaluation, dg.AssetCheckEvaluation)
        assert (evaluation.check_name, evaluation.passed) == (CHECK, False)
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert evaluation.metadata["accounts"].value == ["east"]
        assert (
            f"east: failed 2 nights in a row ({tonight['east']}, {yesterday['east']}); the last run: exit 3"
            in (evaluation.description or "")
        )  # north's tonight has no finished run yet: not judged; west never ran
        instance.report_runless_asset_event(evaluation)  # what the daemon does with it
        by_hand = dg.materialize(
            [crmsync_nightly, two_nights_check(str(fleet.accounts_file))],
            instance=instance,
            resources={"crmsync": CrmsyncAccounts(accounts_file=str(fleet.accounts_file))},
            selection=dg.AssetSelection.checks(dg.AssetCheckKey(crmsync_nightly.key, CHECK)),
        )
        assert [(e.passed, e.metadata["accounts"].value) for e in by_hand.get_asset_check_evaluations()] == [
            (False, ["east"])
        ]
        again = sense(sensor, instance, result.cursor)
        assert not again.asset_events  # reported again only when the answer changes or new runs finish
        monkeypatch.setenv("FLEET_EAST_TOKEN", TOKENS["east"])  # the file is fixed: east's own variable
        fleet.accounts_file.write_text(
            fleet.accounts_file.read_text().replace(
                'name = "east"\n'
                + f'url = "{fleet.sandboxes["east"].base_url}"\ntoken_env = "FLEET_NORTH_TOKEN"',
                'name = "east"\n'
                + f'url = "{fleet.sandboxes["east"].base_url}"\ntoken_env = "FLEET_EAST_TOKEN"',
            )
        )
        job.execute_in_process(
            partition_key="east", instance=instance, tags={NIGHT_TAG: str(tonight["east"])}
        )
        fixed = sense(sensor, instance, result.cursor)
        (cleared,) = fixed.asset_events
        assert isinstance(cleared, dg.AssetCheckEvaluation)
        assert cleared.passed


def test_the_code_location_loads_as_a_deployment_loads_it(fleet: Fleet) -> None:
    env = {**os.environ, "CRMSYNC_ACCOUNTS": str(fleet.accounts_file)}
    command = [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m"]
    loaded = subprocess.run(
        [*command, "crmsync.orchestrate.definitions"],
        env=env,
        cwd=fleet.folder,
        capture_output=True,
        text=True,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "All code locations passed validation" in loaded.stdout + loaded.stderr
    del env["CRMSYNC_ACCOUNTS"]
    missing = subprocess.run(
        [sys.executable, "-c", "import crmsync.orchestrate.definitions"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0
    assert "needs CRMSYNC_ACCOUNTS: the path of the accounts file" in missing.stderr


def test_crmsync_and_its_command_line_need_no_dagster(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['dagster'] = None\n"  # as if it were not installed
        "import crmsync, crmsync.cli, crmsync.jobs.accounts\n"
        "from click.testing import CliRunner\n"
        "result = CliRunner().invoke(crmsync.cli.cli, ['accounts', 'check', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "try:\n    import crmsync.orchestrate\nexcept ImportError as error:\n    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        "crmsync.orchestrate runs on Dagster, which is not installed: pip install 'crmsync[dagster]'"
        in done.stdout
    )


def test_a_crashed_account_is_not_partial_and_says_why(fleet: Fleet) -> None:
    """The OOM killer takes one account's worker: its own exit code (128 + the signal), the others run on."""
    fleet.sandboxes["north"].configure(faults="latency_ms=1500-1600")
    out = fleet.folder / "out"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(fanout, fleet.accounts_file, out, jobs=1)  # east, then north, then west
        _wait_for_a_call(fleet.sandboxes["north"])
        os.kill(_worker_pid(out, "north"), signal.SIGKILL)
        lines = {line.account: line for line in running.result(timeout=300)}
    crashed = lines["north"]
    assert (crashed.status, crashed.exit_code) == ("crashed", 128 + signal.SIGKILL)
    assert "killed by SIGKILL" in crashed.error
    assert str(out / ".logs" / "north.log") in crashed.error
    assert (lines["west"].status, lines["west"].exit_code) == ("ok", 0)  # a crash stops no other account
    rows = {row.split()[0]: row for row in table(list(lines.values()))}
    assert rows["north"].rstrip().endswith(crashed.error)  # the error, not the report's path
    assert json.loads((out / "fanout.json").read_text())["exit_code"] == 137


def _worker_pid(out: Path, name: str) -> int:
    """The worker process of one account of a fanout writing to ``out``."""
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--worker" in command and name.encode() in command and str(out).encode() in command:
            return int(proc.name)
    raise AssertionError(f"no worker of {name} is running")


def test_the_table_shows_the_error_of_a_failed_account_whatever_its_exit_code() -> None:
    stopped = AccountLine("north", "failed", 1, {"created": 3}, report="out/north/reconciliation/report.html",
                          error="create-customer: still rate limited (429) after waiting")  # fmt: skip
    partial = AccountLine("west", "partial", 1, {"created": 3}, report="out/west/reconciliation/report.html")
    rows = table([stopped, partial])
    assert rows[1].rstrip().endswith("create-customer: still rate limited (429) after waiting")
    assert rows[2].rstrip().endswith("out/west/reconciliation/report.html")


def test_two_time_zones_never_share_a_schedule_name(tmp_path: Path) -> None:
    """Etc/GMT+5 and Etc/GMT-5 are ten hours apart; both once made crmsync_nightly_Etc_GMT_5."""
    text = '[defaults]\ncrm = "crm.csv"\n'
    for name, zone in (("a", "Etc/GMT+5"), ("b", "Etc/GMT-5"), ("c", "America/Port-au-Prince"), ("d", "UTC")):
        text += f'[[account]]\nname = "{name}"\ntoken_env = "T_{name.upper()}"\ntimezone = "{zone}"\n'
    (tmp_path / "accounts.toml").write_text(text)
    defs = build_definitions(tmp_path / "accounts.toml")
    expected = {
        "Etc/GMT+5": "crmsync_nightly_Etc_GMT_plus_5",
        "Etc/GMT-5": "crmsync_nightly_Etc_GMT_minus_5",
        "America/Port-au-Prince": "crmsync_nightly_America_Port_au_Prince",
        "UTC": "crmsync_nightly_UTC",
    }
    assert {s.name for s in defs.schedules or ()} == set(expected.values())
    for zone, name in expected.items():
        assert defs.resolve_schedule_def(name).execution_timezone == zone
    alike = schedule_names(["Area/Some-Where", "Area/Some_Where"])  # no such pair today: never one name
    assert len(set(alike.values())) == 2
    assert all(name.startswith("crmsync_nightly_Area_Some_Where_") for name in alike.values())


def test_a_token_with_trailing_whitespace_is_redacted_from_the_runs_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "accounts.toml").write_text('[[account]]\nname = "a"\ntoken_env = "A_TOKEN"\ncrm = "c.csv"\n')
    account = load_accounts(tmp_path / "accounts.toml").get("a")
    monkeypatch.setenv("A_TOKEN", "tok-9f3b2a77e1\n")  # as `echo token > file` leaves it
    lines: list[str] = []

    class Log:
        def log(self, level: int, message: str) -> None:
            lines.append(message)

    with crmsync_logs_to(Log(), account):  # type: ignore[arg-type]
        logging.getLogger("crmsync.run").info("sent api-token tok-9f3b2a77e1 by mistake")
    assert lines == ["sent api-token [redacted] by mistake"]


def _stuck_run(instance: dg.DagsterInstance, job: dg.JobDefinition, name: str, night: str) -> str:
    """A run of ``name`` whose worker died without Dagster noticing (no run monitoring): STARTED for ever."""
    run = instance.create_run_for_job(job_def=job, tags={ACCOUNT_TAG: name, NIGHT_TAG: night})
    instance.handle_run_event(
        run.run_id, dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=job.name)
    )
    assert (stored := instance.get_run_by_id(run.run_id)) is not None
    assert stored.status == dg.DagsterRunStatus.STARTED
    return run.run_id


def test_a_stuck_run_holds_the_schedule_back_for_a_while_and_its_nights_are_flagged(fleet: Fleet) -> None:
    defs = build_definitions(fleet.accounts_file)
    toronto, repo = defs.resolve_schedule_def("crmsync_nightly_America_Toronto"), defs.get_repository_def()
    north = load_accounts(fleet.accounts_file).get("north")
    now = datetime.now(UTC)
    with dg.instance_for_test() as instance:
        _stuck_run(instance, defs.resolve_job_def(NIGHTLY_JOB), "north", north.night(now).isoformat())

        def tick(hours: float) -> ScheduleExecutionData:
            when = now + timedelta(hours=hours)
            return evaluate(toronto, instance, when, repo)

        assert not tick(2).run_requests  # a run still in progress: the next one waits
        assert "north: its previous run is still queued or running" in (tick(2).skip_message or "")
        later = tick(STALE_HOURS + 1).run_requests or []  # in progress for a day: its worker is gone
        assert [r.partition_key for r in later] == ["north"]
        loaded = read_accounts(fleet.accounts_file)
        flagged, _ = failed_nights_of(instance, loaded, timezones_of(loaded), now + timedelta(days=3))
        (line,) = [f for f in flagged if f.name == "north"]  # no run of the three nights since ever finished
        assert line.text.startswith("north: failed 3 nights in a row (")
        assert "none of their runs finished" in line.text
        flagged_now, _ = failed_nights_of(instance, loaded, timezones_of(loaded), now)
        assert [f.name for f in flagged_now] == []  # tonight is not over: nothing to say yet


def test_an_account_moved_to_a_zone_without_a_schedule_fails_the_sensor_and_the_check(fleet: Fleet) -> None:
    defs = build_definitions(fleet.accounts_file)  # Toronto, Halifax, Kiritimati
    text = fleet.accounts_file.read_text()
    fleet.accounts_file.write_text(text.replace('timezone = "America/Toronto"', 'timezone = "Asia/Tokyo"'))
    sensor = defs.resolve_sensor_def("crmsync_accounts")
    with dg.instance_for_test() as instance:
        with pytest.raises(Exception, match=r"north: no schedule runs its time zone Asia/Tokyo \(reload"):
            sense(sensor, instance)
        assert set(instance.get_dynamic_partitions(ACCOUNTS.name or "")) == {"east", "north", "west"}
        result = dg.materialize(
            [crmsync_nightly, defs.get_asset_checks_def(dg.AssetCheckKey(crmsync_nightly.key, CHECK))],
            instance=instance,
            resources={"crmsync": CrmsyncAccounts(accounts_file=str(fleet.accounts_file))},
            selection=dg.AssetSelection.checks(dg.AssetCheckKey(crmsync_nightly.key, CHECK)),
        )
        (evaluation,) = result.get_asset_check_evaluations()
        assert (evaluation.passed, evaluation.metadata["accounts"].value) == (False, ["north"])
    assert {s.name for s in build_definitions(fleet.accounts_file).schedules or ()} >= {
        "crmsync_nightly_Asia_Tokyo"  # a reload schedules it
    }


SOUTH_WITH_A_TYPO = '\n[[account]]\nname = "south"\ntoken_env = "FLEET_SOUTH_TOKEN"\ntimezone = "America/Toronto"\nmax_call = 100\n'


def test_one_bad_account_table_stops_only_its_own_account(fleet: Fleet) -> None:
    defs = build_definitions(fleet.accounts_file, out_root=fleet.folder / "out")
    fleet.accounts_file.write_text(fleet.accounts_file.read_text() + SOUTH_WITH_A_TYPO)
    toronto = defs.resolve_schedule_def("crmsync_nightly_America_Toronto")
    when = datetime.now(ZoneInfo("America/Toronto")).replace(hour=2, minute=30)
    repo = defs.get_repository_def()
    with temp_instance(fleet.folder / "dagster", ["east", "north", "west"]) as instance:
        tick = evaluate(toronto, instance, when, repo)
        assert [r.partition_key for r in tick.run_requests or ()] == [
            "north",
            "south",
        ]  # south fails on its own
        job = build_definitions(fleet.accounts_file, out_root=fleet.folder / "out").resolve_job_def(
            NIGHTLY_JOB
        )
        north = job.execute_in_process(partition_key="north", instance=instance, raise_on_error=False)
        south = job.execute_in_process(partition_key="south", instance=instance, raise_on_error=False)
        assert (north.success, line_of("north", north).exit_code) == (True, 0)
        refused = line_of("south", south)
        assert (south.success, refused.status, refused.exit_code, refused.retries) == (False, "invalid", 2, 0)
        assert "max_call: unknown key" in refused.error
        stored = instance.get_run_by_id(south.run_id)
        assert stored is not None
        assert (stored.tags[ACCOUNT_TAG], stored.tags[EXIT_TAG], stored.tags[NO_RETRY_TAG]) == (
            "south",
            "2",
            "false",
        )
        sensor = defs.resolve_sensor_def("crmsync_failed_two_nights")
        (evaluation,) = sense(sensor, instance).asset_events
        assert isinstance(evaluation, dg.AssetCheckEvaluation)
        assert (evaluation.passed, evaluation.metadata["accounts"].value) == (False, ["south"])
        assert "max_call: unknown key" in (evaluation.description or "")

        fleet.accounts_file.write_text(
            "[[account]\nname = 'broken'\n"
        )  # not TOML at all: the last version runs
        again = evaluate(toronto, instance, when, repo)
        assert [r.partition_key for r in again.run_requests or ()] == ["north", "south"]
        (broken,) = sense(sensor, instance).asset_events
        assert isinstance(broken, dg.AssetCheckEvaluation)
        assert not broken.passed
        assert "the accounts file does not load" in (broken.description or "")


def test_a_run_launched_from_the_asset_graph_is_held_to_the_same_rules(fleet: Fleet) -> None:
    """Materialize in the UI and backfills use Dagster's own job, which carries none of crmsync's tags."""
    defs = build_definitions(fleet.accounts_file, out_root=fleet.folder / "out")
    assert defs.resolve_job_def(NIGHTLY_JOB).get_tags_for_partition_key("north", None)[ACCOUNT_TAG] == "north"
    with temp_instance(fleet.folder / "dagster", ["east", "north", "west"]) as instance:
        east = dg.materialize(
            [crmsync_nightly], partition_key="east", instance=instance, raise_on_error=False,
            resources={"crmsync": CrmsyncAccounts(accounts_file=str(fleet.accounts_file), out_root=str(fleet.folder / "out"))},
        )  # fmt: skip
        assert not east.success
        stored = instance.get_run_by_id(east.run_id)
        assert stored is not None
        assert stored.tags.get(NO_RETRY_TAG) == "false"  # run retries will not re-run a refused token
        assert (stored.tags[ACCOUNT_TAG], stored.tags[EXIT_TAG]) == ("east", "3")
        # a launch that died before the asset could tag it: only Dagster's partition tag says whose it was
        asset_job = defs.resolve_implicit_global_asset_job_def()
        early = instance.create_run_for_job(
            job_def=asset_job, tags={PARTITION_TAG: "west"}, asset_selection=frozenset({crmsync_nightly.key})
        )
        instance.report_run_failed(early)
        west = load_accounts(fleet.accounts_file).get("west")
        loaded = read_accounts(fleet.accounts_file)
        later = datetime.now(UTC) + timedelta(days=2)  # tonight and tomorrow night over: two failed nights
        flagged, _ = failed_nights_of(instance, loaded, timezones_of(loaded), later)
        assert {f.name for f in flagged} == {"east", "west"}, flagged
        assert west.night(later) > west.night(datetime.now(UTC))


PASTED = "Hk7pQ2xZ9mLw4vRt8sYbQ"  # a token pasted where the variable's name belongs


def test_no_token_reaches_the_outputs_dagsters_storage_or_the_table(fleet: Fleet) -> None:
    """Runs that succeed and runs that fail every way an accounts file can make them fail: grep for tokens."""
    text = fleet.accounts_file.read_text()
    text += f'\n[[account]]\nname = "copy"\nurl = "{fleet.sandboxes["west"].base_url}"\ntoken_env = "FLEET_COPY_TOKEN"\n'
    text += f'\n[[account]]\nname = "pasted"\nurl = "{fleet.sandboxes["west"].base_url}"\ntoken_env = "{PASTED}"\n'
    text += SOUTH_WITH_A_TYPO
    fleet.accounts_file.write_text(text)
    out = fleet.folder / "out"
    env = {**os.environ, "FLEET_COPY_TOKEN": TOKENS["west"] + " ", "FLEET_SOUTH_TOKEN": "south-token-77"}
    command = [
        sys.executable,
        "-m",
        "crmsync.orchestrate.fanout",
        str(fleet.accounts_file),
        "--out",
        str(out),
    ]
    done = subprocess.run(
        [*command, "--jobs", "2"], env=env, capture_output=True, text=True, cwd=fleet.folder
    )
    assert done.returncode == 3, done.stdout + done.stderr  # east's refused token is the worst
    lines = {line["account"]: line for line in json.loads((out / "fanout.json").read_text())["accounts"]}
    assert {name: (line["status"], line["exit_code"]) for name, line in lines.items()} == {
        "east": ("failed", 3),
        "north": ("ok", 0),
        "west": ("failed", 2),  # west and copy: one token on one API, so neither runs
        "copy": ("failed", 2),
        "pasted": ("invalid", 2),
        "south": ("invalid", 2),
    }
    assert "accounts west and copy hold the same token for one API" in lines["copy"]["error"]
    assert "this looks like a token, not a variable name" in lines["pasted"]["error"]
    assert "max_call: unknown key" in lines["south"]["error"]
    assert fleet.writes("west") == {}
    secrets = [*TOKENS.values(), PASTED, PASTED[:10], "south-token-77"]
    shown = done.stdout + done.stderr
    assert not [s for s in secrets if s in shown]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(".dagster" in p.parts for p in files)  # Dagster's run, event and log storage
    leaks = [(str(p.relative_to(out)), s) for p in files for s in secrets if s.encode() in p.read_bytes()]
    assert leaks == []


def test_a_mass_change_refusal_says_why_and_one_materialization_may_pass_it(fleet: Fleet) -> None:
    rows = [row(f"NORTH-{n}", f"Person {n} of north") for n in range(25)]
    export = write_export(fleet.folder / "exports" / "north-2026-11-28.csv", rows)
    out = fleet.folder / "out"
    job = fleet.job(out_root=out)
    with temp_instance(out, ["east", "north", "west"]) as instance:
        assert job.execute_in_process(partition_key="north", instance=instance).success  # 25 created
        write_export(export, [{**r, "billing_email": ""} for r in rows])  # a broken export job
        refused = job.execute_in_process(partition_key="north", instance=instance, raise_on_error=False)
        line = line_of("north", refused)
        assert (refused.success, line.status, line.exit_code, line.retries) == (False, "refused", 2, 0)
        assert (
            "the mass-change guard refused the plan: billing_email: the plan would clear it on 25"
            in line.error
        )
        scheduled_again = job.execute_in_process(
            partition_key="north", instance=instance, raise_on_error=False
        )
        assert line_of("north", scheduled_again).status == "refused"  # no standing release
    passed = run_worker(
        fleet.accounts_file, out, "north", allow_mass_change=True
    )  # fanout --allow-mass-change north
    assert (passed.status, passed.exit_code, passed.figures["updated"]) == ("ok", 0, 25)
    assert fleet.sandboxes["north"].stats()["by_operation"]["update-customer"] == {"200": 25}


@pytest.mark.parametrize(
    ("start", "change"),
    [
        pytest.param("2027-03-12", "2027-03-14", id="spring-forward"),
        pytest.param("2027-11-05", "2027-11-07", id="fall-back"),
    ],
)
def test_daylight_saving_nights_get_one_tick_each(fleet: Fleet, start: str, change: str) -> None:
    """02:30 does not exist the night clocks spring forward (Dagster runs it at 03:00) and is not doubled
    the night they fall back: one run per night, each keyed by its own night, none skipped."""
    from dagster._utils.schedules import cron_string_iterator  # what the scheduler daemon iterates

    defs = build_definitions(fleet.accounts_file)
    toronto = defs.resolve_schedule_def("crmsync_nightly_America_Toronto")
    zone = ZoneInfo("America/Toronto")
    begin = datetime.fromisoformat(start).replace(tzinfo=zone)
    ticks = cron_string_iterator(begin.timestamp(), CRON, toronto.execution_timezone)
    times = [next(ticks) for _ in range(5)]
    local = [(t.astimezone(zone).date().isoformat(), t.astimezone(zone).strftime("%H:%M")) for t in times]
    assert len({day for day, _ in local}) == 5
    assert {hour for day, hour in local if day != change} == {"02:30"}
    assert dict(local)[change] == ("03:00" if "-03-" in change else "02:30")
    with dg.instance_for_test() as instance:
        keys = []
        for when in times:
            tick = evaluate(toronto, instance, when, defs.get_repository_def())
            keys += [r.run_key for r in tick.run_requests or ()]
    assert keys == [f"north/{day}" for day, _ in local]


def test_a_file_that_never_loaded_fails_the_check_and_the_location(tmp_path: Path) -> None:
    broken = tmp_path / "accounts.toml"
    broken.write_text("[[account]\nname = 'x'\n")
    with pytest.raises(UsageError, match="is not valid TOML"):
        build_definitions(broken)  # a location loading it for the first time fails, loudly
    with dg.instance_for_test() as instance:
        (evaluation,) = sense(two_nights_sensor(str(broken)), instance).asset_events
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert not evaluation.passed
    assert "the accounts file does not load" in (evaluation.description or "")
