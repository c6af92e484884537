"""Real exports from the systems merchants use, read from ../shared/real-exports at test time.

Each must be recognised by ``--profile auto``, validate with only the rejects a
person would agree with, and go through ``plan`` and ``run`` against a real
sandbox, twice: the second night changes nothing (an omitted address is not
pushed again, nor cleared).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.crm.keys import email_code
from crmsync.crm.validate import check_export
from crmsync.helcim.models import Customer, CustomerInput
from crmsync.state import open_state
from helcim_sandbox.launcher import SandboxProcess
from tests.jobs.test_plan_cli import decide, helcim, invoke

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "real-exports"

pytestmark = pytest.mark.skipif(
    not REAL.is_dir(), reason=f"the real exports are not here ({REAL}): they live in the shared folder"
)

#: file → (the profile auto must choose, where the key comes from)
EXPECTED = {
    "shopify_customers_2024.csv": ("shopify", "crm_id"),
    "hubspot_contacts_with_company.csv": ("hubspot", "crm_id"),
    "salesforce_contact_data_export.csv": ("salesforce", "crm_id"),
    "zoho_books_contacts.csv": ("zoho-books", "crm_id"),
    "wave_customers.csv": ("wave", "email"),
}
#: The rejects a person agrees with: no name at all, a phone that is not one, an id a spreadsheet
#: rounded, a state or ZIP that is not American, an address without a name (the row has none).
AGREED = {
    "contact_or_business_name",
    "phone_length",
    "phone_characters",
    "crm_id_scientific",
    "province_code",
    "postal_format",
    "required_with_address",
    "email_syntax",
}


def _files() -> list[str]:
    return sorted(p.name for p in REAL.glob("*.csv")) if REAL.is_dir() else []


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("name", _files())
def test_every_real_export_validates_with_the_profile_auto_chooses(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(cli, ["validate", "--crm", str(REAL / name), "--out", str(tmp_path)])
    assert result.exit_code in (0, 1), result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    profile, key = EXPECTED.get(name, (summary["profile"], summary["key"]))
    assert (summary["profile"], summary["key"]) == (profile, key)
    assert summary["profile_fit"]["fits"]
    assert summary["profile_fit"]["headers_read"] >= 3
    assert summary["rows_read"] == summary["valid"] + summary["rejected"]
    assert summary["valid"] > summary["rejected"]
    assert set(summary["problems_by_rule"]) <= AGREED, summary["problems_by_rule"]
    warned = {r["source_line"] for r in rows(tmp_path / "warnings.csv")}
    assert summary["rows_with_warnings"] == len(warned)
    assert warned <= {r["source_line"] for r in rows(tmp_path / "valid.csv")}  # warnings are of valid rows


def test_shopify_ids_and_phones_lose_the_spreadsheet_apostrophe() -> None:
    checked = check_export(REAL / "shopify_customers_2024.csv", "auto")
    ids = checked.valid["crm_id"].astype(str)
    assert ids.str.fullmatch(r"[0-9]{13}").all()
    assert "5897398649016" in set(ids)
    assert not checked.valid["cell_phone"].astype(str).str.contains("'").any()
    # 1,131 customers had an e-mail or phone but no street: created all the same, with warnings
    assert checked.rows_with_warnings > 900
    assert set(checked.rejects["rule"]) == {"contact_or_business_name", "phone_length"}


def test_hubspot_with_companies_keeps_the_contacts_own_columns() -> None:
    checked = check_export(REAL / "hubspot_contacts_with_company.csv", "hubspot")
    frame = checked.export.frame.set_index("source_line")
    raw = {int(r["_line"]): r for r in _raw_rows(REAL / "hubspot_contacts_with_company.csv")}
    # the company's City (after "Record ID - Company") never becomes the contact's billing city
    company_city = [line for line, r in raw.items() if r["City"].strip()]
    assert company_city
    assert (frame.loc[company_city, "billing_city"] == "").all()
    # a contact without its own company name takes the associated company's
    line = next(n for n, r in raw.items() if not r["Company Name"] and r["Company name"])
    assert frame.at[line, "business_name"] == raw[line]["Company name"]
    rounded = checked.rejects[checked.rejects["rule"] == "crm_id_scientific"]
    assert len(rounded) > 100
    assert "a spreadsheet re-saved this export" in rounded["reason"].iloc[0]


def _raw_rows(path: Path) -> list[dict[str, str]]:
    """The rows with the company section's repeated headers kept apart (csv.DictReader keeps the last)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        out = []
        for number, values in enumerate(reader, start=2):
            first: dict[str, str] = {"_line": str(number)}
            for name, value in zip(header, values, strict=False):
                first.setdefault(name, value)
            first["City"] = values[header.index("City")]
            out.append(first)
    return out


