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
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from crmsync.jobs.accounts import load_accounts
from crmsync.orchestrate.assets import (
    ACCOUNT_TAG,
    ACCOUNTS,
    EXIT_TAG,
    NIGHT_TAG,
    NIGHTLY,
    STATUS_TAG,
    CrmsyncAccounts,
    crmsync_logs_to,
    crmsync_nightly,
)
from crmsync.orchestrate.automation import CHECK, NIGHTLY_JOB, schedule_names, two_nights_check
from crmsync.orchestrate.fanout import AccountLine, fanout, instance_at, line_of, table
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
        tick = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance, scheduled_execution_time=datetime.now(ZoneInfo("UTC"))
            )
        )
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
        tick = toronto.evaluate_tick(
            dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
            )
        )
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
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
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
    with temp_instance(fleet.folder / "dagster", ["east", "north", "west"]) as instance:
        for name, night in (("east", "2026-11-27"), ("north", "2026-11-27"), ("east", "2026-11-28")):
            job.execute_in_process(
                partition_key=name, instance=instance, tags={NIGHT_TAG: night}, raise_on_error=False
            )
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        (evaluation,) = result.asset_events
        assert isinstance(evaluation, dg.AssetCheckEvaluation)
        assert (evaluation.check_name, evaluation.passed) == (CHECK, False)
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert evaluation.metadata["accounts"].value == ["east"]
        assert "east: failed 2 nights in a row (2026-11-28, 2026-11-27); the last run: exit 3" in (
            evaluation.description or ""
        )
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
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=result.cursor))
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
        job.execute_in_process(partition_key="east", instance=instance, tags={NIGHT_TAG: "2026-11-29"})
        fixed = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=result.cursor))
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
