"""The morning review, pure: proposed actions, the checks before sending, parsing actions.csv, triage, tags."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from crmsync.errors import UsageError
from crmsync.reconcile.actions import ACTION_COLUMNS, parse_actions, propose, still_needed
from crmsync.reconcile.findings import Reconciliation
from crmsync.reconcile.triage import finding_keys, triage
from crmsync.sync.act import Action, Fresh
from tests.reconcile import frames as f
from tests.reconcile.test_reconcile import TODAY, run


def proposed(rec: Reconciliation) -> set[tuple[str, str, str]]:
    actions = propose(rec).actions
    return set(zip(actions["action"], actions["customer_code"], actions["method_id"], strict=True))


def test_set_default_card_picks_the_valid_card_expiring_last() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"), (4, "C-4", "Di"))
    cards = f.cards(
        f.card(10, 1, "0130", default=False),  # no default: the one expiring last, the newest on a tie
        f.card(11, 1, "0331", default=False),
        f.card(12, 1, "0331", default=False, f6l4="5454545454"),
        f.card(20, 2, "0130", default=True),  # two defaults
        f.card(21, 2, "0230", default=True, f6l4="5454545454"),
        f.card(30, 3, "0125", default=True),  # an expired default, another valid card
        f.card(31, 3, "0228", default=False, f6l4="5454545454"),
        f.card(40, 4, "1225", default=True),  # an expired default and nothing else: no card to set
    )
    assert {a for a in proposed(run(customers, cards)) if a[0] == "set_default_card"} == {
        ("set_default_card", "C-1", "12"),
        ("set_default_card", "C-2", "21"),
        ("set_default_card", "C-3", "31"),
    }


def test_delete_card_only_for_an_expired_card_that_is_not_the_default_beside_a_valid_one() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"))
    cards = f.cards(
        f.card(10, 1, "0130", default=True),
        f.card(11, 1, "1225", default=False, f6l4="5454545454"),  # expired, not the default: delete
        f.card(20, 2, "1225", default=False),  # expired, and the customer has nothing else: keep
    )
    actions = proposed(run(customers, cards))
    assert ("delete_card", "C-1", "11") in actions
    assert not [a for a in actions if a[0] == "delete_card" and a[1] == "C-2"]


def test_bank_and_pad_actions() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"), (4, "C-4", "Di"))
    banks = f.banks(
        f.bank(20, 1, ready=False),  # no PAD: ask for bank details
        f.bank(30, 2, ready=False),  # PAD revoked, and the customer has no other: ask
        f.bank(40, 3, ready=False),  # PAD revoked, another account is ready: make that the default
        f.bank(41, 3, ready=True),
        f.bank(50, 4, ready=False),  # PAD pending for months: accept, with the signed agreement
    )
    pads = f.pads(
        f.pad(31, 2, 30, "revoked"),
        f.pad(42, 3, 40, "revoked"),
        f.pad(43, 3, 41, "accepted"),
        f.pad(51, 4, 50, "pending", created="2025-09-01 09:00:00"),
    )
    actions = proposed(run(customers, banks=banks, pads=pads, refreshed=f.refreshed((1, "2026-01-20"))))
    assert actions == {
        ("request_bank_details", "C-1", ""),
        ("request_bank_details", "C-2", ""),
        ("set_default_bank_account", "C-3", "41"),
        ("accept_pad", "C-4", "51"),
    }


def test_a_default_bank_account_is_proposed_only_where_the_target_is_plain_and_not_set_already() -> None:
    """Helcim does not say which account is the default: only the customer's one ready account is proposed,
    and not once crmsync act made it the default — then the revoked PAD beside it is no longer critical."""
    from crmsync.reconcile.findings import reconcile

    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"))
    banks = f.banks(
        f.bank(10, 1, ready=False), f.bank(11, 1, ready=True),  # one ready: propose it
        f.bank(20, 2, ready=False), f.bank(21, 2, ready=True), f.bank(22, 2, ready=True, last4="4321"),  # two
        f.bank(30, 3, ready=False), f.bank(31, 3, ready=True, last4="4321"),  # crmsync made 31 the default
    )  # fmt: skip
    pads = f.pads(f.pad(12, 1, 10, "revoked"), f.pad(13, 1, 11, "accepted"), f.pad(23, 2, 20, "revoked"),
                  f.pad(24, 2, 21, "accepted"), f.pad(25, 2, 22, "accepted"), f.pad(32, 3, 30, "revoked"),
                  f.pad(33, 3, 31, "accepted"))  # fmt: skip
    rec = reconcile(customers, f.cards(), banks, pads, f.links(), None, TODAY, bank_defaults={3: 31})
    assert {a for a in proposed(rec) if a[0] == "set_default_bank_account"} == {
        ("set_default_bank_account", "C-1", "11")
    }
    revoked = rec.findings[rec.findings["code"] == "pad_revoked"].set_index("customer_code")
    downgraded = revoked.to_dict("index")["C-3"]
    assert (downgraded["severity"], downgraded["tag"]) == ("warning", "default_ready")
    assert "****4321 (ready)" in str(downgraded["detail"])
    # the default is not known (C-1) or not plain (C-2): debits may fail
    assert revoked["severity"].to_dict() == {"C-1": "critical", "C-2": "critical", "C-3": "warning"}


def test_no_payment_method_asks_once_and_never_again_within_the_window() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"))
    rec = run(customers, crm=["C-1", "C-2", "C-3"])
    assert {(a, c) for a, c, _ in proposed(rec)} == {
        ("request_bank_details", c) for c in ("C-1", "C-2", "C-3")
    }
    asked = run_tagged(customers, created={1}, requested={2: "2026-01-15"})
    tags = asked.findings.set_index("customer_code")[["tag", "severity"]].to_dict("index")
    assert tags == {
        "C-1": {"tag": "created_this_run", "severity": "info"},
        "C-2": {"tag": "details_requested", "severity": "info"},
        "C-3": {"tag": "", "severity": "warning"},
    }
    assert {c for _, c, _ in proposed(asked)} == {"C-1", "C-3"}  # C-2 was asked on the 15th


def test_no_request_for_bank_details_to_a_customer_with_a_valid_card_or_a_ready_account() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"))
    cards = f.cards(f.card(10, 1, "0130"))  # a valid card
    banks = f.banks(f.bank(20, 1, ready=False), f.bank(30, 2, ready=False), f.bank(31, 2, ready=True),
                    f.bank(40, 3, ready=False))  # fmt: skip
    refreshed = f.refreshed(*((i, "2026-01-20") for i in (1, 2, 3)))
    rec = run(customers, cards, banks=banks, pads=f.pads(), refreshed=refreshed)
    assert {"bank_without_pad"} <= set(rec.findings.loc[rec.findings["customer_code"] == "C-1", "code"])
    assert {(a, c) for a, c, _ in proposed(rec) if a == "request_bank_details"} == {
        ("request_bank_details", "C-3")
    }


def run_tagged(customers: pd.DataFrame, **tags: object) -> Reconciliation:
    from crmsync.reconcile.findings import reconcile
    from crmsync.sync.pairing import pair_customers

    crm = pd.Series(list(customers["customer_code"]), dtype="str")
    pairs = pair_customers(pd.DataFrame({"crm_id": crm}), customers, f.links(), None).pairs
    return reconcile(
        customers, f.cards(), f.banks(), f.pads(), f.links(), crm, TODAY, pairs=pairs,
        bank_refreshed=f.refreshed(*((int(i), "2026-01-20") for i in customers["helcim_id"])), **tags,  # type: ignore[arg-type]
    )  # fmt: skip


def test_action_ids_are_stable_and_shared_by_the_findings_of_one_action() -> None:
    customers = f.customers((3, "C-3", "Cy"))
    banks = f.banks(f.bank(40, 3, ready=False), f.bank(41, 3, ready=True))
    pads = f.pads(f.pad(42, 3, 40, "revoked"), f.pad(43, 3, 41, "accepted"))
    rec = run(customers, banks=banks, pads=pads)
    proposals = propose(rec)
    assert list(proposals.actions.columns) == list(ACTION_COLUMNS)
    assert list(proposals.actions["action_id"]) == ["20260120-set_default_bank_account-3-41"]
    # pad_revoked and bank_not_ready of account 40 both point at it
    linked = rec.findings.assign(a=proposals.of_finding)
    assert set(linked.loc[linked["a"] != "", "code"]) == {"pad_revoked", "bank_not_ready"}
    assert propose(rec).actions.equals(proposals.actions)


# -- the check just before sending --------------------------------------------------------


def fresh(
    cards: pd.DataFrame | None = None, banks: pd.DataFrame | None = None, pads: pd.DataFrame | None = None
) -> Fresh:
    return Fresh(1, cards if cards is not None else f.cards(), banks if banks is not None else f.banks(),
                 pads if pads is not None else f.pads())  # fmt: skip


def action(name: str, method_id: int | None, code: str = "") -> Action:
    return Action(f"20260120-{name}-1-{method_id or 0}", name, code, 1, "C-1", method_id)


def test_a_default_bank_account_is_checked_against_what_crmsync_knows_of_the_default() -> None:
    act = action("set_default_bank_account", 41)
    one = fresh(banks=f.banks(f.bank(40, 1, ready=False), f.bank(41, 1, ready=True)))
    assert still_needed(act, one, TODAY) is None
    assert still_needed(act, one, TODAY, bank_default=41) == (
        "it is the default bank account already (crmsync act made it so)"
    )
    two = fresh(banks=f.banks(f.bank(41, 1, ready=True), f.bank(42, 1, ready=True)))
    assert still_needed(act, two, TODAY) == (
        "the customer has 2 ready bank accounts now: which is the default is a person's call"
    )


@pytest.mark.parametrize(
    ("act", "state", "reason"),
    [
        (action("delete_card", 11), fresh(f.cards(f.card(10, 1, "0130"))), "the card is no longer in Helcim"),
        (
            action("delete_card", 11),
            fresh(f.cards(f.card(11, 1, "0130", default=False), f.card(10, 1, "0130"))),
            "the card is valid now, not expired",
        ),
        (
            action("delete_card", 11),
            fresh(f.cards(f.card(11, 1, "1225", default=False))),
            "it is the customer's only card",
        ),
        (
            action("delete_card", 11),
            fresh(f.cards(f.card(11, 1, "1225", default=False), f.card(10, 1, "0130"))),
            None,
        ),
        (
            action("set_default_card", 11),
            fresh(f.cards(f.card(11, 1, "0130", default=False), f.card(10, 1, "0230"))),
            "the customer has a valid default card now (411111******1111)",
        ),
        (action("set_default_card", 11), fresh(f.cards(f.card(11, 1, "0130"), f.card(10, 1, "0230"))), None),
        (
            action("set_default_card", 11),
            fresh(f.cards(f.card(11, 1, "1225", default=False))),
            "the card is expired now",
        ),
        (
            action("request_bank_details", None, "no_payment_method"),
            fresh(f.cards(f.card(10, 1, "0130"))),
            "the customer has a card or bank account now",
        ),
        (action("request_bank_details", None, "no_payment_method"), fresh(), None),
        (
            action("request_bank_details", None, "pad_revoked"),  # whatever the code says
            fresh(
                f.cards(f.card(10, 1, "0130")),
                f.banks(f.bank(50, 1, ready=False)),
                f.pads(f.pad(51, 1, 50, "revoked")),
            ),
            "the customer has a valid card or a ready bank account: no request for bank details",
        ),
        (
            action("request_bank_details", None, "bank_without_pad"),
            fresh(banks=f.banks(f.bank(50, 1, ready=False), f.bank(52, 1, ready=True))),
            "the customer has a valid card or a ready bank account: no request for bank details",
        ),
        (
            action("accept_pad", 51),
            fresh(banks=f.banks(f.bank(50, 1)), pads=f.pads(f.pad(51, 1, 50, "revoked"))),
            "the PAD is revoked now",
        ),
        (
            action("set_default_bank_account", 41),
            fresh(banks=f.banks(f.bank(41, 1, ready=False))),
            "the bank account is not ready any more",
        ),
        (
            action("accept_pad", 51),  # pending for 10 days on the 20th: not long enough to be accepted
            fresh(
                banks=f.banks(f.bank(50, 1)),
                pads=f.pads(f.pad(51, 1, 50, "pending", created="2026-01-10 09:00:00")),
            ),
            "the PAD has waited 10 days, not more than 14: the customer may still accept it",
        ),
        (
            action("accept_pad", 51),
            fresh(
                banks=f.banks(f.bank(50, 1)),
                pads=f.pads(f.pad(51, 1, 50, "pending", created="2025-09-01 09:00:00")),
            ),
            None,
        ),
    ],
)
def test_still_needed_checks_the_finding_on_a_fresh_read(
    act: Action, state: Fresh, reason: str | None
) -> None:
    assert still_needed(act, state, TODAY) == reason


# -- reading actions.csv back --------------------------------------------------------------


def table(*rows: dict[str, str]) -> pd.DataFrame:
    base = dict.fromkeys(ACTION_COLUMNS, "")
    return pd.DataFrame([base | r for r in rows], columns=list(ACTION_COLUMNS), dtype="str")


ROW = {
    "action_id": "20260120-delete_card-7-11", "code": "card_expired", "helcim_id": "7", "customer_code": "'=C-7",
    "method_id": "11", "action": "delete_card", "approve": "YES",
}  # fmt: skip


def test_parse_actions_takes_the_approved_rows_as_written() -> None:
    actions, not_approved = parse_actions(table(ROW, ROW | {"action_id": "20260120-delete_card-7-12",
                                                             "method_id": "12", "approve": ""}))  # fmt: skip
    assert not_approved == 1
    assert actions == [Action("20260120-delete_card-7-11", "delete_card", "card_expired", 7, "=C-7", 11, 2)]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (ROW | {"approve": "ok"}, "approve must be yes, no or empty"),
        (ROW | {"action": "delete_customer"}, "unknown action"),
        (ROW | {"method_id": "12"}, "does not match"),
        (ROW | {"helcim_id": "x"}, "must be Helcim ids"),
        (ROW | {"action_id": "delete_card-7-11"}, "does not match"),
    ],
    ids=["approve", "action", "method", "helcim-id", "id-shape"],
)
def test_parse_actions_refuses_rows_crmsync_did_not_propose(row: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_actions(table(row))


PAD = ROW | {
    "action_id": "20260120-accept_pad-7-51",
    "code": "pad_pending",
    "method_id": "51",
    "action": "accept_pad",
}


def test_accept_pad_is_approved_only_with_signed_one_row_at_a_time() -> None:
    """Accepting a PAD records the customer's consent: a "yes" filled down a column must not do it."""
    with pytest.raises(UsageError, match="write signed"):
        parse_actions(table(PAD))
    actions, _ = parse_actions(table(PAD | {"approve": "Signed"}, ROW))
    assert [(a.action, a.line) for a in actions] == [("accept_pad", 2), ("delete_card", 3)]
    with pytest.raises(UsageError, match="only for accept_pad"):
        parse_actions(table(ROW | {"approve": "signed"}))


