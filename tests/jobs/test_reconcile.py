"""`crmsync reconcile` and the account's hourly limit: bank data read recently is not read again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crmsync.state import utcnow
from crmsync.sync.snapshot import REREAD_HOURS, not_read_since
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import Api
from tests.jobs.test_plan_cli import invoke


def _bank_reads(tmp_path: Path, sandbox: SandboxProcess, out: str) -> int:
    """How many customers' bank accounts one ``crmsync reconcile`` read (Helcim's count of the calls)."""
    sandbox.reset_stats()
    status, output = invoke(tmp_path, sandbox, "reconcile", "--out", str(tmp_path / out))
    assert status == 0, output
    calls = sandbox.stats()["by_operation"].get("get-customer-bank-accounts", {})
    payment = json.loads((tmp_path / out / "reconciliation" / "summary.json").read_text())["payment_data"]
    assert payment["never_read"] == 0
    return sum(calls.values())


@pytest.mark.parametrize(("hours_ago", "read_again"), [(2, 0), (REREAD_HOURS + 1, 12)])
def test_a_morning_reconcile_leaves_the_bank_data_the_night_read_alone(
    tmp_path: Path, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch, hours_ago: int, read_again: int
) -> None:
    """The nightly run read every customer's bank accounts and PADs; the 9 a.m. report must not read them all
    again: that spends most of the hour's limit the merchant's other integrations need during the day."""
    api = Api(sandbox.base_url)
    for n in range(12):
        api.create(customerCode=f"C-{n}", contactName=f"Person {n}")
    then = (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with monkeypatch.context() as clock:  # the night's read, hours ago
        clock.setattr("crmsync.state.cache.utcnow", lambda: then)
        assert _bank_reads(tmp_path, sandbox, "night") == 12
    assert _bank_reads(tmp_path, sandbox, "morning") == read_again
    assert _bank_reads(tmp_path, sandbox, "noon") == 0  # what the morning read is not read again either


def test_the_re_read_age_is_a_moment_the_state_store_compares_with() -> None:
    now = utcnow()
    moment = not_read_since(REREAD_HOURS)
    assert len(moment) == len(now)
    assert moment < now
    assert not_read_since(0) >= now
