"""`crmsync reconcile` end to end on a seeded sandbox: every finding code, a golden summary.json,
masking of every output, the CRM import files, and report.html in a real headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.reconcile.actions import parse_actions
from crmsync.reconcile.findings import reconcile
from crmsync.reconcile.report import headline, write_reconciliation
from crmsync.reconcile.rules import FINDINGS
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN, Api
from tests.jobs.test_plan_cli import row, write_export
from tests.reconcile import frames as f

TODAY = "2090-03-15"  # far ahead of the wall clock, so every bank read of the run is "nights ago" for ever
GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "reconcile_summary.json"
#: What changes from run to run (the clock, paths) and is left out of the golden comparison.
VOLATILE = ("generated_at", "change_since_previous", "outputs")
CA_BANK = {
    "accountCorporate": 1,
    "accountType": 2,
    "bankAccountNumber": "918273645",
    "bankFinancialNumber": "003",
    "bankTransitNumber": "12345",
    "streetAddress": "440 2 Ave SW",
    "city": "Calgary",
    "provinceAlpha2": "AB",
    "countryAlpha2": "CA",
    "postalCode": "T2P 5E9",
    "firstName": "Ada",
    "lastName": "Lovelace",
}
US_BANK = CA_BANK | {
    "bankAccountNumber": "000123456789",
    "bankRoutingNumber": "021000021",
    "countryAlpha2": "US",
    "provinceAlpha2": "CA",
    "city": "San Francisco",
    "postalCode": "94105",
}
FULL_NUMBERS = ("918273645", "000123456789", "4111111111111111", "5454545454545454")


@dataclass(frozen=True)
class SeededRun:
    first: Path
    second: Path
    output: str
    tokens: set[str]
    sandbox: SandboxProcess
    ids: dict[str, int]


def _invoke(tmp: Path, sandbox: SandboxProcess, *args: str) -> tuple[int, str]:
    env = {
        "HELCIM_API_URL": sandbox.base_url,
        "HELCIM_API_TOKEN": TOKEN,
        "CRMSYNC_STATE_DB": str(tmp / "state.db"),
        "CRMSYNC_CONFIG": "",
        "CRMSYNC_RATE_LIMITS": "off",
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, sandbox_server: SandboxProcess) -> SeededRun:
    """A sandbox made so that every finding code appears, reconciled twice with a budget."""
    sandbox_server.configure(limits="off", faults="", duplicate_codes="refuse")
    sandbox_server.reset()
    api = Api(sandbox_server.base_url)

    ids: dict[str, int] = {}

    def customer(code: str) -> int:
        ids[code] = int(api.create(customerCode=code, contactName=f"Person {code}")["id"])
        return ids[code]

    # created before the seed, so they have the lowest ids and their bank accounts are read first
    customer("C-NOPAY")  # in the CRM, nothing stored: no_payment_method
    bank1, bank2, bank3 = customer("C-BANK1"), customer("C-BANK2"), customer("C-BANK3")
    sandbox_server.add_bank(bank1, **US_BANK, verified=False, pad="none")
    sandbox_server.add_bank(bank2, **CA_BANK, verified=True, pad="revoked")
    # pending since long before both the report's date and the clock's (crmsync act checks its age by the clock)
    sandbox_server.add_bank(bank3, **CA_BANK, verified=True, pad="pending", dateCreated="2025-01-10 10:00:00")
    cards = customer("C-CARDS")
    sandbox_server.add_card(
        cards, cardHolderName="Two Defaults", cardNumber="4111111111111111", cardExpiry="0193", default=True
    )
    sandbox_server.add_card(
        cards, cardHolderName="Two Defaults", cardNumber="5454545454545454", cardExpiry="0294", default=True
    )
    sandbox_server.add_card(cards, cardHolderName="Two Defaults", cardF6L4="4111112222", cardExpiry="0189")
    for code in ("C-TWIN1", "C-TWIN2"):
        sandbox_server.add_card(
            customer(code), cardHolderName="Sam Twin", cardF6L4="3714490005", cardExpiry="0691", default=True
        )
    sandbox_server.add_card(
        customer("C-NODEF"), cardHolderName="No Default", cardF6L4="6011000004", cardExpiry="0390"
    )
    sandbox_server.configure(duplicate_codes="allow")  # a create that landed twice: duplicate_customer
    customer("C-DUP")
    customer("C-DUP")
    sandbox_server.configure(duplicate_codes="refuse")
    sandbox_server.seed(120, seed=11, today=TODAY)

    tmp = tmp_path_factory.mktemp("reconcile")
    crm = write_export(
        tmp / "crm.csv",
        [
            row(code, f"Person {code}")
            for code in ("C-NOPAY", "C-BANK1", "C-CARDS", "C-ONLY", "C-DUP", "=cmd|' /C calc'!A0")
        ],
    )
    outputs: list[str] = []
    for name in ("first", "second"):
        status, output = _invoke(
            tmp,
            sandbox_server,
            "reconcile",
            "--out",
            str(tmp / name),
            "--crm",
            str(crm),
            "--today",
            TODAY,
            "--max-calls",
            "40",
        )
        assert status == 0, output
        outputs.append(output)
    tokens: set[str] = set()
    page = api("GET", "/customers", params={"includeCards": "yes", "limit": 100, "page": 1}).json()
    page += api("GET", "/customers", params={"includeCards": "yes", "limit": 100, "page": 2}).json()
    for c in page:
        tokens.update(card["cardToken"] for card in c["cards"])
        tokens.update(b["bankToken"] for b in api("GET", f"/customers/{c['id']}/bank-accounts").json())
    assert len(tokens) > 100
    return SeededRun(tmp / "first", tmp / "second", "\n".join(outputs), tokens, sandbox_server, ids)


def summary_of(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / "reconciliation" / "summary.json").read_text())
    return loaded


def test_every_finding_code_appears(seeded: SeededRun) -> None:
    by_code = summary_of(seeded.first)["findings_by_code"]
    assert set(by_code) == set(FINDINGS)
    assert [code for code, n in by_code.items() if n == 0] == []


def test_summary_matches_the_golden_file(seeded: SeededRun) -> None:
    summary = {k: v for k, v in summary_of(seeded.first).items() if k not in VOLATILE}
    if os.environ.get("CRMSYNC_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert summary == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_second_run_shows_the_change_since_the_first(seeded: SeededRun) -> None:
    first, second = summary_of(seeded.first), summary_of(seeded.second)
    assert first["change_since_previous"] is None
    change = second["change_since_previous"]
    assert change["previous_generated_at"] == first["generated_at"]
    assert change["headline"] == {k: headline(second)[k] - headline(first)[k] for k in headline(first)}
    # the second run spent its budget on bank accounts not read yet
    assert second["counts"]["customers_with_bank_data"] > first["counts"]["customers_with_bank_data"]


def test_findings_name_the_customers_it_was_made_for(seeded: SeededRun) -> None:
    text = (seeded.first / "reconciliation" / "findings.csv").read_text()
    for expected in (
        "no_payment_method,C-NOPAY",
        "bank_without_pad,C-BANK1",
        "pad_revoked,C-BANK2",
        "pad_pending,C-BANK3",
        "multiple_default_cards,C-CARDS",
        "no_default_card,C-NODEF",
        "duplicate_card,C-TWIN1",
    ):
        assert expected in text
    assert "crm_only_customer,,,C-ONLY" in text
    assert "'=cmd|' /C calc'!A0" in text  # a formula as crm_id arrives neutralised


def test_crm_import_files(seeded: SeededRun) -> None:
    folder = seeded.first / "crm_import"
    assert (
        (folder / "new_customers.csv")
        .read_text()
        .splitlines()[0]
        .startswith("crm_id,helcim_id,helcim_customer_code,contact_name,")
    )
    new = (folder / "new_customers.csv").read_text()
    assert "C-DUP" not in new  # a duplicate is merged in Helcim, never imported as a new CRM record
    assert len(new.splitlines()) == 1 + 125  # the seeded Helcim-only customers
    methods = (folder / "payment_methods.csv").read_text()
    assert "C-CARDS," in methods
    assert ",card,".join(["", ""]) in methods
    assert "5454" in methods
    assert ",bank," in methods


def test_no_secret_or_full_number_in_any_output(seeded: SeededRun) -> None:
    files = [p for folder in (seeded.first, seeded.second) for p in folder.rglob("*") if p.is_file()]
    assert len(files) == 20
    texts = {str(p): p.read_text(encoding="utf-8") for p in files} | {"command output": seeded.output}
    for where, text in texts.items():
        assert TOKEN not in text, where
        assert not [t for t in seeded.tokens if t in text], where
        assert not [n for n in FULL_NUMBERS if n in text], where
        assert not re.search(r"\d{12,}", text), where


# -- report.html in a real browser ------------------------------------------------------


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A real headless Chromium driven by Playwright (Debian's chromium: Playwright downloads no browser)."""
    executable = _browser()
    if executable is None:
        pytest.skip("no headless Chromium on PATH: install Debian's chromium (make test does when it can)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


def _open(browser: Any, report: Path, fragment: str = "") -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 1600}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(report.as_uri() + fragment)
    page.wait_for_selector("html[data-js=ready]")
    assert errors == []
    return page


