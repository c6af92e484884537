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

from crmsync.orchestrate.assets import CrmsyncAccounts, crmsync_nightly, read_accounts
from crmsync.orchestrate.automation import (
    accounts_sensor,
    nightly_job,
    nightly_schedules,
    timezones_of,
    two_nights_check,
    two_nights_sensor,
)

__all__ = ["build_definitions"]


def build_definitions(accounts_file: Path, *, out_root: Path | None = None) -> dg.Definitions:
    """The asset, its job, one schedule per time zone, the two sensors and the check.

    An invalid account table does not stop the location loading (its account fails on its own); a file
    that does not load at all does, unless this process loaded it before (then that version is used).
    """
    path = str(accounts_file.resolve())
    zones = sorted(set(timezones_of(read_accounts(path))))
    return dg.Definitions(
        assets=[crmsync_nightly],
        asset_checks=[two_nights_check(path, zones)],
        jobs=[nightly_job],
        schedules=nightly_schedules(path, zones),
        sensors=[accounts_sensor(path, zones), two_nights_sensor(path, zones)],
        resources={"crmsync": CrmsyncAccounts(accounts_file=path, out_root=str(out_root or ""))},
    )