def test_salesforce_object_export_fits_without_account_fields() -> None:
    checked = check_export(REAL / "salesforce_contact_data_export.csv", "auto")
    assert checked.export.profile == "salesforce"
    assert "shipping_phone" not in checked.export.mapped_columns  # OtherPhone invents no address
    assert checked.valid["crm_id"].astype(str).str.fullmatch(r"003[A-Za-z0-9]{15}").all()


def test_an_email_key_is_a_deterministic_code_of_at_most_50_characters() -> None:
    checked = check_export(REAL / "wave_customers.csv", "auto")
    codes = checked.valid.set_index("billing_email")["crm_id"].astype(str)
    assert codes["homer@simpsons.com"] == email_code("homer@simpsons.com") == email_code("Homer@Simpsons.COM")
    assert codes.str.fullmatch(r"em-[0-9a-f]{24}").all()
    assert codes.str.len().max() <= 50


def test_a_wrong_profile_names_the_one_that_fits(tmp_path: Path) -> None:
    """An explicit profile that cannot read the export is refused naming the one that can; one that can,
    but reads far fewer of its headers than another built-in profile, says so."""
    shopify = str(REAL / "shopify_customers_2024.csv")
    refused = CliRunner().invoke(
        cli, ["validate", "--crm", shopify, "--profile", "generic", "--out", str(tmp_path)]
    )
    assert refused.exit_code == 2
    assert "This looks like a Shopify export: the profile shopify (reads 13 of 20 headers" in refused.output
    assert "Total Orders" not in refused.output  # no nonsense "nearest header" guesses
    loose = CliRunner().invoke(
        cli, ["validate", "--crm", shopify, "--profile", "hubspot", "--out", str(tmp_path)]
    )
    assert loose.exit_code == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert any("the profile shopify reads 13 of its 20 headers" in w for w in summary["warnings"])


@pytest.mark.slow
@pytest.mark.parametrize("name", _files())
def test_plan_and_run_work_on_each_real_export(tmp_path: Path, sandbox: SandboxProcess, name: str) -> None:
    export = str(REAL / name)
    code, output = invoke(tmp_path, sandbox, "plan", "--crm", export, "--out", str(tmp_path / "plan"))
    assert code in (0, 1), output
    planned = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert planned["profile"] == EXPECTED.get(name, (planned["profile"],))[0]
    code, output = invoke(tmp_path, sandbox, "run", "--crm", export, "--out", str(tmp_path / "night1"))
    assert code in (0, 1), output
    first = json.loads((tmp_path / "night1" / "summary.json").read_text())
    assert first["adds_up"]
    assert first["failed"] == 0
    assert first["created"] == first["rows_read"] - first["rejected"]
    assert (tmp_path / "night1" / "warnings.csv").exists()
    code, output = invoke(tmp_path, sandbox, "run", "--crm", export, "--out", str(tmp_path / "night2"))
    second = json.loads((tmp_path / "night2" / "summary.json").read_text())
    assert (second["created"], second["updated"]) == (0, 0), output  # nothing pushed again
    assert second["exported"] == 0, output  # and nothing Helcim holds differs: no phantom export either
    assert second["unchanged"] == first["created"]
    assert second["rows_with_warnings"] == first["rows_with_warnings"]


