"""`crmsync run` and `crmsync apply` end to end against a real sandbox: accounting, budget, lock, crashes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmsync.config import RateLimits
from crmsync.errors import HelcimUnavailable
from crmsync.helcim.client import HelcimClient, RetryPolicy
from crmsync.helcim.models import CustomerInput
from crmsync.state import open_state, state_lock
from crmsync.sync.load import apply_plan
from crmsync.sync.plan import Plan
from crmsync.sync.snapshot import REREAD_HOURS
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN
from tests.jobs.test_plan_cli import add_to_helcim, decide, helcim, invoke, read_csv, row, write_export

COUNTED = ("created", "updated", "unchanged", "rejected", "deferred", "failed", "conflicts")


def summary_of(out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def assert_adds_up(summary: dict[str, Any]) -> None:
    assert sum(summary[k] for k in COUNTED) == summary["rows_read"], summary
    assert summary["adds_up"] is True


def writes(sandbox: SandboxProcess) -> dict[str, Any]:
    ops = sandbox.stats()["by_operation"]
    return {k: v for k, v in ops.items() if k in ("create-customer", "update-customer")}


def codes_in_helcim(sandbox: SandboxProcess) -> list[str]:
    client = helcim(sandbox)
    codes: list[str] = []
    page = 1
    while True:
        batch = client.list_customers(page=page)
        codes += [c.code for c in batch]
        if len(batch) < 100:
            return codes
        page += 1


def test_every_row_is_accounted_for_and_the_second_night_writes_nothing(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    add_to_helcim(sandbox, "C-2", "Bob Lee")  # same code, another city: an update
    add_to_helcim(sandbox, "CHK-7", "Eve Moore")  # the same person under a checkout code: held
    rows = [
        row("C-1", "Ada King", cell_phone="403 555 0111"),
        row("C-2", "Bob Lee", billing_city="Banff"),
        row("C-3", "Cy Roy", cell_phone="403 555 0133"),
        row("C-4", "Eve Moore"),  # same phone and e-mail domain as CHK-7
        row("C-5", "", business_name=""),  # no name at all: rejected
        row("C-6", "Di Nash", billing_email="not-an-email"),  # rejected
    ]
    export = write_export(tmp_path / "crm.csv", rows)
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "night1"))
    assert code == 1, output  # rows were rejected
    first = summary_of(tmp_path / "night1")
    assert_adds_up(first)
    assert {k: first[k] for k in COUNTED} == {
        "created": 2,
        "updated": 1,
        "unchanged": 0,
        "rejected": 2,
        "deferred": 1,
        "failed": 0,
        "conflicts": 0,
    }
    results = {r["crm_id"]: r for r in read_csv(tmp_path / "night1" / "results.csv")}
    assert (results["C-1"]["operation"], results["C-1"]["outcome"]) == ("create", "created")
    assert (results["C-2"]["operation"], results["C-2"]["outcome"]) == ("update", "updated")
    assert results["C-4"]["outcome"] == "deferred"
    assert "link_proposals.csv" in results["C-4"]["error"]
    assert results["C-1"]["helcim_id"].isdigit()
    for name in ("plan.json", "plan.csv", "conflicts.csv", "rejects.csv", "link_proposals.csv"):
        assert (tmp_path / "night1" / name).exists(), name
    findings = read_csv(tmp_path / "night1" / "reconciliation" / "findings.csv")
    stale = {f["customer_code"] for f in findings if f["code"] == "stale_payment_data"}
    assert not stale & {"C-1", "C-3"}  # created tonight: known to hold no bank account, without a call
    assert {f["crm_id"] for f in findings if f["code"] == "crm_only_customer"} == {"C-4", "C-5", "C-6"}

    before = writes(sandbox)
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "night2"))
    second = summary_of(tmp_path / "night2")
    assert_adds_up(second)
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 3)
    assert writes(sandbox) == before  # nothing written on the second night
    assert sorted(codes_in_helcim(sandbox)) == ["C-1", "C-2", "C-3", "CHK-7"]


def test_the_budget_defers_writes_and_they_come_first_the_next_night(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    export = write_export(tmp_path / "crm.csv", [row(f"C-{n:02d}", f"Person {n}") for n in range(12)])
    created_by_night: list[set[str]] = []
    deferred_before: set[str] = set()
    for night in range(1, 8):
        out = tmp_path / f"night{night}"
        code, output = invoke(
            tmp_path, sandbox, "run", "--crm", str(export), "--out", str(out), "--max-calls", "6"
        )
        assert code == 0, output
        summary = summary_of(out)
        assert_adds_up(summary)
        assert summary["api_calls"] <= 6
        results = read_csv(out / "results.csv")
        created = {r["crm_id"] for r in results if r["outcome"] == "created"}
        deferred = {r["crm_id"] for r in results if r["outcome"] == "deferred"}
        if deferred_before:
            assert created <= deferred_before  # last night's leftovers go first
        created_by_night.append(created)
        deferred_before = deferred
        if not deferred:
            break
    assert len(created_by_night) > 2  # the budget really split the work
    codes = codes_in_helcim(sandbox)
    assert sorted(codes) == [f"C-{n:02d}" for n in range(12)]  # everyone, once


def test_a_dry_run_reads_but_writes_nothing(tmp_path: Path, sandbox: SandboxProcess) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King"), row("C-2", "Bob Lee")])
    code, output = invoke(
        tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "dry"), "--dry-run"
    )
    assert code == 0, output
    summary = summary_of(tmp_path / "dry")
    assert summary["dry_run"] is True
    assert summary["deferred"] == 2
    assert summary["created"] == 0
    assert_adds_up(summary)
    assert writes(sandbox) == {}
    assert {r["error"] for r in read_csv(tmp_path / "dry" / "results.csv")} == {"dry run"}


def test_applying_the_same_plan_twice_writes_nothing_the_second_time(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    add_to_helcim(sandbox, "C-3", "Cy Roy")
    export = write_export(
        tmp_path / "crm.csv",
        [row("C-1", "Ada King"), row("C-2", "Bob Lee"), row("C-3", "Cy Roy", billing_city="Banff")],
    )
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "plan"))
    plan_file = str(tmp_path / "plan" / "plan.json")
    code, output = invoke(tmp_path, sandbox, "apply", "--plan", plan_file, "--out", str(tmp_path / "a1"))
    assert code == 0, output
    first = summary_of(tmp_path / "a1")
    assert (first["created"], first["updated"], first["already_applied"]) == (2, 1, 0)
    after_first = writes(sandbox)
    code, output = invoke(tmp_path, sandbox, "apply", "--plan", plan_file, "--out", str(tmp_path / "a2"))
    assert code == 0, output
    second = summary_of(tmp_path / "a2")
    assert (second["created"], second["updated"], second["already_applied"]) == (0, 0, 3)
    assert writes(sandbox) == after_first
    assert [r["outcome"] for r in read_csv(tmp_path / "a2" / "results.csv")] == ["already-applied"] * 3
    # and the nightly diff agrees that Helcim now holds the CRM's values
    invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "run"))
    assert summary_of(tmp_path / "run")["unchanged"] == 3


def test_a_plan_for_another_api_is_refused(tmp_path: Path, sandbox: SandboxProcess) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "plan"))
    plan_file = tmp_path / "plan" / "plan.json"
    plan = json.loads(plan_file.read_text())
    plan_file.write_text(json.dumps({**plan, "api_url": "https://api.helcim.com/v2"}))
    code, output = invoke(tmp_path, sandbox, "apply", "--plan", str(plan_file), "--out", str(tmp_path / "a"))
    assert code == 2
    assert "planned against https://api.helcim.com/v2" in output
    assert writes(sandbox) == {}


def test_a_second_run_on_the_same_state_exits_with_a_clear_message(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    with state_lock(tmp_path / "state.db"):
        code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "another crmsync run is using the state store" in output
    assert f"pid {os.getpid()}" in output
    assert writes(sandbox) == {}
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "out"))
    assert code == 0, output  # the lock is gone with its holder


def test_a_refused_token_exits_3_after_one_call(tmp_path: Path, sandbox: SandboxProcess) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    env = {**run_env(tmp_path, sandbox), "HELCIM_API_TOKEN": "wrong-token-123"}
    done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / "out"))
    assert done.returncode == 3, done.stderr
    assert "HELCIM_API_TOKEN" in done.stderr
    assert "wrong-token-123" not in done.stderr + done.stdout
    assert sandbox.stats()["total"] == 1


def test_a_pending_create_is_settled_by_looking_it_up(tmp_path: Path, sandbox: SandboxProcess) -> None:
    """What a kill between 'intent' and 'outcome' leaves: one create that landed, one that did not."""
    landed = add_to_helcim(sandbox, "C-1", "Ada King")
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King"), row("C-2", "Bob Lee")])
    with open_state(tmp_path / "state.db") as state:
        state.bind_account(sandbox.base_url)
        for crm_id in ("C-1", "C-2"):
            state.journal_intent(f"p:create:{crm_id}", "r0", "p", crm_id, "create", crm_id, None, {})
    sandbox.reset_stats()
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "out"))
    assert code == 0, output
    results = {(r["crm_id"], r["outcome"]) for r in read_csv(tmp_path / "out" / "results.csv")}
    assert ("C-1", "resolved: recovered") in results
    assert ("C-2", "resolved: not-landed") in results
    assert ("C-2", "created") in results
    with open_state(tmp_path / "state.db") as state:
        links = dict(zip(state.links()["crm_id"], state.links()["helcim_id"], strict=True))
        assert state.journal_entries(state="pending") == []
    assert links["C-1"] == landed
    assert sorted(codes_in_helcim(sandbox)) == ["C-1", "C-2"]
    assert writes(sandbox) == {"create-customer": {"200": 1}}  # only C-2 was posted


# -- as cron runs it: a separate process, killed -------------------------------------------


def run_env(tmp_path: Path, sandbox: SandboxProcess) -> dict[str, str]:
    return {
        **os.environ,
        "HELCIM_API_URL": sandbox.base_url,
        "HELCIM_API_TOKEN": TOKEN,
        "CRMSYNC_STATE_DB": str(tmp_path / "state.db"),
        "CRMSYNC_CONFIG": "",
        "CRMSYNC_RATE_LIMITS": "off",
        "CRMSYNC_TIMEOUT": "3",
    }


def crmsync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from crmsync.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_json_logs_carry_no_token(tmp_path: Path, sandbox: SandboxProcess) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King"), row("C-2", "Bob Lee")])
    env = run_env(tmp_path, sandbox)
    done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / "out"), "--log-format", "json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert records
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    assert any(r.get("stage") == "writes" for r in records)
    everything = done.stdout + done.stderr + "".join(p.read_text() for p in (tmp_path / "out").glob("*.*"))
    assert TOKEN not in everything


@pytest.mark.parametrize("kill_after_writes", [8, 40])
def test_killed_mid_run_then_run_again_converges_without_duplicates(
    tmp_path: Path, sandbox: SandboxProcess, kill_after_writes: int
) -> None:
    sandbox.configure(
        faults="error500=0.05,drop_after_commit=0.03,timeout=0.02,timeout_s=2,latency_ms=5-30",
        duplicate_codes="allow",
    )
    rows = [row(f"K-{n:03d}", f"Person {n}", billing_city=f"Town {n}") for n in range(80)]
    export = write_export(tmp_path / "crm.csv", rows)
    env = run_env(tmp_path, sandbox)
    command = [sys.executable, "-c", "from crmsync.cli import main; main()"]
    command += ["run", "--crm", str(export), "--out", str(tmp_path / "killed")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        posted = sum(writes(sandbox).get("create-customer", {}).values())
        if posted >= kill_after_writes:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    sandbox.configure(faults="error500=0.05,drop_after_commit=0.03,timeout=0.02,timeout_s=2")
    done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / "resumed"))
    assert done.returncode == 0, done.stderr
    resumed = summary_of(tmp_path / "resumed")
    assert_adds_up(resumed)
    codes = codes_in_helcim(sandbox)
    assert len(codes) == len(set(codes)) == 80  # no duplicate, nobody missing

    sandbox.configure(faults="")
    done = crmsync(env, "run", "--crm", str(export), "--out", str(tmp_path / "after"))
    after = summary_of(tmp_path / "after")
    assert (after["created"], after["updated"], after["unchanged"]) == (0, 0, 80)  # field by field equal


def test_no_token_or_full_number_in_anything_a_run_leaves(tmp_path: Path, sandbox: SandboxProcess) -> None:
    sandbox.seed(40, seed=3, today="2026-11-27")
    first = add_to_helcim(sandbox, "C-1", "Ada King")
    sandbox.add_card(
        first, cardHolderName="Ada King", cardNumber="4111111111111111", cardExpiry="0130", default=True
    )
    export = write_export(
        tmp_path / "crm.csv", [row("C-1", "Ada King"), row("C-2", "Bob Lee", cell_phone="4035550122")]
    )
    done = crmsync(
        run_env(tmp_path, sandbox),
        "run",
        "--crm",
        str(export),
        "--out",
        str(tmp_path / "out"),
        "--log-format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    client = helcim(sandbox)
    tokens = {
        card.token
        for page in (1, 2)
        for c in client.list_customers(page=page, include_cards=True)
        for card in c.cards
    }
    assert len(tokens) > 20
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {"report.html", "findings.csv", "payment_methods.csv", "results.csv"} <= {p.name for p in files}
    texts = {str(p): p.read_text(encoding="utf-8") for p in files} | {"logs": done.stdout + done.stderr}
    for where, text in texts.items():
        assert TOKEN not in text, where
        assert not [t for t in tokens if t in text], where
        assert "4111111111111111" not in text, where
        assert not re.search(r"\d{12,}", text), where


def test_helcim_down_mid_run_stops_keeps_uncertain_creates_pending_and_a_rerun_finishes(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    export = write_export(
        tmp_path / "crm.csv", [row(f"C-{n}", f"Person {n}", cell_phone=f"403555010{n}") for n in range(3)]
    )
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "plan"))
    plan = Plan.load(tmp_path / "plan" / "plan.json")
    sandbox.configure(faults="error500=1.0,on=writes")
    client = HelcimClient(
        sandbox.base_url,
        TOKEN,
        limits=RateLimits(paced=False),
        retry=RetryPolicy(attempts=2, backoff_base=0.01, backoff_max=0.01),
    )
    with open_state(tmp_path / "state.db") as state:
        outcome = apply_plan(plan, client, state, "r1", workers=1)
        assert isinstance(outcome.fatal, HelcimUnavailable)
        assert [r.outcome for r in outcome.results] == ["failed", "deferred", "deferred"]
        journal = state.journal_entries()
        assert [(e.state, e.outcome) for e in journal] == [("pending", "uncertain")]  # may have landed
    sandbox.configure(faults="")
    code, output = invoke(
        tmp_path,
        sandbox,
        "apply",
        "--plan",
        str(tmp_path / "plan" / "plan.json"),
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 0, output
    outcomes = sorted(r["outcome"] for r in read_csv(tmp_path / "a" / "results.csv"))
    assert outcomes == ["created", "created", "created", "resolved: not-landed"]
    assert sorted(codes_in_helcim(sandbox)) == ["C-0", "C-1", "C-2"]


def test_a_stale_plan_does_not_create_a_linked_customer_again(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    export = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "plan"))
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "run"))
    assert code == 0, output
    code, output = invoke(
        tmp_path,
        sandbox,
        "apply",
        "--plan",
        str(tmp_path / "plan" / "plan.json"),
        "--out",
        str(tmp_path / "a"),
    )
    assert code == 0, output
    assert [r["outcome"] for r in read_csv(tmp_path / "a" / "results.csv")] == ["already-applied"]
    assert codes_in_helcim(sandbox) == ["C-1"]


def test_a_manual_conflict_is_counted_as_a_conflict_and_left_alone(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    first = write_export(tmp_path / "crm.csv", [row("C-1", "Ada King")])
    invoke(tmp_path, sandbox, "run", "--crm", str(first), "--out", str(tmp_path / "night1"))
    client = helcim(sandbox)
    ada = client.find_customer_by_code("C-1")
    assert ada is not None
    assert ada.billing is not None
    moved = dataclasses.replace(ada.billing, city="Canmore")
    client.update_customer(ada.id, CustomerInput(contact_name="Ada King", billing=moved, code="C-1"))
    second = write_export(tmp_path / "crm2.csv", [row("C-1", "Ada King", billing_city="Banff")])
    before = writes(sandbox)
    code, output = invoke(
        tmp_path,
        sandbox,
        "run",
        "--crm",
        str(second),
        "--out",
        str(tmp_path / "night2"),
        "--policy",
        "manual",
    )
    assert code == 0, output
    summary = summary_of(tmp_path / "night2")
    assert_adds_up(summary)
    assert (summary["conflicts"], summary["updated"]) == (1, 0)
    assert [(r["operation"], r["outcome"]) for r in read_csv(tmp_path / "night2" / "results.csv")] == [
        ("hold", "conflict")
    ]
    assert writes(sandbox) == before


def test_the_first_night_on_a_seeded_account_reads_every_customers_bank_accounts_and_pads(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """60 seeded customers and five of the export's: all read the first night, so nothing is missed or stale."""
    sandbox.seed(60, seed=13)
    bank = {
        "accountCorporate": 1, "accountType": 1, "bankAccountNumber": "1234567", "bankFinancialNumber": "003",
        "bankTransitNumber": "12345", "streetAddress": "1 Main", "city": "Calgary", "provinceAlpha2": "AB",
        "countryAlpha2": "CA", "postalCode": "T2P1A1", "firstName": "Ada", "lastName": "King",
    }  # fmt: skip
    for n, (verified, pad) in enumerate(
        [(False, "accepted"), (False, "accepted"), (True, "revoked"), (True, "revoked")]
    ):
        sandbox.add_bank(add_to_helcim(sandbox, f"C-{n}", f"Person {n}"), **bank, verified=verified, pad=pad)
    add_to_helcim(sandbox, "C-4", "Person 4")
    export = write_export(tmp_path / "crm.csv", [row(f"C-{n}", f"Person {n}") for n in range(5)])
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "night1"))
    assert code == 0, output
    summary = summary_of(tmp_path / "night1")
    report = summary_of(tmp_path / "night1" / "reconciliation")
    held = sandbox.stats()["data"]
    assert report["counts"]["customers"] == 65
    assert report["counts"]["customers_with_bank_data"] == 65
    assert (report["counts"]["bank_accounts"], report["counts"]["pads"]) == (
        held["bank_accounts"],
        held["pads"],
    )
    assert report["findings_by_code"]["stale_payment_data"] == 0
    assert report["payment_data"]["fresh"] == 65
    findings = read_csv(tmp_path / "night1" / "reconciliation" / "findings.csv")
    found = {(r["code"], r["customer_code"]) for r in findings}
    assert {("bank_unverified", "C-0"), ("bank_unverified", "C-1")} <= found
    assert {("pad_revoked", "C-2"), ("pad_revoked", "C-3")} <= found
    # the floor was kept from the writes, and the rest of the budget (less the reserve) was there to spend
    assert summary["bank_refresh"]["customers_read"] == 65
    assert summary["bank_refresh"]["reserve_calls"] == 150


