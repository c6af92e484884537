"""The state store: permissions, migrations, account binding, links, base, journal, deferred."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from crmsync.errors import AccountMismatchError, KeyChangeError, StateError, StateLockedError
from crmsync.schemas.helcim import SYNCED_FIELDS
from crmsync.state import open_state, state_lock
from crmsync.state.store import SCHEMA_VERSION


def test_created_private_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.db"
    with open_state(path) as state:
        assert state.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    with open_state(path) as again:  # reopening migrates nothing and keeps data
        again.set_meta("x", "1")
    with open_state(path) as third:
        assert third.meta("x") == "1"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(
            lambda p: p.write_bytes(b"not a database at all" * 100), "not a crmsync state store", id="garbage"
        ),
        pytest.param(
            lambda p: sqlite3.connect(p).execute("CREATE TABLE other (x)").connection.commit(),
            "not a crmsync state store",
            id="other-sqlite",
        ),
        pytest.param(
            lambda p: sqlite3.connect(p).execute("PRAGMA user_version = 99").connection.commit(),
            "newer crmsync",
            id="newer-schema",
        ),
    ],
)
def test_refuses_what_is_not_its_own(tmp_path: Path, setup: object, message: str) -> None:
    path = tmp_path / "state.db"
    setup(path)  # type: ignore[operator]
    with pytest.raises(StateError, match=message):
        open_state(path)


def test_bound_to_one_account(tmp_path: Path) -> None:
    with open_state(tmp_path / "s.db") as state:
        state.bind_account("https://api.helcim.com/v2")
        state.bind_account("https://api.helcim.com/v2")
        with pytest.raises(AccountMismatchError, match=r"belongs to https://api\.helcim\.com/v2"):
            state.bind_account("http://127.0.0.1:8765/v2")


def test_links(tmp_path: Path) -> None:
    with open_state(tmp_path / "s.db") as state:
        state.link("C1", 10, "C1", "created")
        state.link("C1", 11, "CST1", "approved")  # relinking a CRM row replaces its link
        with pytest.raises(StateError, match="already linked to crm_id C1"):
            state.link("C2", 11, "CST1", "code")
        assert state.links().to_dict("records") == [
            {"crm_id": "C1", "helcim_id": 11, "customer_code": "CST1", "how": "approved"}
        ]
        state.reject_link("C2", 12)
        assert state.rejected_links().to_dict("records") == [{"crm_id": "C2", "helcim_id": 12}]


def test_base_keeps_unknown_fields_and_merges_partial_updates(tmp_path: Path) -> None:
    with open_state(tmp_path / "s.db") as state:
        state.set_base(pd.DataFrame([{"crm_id": "C1", "contact_name": "Ada", "cell_phone": None}]))
        state.set_base(pd.DataFrame([{"crm_id": "C1", "cell_phone": "4035550100"}]))
        state.set_base(pd.DataFrame([{"crm_id": "C1", "contact_name": None, "billing_city": ""}]))
        (row,) = state.base().to_dict("records")
        assert (row["contact_name"], row["cell_phone"], row["billing_city"]) == ("Ada", "4035550100", "")
        assert not isinstance(row["shipping_city"], str)  # never agreed: unknown (NaN), not ""
        assert list(state.base().columns) == ["crm_id", *SYNCED_FIELDS]


def test_journal_round_trip(tmp_path: Path) -> None:
    with open_state(tmp_path / "s.db") as state:
        run = state.start_run("apply")
        state.journal_intent("p:create:C1", run, "p", "C1", "create", "C1", None, {"contactName": "Ada"})
        (pending,) = state.journal_entries(state="pending")
        assert (pending.crm_id, pending.body) == ("C1", {"contactName": "Ada"})
        state.journal_outcome("p:create:C1", "done", "created", helcim_id=77)
        assert state.journal_entries(state="pending") == []
        (done,) = state.journal_entries(op_ids=["p:create:C1"])
        assert (done.state, done.outcome, done.helcim_id) == ("done", "created", 77)
        state.finish_run(run, "ok", 0, {"created": 1})
        assert state.previous_run("apply")["summary"] == {"created": 1}  # type: ignore[index]


def test_deferred_keeps_its_first_date(tmp_path: Path) -> None:
    with open_state(tmp_path / "s.db") as state:
        state.set_deferred([("C1", "create", "budget")])
        first = state.deferred()["since"].tolist()
        state.set_deferred([("C1", "create", "budget"), ("C2", "update", "budget")])
        since = dict(
            zip(state.deferred()["crm_id"].tolist(), state.deferred()["since"].tolist(), strict=True)
        )
        assert since["C1"] == first[0]
        assert set(since) == {"C1", "C2"}
        state.set_deferred([])
        assert state.deferred().empty


def test_a_symlink_and_the_file_share_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "state.db"
    open_state(real).close()
    (tmp_path / "other").mkdir()
    alias = tmp_path / "other" / "alias.db"
    alias.symlink_to(real)
    with state_lock(real), pytest.raises(StateLockedError, match="another crmsync run"):  # noqa: SIM117
        with state_lock(alias):
            pass
    with state_lock(tmp_path / "other" / ".." / "state.db"):  # free again, whatever the spelling
        pass


def test_a_read_only_state_file_is_refused_not_made_writable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_state(path).close()
    path.chmod(0o400)
    with pytest.raises(StateError, match=r"is read-only \(mode 400\)"):
        open_state(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o400  # left as the owner set it


def test_a_loose_state_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_state(path).close()
    path.chmod(0o664)
    open_state(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_folder_nothing_can_be_created_in_is_a_clear_state_error(tmp_path: Path) -> None:
    # /proc refuses new files even to root, so this holds whoever runs the suite
    with pytest.raises(StateError, match=r"cannot create the state store /proc/crmsync-test/state\.db"):
        open_state(Path("/proc/crmsync-test/state.db"))
    with pytest.raises(StateError, match="cannot create the state store's lock file"):  # noqa: SIM117
        with state_lock(Path("/proc/crmsync-test/state.db")):
            pass


def _unprivileged(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python that file permissions apply to: as root, inside a user namespace (nobody)."""
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("running as root and no unshare(1) to drop the privilege: permissions cannot bite")
        command = ["unshare", "--user", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_a_read_only_folder_is_named_as_such() -> None:
    folder = Path(tempfile.mkdtemp(prefix="crmsync-ro-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        state = folder / "ro" / "state.db"
        open_state(state).close()
        for sidecar in state.parent.glob("state.db-*"):
            sidecar.unlink()
        state.chmod(0o666)  # writable by anyone: only the folder is read-only
        state.parent.chmod(0o555)
        done = _unprivileged(
            "from pathlib import Path\n"
            "from crmsync.errors import StateError\n"
            "from crmsync.state import open_state\n"
            "try:\n"
            f"    open_state(Path({str(state)!r}))\n"
            "except StateError as error:\n"
            "    print(error)\n"
        )
        assert "cannot write in the folder of the state store" in done.stdout, done.stdout + done.stderr
    finally:
        state.parent.chmod(0o755)
        shutil.rmtree(folder)


def test_the_snapshot_tables_hold_exactly_the_models_columns(tmp_path: Path) -> None:
    """The pandera models are the one declaration of the snapshot frames; the SQL tables follow them."""
    from crmsync.schemas.helcim import SNAPSHOT_TABLES

    with open_state(tmp_path / "state.db") as state:
        for table, schema in SNAPSHOT_TABLES.items():
            bookkeeping = ["page", "fetched_at"] if table == "helcim_customers" else ["fetched_at"]
            assert state.cache.table_columns(table) == [*schema.columns, *bookkeeping], table
            frame = state.cache.frame(table)
            assert list(frame.columns) == list(schema.columns)
            schema.validate(frame)  # an empty table reads back with the model's dtypes


def test_a_store_of_the_previous_schema_is_migrated_keeping_its_journal(tmp_path: Path) -> None:
    from crmsync.state.store import MIGRATIONS

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript("".join(MIGRATIONS[:2]) + "PRAGMA user_version = 2;")
    db.execute("INSERT INTO actions (action_id, run_id, action, code, helcim_id, customer_code, state, created_at)"
               " VALUES ('a', 'r', 'request_bank_details', 'no_payment_method', 7, 'C-7', 'uncertain', 'then')")  # fmt: skip
    db.commit()
    db.close()
    with open_state(path) as state:
        assert state.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert state.review.action_entries(["a"])["a"].state == "uncertain"
        proposed, at = state.review.proposals()
        assert (len(proposed), at) == (0, None)


def test_proposals_are_the_latest_reports_only(tmp_path: Path) -> None:
    columns = ["action_id", "code", "helcim_id", "customer_code", "customer", "method_id", "method", "action"]

    def actions(*rows: tuple[str, ...]) -> pd.DataFrame:
        return pd.DataFrame(list(rows), columns=columns, dtype="str")

    rows = [
        ("20261120-delete_card-7-11", "card_expired", "7", "=C-7", "Ada", "11", "Visa", "delete_card"),
        ("20261120-request_bank_details-8-0", "no_payment_method", "8", "C-8", "Bo", "", "", "request_bank_details"),
    ]  # fmt: skip
    with open_state(tmp_path / "state.db") as state:
        state.review.replace_proposals(actions(*rows))
        first, at = state.review.proposals()
        assert first.to_dict("records") == [
            {"action_id": "20261120-delete_card-7-11", "action": "delete_card", "code": "card_expired",
             "helcim_id": "7", "customer_code": "=C-7", "method_id": "11"},
            {"action_id": "20261120-request_bank_details-8-0", "action": "request_bank_details",
             "code": "no_payment_method", "helcim_id": "8", "customer_code": "C-8", "method_id": ""},
        ]  # fmt: skip
        assert at is not None
        state.review.replace_proposals(actions())  # the next report proposes nothing
        later, again = state.review.proposals()
        assert later.empty
        assert again is not None
        assert again >= at


def test_a_moved_link_takes_its_base_and_deferred_writes(tmp_path: Path) -> None:
    """A link moved to a new key (an accepted proposal with ``replaces``) keeps what both sides agreed
    on: without it the next run has no base and pushes the CRM's old values over Helcim's changes."""
    with open_state(tmp_path / "s.db") as state:
        state.link("em-old", 10, "em-old", "created")
        state.set_base(
            pd.DataFrame([{"crm_id": "em-old", "contact_name": "Homer", "billing_email": "h@x.com"}])
        )
        state.set_deferred([("em-old", "update", "budget")])
        with state.transaction():
            state.link("em-new", 10, "em-old", "approved", replaces="em-old")
        assert state.links().to_dict("records") == [
            {"crm_id": "em-new", "helcim_id": 10, "customer_code": "em-old", "how": "approved"}
        ]
        (base,) = state.base().to_dict("records")
        assert (base["crm_id"], base["contact_name"], base["billing_email"]) == ("em-new", "Homer", "h@x.com")
        assert state.deferred()["crm_id"].tolist() == ["em-new"]
        state.link("em-new", 10, "em-old", "approved", replaces="em-old")  # the same file again: done already
        assert state.links()["crm_id"].tolist() == ["em-new"]


def test_a_stale_move_is_refused_and_unlinks_nothing(tmp_path: Path) -> None:
    with open_state(tmp_path / "s.db") as state:
        state.link("A", 10, "A", "created")
        state.link("B", 11, "B", "created")
        before = state.links().to_dict("records")
        with pytest.raises(StateError, match="Helcim customer 10 is linked to crm_id A, not B"):
            state.link("N", 10, "A", "approved", replaces="B")
        with pytest.raises(StateError, match="Helcim customer 12 is not linked to crm_id A"):
            state.link("N", 12, "X", "approved", replaces="A")
        assert state.links().to_dict("records") == before


def test_bound_to_one_crm_key(tmp_path: Path) -> None:
    """The CRM's key (profile, id column or e-mail, the column) is recorded the first night; another is
    refused, unless allowed: a run records it, a plan does not."""
    with open_state(tmp_path / "s.db") as state:
        assert state.bind_crm_key("shopify", "crm_id", "Customer ID") == ""
        assert state.bind_crm_key("shopify", "crm_id", "customer id") == ""  # the same column, any case
        with pytest.raises(KeyChangeError, match=r'keyed by the e-mail \("Email"\).*keyed by its id column'):
            state.bind_crm_key("shopify", "email", "Email")
        with pytest.raises(KeyChangeError, match="hubspot profile"):
            state.bind_crm_key("hubspot", "crm_id", "Record ID")
        changed = state.bind_crm_key("shopify", "email", "Email", allow_change=True, record_change=False)
        assert changed.startswith('from the shopify profile, keyed by its id column "Customer ID"')
        assert state.crm_key() == ("shopify", "crm_id", "Customer ID")  # a plan: not recorded
        assert not state.rekeyed()
        state.bind_crm_key("shopify", "email", "Email", allow_change=True)
        assert state.crm_key() == ("shopify", "email", "Email")
        assert state.rekeyed()  # until no customer is left to move
        state.rekeyed_done()
        assert not state.rekeyed()
        assert state.bind_crm_key("shopify", "email", "Email") == ""


def test_a_store_without_a_recorded_key_goes_by_its_links(tmp_path: Path) -> None:
    """A state store from before the key was recorded: its links say whether the e-mail was the key."""
    with open_state(tmp_path / "s.db") as state:
        state.link("em-" + "a" * 24, 10, "em-" + "a" * 24, "created")
        with pytest.raises(KeyChangeError, match="rows keyed by the e-mail"):
            state.bind_crm_key("shopify", "crm_id", "Customer ID")
        assert state.bind_crm_key("wave", "email", "email") == ""
        assert state.crm_key() == ("wave", "email", "email")
