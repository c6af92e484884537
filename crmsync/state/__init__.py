"""The SQLite state store of one merchant account: the only code that runs SQL.

:mod:`.store` opens, migrates and guards the file and holds the links, the
base, the runs, the write journal and the deferred writes; :mod:`.cache` is
the cached Helcim snapshot; :mod:`.review` the latest report's findings and
the journal of approved actions; :mod:`.lock` keeps one run per store.
"""

from crmsync.state.cache import SnapshotCache
from crmsync.state.clock import stored, utcnow
from crmsync.state.lock import state_lock
from crmsync.state.review import ActionEntry, ReviewLog
from crmsync.state.store import JournalEntry, RunRecord, StateStore, open_state, real_state_path

__all__ = [
    "ActionEntry",
    "JournalEntry",
    "ReviewLog",
    "RunRecord",
    "SnapshotCache",
    "StateStore",
    "open_state",
    "real_state_path",
    "state_lock",
    "stored",
    "utcnow",
]
