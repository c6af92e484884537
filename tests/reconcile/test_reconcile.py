"""The pure reconciliation on small hand-built frames: each finding code, its edges, the summary."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from crmsync.reconcile.findings import Reconciliation, reconcile
from crmsync.reconcile.rules import CRM_CODES, FINDINGS
from crmsync.reconcile.tables import card_brand, mask_bank, mask_card
from crmsync.sync.pairing import pair_customers
from tests.reconcile import frames as f

TODAY = date(2026, 1, 20)


def run(
    customers: pd.DataFrame,
    cards: pd.DataFrame | None = None,
    banks: pd.DataFrame | None = None,
    pads: pd.DataFrame | None = None,
    *,
    links: pd.DataFrame | None = None,
    crm: list[str] | None = None,
    refreshed: pd.DataFrame | None = None,
    today: date = TODAY,
    **thresholds: int,
) -> Reconciliation:
    links = links if links is not None else f.links()
    crm_ids = pd.Series(crm, dtype="str") if crm is not None else None
    pairs = None
    if crm_ids is not None:  # the diff's pairing, as a run carries it to the reconciliation
        pairs = pair_customers(pd.DataFrame({"crm_id": crm_ids}), customers, links, None).pairs
    return reconcile(
        customers,
        cards if cards is not None else f.cards(),
        banks if banks is not None else f.banks(),
        pads if pads is not None else f.pads(),
        links,
        crm_ids,
        today,
        pairs=pairs,
        bank_refreshed=refreshed,
        expiring_days=thresholds.get("expiring_days", 30),
        pad_pending_days=thresholds.get("pad_pending_days", 14),
        stale_nights=thresholds.get("stale_nights", 7),
    )


def codes(rec: Reconciliation) -> list[tuple[str, str]]:
    return sorted(zip(rec.findings["code"], rec.findings["customer_code"], strict=True))


ONE = f.customers((1, "C-1", "Ada King"))


@pytest.mark.parametrize(
    ("expiry", "status"),
    [
        ("1225", "expired"),  # last month
        ("0126", "expiring"),  # this month: valid through Jan 31, so expiring, not expired
        ("0226", "expiring"),  # Feb 28 is 39 days away: outside 30 days...
        ("0326", "valid"),
        ("1327", "unreadable"),
        ("", "unreadable"),
    ],
    ids=["last-month", "this-month", "next-month", "in-two-months", "month-13", "empty"],
)
def test_card_status_by_month_boundary(expiry: str, status: str) -> None:
    rec = run(ONE, f.cards(f.card(10, 1, expiry)), expiring_days=40)
    assert rec.cards["status"].tolist() == [status]


def test_expiring_window_counts_days_to_the_last_day_of_the_expiry_month() -> None:
    cards = f.cards(f.card(10, 1, "0226"))  # valid through 2026-02-28
    assert run(ONE, cards, today=date(2026, 1, 29), expiring_days=30).cards["status"][0] == "expiring"
    assert run(ONE, cards, today=date(2026, 1, 28), expiring_days=30).cards["status"][0] == "valid"
    assert run(ONE, cards, today=date(2026, 3, 1)).cards["status"][0] == "expired"


def test_card_expired_is_critical_only_when_payments_depend_on_it() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"))
    cards = f.cards(
        f.card(10, 1, "1225", default=True),  # the default card expired: critical
        f.card(11, 2, "1225", default=False, f6l4="5454545454"),  # an old card beside a valid default
        f.card(12, 2, "0130", default=True, f6l4="5454545455"),
    )
    rec = run(customers, cards)
    expired = rec.findings[rec.findings["code"] == "card_expired"]
    assert dict(zip(expired["customer_code"], expired["severity"], strict=True)) == {
        "C-1": "critical",
        "C-2": "warning",
    }
    assert "default card is valid" in expired[expired["customer_code"] == "C-2"]["action"].iloc[0]


def test_default_card_findings() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"))
    cards = f.cards(
        f.card(10, 1, "0130", default=False),
        f.card(11, 2, "0130", default=True, f6l4="5454545454"),
        f.card(12, 2, "0230", default=True, f6l4="5454545455"),
        f.card(13, 3, "0130", default=True, f6l4="3714490005"),
    )
    rec = run(customers, cards)
    assert codes(rec) == [("multiple_default_cards", "C-2"), ("no_default_card", "C-1")]
    several = rec.findings[rec.findings["code"] == "multiple_default_cards"].iloc[0]
    assert several["method"] == "545454******5454, 545454******5455"


def test_duplicate_card_needs_same_numbers_expiry_and_holder_on_different_customers() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"))
    cards = f.cards(
        f.card(10, 1, "0130", holder="Sam  Twin"),
        f.card(11, 2, "0130", holder="sam twin"),  # spacing and case do not matter
        f.card(12, 3, "0230", holder="Sam Twin"),  # another expiry: another card
        f.card(13, 1, "0130", holder="Sam Twin", default=False),  # twice on one customer is not a duplicate
    )
    rec = run(customers, cards)
    dup = rec.findings[rec.findings["code"] == "duplicate_card"]
    assert sorted(dup["method_id"]) == ["10", "11", "13"]
    assert set(dup.loc[dup["customer_code"] == "C-2", "detail"]) == {"also stored on C-1"}


def test_bank_findings_and_their_reasons() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"), (4, "C-4", "Di"))
    banks = f.banks(
        f.bank(20, 1, verified=False, ready=False),  # no PAD at all
        f.bank(21, 2, ready=False),  # PAD pending, 15 days
        f.bank(22, 3, ready=False),  # PAD revoked
        f.bank(23, 4, ready=True),  # an old revoked PAD, then an accepted one: fine
    )
    pads = f.pads(
        f.pad(30, 2, 21, "pending"),
        f.pad(31, 3, 22, "revoked"),
        f.pad(32, 4, 23, "revoked"),
        f.pad(33, 4, 23, "accepted"),
    )
    rec = run(customers, banks=banks, pads=pads)
    assert codes(rec) == [
        ("bank_not_ready", "C-1"),
        ("bank_not_ready", "C-2"),
        ("bank_not_ready", "C-3"),
        ("bank_unverified", "C-1"),
        ("bank_without_pad", "C-1"),
        ("pad_pending", "C-2"),
        ("pad_revoked", "C-3"),
    ]
    reasons = rec.findings[rec.findings["code"] == "bank_not_ready"].set_index("customer_code")["detail"]
    assert reasons.to_dict() == {
        "C-1": "no PAD agreement",
        "C-2": "PAD agreement not accepted yet",
        "C-3": "PAD agreement revoked",
    }
    assert rec.banks.set_index("bank_id")["pad_status"].to_dict() == {
        20: "none",
        21: "pending",
        22: "revoked",
        23: "accepted",
    }
    # a pending PAD younger than the window is not reported
    assert "pad_pending" not in set(
        run(customers, banks=banks, pads=pads, pad_pending_days=15).findings["code"]
    )


def test_bank_without_pad_waits_until_the_pads_were_read() -> None:
    banks = f.banks(f.bank(20, 1))
    never = run(ONE, banks=banks, refreshed=f.refreshed())
    read = run(ONE, banks=banks, refreshed=f.refreshed((1, "2026-01-19T23:00:00.000000Z")))
    assert "bank_without_pad" not in set(never.findings["code"])
    assert "bank_without_pad" in set(read.findings["code"])


def test_stale_payment_data_counts_nights_since_the_last_read() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"), (3, "C-3", "Cy"))
    refreshed = f.refreshed((1, "2026-01-13T02:00:00.000000Z"), (2, "2026-01-12T02:00:00.000000Z"))
    rec = run(customers, refreshed=refreshed, stale_nights=7)
    stale = rec.findings[rec.findings["code"] == "stale_payment_data"].set_index("customer_code")["detail"]
    assert stale.to_dict() == {
        "C-2": "bank accounts and PADs last read 2026-01-12 (8 nights ago)",
        "C-3": "bank accounts and PADs never read",
    }
    assert rec.summary()["counts"]["customers_with_bank_data"] == 2
    assert "stale_payment_data" not in set(run(customers).findings["code"])  # refresh times unknown


def test_crm_side_codes_with_links_and_codes() -> None:
    customers = f.customers(
        (1, "CST1", "Linked"), (2, "C-2", "By code"), (3, "CST3", "Helcim only"), (4, "CST4", "Old")
    )
    cards = f.cards(f.card(10, 1, "0130"))
    rec = run(
        customers,
        cards,
        links=f.links(("C-1", 1), ("C-GONE", 4), ("C-LOST", 99)),
        crm=["C-1", "C-2", "C-9", "C-LOST"],
        refreshed=f.refreshed((1, "2026-01-20T00:00:00Z"), (2, "2026-01-20T00:00:00Z")),
    )
    found = rec.findings[rec.findings["code"].isin(CRM_CODES)]
    assert sorted(zip(found["code"], found["crm_id"], found["customer_code"], strict=True)) == [
        ("crm_only_customer", "C-9", ""),
        ("crm_only_customer", "C-LOST", ""),
        ("helcim_only_customer", "", "CST3"),
        ("helcim_only_customer", "C-GONE", "CST4"),  # linked to a record that left the export
        ("no_payment_method", "C-2", "C-2"),  # paired by its code, no card, bank data read: none
    ]
    lost = found[found["crm_id"] == "C-LOST"]["detail"].iloc[0]
    assert lost == "linked to a Helcim customer that is no longer in Helcim"
    assert (rec.crm_records, rec.linked) == (4, 2)


def test_without_a_crm_export_the_crm_codes_are_skipped_and_said_so() -> None:
    rec = run(f.customers((1, "CST1", "Alone")))
    summary = rec.summary()
    assert summary["skipped_codes"] == list(CRM_CODES)
    assert not set(CRM_CODES) & set(summary["findings_by_code"])
    assert any("no CRM export given" in note for note in summary["notes"])
    assert rec.findings.empty


def test_findings_are_sorted_most_severe_first_and_every_code_has_a_spec() -> None:
    customers = f.customers((1, "C-1", "Ada"), (2, "C-2", "Bo"))
    cards = f.cards(f.card(10, 1, "1225"), f.card(11, 2, "0126", f6l4="5454545454"))
    rec = run(customers, cards, crm=["C-1", "C-2", "C-3"])
    ranks = rec.findings["severity"].map({"critical": 0, "warning": 1, "info": 2})
    assert ranks.is_monotonic_increasing
    assert set(rec.findings["code"]) <= set(FINDINGS)
    assert (rec.findings["action"] != "").all()


def test_summary_counts_and_months() -> None:
    cards = f.cards(
        f.card(10, 1, "0126"), f.card(11, 1, "0326", default=False), f.card(12, 1, "0127", default=False)
    )
    summary = run(ONE, cards).summary()
    assert summary["cards_by_status"] == {"expired": 0, "expiring": 1, "valid": 2, "unreadable": 0}
    months = summary["cards_expiring_by_month"]
    assert list(months)[:3] == ["2026-01", "2026-02", "2026-03"]
    assert len(months) == 12
    assert (months["2026-01"], months["2026-03"], months["2026-12"]) == (1, 1, 0)
    assert summary["today"] == "2026-01-20"


def test_masking_helpers_never_show_more_than_first6_last4() -> None:
    assert mask_card(pd.Series(["4111111111", "54545454", ""])).tolist() == [
        "411111******1111",
        "******5454",
        "******",
    ]
    assert mask_bank(pd.Series(["6789", "123456789"])).tolist() == ["****6789", "****6789"]
    assert card_brand(
        pd.Series(["4111111111", "5454545454", "2221001234", "3714490005", "6011000000", "9999999999"])
    ).tolist() == [
        "Visa",
        "Mastercard",
        "Mastercard",
        "Amex",
        "Discover",
        "other",
    ]


def test_negative_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="expiring_days"):
        run(ONE, expiring_days=-1)


# -- found in review -----------------------------------------------------------------------------


def test_pairing_agrees_with_the_diff_duplicate_codes_and_links_to_deleted_customers() -> None:
    customers = f.customers((1, "A", "Ada King"), (2, "A", "Ada King again"), (3, "G", "Gus Roy"))
    rec = run(customers, links=f.links(("G", 99)), crm=["A", "G"])
    by_code = {
        (code, customer)
        for code, customer in zip(rec.findings["code"], rec.findings["customer"], strict=True)
    }
    # two customers share code "A": both are duplicate_customer (critical), neither Helcim-only
    assert ("duplicate_customer", "Ada King again") in by_code
    assert ("duplicate_customer", "Ada King") in by_code
    assert not {("helcim_only_customer", "Ada King"), ("helcim_only_customer", "Ada King again")} & by_code
    detail = rec.findings.loc[rec.findings["code"] == "duplicate_customer", "detail"].iloc[0]
    assert detail == "customerCode A is held by 2 Helcim customers (ids 1, 2); crmsync syncs the oldest, 1"
    assert set(rec.findings.loc[rec.findings["code"] == "duplicate_customer", "severity"]) == {"critical"}
    # G is linked to a customer Helcim no longer has: customer 3 does not pair with it by code
    assert ("helcim_only_customer", "Gus Roy") in by_code


def test_whole_day_counts_stay_integers_next_to_an_unreadable_card() -> None:
    rec = run(ONE, f.cards(f.card(10, 1, "0226"), f.card(11, 1, "ab12", default=False)), expiring_days=40)
    assert rec.cards["days_left"].tolist()[0] == 39
    assert str(rec.cards["days_left"].dtype) == "Int64"
    assert "(in 39 days)" in " ".join(rec.findings["detail"])


def test_a_card_expiring_this_month_is_expiring_whatever_the_window() -> None:
    rec = run(ONE, f.cards(f.card(10, 1, "0126")), expiring_days=0)
    assert rec.cards["status"].tolist() == ["expiring"]


def test_bank_not_ready_never_asks_for_a_new_pad_before_the_pads_were_read() -> None:
    customers = f.customers((1, "C-1", "Ada King"))
    rec = run(customers, banks=f.banks(f.bank(20, 1, ready=False)), refreshed=f.refreshed())
    row = rec.findings[rec.findings["code"] == "bank_not_ready"].iloc[0]
    assert row["detail"] == "its PAD agreements are not read yet"
    assert "Send" not in row["action"]
    assert "bank_without_pad" not in set(rec.findings["code"])


def test_a_duplicate_card_on_a_customer_with_the_same_code_is_named_by_helcim_id() -> None:
    customers = f.customers((1, "A", "Ada King"), (2, "A", "Ada King"))
    rec = run(customers, f.cards(f.card(10, 1, "0128"), f.card(11, 2, "0128")))
    dup = rec.findings[rec.findings["code"] == "duplicate_card"]
    assert sorted(dup["detail"]) == ["also stored on Helcim 1", "also stored on Helcim 2"]


def test_no_change_figure_for_codes_one_of_the_two_runs_did_not_check() -> None:
    from crmsync.reconcile.report import _change

    customers = f.customers((1, "C-1", "Ada King"), (2, "C-2", "Bob Lee"))
    with_crm = run(customers, crm=["C-1", "C-9"]).summary()
    without = run(customers).summary()
    change = _change(without, with_crm)
    assert change is not None
    assert not set(CRM_CODES) & set(change["findings_by_code"])
    assert set(change["findings_by_code"]) <= set(FINDINGS)
