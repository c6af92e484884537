"""``make fanout ACCOUNTS=FILE OUT=DIR``: every account once, through Dagster in-process, for those without a deployment.

::

    python -m crmsync.orchestrate.fanout accounts.toml --out out/2026-11-28 [--jobs 4]

Each account's run is the code location's job, executed with Dagster's
in-process API (``execute_in_process``: no daemon, no webserver) for the
account's partition, in a worker process of its own — as a deployment runs
each run in its own process — so that a failed or crashed account never stops
the others; ``--jobs`` accounts run at a time (their budgets, not the CPU,
bound them). Each writes to ``OUT/<name>/`` exactly what ``crmsync run --out``
writes; Dagster's records of the runs are kept in ``OUT/.dagster/`` and each
worker's log in ``OUT/.logs/<name>.log``. Then one table row per account (also
``OUT/fanout.json``), and the exit code: 0 when every account succeeded, else
the worst (highest) one.

SIGINT or SIGTERM is passed on once to the workers, which stop cleanly (their
accounts exit 130/143, their summaries say how far they got); accounts not
yet started are not started.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import dagster as dg

from crmsync.errors import EXIT_USAGE, CrmsyncError, UsageError
from crmsync.jobs.accounts import load_accounts
from crmsync.orchestrate.assets import ACCOUNT_TAG, NIGHTLY
from crmsync.orchestrate.automation import NIGHTLY_JOB, ensure_partitions
from crmsync.orchestrate.location import build_definitions
from crmsync.reconcile.rules import SEVERITIES
from crmsync.stopping import StopSignal, stop_on_signals

__all__ = ["AccountLine", "fanout", "main", "table"]

COUNTED = ("created", "updated", "failed", "deferred", "api_calls")


@dataclass
class AccountLine:
    """One row of the table: what Dagster recorded of one account's run."""

    account: str
    status: str
    exit_code: int
    figures: dict[str, int] = field(default_factory=dict)  # created, updated, …, findings_critical, …
    report: str = ""
    error: str = ""
    retries: int = 0
    run_id: str = ""


def instance_at(out_root: Path) -> dg.DagsterInstance:
    """The Dagster instance of a fanout: SQLite storage in ``OUT/.dagster``, shared by its workers."""
    (out_root / ".dagster").mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(
        str(out_root / ".dagster"), overrides={"telemetry": {"enabled": False}}
    )


