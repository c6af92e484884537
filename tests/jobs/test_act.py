"""`crmsync act` end to end against a real sandbox: effects, the journal, skips, uncertain e-mails, budget, files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmsync.state import open_state
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import Api
from tests.jobs.test_plan_cli import invoke, read_csv, row, write_export

TODAY = "2026-11-20"  # the reports' date; crmsync act checks as of the clock's, so the cards below expire far away
CODES = ("A-TWODEF", "A-EXPIRED", "A-NOPAY", "A-PENDING")
CA_BANK = {
    "accountCorporate": 1,
    "accountType": 1,
    "bankAccountNumber": "1234567",
    "bankFinancialNumber": "003",
    "bankTransitNumber": "12345",
    "streetAddress": "1 Main",
    "city": "Calgary",
    "provinceAlpha2": "AB",
    "countryAlpha2": "CA",
    "postalCode": "T2P1A1",
    "firstName": "Ada",
    "lastName": "King",
}


@dataclass(frozen=True)
class Account:
    """A small Helcim account with one customer per situation an action fixes."""

    api: Api
    ids: dict[str, int]
    cards: dict[str, int]
    pads: dict[str, int]


def _customer(api: Api, ids: dict[str, int], code: str) -> int:
    ids[code] = int(api.create(customerCode=code, contactName=f"Person {code}")["id"])
    return ids[code]


@pytest.fixture
def account(sandbox: SandboxProcess) -> Account:
    api = Api(sandbox.base_url)
    ids: dict[str, int] = {}
    cards: dict[str, int] = {}
    pads: dict[str, int] = {}

    def card(code: str, name: str, f6l4: str, expiry: str, default: bool = False) -> None:
        cards[name] = int(
            sandbox.add_card(
                ids[code], cardHolderName=code, cardF6L4=f6l4, cardExpiry=expiry, default=default
            )["id"]
        )

    _customer(api, ids, "A-TWODEF")  # two defaults: the valid one expiring last becomes the only default
    card("A-TWODEF", "two-old", "4111111111", "0135", default=True)
    card("A-TWODEF", "two-new", "5454545454", "0939", default=True)
    _customer(api, ids, "A-EXPIRED")  # an expired card beside a valid default: deleted
    card("A-EXPIRED", "exp-default", "4111112222", "0539", default=True)
    card("A-EXPIRED", "exp-old", "4111113333", "0125")
    _customer(api, ids, "A-NOPAY")  # nothing stored: a request for bank details
    pending = _customer(api, ids, "A-PENDING")  # a PAD pending for months: recorded as accepted
    sandbox.add_bank(pending, **CA_BANK, verified=True, pad="pending", dateCreated="2026-08-01 10:00:00")
    pads["pending"] = int(api("GET", f"/customers/{pending}/pads").json()["pads"][0]["id"])
    return Account(api, ids, cards, pads)


def reconcile(tmp_path: Path, sandbox: SandboxProcess, out: str) -> Path:
    crm = write_export(tmp_path / "crm.csv", [row(code, f"Person {code}") for code in CODES])
    status, output = invoke(
        tmp_path, sandbox, "reconcile", "--out", str(tmp_path / out), "--today", TODAY, "--crm", str(crm)
    )
    assert status == 0, output
    return tmp_path / out / "reconciliation"


def approve(actions: Path, target: Path, keep: Any = lambda row: True) -> Path:
    """actions.csv approved where ``keep``: yes, or signed for accept_pad (the person holds the agreement)."""
    rows = read_csv(actions)
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        signed = {"accept_pad": "signed"}
        writer.writerows([r | {"approve": signed.get(r["action"], "yes") if keep(r) else ""} for r in rows])
    return target


def act(
    tmp_path: Path, sandbox: SandboxProcess, actions: Path, out: str, *extra: str
) -> tuple[int, dict[str, Any]]:
    status, output = invoke(
        tmp_path, sandbox, "act", "--accept", str(actions), "--out", str(tmp_path / out), *extra
    )
    assert status in (0, 1), output
    summary: dict[str, Any] = json.loads((tmp_path / out / "summary.json").read_text())
    counted = ("not_approved", "done", "already_done", "skipped", "failed", "uncertain", "check", "deferred")
    assert summary["adds_up"] is True
    assert summary["rows_read"] == sum(summary[k] for k in (*counted, "would_do"))
    return status, summary


def outcomes(tmp_path: Path, out: str) -> dict[tuple[str, str], str]:
    return {(r["action"], r["customer_code"]): r["outcome"] for r in read_csv(tmp_path / out / "results.csv")}


def test_the_review_loop_acts_once_and_the_next_report_shows_it(
    tmp_path: Path, sandbox: SandboxProcess, account: Account
) -> None:
    folder = reconcile(tmp_path, sandbox, "morning1")
    proposed = {(r["action"], r["customer_code"]) for r in read_csv(folder / "actions.csv")}
    assert proposed == {
        ("set_default_card", "A-TWODEF"),
        ("delete_card", "A-EXPIRED"),
        ("request_bank_details", "A-NOPAY"),
        ("accept_pad", "A-PENDING"),
    }
    filled = approve(folder / "actions.csv", tmp_path / "filled.csv")

    sandbox.reset_stats()
    status, dry = act(tmp_path, sandbox, filled, "dry", "--dry-run")
    assert (status, dry["would_do"], dry["done"]) == (0, 4, 0)
    writes = {op for op in sandbox.stats()["by_operation"] if not op.startswith("get-")}
    assert writes == set()  # a dry run reads, and sends nothing
    assert sandbox.outbox() == []

    status, first = act(tmp_path, sandbox, filled, "act1")
    assert (status, first["done"], first["approved"]) == (0, 4, 4)
    assert first["customers_read_again"] == 3  # the e-mail changed nothing Helcim shows
    api = account.api
    listed = api("GET", f"/customers/{account.ids['A-TWODEF']}/cards").json()
    assert [c["id"] for c in listed if c["default"]] == [account.cards["two-new"]]
    listed = api("GET", f"/customers/{account.ids['A-EXPIRED']}/cards").json()
    assert [c["id"] for c in listed] == [account.cards["exp-default"]]
    assert sandbox.outbox() == [{"customerId": account.ids["A-NOPAY"], "kind": "bank-request"}]
    pads = api("GET", f"/customers/{account.ids['A-PENDING']}/pads").json()["pads"]
    assert [(p["id"], p["accepted"]) for p in pads] == [(account.pads["pending"], 1)]

    sandbox.reset_stats()
    status, again = act(tmp_path, sandbox, filled, "act2")
    assert (status, again["already_done"], again["api_calls"]) == (0, 4, 0)  # never repeated, not even read
    assert len(sandbox.outbox()) == 1

    folder = reconcile(tmp_path, sandbox, "morning2")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["actions"]["since_previous"] == {"done": 4}
    assert (
        summary["triage"]["resolved"] >= 4
    )  # multiple defaults, the expired card, the pending PAD, bank not ready
    assert summary["findings_by_code"]["multiple_default_cards"] == 0
    assert summary["findings_by_code"]["pad_pending"] == 0
    findings = read_csv(folder / "findings.csv")
    nopay = [f for f in findings if f["customer_code"] == "A-NOPAY"]
    assert [f["tag"] for f in nopay] == ["details_requested"]  # waiting for the customer: not asked again
    assert not [r for r in read_csv(folder / "actions.csv") if r["customer_code"] == "A-NOPAY"]
    html = (folder / "report.html").read_text()
    assert "Actions since the previous report" in html
    assert html.count('data-outcome="done"') == 4


def test_an_action_whose_finding_no_longer_holds_is_skipped_with_the_reason(
    tmp_path: Path, sandbox: SandboxProcess, account: Account
) -> None:
    folder = reconcile(tmp_path, sandbox, "morning")
    filled = approve(
        folder / "actions.csv", tmp_path / "filled.csv", lambda r: r["action"] != "request_bank_details"
    )
    # meanwhile, someone fixed two of them in Helcim
    customer = account.ids["A-EXPIRED"]
    assert account.api("DELETE", f"/customers/{customer}/cards/{account.cards['exp-old']}").status_code == 204
    two = account.ids["A-TWODEF"]
    account.api("PATCH", f"/customers/{two}/cards/{account.cards['two-old']}/default").raise_for_status()
    status, summary = act(tmp_path, sandbox, filled, "act")
    assert (status, summary["skipped"], summary["done"]) == (0, 2, 1)
    details = {r["action"]: r["detail"] for r in read_csv(tmp_path / "act" / "results.csv")}
    assert details["delete_card"] == "the card is no longer in Helcim"
    assert details["set_default_card"].startswith("the customer has a valid default card now")
    listed = account.api("GET", f"/customers/{two}/cards").json()
    assert [c["id"] for c in listed if c["default"]] == [account.cards["two-old"]]  # their choice stands


def test_an_e_mail_with_an_uncertain_outcome_is_never_sent_again(
    tmp_path: Path, sandbox: SandboxProcess, account: Account
) -> None:
    folder = reconcile(tmp_path, sandbox, "morning")
    filled = approve(
        folder / "actions.csv", tmp_path / "filled.csv", lambda r: r["action"] == "request_bank_details"
    )
    sandbox.configure(
        faults="drop_after_commit=1,op=request-new-bank-account,count=1"
    )  # sent, the answer lost
    status, first = act(tmp_path, sandbox, filled, "act1")
    assert (status, first["uncertain"]) == (1, 1)
    assert len(sandbox.outbox()) == 1  # Helcim did e-mail the customer
    (result,) = read_csv(tmp_path / "act1" / "results.csv")
    assert "check in Helcim" in result["detail"]
    sandbox.configure(faults="")
    status, second = act(tmp_path, sandbox, filled, "act2")
    assert (status, second["check"]) == (1, 1)  # reported for a person, not re-sent
    assert len(sandbox.outbox()) == 1
    # nor proposed again in the next report: the customer may have been asked already
    folder = reconcile(tmp_path, sandbox, "morning2")
    assert not [r for r in read_csv(folder / "actions.csv") if r["customer_code"] == "A-NOPAY"]


def test_the_budget_defers_whole_customers_and_says_so(
    tmp_path: Path, sandbox: SandboxProcess, account: Account
) -> None:
    folder = reconcile(tmp_path, sandbox, "morning")
    filled = approve(folder / "actions.csv", tmp_path / "filled.csv")
    status, summary = act(tmp_path, sandbox, filled, "act", "--max-calls", "8")
    assert status == 0
    assert summary["api_calls"] <= 8
    assert summary["deferred"] >= 2
    assert summary["done"] + summary["deferred"] == 4
    status, rest = act(tmp_path, sandbox, filled, "act2")
    assert (rest["already_done"], rest["done"]) == (summary["done"], summary["deferred"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r | {"approve": "maybe"}, "approve must be yes, no or empty"),
        (lambda r: r | {"action": "delete_customer"}, "unknown action"),
        (lambda r: r | {"method_id": "999"} if r["method_id"] else r | {"helcim_id": "1"}, "does not match"),
    ],
    ids=["approve-value", "unknown-action", "edited-id"],
)
def test_a_file_crmsync_did_not_write_is_refused_before_any_call(
    tmp_path: Path, sandbox: SandboxProcess, account: Account, edit: Any, message: str
) -> None:
    folder = reconcile(tmp_path, sandbox, "morning")
    rows = read_csv(folder / "actions.csv")
    target = tmp_path / "edited.csv"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([edit(r | {"approve": "yes"}) for r in rows[:1]] + rows[1:])
    sandbox.reset_stats()
    status, output = invoke(tmp_path, sandbox, "act", "--accept", str(target), "--out", str(tmp_path / "act"))
    assert status == 2, output
    assert message in output
    assert sandbox.stats()["total"] == 0


def test_an_act_killed_between_intent_and_outcome_resends_a_default_never_an_e_mail(
    tmp_path: Path, sandbox: SandboxProcess, account: Account
) -> None:
    folder = reconcile(tmp_path, sandbox, "morning")
    wanted = ("set_default_card", "request_bank_details")
    filled = approve(folder / "actions.csv", tmp_path / "filled.csv", lambda r: r["action"] in wanted)
    # what a kill -9 right after the intents were committed leaves in the journal
    with open_state(tmp_path / "state.db") as state:
        for r in read_csv(filled):
            if r["approve"] == "yes":
                method = int(r["method_id"]) if r["method_id"] else None
                state.review.action_intent(
                    r["action_id"],
                    "killed-run",
                    r["action"],
                    r["code"],
                    int(r["helcim_id"]),
                    r["customer_code"],
                    method,
                )
    status, summary = act(tmp_path, sandbox, filled, "act")
    assert (status, summary["done"], summary["check"]) == (1, 1, 1)  # a person must look at the e-mail
    assert outcomes(tmp_path, "act") == {
        ("set_default_card", "A-TWODEF"): "done",  # safe to send again: it is idempotent
        ("request_bank_details", "A-NOPAY"): "check",  # it may have left: never sent twice
    }
    assert sandbox.outbox() == []


def test_a_file_asking_to_e_mail_one_customer_twice_is_refused(
    tmp_path: Path, sandbox: SandboxProcess, account: Account
) -> None:
    """Yesterday's and today's request for one customer, pasted into one file: two e-mails, were it done."""
    folder = reconcile(tmp_path, sandbox, "morning")
    rows = [r for r in read_csv(folder / "actions.csv") if r["action"] == "request_bank_details"]
    assert len(rows) == 1
    yesterday = rows[0] | {"action_id": rows[0]["action_id"].replace(TODAY.replace("-", ""), "20261119")}
    target = tmp_path / "two.csv"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([yesterday | {"approve": "yes"}, rows[0] | {"approve": "yes"}])
    sandbox.reset_stats()
    status, output = invoke(tmp_path, sandbox, "act", "--accept", str(target), "--out", str(tmp_path / "act"))
    assert status == 2, output
    assert "e-mail customer" in output
    assert sandbox.stats()["total"] == 0
    assert sandbox.outbox() == []


def test_act_checks_as_of_the_clock_and_takes_no_date(
    tmp_path: Path, sandbox: SandboxProcess, account: Account
) -> None:
    """A report made as of a later date proposes deleting a card valid today: act checks it as of today."""
    customer = account.ids["A-EXPIRED"]
    card = int(sandbox.add_card(customer, cardHolderName="A", cardF6L4="4111114444", cardExpiry="0130")["id"])
    future = "2036-03-01"  # that card (01/30) has expired by then, the default (05/39) has not
    crm = write_export(tmp_path / "crm.csv", [row(code, f"Person {code}") for code in CODES])
    status, output = invoke(tmp_path, sandbox, "reconcile", "--out", str(tmp_path / "m"), "--today", future,
                            "--crm", str(crm))  # fmt: skip
    assert status == 0, output
    actions = tmp_path / "m" / "reconciliation" / "actions.csv"
    filled = approve(actions, tmp_path / "filled.csv", lambda r: r["method_id"] == str(card))
    status, output = invoke(tmp_path, sandbox, "act", "--accept", str(filled), "--out", str(tmp_path / "a"),
                            "--today", future)  # fmt: skip
    assert status == 2, output  # no date to check as of: it would make a valid card look expired
    assert "No such option" in output
    assert act(tmp_path, sandbox, filled, "act")[0] == 0
    (result,) = read_csv(tmp_path / "act" / "results.csv")
    assert (result["action"], result["outcome"]) == ("delete_card", "skipped")
    assert result["detail"].endswith("now, not expired")
    listed = account.api("GET", f"/customers/{customer}/cards").json()
    assert card in [c["id"] for c in listed]  # still there: valid today


def _uncertain_e_mail(tmp_path: Path, sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A request for bank details sent long ago whose answer was lost (the clock of that act: 2026-01-01)."""
    folder = reconcile(tmp_path, sandbox, "morning")
    filled = approve(
        folder / "actions.csv", tmp_path / "filled.csv", lambda r: r["action"] == "request_bank_details"
    )
    sandbox.configure(faults="drop_after_commit=1,op=request-new-bank-account,count=1")
    with monkeypatch.context() as patched:
        patched.setattr("crmsync.state.review.utcnow", lambda: "2026-01-01T09:00:00.000000Z")
        assert act(tmp_path, sandbox, filled, "act1")[1]["uncertain"] == 1
    sandbox.configure(faults="")
    return filled