@pytest.mark.slow
def test_a_changed_email_key_is_proposed_as_a_link_never_a_duplicate(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """Homer's e-mail (Wave's key) changes; meanwhile someone renamed him in Helcim. The new key is
    proposed as his link, the accepted move keeps the base, and the rename is exported to the CRM on
    the next night, never overwritten with the CRM's old name."""
    source = (REAL / "wave_customers.csv").read_text(encoding="utf-8")
    night1 = tmp_path / "wave.csv"
    night1.write_text(source, encoding="utf-8")
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(night1), "--out", str(tmp_path / "n1"))
    assert code in (0, 1), output
    created = json.loads((tmp_path / "n1" / "summary.json").read_text())["created"]
    homer = next(c for c in sandbox_customers(sandbox) if c.contact_name.startswith("Homer"))
    helcim(sandbox).update_customer(homer.id, CustomerInput(contact_name="Homer J. Connery"))
    night2 = tmp_path / "wave-changed.csv"
    night2.write_text(source.replace("homer@simpsons.com", "homer.j@simpsons.com"), encoding="utf-8")
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(night2), "--out", str(tmp_path / "n2"))
    summary = json.loads((tmp_path / "n2" / "summary.json").read_text())
    assert summary["created"] == 0  # not a second Homer
    proposals = rows(tmp_path / "n2" / "link_proposals.csv")
    assert [p["crm_id"] for p in proposals] == [email_code("homer.j@simpsons.com")]
    assert proposals[0]["replaces"] == email_code("homer@simpsons.com")
    decide(tmp_path / "n2" / "link_proposals.csv", "yes")  # a person says: the same Homer
    code, output = invoke(tmp_path, sandbox, "link", "--accept", str(tmp_path / "n2" / "link_proposals.csv"))
    assert code == 0, output
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(night2), "--out", str(tmp_path / "n3"))
    third = json.loads((tmp_path / "n3" / "summary.json").read_text())
    assert third["created"] == 0
    assert third["link_proposals"] == 0
    assert len(sandbox_customers(sandbox)) == created
    assert helcim(sandbox).get_customer(homer.id).contact_name == "Homer J. Connery"  # not overwritten
    exported = rows(tmp_path / "n3" / "crm_import" / "updates.csv")
    assert ("contact_first_name", "Homer J.") in {(r["field"], r["helcim_value"]) for r in exported}


@pytest.mark.slow
def test_a_stale_link_proposal_unlinks_nothing(tmp_path: Path, sandbox: SandboxProcess) -> None:
    """A proposals file accepted after the links changed is refused whole, and the links stay as they
    are: here the same move accepted again (done already: nothing to do), then one edited so that
    another linked CRM row takes Homer's customer (it would have unlinked that row's own customer)."""
    source = (REAL / "wave_customers.csv").read_text(encoding="utf-8")
    night1 = tmp_path / "wave.csv"
    night1.write_text(source, encoding="utf-8")
    invoke(tmp_path, sandbox, "run", "--crm", str(night1), "--out", str(tmp_path / "n1"))
    night1.write_text(source.replace("homer@simpsons.com", "homer.j@simpsons.com"), encoding="utf-8")
    invoke(tmp_path, sandbox, "plan", "--crm", str(night1), "--out", str(tmp_path / "n2"))
    proposals = tmp_path / "n2" / "link_proposals.csv"
    decide(proposals, "yes")
    assert invoke(tmp_path, sandbox, "link", "--accept", str(proposals))[0] == 0
    assert invoke(tmp_path, sandbox, "link", "--accept", str(proposals))[0] == 0  # done already: no change
    with open_state(tmp_path / "state.db") as state:
        before = state.links().to_dict("records")
    other = next(r for r in before if r["crm_id"] != email_code("homer.j@simpsons.com"))
    # edited: another linked row takes Homer's customer, "replacing" Homer's new key
    edited = [r | {"crm_id": other["crm_id"], "replaces": email_code("homer.j@simpsons.com")}
              for r in rows(proposals)]  # fmt: skip
    with proposals.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(edited[0]))
        writer.writeheader()
        writer.writerows(edited)
    code, output = invoke(tmp_path, sandbox, "link", "--accept", str(proposals))
    assert code == 2, output
    assert "out of date" in output
    with open_state(tmp_path / "state.db") as state:
        assert state.links().to_dict("records") == before