def test_parse_actions_refuses_a_file_without_the_columns_and_a_doubled_action() -> None:
    with pytest.raises(UsageError, match="missing the columns"):
        parse_actions(pd.DataFrame({"action_id": ["x"]}))
    with pytest.raises(UsageError, match="listed twice"):
        parse_actions(table(ROW, ROW))


# -- triage --------------------------------------------------------------------------------


def test_triage_marks_new_open_and_resolved_per_group() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"))
    before = run(
        customers,
        f.cards(
            f.card(10, 1, "1225"),
            f.card(20, 2, "1225", f6l4="5454545454"),
            f.card(30, 3, "0130", default=False, f6l4="3714490005"),
        ),
    )
    first = triage(before.findings, None, date(2026, 1, 19))
    assert set(first.findings["status"]) == {"new"}
    assert first.summary()["new"] is None  # nothing to compare with
    # the next day: C-1's card was replaced, C-3 got a second card without default, C-2 unchanged
    after = run(customers, f.cards(f.card(11, 1, "0130"), f.card(20, 2, "1225", f6l4="5454545454"),
                                   f.card(30, 3, "0130", default=False, f6l4="3714490005"),
                                   f.card(31, 3, "0230", default=False, f6l4="6011000004")))  # fmt: skip
    second = triage(after.findings, first.seen(), TODAY)
    status = second.findings.set_index(["code", "customer_code"])["status"].to_dict()
    assert status[("card_expired", "C-2")] == "open"
    assert (
        second.findings.set_index(["code", "customer_code"]).loc[("card_expired", "C-2"), "first_seen"]
        == "2026-01-19"
    )
    assert list(second.resolved["customer_code"]) == ["C-1"]
    groups = {g["code"]: (g["count"], g["new"], g["resolved"]) for g in second.groups}
    assert groups["card_expired"] == (1, 0, 1)
    assert groups["no_default_card"] == (1, 0, 0)
    assert [g["severity"] for g in second.groups] == sorted(
        (g["severity"] for g in second.groups), key=["critical", "warning", "info"].index
    )
    assert second.summary()["resolved"] == 1


def test_a_code_one_report_did_not_check_is_neither_new_nor_resolved() -> None:
    customers = f.customers((1, "C-1", "Ada"))
    with_crm = run(customers, crm=["C-1"])
    previous = triage(with_crm.findings, None, TODAY).seen()
    without = run(customers)
    review = triage(without.findings, previous, TODAY, skipped_now=without.skipped_codes)
    assert review.resolved.empty
    assert finding_keys(with_crm.findings).tolist() == ["no_payment_method:1:"]
