"""`crmsync reconcile` end to end on a seeded sandbox: every finding code, a golden summary.json,
masking of every output, the CRM import files, and report.html in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.reconcile.report import headline
from crmsync.reconcile.rules import FINDINGS
from helcim_sandbox.launcher import SandboxProcess
from tests.conftest import TOKEN, Api
from tests.jobs.test_plan_cli import row, write_export

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

    def customer(code: str) -> int:
        return int(api.create(customerCode=code, contactName=f"Person {code}")["id"])

    # created before the seed, so they have the lowest ids and their bank accounts are read first
    customer("C-NOPAY")  # in the CRM, nothing stored: no_payment_method
    bank1, bank2, bank3 = customer("C-BANK1"), customer("C-BANK2"), customer("C-BANK3")
    sandbox_server.add_bank(bank1, **US_BANK, verified=False, pad="none")
    sandbox_server.add_bank(bank2, **CA_BANK, verified=True, pad="revoked")
    sandbox_server.add_bank(bank3, **CA_BANK, verified=True, pad="pending", dateCreated="2090-01-10 10:00:00")
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
    return SeededRun(tmp / "first", tmp / "second", "\n".join(outputs), tokens)


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
    assert len(files) == 18
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


def _run_browser(*args: str) -> subprocess.CompletedProcess[str]:
    browser = _browser()
    if browser is None:
        pytest.skip("no headless Chromium on PATH: install Debian's chromium (make test does when it can)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        "--virtual-time-budget=3000",
    ]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=90, check=False)


class Rows(HTMLParser):
    """Rows of the findings tables after JS: (table id, data-code, hidden, cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = ""
        self.rows: list[tuple[str, str, bool, list[str]]] = []
        self.tiles: dict[str, str] = {}
        self.root: dict[str, str | None] = {}
        self._tile = ""
        self._in_value = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.root = a
        elif tag == "table":
            self.table = a.get("id") or ""
        elif tag == "tr" and "data-code" in a:
            self.rows.append((self.table, a["data-code"] or "", "hidden" in a, []))
        elif tag == "td" and self.rows:
            self._cell = []
        elif tag == "div" and "data-metric" in a:
            self._tile = a["data-metric"] or ""
        elif tag == "span" and a.get("class") == "value" and self._tile:
            self._in_value = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][3].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "span":
            self._in_value = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_value:
            self.tiles[self._tile] = data.strip()


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


def test_report_in_headless_chromium(seeded: SeededRun, tmp_path: Path) -> None:
    report = seeded.second / "reconciliation" / "report.html"
    shot = tmp_path / "report.png"
    done = _run_browser(f"--screenshot={shot}", "--window-size=1280,1600", report.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    width, height, colours = _png_size_and_colours(shot)
    assert (width, height) == (1280, 1600)
    assert colours > 20  # not a blank page

    dom = _run_browser("--dump-dom", report.as_uri() + "#q=pad_revoked&sort=customer_code")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = Rows()
    parsed.feed(dom.stdout)
    assert parsed.root.get("data-js") == "ready"  # the sort/filter script ran to its end
    expected = headline(summary_of(seeded.second))
    assert {k: int(v) for k, v in parsed.tiles.items()} == expected
    critical = [r for r in parsed.rows if r[0] == "table-critical"]
    assert critical
    assert {(code, hidden) for _, code, hidden, _ in critical} == {
        ("pad_revoked", False),
        ("card_expired", True),
        ("duplicate_customer", True),
    }
    warning = [r[3][2] for r in parsed.rows if r[0] == "table-warning"]
    assert warning == sorted(warning, key=str.lower)  # sorted by customer code
    assert 'data-sorted-by="customer_code"' in dom.stdout
