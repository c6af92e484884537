"""Data integrity at the edges of a run: mass changes, signals, early failures, full disks, crashes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from crmsync import cli
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN
from tests.jobs.test_plan_cli import invoke, read_csv, row, write_export
from tests.jobs.test_run import (
    assert_adds_up,
    codes_in_helcim,
    crmsync,
    run_env,
    summary_of,
    writes,
)


def emails_in_helcim(sandbox: SandboxProcess) -> int:
    from tests.jobs.test_plan_cli import helcim

    customers = helcim(sandbox).list_customers()
    return sum(bool(c.billing and c.billing.email) for c in customers)


def runs_in_state(tmp_path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(tmp_path / "state.db") as db:
        return [(r[0], r[1], r[2]) for r in db.execute("SELECT command, status, exit_code FROM runs")]


# -- the mass-change guard ----------------------------------------------------------------------


def test_a_column_blank_on_every_row_clears_nothing_without_allow_mass_change(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    rows = [row(f"M-{n:02d}", f"Person {n}", billing_phone=f"40355501{n:02d}") for n in range(25)]
    code, output = invoke(
        tmp_path,
        sandbox,
        "run",
        "--crm",
        str(write_export(tmp_path / "crm.csv", rows)),
        "--out",
        str(tmp_path / "n1"),
    )
    assert code == 0, output
    assert emails_in_helcim(sandbox) == 25
    broken = write_export(
        tmp_path / "broken.csv", [{**r, "billing_email": "", "billing_phone": ""} for r in rows]
    )
    before = writes(sandbox)

    code, output = invoke(tmp_path, sandbox, "plan", "--crm", str(broken), "--out", str(tmp_path / "plan"))
    assert code == 0, output
    assert "billing_email: the plan would clear it on 25 of the 25 linked customers" in output
    assert json.loads((tmp_path / "plan" / "summary.json").read_text())["mass_changes"]

    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(broken), "--out", str(tmp_path / "n2"))
    assert code == 2, output
    assert "billing_email" in output
    assert "billing_phone" in output
    assert "--allow-mass-change" in output
    summary = summary_of(tmp_path / "n2")
    assert (summary["status"], summary["updated"], summary["deferred"]) == ("refused", 0, 25)
    assert_adds_up(summary)
    assert {r["error"] for r in read_csv(tmp_path / "n2" / "results.csv")} == {
        "held by the mass-change guard"
    }
    assert writes(sandbox) == before
    assert emails_in_helcim(sandbox) == 25
    assert runs_in_state(tmp_path)[-1] == ("run", "refused", 2)

    plan_file = str(tmp_path / "plan" / "plan.json")
    code, output = invoke(tmp_path, sandbox, "apply", "--plan", plan_file, "--out", str(tmp_path / "a"))
    assert code == 2, output
    assert "refused to write anything" in output
    assert writes(sandbox) == before

    code, output = invoke(
        tmp_path, sandbox, "run", "--crm", str(broken), "--out", str(tmp_path / "n3"), "--allow-mass-change"
    )
    assert code == 0, output
    assert summary_of(tmp_path / "n3")["updated"] == 25
    assert emails_in_helcim(sandbox) == 0


def test_a_few_changes_pass_the_guard(tmp_path: Path, sandbox: SandboxProcess) -> None:
    rows = [row(f"M-{n:02d}", f"Person {n}") for n in range(25)]
    invoke(
        tmp_path,
        sandbox,
        "run",
        "--crm",
        str(write_export(tmp_path / "c.csv", rows)),
        "--out",
        str(tmp_path / "1"),
    )
    moved = [{**r, "billing_city": "Banff"} if i < 2 else r for i, r in enumerate(rows)]
    code, output = invoke(
        tmp_path,
        sandbox,
        "run",
        "--crm",
        str(write_export(tmp_path / "d.csv", moved)),
        "--out",
        str(tmp_path / "2"),
    )
    assert code == 0, output
    assert summary_of(tmp_path / "2")["updated"] == 2


# -- every run leaves its summary ------------------------------------------------------------------


def test_an_unreachable_api_still_leaves_the_out_folder_and_its_summary(tmp_path: Path) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King"), row("C-2", "", business_name="")])
    env = {
        **os.environ,
        "HELCIM_API_URL": "http://127.0.0.1:9/v2",
        "HELCIM_API_TOKEN": TOKEN,
        "CRMSYNC_STATE_DB": str(tmp_path / "state.db"),
        "CRMSYNC_CONFIG": "",
        "CRMSYNC_TIMEOUT": "2",
    }
    done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / "out" / "night"))
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    summary = summary_of(tmp_path / "out" / "night")
    assert (summary["status"], summary["exit_code"]) == ("failed", 3)
    assert (summary["rejected"], summary["deferred"]) == (1, 1)
    assert_adds_up(summary)
    assert "could not connect" in summary["error"]
    assert runs_in_state(tmp_path) == [("run", "failed", 3)]


def test_a_bad_export_leaves_a_summary_too(tmp_path: Path, sandbox: SandboxProcess) -> None:
    bad = tmp_path / "crm.csv"
    bad.write_text("name,phone\nAda,1\n")
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(bad), "--out", str(tmp_path / "out"))
    assert code == 2, output
    assert summary_of(tmp_path / "out")["status"] == "failed"
    assert sandbox.stats()["total"] == 0


def test_a_full_disk_after_the_writes_is_exit_2_with_what_was_written_on_record(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").symlink_to("/dev/full")  # every write to it: ENOSPC, as on a full disk
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(out))
    assert code == 2, output
    assert "results.csv: No space left on device" in output
    summary = summary_of(out)
    assert (summary["status"], summary["created"]) == ("failed", 1)
    assert codes_in_helcim(sandbox) == ["C-1"]
    assert runs_in_state(tmp_path) == [("run", "failed", 2)]
    out2 = tmp_path / "out2"
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(out2))
    assert (code, summary_of(out2)["unchanged"]) == (0, 1)  # the journal had it: nothing created twice


def test_an_out_path_that_is_a_file_is_a_clear_error(tmp_path: Path, sandbox: SandboxProcess) -> None:
    (tmp_path / "taken").write_text("x")
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    code, output = invoke(
        tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "taken" / "out")
    )
    assert code == 2
    assert "cannot create the output folder" in output
    assert sandbox.stats()["total"] == 0


# -- signals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["term", "int"])
def test_a_signal_stops_sending_and_the_run_ends_on_record(
    tmp_path: Path, sandbox: SandboxProcess, sig: int, code: int
) -> None:
    sandbox.configure(faults="latency_ms=40-60")
    rows = [row(f"S-{n:03d}", f"Person {n}") for n in range(60)]
    export = write_export(tmp_path / "crm.csv", rows)
    env = run_env(tmp_path, sandbox)
    command = [sys.executable, "-c", "from crmsync.cli import main; main()"]
    command += ["run", "--crm", str(export), "--out", str(tmp_path / "out")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(writes(sandbox).get("create-customer", {}).values()) < 5:
        time.sleep(0.01)
    process.send_signal(sig)
    signalled = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert time.monotonic() - signalled < 5  # in-flight requests finish; nothing new is sent
    assert "Traceback" not in stderr
    assert "Aborted!" not in stderr
    summary = summary_of(tmp_path / "out")
    assert summary["status"] == "interrupted"
    assert 0 < summary["created"] < 60
    assert summary["deferred"] == 60 - summary["created"]
    assert_adds_up(summary)
    assert (tmp_path / "out" / "results.csv").exists()
    assert runs_in_state(tmp_path) == [("run", "interrupted", code)]
    posted = sum(writes(sandbox).get("create-customer", {}).values())
    time.sleep(0.3)
    assert sum(writes(sandbox).get("create-customer", {}).values()) == posted  # it really stopped

    sandbox.configure(faults="")
    done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / "again"))
    assert done.returncode == 0, done.stderr
    codes = codes_in_helcim(sandbox)
    assert len(codes) == len(set(codes)) == 60


# -- a crash is still one line ------------------------------------------------------------------------


def test_a_crash_under_json_logs_is_one_json_line_without_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"unexpected state near {TOKEN}")

    monkeypatch.setattr("crmsync.jobs.run.run_nightly", boom)
    monkeypatch.setenv("HELCIM_API_TOKEN", TOKEN)
    monkeypatch.setenv("CRMSYNC_STATE_DB", str(tmp_path / "state.db"))
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--crm", str(export), "--out", str(tmp_path / "out"), "--log-format", "json"])
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "critical"
    assert "RuntimeError" in record["message"]
    assert "Traceback" in record["exception"]
    assert TOKEN not in lines[0]


def test_an_error_under_json_logs_is_a_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(
            [
                "run",
                "--crm",
                str(tmp_path / "missing.csv"),
                "--out",
                str(tmp_path / "o"),
                "--log-format",
                "json",
            ]
        )
    assert exit_info.value.code == 2
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert records[-1]["level"] == "error"
    assert records[-1]["exit_code"] == 2