def test_an_uncertain_e_mail_blocks_its_customer_until_a_person_resolves_it(
    tmp_path: Path, sandbox: SandboxProcess, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    _uncertain_e_mail(tmp_path, sandbox, monkeypatch)
    folder = reconcile(tmp_path, sandbox, "morning2")  # months later: far beyond the pending window
    assert not [r for r in read_csv(folder / "actions.csv") if r["customer_code"] == "A-NOPAY"]
    (finding,) = [f for f in read_csv(folder / "findings.csv") if f["customer_code"] == "A-NOPAY"]
    assert finding["tag"] == "details_requested"
    html = (folder / "report.html").read_text()
    assert html.count('data-outcome="uncertain"') == 1  # listed in every report until it is resolved
    assert len(sandbox.outbox()) == 1


@pytest.mark.parametrize(("verdict", "asked_again"), [("not-sent", True), ("sent", False)])
def test_a_person_resolves_an_uncertain_e_mail_with_what_helcim_shows(
    tmp_path: Path, sandbox: SandboxProcess, account: Account, verdict: str, asked_again: bool
) -> None:
    folder = reconcile(tmp_path, sandbox, "morning")
    filled = approve(
        folder / "actions.csv", tmp_path / "filled.csv", lambda r: r["action"] == "request_bank_details"
    )
    sandbox.configure(faults="drop_after_commit=1,op=request-new-bank-account,count=1")
    assert act(tmp_path, sandbox, filled, "act1")[1]["uncertain"] == 1
    sandbox.configure(faults="")
    (row_,) = [r for r in read_csv(filled) if r["approve"] == "yes"]
    resolve = f"{row_['action_id']}={verdict}"
    status, output = invoke(tmp_path, sandbox, "act", "--resolve", resolve, "--out", str(tmp_path / "r"))
    assert status == 0, output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["resolved"] == {row_["action_id"]: verdict}
    assert summary["rows_read"] == 0
    status, output = invoke(tmp_path, sandbox, "act", "--resolve", resolve, "--out", str(tmp_path / "r2"))
    assert status == 2, output  # resolved once: nothing left to resolve
    assert "not waiting for a check" in output
    folder = reconcile(tmp_path, sandbox, "morning2")
    asked = [r for r in read_csv(folder / "actions.csv") if r["customer_code"] == "A-NOPAY"]
    assert bool(asked) is asked_again  # sent: the customer waits within the pending window; not sent: ask
    html = (folder / "report.html").read_text()
    assert 'data-outcome="uncertain"' not in html


def _forged(rows: list[dict[str, str]], ids: dict[str, int]) -> list[dict[str, str]]:
    """A request for bank details to a customer with a valid card, under a code that would want one."""
    two = ids["A-TWODEF"]
    return [rows[0] | {"action_id": f"{TODAY.replace('-', '')}-request_bank_details-{two}-0", "code": "pad_revoked",
                       "helcim_id": str(two), "customer_code": "A-TWODEF", "method_id": "", "method": "",
                       "action": "request_bank_details"}]  # fmt: skip


def _recoded(rows: list[dict[str, str]], ids: dict[str, int]) -> list[dict[str, str]]:
    return [r | {"code": "pad_revoked"} for r in rows if r["action"] == "request_bank_details"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_forged, "not one the latest report proposed"),
        (_recoded, "not as the latest report proposed it"),
        ("older-report", "not one the latest report proposed"),
        ("stale-report", "a day or more ago"),
    ],
    ids=["never-proposed", "code-edited", "an-earlier-report", "a-stale-report"],
)
def test_only_what_the_latest_recent_report_proposed_is_done(
    tmp_path: Path, sandbox: SandboxProcess, account: Account, monkeypatch: pytest.MonkeyPatch, edit: Any,
    message: str,
) -> None:  # fmt: skip
    if edit == "stale-report":  # the report was made 25 hours ago and none since
        stale = (datetime.now(UTC) - timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        monkeypatch.setattr("crmsync.state.review.utcnow", lambda: stale)
    folder = reconcile(tmp_path, sandbox, "morning")
    monkeypatch.undo()
    rows = read_csv(folder / "actions.csv")
    if edit in ("older-report", "stale-report"):
        chosen = rows
        if edit == "older-report":  # a newer report since: its proposals replace these
            invoke(tmp_path, sandbox, "reconcile", "--out", str(tmp_path / "m2"), "--today", "2026-11-21")
    else:
        chosen = edit(rows, account.ids)
    target = tmp_path / "edited.csv"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([r | {"approve": "yes"} for r in chosen if r["action"] != "accept_pad"])
    sandbox.reset_stats()
    status, output = invoke(tmp_path, sandbox, "act", "--accept", str(target), "--out", str(tmp_path / "act"))
    assert status == 2, output
    assert message in output
    assert sandbox.stats()["total"] == 0
    assert sandbox.outbox() == []


def test_a_default_bank_account_set_is_known_not_proposed_again_and_its_revoked_pad_downgraded(
    tmp_path: Path, sandbox: SandboxProcess, account: Account
) -> None:
    api = account.api
    cid = int(api.create(customerCode="A-REVOKED", contactName="Person A-REVOKED")["id"])
    sandbox.add_bank(cid, **CA_BANK, verified=True, pad="revoked")
    sandbox.add_bank(cid, **(CA_BANK | {"bankAccountNumber": "7654321"}), verified=True, pad="accepted")
    folder = reconcile(tmp_path, sandbox, "morning1")
    (proposal,) = [r for r in read_csv(folder / "actions.csv") if r["customer_code"] == "A-REVOKED"]
    assert proposal["action"] == "set_default_bank_account"  # the one ready account: whatever the default is
    filled = approve(folder / "actions.csv", tmp_path / "f1.csv", lambda r: r["customer_code"] == "A-REVOKED")
    assert act(tmp_path, sandbox, filled, "act1")[1]["done"] == 1
    status, output = invoke(tmp_path, sandbox, "reconcile", "--out", str(tmp_path / "morning2"), "--today",
                            "2026-11-21", "--crm", str(tmp_path / "crm.csv"))  # fmt: skip
    assert status == 0, output
    again = tmp_path / "morning2" / "reconciliation"
    assert not [r for r in read_csv(again / "actions.csv") if r["customer_code"] == "A-REVOKED"]
    findings = {r["code"]: r for r in read_csv(again / "findings.csv") if r["customer_code"] == "A-REVOKED"}
    revoked = findings["pad_revoked"]
    assert (revoked["severity"], revoked["tag"], revoked["action_id"]) == ("warning", "default_ready", "")
    assert "****4321" in revoked["detail"]  # debits go to the default crmsync set, which is ready
