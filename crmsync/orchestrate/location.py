"""The code location's definitions, built from one accounts file.

``build_definitions(accounts_file)`` reads the file once, for the time zones
its schedules run in; every run, tick and sensor evaluation reads it again, so
an edited file takes effect at the next run (a new time zone needs a reload).
``out_root`` is for :mod:`crmsync.orchestrate.fanout`: every account writes to
``out_root/<name>/`` instead of its ``out`` folder.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from crmsync.jobs.accounts import load_accounts
from crmsync.orchestrate.assets import CrmsyncAccounts, crmsync_nightly
from crmsync.orchestrate.automation import (
    accounts_sensor,
    nightly_job,
    nightly_schedules,
    two_nights_check,
    two_nights_sensor,
)

__all__ = ["build_definitions"]


def build_definitions(accounts_file: Path, *, out_root: Path | None = None) -> dg.Definitions:
    """The asset, its job, one schedule per time zone, the two sensors and the check."""
    path = str(accounts_file.resolve())
    accounts = load_accounts(Path(path))
    return dg.Definitions(
        assets=[crmsync_nightly],
        asset_checks=[two_nights_check(path)],
        jobs=[nightly_job],
        schedules=nightly_schedules(path, [a.timezone for a in accounts.accounts]),
        sensors=[accounts_sensor(path), two_nights_sensor(path)],
        resources={"crmsync": CrmsyncAccounts(accounts_file=path, out_root=str(out_root or ""))},
    )