def fanout(
    accounts_file: Path,
    out_root: Path,
    *,
    jobs: int = 4,
    stop: StopSignal | None = None,
    allow_mass_change: Collection[str] = (),
) -> list[AccountLine]:
    """Run every account of the file once; one line per account, in the file's order, then the invalid ones.

    An account table that does not validate runs nothing and is a line of its own (exit 2); the others run.
    ``allow_mass_change`` names the accounts whose run this time may write what the mass-change guard
    refuses (one fanout only: it is never a setting).
    """
    accounts = load_accounts(accounts_file, partial=True)
    unknown = sorted(set(allow_mass_change) - set(accounts.names))
    if unknown:
        raise UsageError(f"{accounts_file}: no account can run as {', '.join(unknown)}")
    (out_root / ".logs").mkdir(parents=True, exist_ok=True)
    with instance_at(out_root) as instance:  # the partitions, before any worker looks them up
        ensure_partitions(instance, accounts.names)
    workers = _Workers(
        accounts_file.resolve(), out_root.resolve(), stop or StopSignal(), set(allow_mass_change)
    )
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="fanout") as pool:
        lines = list(pool.map(workers.run, accounts.names))
    lines += [
        AccountLine(bad.name or bad.label, "invalid", EXIT_USAGE, error=bad.describe())
        for bad in accounts.invalid
    ]
    document = {
        "accounts_file": str(accounts_file),
        "exit_code": worst(lines),
        "accounts": [asdict(x) for x in lines],
    }
    (out_root / "fanout.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return lines


class _Workers:
    """Starts one worker process per account and reads back its line; passes a stop on once."""

    def __init__(self, accounts_file: Path, out_root: Path, stop: StopSignal, allow: set[str]) -> None:
        self.accounts_file, self.out_root, self.stop, self.allow = accounts_file, out_root, stop, allow
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()
        stop.on_set(self._forward)

    def run(self, name: str) -> AccountLine:
        result_file = self.out_root / ".logs" / f"{name}.json"
        result_file.unlink(missing_ok=True)
        command = [sys.executable, "-m", "crmsync.orchestrate.fanout", str(self.accounts_file)]
        command += ["--out", str(self.out_root), "--worker", name]
        command += ["--allow-mass-change", name] if name in self.allow else []
        with self.lock:
            if self.stop.is_set():
                return AccountLine(name, "not started", self.stop.exit_code, error=self.stop.reason)
            with (self.out_root / ".logs" / f"{name}.log").open("wb") as log:
                process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self.running[name] = process
        code = process.wait()
        with self.lock:
            del self.running[name]
        try:
            return AccountLine(**json.loads(result_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return crashed(name, code, self.out_root / ".logs" / f"{name}.log")

    def _forward(self) -> None:
        sig = signal.SIGINT if self.stop.exit_code == 130 else signal.SIGTERM
        with self.lock:
            for process in self.running.values():
                if process.poll() is None:
                    process.send_signal(sig)


def crashed(name: str, returncode: int, log_path: Path) -> AccountLine:
    """A worker that ended without its line: never partial. Killed by a signal: 128 + it, as shells say."""
    if returncode < 0:
        how = f"was killed by {_signal_name(-returncode)}"
        code = 128 - returncode
    else:
        how, code = f"exited {returncode} without a result", max(returncode, EXIT_USAGE)
    return AccountLine(name, "crashed", code, error=f"the account's worker {how}: see {log_path}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_worker(
    accounts_file: Path, out_root: Path, name: str, *, allow_mass_change: bool = False
) -> AccountLine:
    """In a worker process: the job, in-process, for one account's partition; its line from Dagster's events."""
    defs = build_definitions(accounts_file, out_root=out_root)
    job = defs.resolve_job_def(NIGHTLY_JOB)
    config = {"ops": {NIGHTLY: {"config": {"allow_mass_change": True}}}} if allow_mass_change else None
    with instance_at(out_root) as instance:
        result = job.execute_in_process(
            partition_key=name, instance=instance, tags={ACCOUNT_TAG: name}, raise_on_error=False,
            run_config=config,
        )  # fmt: skip
    return line_of(name, result)


def line_of(name: str, result: dg.ExecuteInProcessResult) -> AccountLine:
    """The table's line from the run's events: the materialization's metadata, or the failure's."""
    retries = sum(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    materialized = result.asset_materializations_for_node(NIGHTLY)
    if result.success and materialized:
        line = _from_metadata(name, materialized[-1].metadata)
    else:
        failures = result.get_step_failure_events()
        data = failures[-1].step_failure_data if failures else None
        user = data.user_failure_data if data is not None else None
        if user is not None:
            line = _from_metadata(name, user.metadata)
        else:  # not crmsync's Failure: Dagster's own or a bug, said as such (never as partial)
            message = data.error.message.strip() if data is not None and data.error else "the run failed"
            line = AccountLine(name, "failed", EXIT_USAGE, error=message)
    line.retries, line.run_id = retries, result.run_id
    return line


def _from_metadata(name: str, metadata: Mapping[str, Any]) -> AccountLine:
    values = {key: getattr(value, "value", value) for key, value in metadata.items()}
    figures = {k: int(values[k]) for k in (*COUNTED, *(f"findings_{s}" for s in SEVERITIES)) if k in values}
    return AccountLine(
        name, str(values.get("status", "")), int(values.get("exit_code", EXIT_USAGE)), figures,
        report=str(values.get("report", "")), error=str(values.get("error", "")),
    )  # fmt: skip


def table(lines: list[AccountLine]) -> list[str]:
    """One row per account, then a line of totals."""
    header = ["account", "status", "exit", *COUNTED, "findings c/w/i", "retries", "report / error"]
    rows = [header]
    for line in lines:
        found = "/".join(
            str(line.figures[f"findings_{s}"]) for s in SEVERITIES if f"findings_{s}" in line.figures
        )
        rows.append(
            [line.account, line.status, str(line.exit_code), *(str(line.figures.get(k, "-")) for k in COUNTED),
             found or "-", str(line.retries), _last_cell(line)]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    ]
    statuses: dict[str, int] = {}
    for line in lines:
        statuses[line.status] = statuses.get(line.status, 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in statuses.items())
    text.append(f"{len(lines)} accounts: {counts}; exit {worst(lines)} (the worst)")
    return text


def _last_cell(line: AccountLine) -> str:
    """The report of a run that succeeded (ok, partial), else why it failed (a 429-stopped run exits 1 too)."""
    if line.status in ("ok", "partial") and line.report:
        return _shown(line.report)
    return line.error or _shown(line.report)


def _shown(path: str) -> str:
    """A path under the working folder as a relative one: the table stays readable."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def worst(lines: list[AccountLine]) -> int:
    return max((line.exit_code for line in lines), default=0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("accounts_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Each account's outputs go to OUT/<name>/.")  # fmt: skip
@click.option(
    "--jobs", type=click.IntRange(min=1), default=4, show_default=True, help="Accounts run at a time."
)
@click.option(
    "--allow-mass-change", "allow", multiple=True, metavar="ACCOUNT",
    help="This fanout only: ACCOUNT's run may write what the mass-change guard refuses (repeatable).",
)  # fmt: skip
@click.option("--worker", hidden=True, help="(internal) run this one account in this process.")
def main(accounts_file: Path, out_root: Path, jobs: int, allow: tuple[str, ...], worker: str | None) -> None:
    """Run every account of ACCOUNTS_FILE once through Dagster in-process; print one row per account."""
    if worker is not None:
        line = run_worker(accounts_file, out_root, worker, allow_mass_change=worker in allow)
        (out_root / ".logs" / f"{worker}.json").write_text(json.dumps(asdict(line)), encoding="utf-8")
        raise click.exceptions.Exit(line.exit_code)
    try:
        with stop_on_signals(StopSignal()) as stop:
            lines = fanout(accounts_file, out_root, jobs=jobs, stop=stop, allow_mass_change=allow)
    except CrmsyncError as error:
        click.echo(f"crmsync fanout: error: {error}", err=True)
        raise click.exceptions.Exit(error.exit_code) from None
    except OSError as error:
        click.echo(f"crmsync fanout: error: {error}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    for row in table(lines):
        click.echo(row)
    raise click.exceptions.Exit(worst(lines))


if __name__ == "__main__":
    main()
