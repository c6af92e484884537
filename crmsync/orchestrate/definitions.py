"""The Dagster code location of crmsync: ``crmsync.orchestrate.definitions``.

Point a deployment at this module (``dagster dev -m crmsync.orchestrate.definitions``,
or ``python_module: crmsync.orchestrate.definitions`` in workspace.yaml) with the
environment variable ``CRMSYNC_ACCOUNTS`` naming the accounts file, and each
account's token in the variable its ``token_env`` names.
"""

from __future__ import annotations

import os
from pathlib import Path

from crmsync.orchestrate.location import build_definitions

__all__ = ["defs"]

_path = os.environ.get("CRMSYNC_ACCOUNTS", "").strip()
if not _path:
    raise RuntimeError(
        "the crmsync code location needs CRMSYNC_ACCOUNTS: the path of the accounts file (accounts.toml)"
    )
defs = build_definitions(Path(_path))