def sandbox_customers(sandbox: SandboxProcess) -> list[Customer]:
    return [c for _, page in helcim(sandbox).iter_customers(include_cards=False) for c in page]


@pytest.mark.slow
def test_an_export_that_lost_its_id_column_is_refused_not_rekeyed(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """Night 1: the real Shopify export, keyed by Customer ID. Night 2: the same customers without that
    column, so the profile keys them by the e-mail: refused (exit 2), nothing written. Allowed, every
    customer is proposed as a link to its new key and held: none is created a second time."""
    source = REAL / "shopify_customers_2024.csv"
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(source), "--out", str(tmp_path / "n1"))
    assert code in (0, 1), output
    created = json.loads((tmp_path / "n1" / "summary.json").read_text())["created"]
    with source.open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    at = table[0].index("Customer ID")
    without = tmp_path / "no-ids.csv"
    with without.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([[v for i, v in enumerate(r) if i != at] for r in table])
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(without), "--out", str(tmp_path / "n2"))
    assert code == 2, output
    assert 'keyed by its id column "Customer ID"' in output
    assert "--allow-key-change" in output
    refused = json.loads((tmp_path / "n2" / "summary.json").read_text())
    assert (refused["status"], refused["created"]) == ("failed", 0)
    assert len(sandbox_customers(sandbox)) == created
    code, output = invoke(
        tmp_path, sandbox, "run", "--crm", str(without), "--out", str(tmp_path / "n3"), "--allow-key-change"
    )
    assert code in (0, 1), output
    allowed = json.loads((tmp_path / "n3" / "summary.json").read_text())
    assert allowed["created"] == 0, output
    assert allowed["key"] == "email"
    assert allowed["link_proposals"] >= allowed["rows_read"] - allowed["rejected"]
    assert any("the CRM's key changed" in w for w in allowed["warnings"])
    assert len(sandbox_customers(sandbox)) == created


@pytest.mark.slow
def test_shopify_import_updates_match_on_the_crms_own_email_and_carry_only_the_change(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """A customer whose address was omitted (Helcim holds no e-mail for them) is renamed in Helcim. The
    Shopify import file matches them on the Email their export row holds, and carries only what changed:
    importing it with "overwrite existing customers" clears nothing."""
    export = REAL / "shopify_customers_2024.csv"
    invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n1"))
    warned = {r["crm_id"] for r in rows(tmp_path / "n1" / "warnings.csv")}
    target = next(
        c
        for c in sandbox_customers(sandbox)
        if c.code in warned and c.billing is None and " " in c.contact_name
    )
    helcim(sandbox).update_customer(target.id, CustomerInput(contact_name=target.contact_name + "x"))
    code, output = invoke(tmp_path, sandbox, "run", "--crm", str(export), "--out", str(tmp_path / "n2"))
    assert code in (0, 1), output
    assert json.loads((tmp_path / "n2" / "summary.json").read_text())["exported"] == 1
    (shaped,) = rows(tmp_path / "n2" / "crm_import" / "import_updates.csv")
    (own,) = [r for r in rows(export) if r["Customer ID"].lstrip("'") == target.code]
    assert shaped == {"Email": own["Email"], "Last Name": own["Last Name"] + "x"}
