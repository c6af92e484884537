"""Many merchant accounts on an orchestrator: the Dagster code location (the extra ``crmsync[dagster]``).

* :mod:`crmsync.orchestrate.definitions` — the code location a Dagster
  deployment loads (``CRMSYNC_ACCOUNTS`` names the accounts file);
* :mod:`crmsync.orchestrate.location` — :func:`build_definitions`: the asset
  ``crmsync_nightly`` partitioned by account, its job, the schedules, sensors
  and the check;
* :mod:`crmsync.orchestrate.fanout` — ``make fanout``: every account once,
  through Dagster in-process, for those without a deployment;
* :mod:`crmsync.orchestrate.nights` — which accounts failed two nights in a row.

This package sits beside ``crmsync.cli`` at the top of the layers: it calls
:func:`crmsync.jobs.accounts.run_account` and nothing calls it; ``import
crmsync`` and the command line work without Dagster installed.
"""

from __future__ import annotations

try:
    import dagster  # noqa: F401
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "crmsync.orchestrate runs on Dagster, which is not installed: pip install 'crmsync[dagster]'"
    ) from exc