@pytest.mark.parametrize(("hours_ago", "read_again"), [(0, 0), (REREAD_HOURS + 1, 25)])
def test_a_second_run_the_same_night_reads_no_bank_data_the_first_read(
    tmp_path: Path, sandbox: SandboxProcess, hours_ago: int, read_again: int
) -> None:
    """A run again after a failed or stopped one (or the bench's killed runs) spends its spare budget on what it
    has not read lately, never again on what the first run read minutes before or created itself (no bank
    account yet); a night later (more than REREAD_HOURS) every customer is due again."""
    sandbox.seed(20, seed=3)
    export = write_export(tmp_path / "crm.csv", [row(f"N-{n}", f"New {n}") for n in range(5)])
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n1"))
    assert code == 0, output
    first = summary_of(tmp_path / "n1")
    assert first["created"] == 5
    assert first["calls_by_operation"]["get-customer-bank-accounts"] == 20  # the 5 it created: known empty
    then = (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with open_state(tmp_path / "state.db") as state:  # the first run's reads, as long ago as the case says
        state.db.execute("UPDATE bank_refresh SET refreshed_at = ?", (then,))
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n2"))
    assert code == 0, output
    second = summary_of(tmp_path / "n2")
    assert second["unchanged"] == 5
    assert second["calls_by_operation"].get("get-customer-bank-accounts", 0) == read_again
    report = summary_of(tmp_path / "n2" / "reconciliation")
    assert (report["payment_data"]["never_read"], report["payment_data"]["stale"]) == (0, 0)


@pytest.mark.parametrize("duplicate_codes", ["allow", "refuse"])
def test_an_omitted_address_never_takes_the_address_of_a_customer_linked_to_another_row(
    tmp_path: Path, sandbox: SandboxProcess, duplicate_codes: str
) -> None:
    """Helcim customer "C-1" (Ada) is linked to CRM row C-9 by an accepted proposal; a new CRM row C-1
    (Bob, only a city and an e-mail: his address is omitted) is no match for her: he is created
    without an address, never with Ada's street, phone and e-mail. Where Helcim refuses a second
    customer with one code, his row fails with the reason, and the rest of the run goes on."""
    sandbox.configure(duplicate_codes=duplicate_codes)
    ada = add_to_helcim(sandbox, "C-1", "Ada King", email="ada.private@example.com", phone="4035550111")
    export = write_export(
        tmp_path / "crm.csv", [row("C-9", "Ada King", billing_email="ada.private@example.com")]
    )
    invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "p0"))
    proposals = read_csv(tmp_path / "p0" / "link_proposals.csv")
    assert [(p["crm_id"], p["helcim_id"]) for p in proposals] == [("C-9", str(ada))]
    decide(tmp_path / "p0" / "link_proposals.csv", "yes")
    code, output = invoke(tmp_path, sandbox, "link", "--accept", str(tmp_path / "p0" / "link_proposals.csv"))
    assert code == 0, output
    bob = row("C-1", "Bob Other", billing_street1="", billing_postal_code="", billing_city="Banff",
              billing_email="bob@example.com")  # fmt: skip
    others = [row(f"N-{n}", f"New Person {n}") for n in range(3)]
    write_export(export, [row("C-9", "Ada King", billing_email="ada.private@example.com"), bob, *others])
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n1"))
    summary = summary_of(tmp_path / "n1")
    assert_adds_up(summary)
    created = next(op for op in Plan.load(tmp_path / "n1" / "plan.json").operations if op.crm_id == "C-1")
    assert created.kind == "create"
    assert "billing" not in created.addresses, created
    assert not any(name.startswith("billing_") and value for name, value in created.values.items()), created
    customers = {c.id: c for _, page in helcim(sandbox).iter_customers(include_cards=False) for c in page}
    ada_billing = customers[ada].billing
    assert ada_billing is not None
    assert ada_billing.email == "ada.private@example.com"
    assert customers[ada].contact_name == "Ada King"
    assert {f"New Person {n}" for n in range(3)} <= {c.contact_name for c in customers.values()}
    if duplicate_codes == "allow":
        assert code == 0, output
        new = next(c for c in customers.values() if c.contact_name == "Bob Other")
        assert new.billing is None  # not Ada's address, phone and e-mail
    else:
        assert code == 1, output
        assert (summary["failed"], summary["created"]) == (1, 3)
        failed = next(r for r in read_csv(tmp_path / "n1" / "results.csv") if r["crm_id"] == "C-1")
        assert failed["outcome"] == "failed"
        assert "linked to CRM record C-9" in failed["error"]
        assert "Bob Other" not in {c.contact_name for c in customers.values()}