def _png_size_and_colours(path: Path) -> tuple[int, int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, at = b"", 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            idat += data[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_report_is_self_contained(seeded: SeededRun) -> None:
    html = (seeded.second / "reconciliation" / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html
    assert "https://" not in html
    assert "<svg" in html
    assert "<script>" in html


def test_report_in_headless_chromium(seeded: SeededRun, browser: Any, tmp_path: Path) -> None:
    report = seeded.second / "reconciliation" / "report.html"
    page = _open(browser, report, "#q=pad_revoked&sort=customer_code")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    width, height, colours = _png_size_and_colours(shot)
    assert (width, height) == (1280, 1600)
    assert colours > 20  # not a blank page
    tiles = page.eval_on_selector_all(
        "div[data-metric]", "ts => ts.map(t => [t.dataset.metric, t.querySelector('.value').textContent])"
    )
    assert {k: int(v) for k, v in tiles} == headline(summary_of(seeded.second))
    shown = page.eval_on_selector_all("section.group:not([hidden])", "gs => gs.map(g => g.dataset.code)")
    assert set(shown) == {"pad_revoked"}  # the filter hid every group without a match, opened the others
    rows = page.eval_on_selector_all("table.findings tbody tr", "rs => rs.map(r => r.dataset.code)")
    assert rows
    assert set(rows) == {"pad_revoked"}
    assert page.get_attribute("table.findings", "data-sorted-by") == "customer_code"
    page.fill("#filter", "")
    page.click('section.group[data-code="card_expired"] .toggle')
    codes = page.eval_on_selector_all(
        'section.group[data-code="card_expired"] table.findings tbody tr',
        "rs => rs.map(r => r.cells[2].textContent)",
    )
    assert len(codes) == summary_of(seeded.second)["findings_by_code"]["card_expired"]
    assert codes == sorted(codes, key=str.lower)  # sorted by customer code, as the link asked


def _approved(text: str) -> dict[str, str]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return {r["action_id"]: r["action"] for r in rows if r["approve"] in ("yes", "signed")}


def _tick_a_pad_to_accept(page: Any) -> str:
    """Accepting a PAD: no group tick; the row's tick asks first, and a "no" leaves it unticked."""
    group = 'section.group[data-code="pad_pending"]'
    assert page.locator(f"{group} .tick-all").is_hidden()  # never bulk-approved
    page.click(f"{group} .toggle")
    box = page.locator(f"{group} tbody input.tick.signs")
    assert box.count() == 1
    questions: list[str] = []

    def answer(yes: bool) -> Callable[[Any], None]:
        def reply(dialog: Any) -> None:
            questions.append(dialog.message)
            dialog.accept() if yes else dialog.dismiss()

        return reply

    page.once("dialog", answer(False))
    box.click()
    assert not box.is_checked()  # not confirmed: not ticked
    page.once("dialog", answer(True))
    box.click()
    assert box.is_checked()
    assert len(questions) == 2
    assert "signed PAD agreement" in questions[0]
    return str(box.get_attribute("data-action"))


def test_tick_download_and_act_on_it(seeded: SeededRun, browser: Any, tmp_path: Path) -> None:
    """The review loop in a real browser: tick per row and per group, download, then crmsync act on the file."""
    report = seeded.second / "reconciliation" / "report.html"
    proposed = list(
        csv.DictReader(io.StringIO((seeded.second / "reconciliation" / "actions.csv").read_text()))
    )
    page = _open(browser, report)
    page.fill("#filter", "C-CARDS")
    page.click('section.group[data-code="multiple_default_cards"] .toggle')
    row = page.locator('section.group[data-code="multiple_default_cards"] tbody input.tick')
    assert row.count() == 1
    row.check()  # one row
    one = row.get_attribute("data-action")
    page.fill("#filter", "")
    page.check('section.group[data-code="no_default_card"] input.tick-group')  # a whole group, unopened
    page.fill("#filter", "C-NOPAY")
    page.check('section.group[data-code="no_payment_method"] input.tick-group')  # the group, as filtered
    expected = {one} | {r["action_id"] for r in proposed if r["code"] == "no_default_card"}
    expected |= {r["action_id"] for r in proposed if r["customer_code"] == "C-NOPAY"}
    assert page.text_content("#ticked") == str(len(expected))
    page.fill("#filter", "")
    signed = _tick_a_pad_to_accept(page)
    assert page.text_content("#ticked") == str(len(expected) + 1)
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "actions.csv"
    saved = tmp_path / "actions.csv"
    download.value.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    header = "action_id,code,helcim_id,customer_code,customer,method_id,method,action,detail,approve"
    assert text.splitlines()[0] == header
    downloaded = list(csv.DictReader(io.StringIO(text)))
    assert [r["action_id"] for r in downloaded] == [r["action_id"] for r in proposed]  # every proposal
    assert {r["action_id"] for r in downloaded if r["approve"] == "yes"} == expected
    assert {r["action_id"] for r in downloaded if r["approve"] == "signed"} == {signed}
    assert all(r["approve"] == "" for r in downloaded if r["action_id"] not in expected | {signed})
    for theirs, ours in zip(downloaded, proposed, strict=True):  # the page's CSV is the report's, filled in
        assert {k: v for k, v in theirs.items() if k != "approve"} == {
            k: v for k, v in ours.items() if k != "approve"
        }
    approved = _approved(text)
    assert {r["customer_code"] for r in downloaded if r["action_id"] in approved} >= {"C-CARDS", "C-NOPAY"}

    sandbox = seeded.sandbox
    status, output = _invoke(
        seeded.first.parent, sandbox, "act", "--accept", str(saved), "--out", str(tmp_path / "act")
    )  # fmt: skip
    assert status == 0, output
    results = list(csv.DictReader(io.StringIO((tmp_path / "act" / "results.csv").read_text())))
    assert {r["action_id"]: r["outcome"] for r in results} == dict.fromkeys(approved, "done")
    outbox = sandbox.outbox()
    nopay = seeded.ids["C-NOPAY"]
    assert [m for m in outbox if m["customerId"] == nopay] == [{"customerId": nopay, "kind": "bank-request"}]
    cards = Api(sandbox.base_url)("GET", f"/customers/{seeded.ids['C-CARDS']}/cards").json()
    if one.split("-")[2] == str(seeded.ids["C-CARDS"]):
        assert [c["cardF6L4"] for c in cards if c["default"]] == [
            "5454545454"
        ]  # the valid card expiring last
    assert [
        c["default"] for c in Api(sandbox.base_url)("GET", f"/customers/{seeded.ids['C-NODEF']}/cards").json()
    ] == [True]


def test_the_page_writes_actions_csv_as_crmsync_does_formulas_neutralised(
    browser: Any, tmp_path: Path
) -> None:
    """A customer whose name and code a spreadsheet would run as formulas: the page's CSV is the writer's."""
    customers = f.customers((7, "+C-7", '=HYPERLINK("x","y")'), (8, "C-8", 'Ann, "the" Smith'))
    cards = f.cards(
        f.card(70, 7, "0130", default=False), f.card(80, 8, "0130", default=False, f6l4="5454545454")
    )
    rec = reconcile(customers, cards, f.banks(), f.pads(), f.links(), None, date(2026, 1, 20))
    files = write_reconciliation(tmp_path, rec, previous=None, generated_at="test")
    page = _open(browser, Path(files.outputs["report"]))
    page.check('section.group[data-code="no_default_card"] input.tick-group')
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    written = Path(files.outputs["actions"]).read_text(encoding="utf-8")
    assert saved.read_text(encoding="utf-8") == written.replace(",\n", ",yes\n")  # the same bytes, approved
    assert "'+C-7" in written
    assert "'=HYPERLINK" in written
    actions, _ = parse_actions(pd.read_csv(saved, dtype=str, keep_default_na=False))
    assert sorted(a.customer_code for a in actions) == ["+C-7", "C-8"]  # read back as Helcim holds them
