"""What real exports need: spreadsheet artefacts, keys, sections, incomplete addresses, profile choice."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from crmsync.cli import cli
from crmsync.crm.addresses import parse_street_tail
from crmsync.crm.export import CrmRows, crm_columns, import_updates, new_customers, updates
from crmsync.crm.extract import read_crm
from crmsync.crm.fit import draft_profile, rank_profiles
from crmsync.crm.keys import email_code
from crmsync.crm.normalize import normalize_phone
from crmsync.crm.profiles import available_profiles, load_profile, parse_profile
from crmsync.crm.validate import check_export
from crmsync.errors import InputFileError, NoProfileFitsError
from crmsync.helcim.models import Address, CustomerInput
from crmsync.schemas.crm import CRM_COLUMNS
from helcim_sandbox.launcher import SandboxProcess
from tests.crm.helpers import generic_csv, write
from tests.jobs.test_plan_cli import add_to_helcim, helcim, invoke, plan_of, read_csv

SHOPIFY = (
    "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,"
    "Default Address Address1,Default Address Address2,Default Address City,Default Address Province Code,"
    "Default Address Country Code,Default Address Zip,Default Address Phone,Phone,Total Orders\n"
)


def test_every_built_in_profile_parses_and_has_a_page_in_the_docs() -> None:
    root = Path(__file__).resolve().parents[2]
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.description
        if name != "generic":
            page = (root / "docs" / "systems" / f"{name}.md").read_text(encoding="utf-8")
            assert f"profile `{name}`" in page
            assert profile.crm_import is not None
            assert profile.system


def test_the_text_marker_is_removed_only_before_digits_and_formula_characters(tmp_path: Path) -> None:
    rows = [
        "'5897398649016,Ann,Lee,ann@example.com,no,'Tis Co,'12 Main St,,Calgary,AB,CA,'T2P 5E9,'+1 403 555 0100,'(403) 555-0101,3",
        "'=cmd,Bo,Roy,bo@example.com,no,,,,,,,,,,0",
    ]
    frame = read_crm(write(tmp_path, SHOPIFY + "\n".join(rows) + "\n"), None).frame
    assert frame["crm_id"].tolist() == ["5897398649016", "=cmd"]
    assert frame.at[0, "business_name"] == "'Tis Co"  # an apostrophe that is data stays
    assert frame.at[0, "billing_street1"] == "12 Main St"
    assert frame.at[0, "billing_postal_code"] == "'T2P 5E9"  # before a letter: kept, validation names it
    assert frame.at[0, "cell_phone"] == "(403) 555-0101"


def test_what_crmsync_writes_reads_back_to_the_original(tmp_path: Path) -> None:
    first = tmp_path / "first"
    export = write(tmp_path, generic_csv({"contact_name": "+Plus Minus", "billing_phone": "+1 403 555 0101"}))
    assert CliRunner().invoke(cli, ["validate", "--crm", str(export), "--out", str(first)]).exit_code == 0
    assert "'+Plus Minus" in (first / "valid.csv").read_text()
    again = check_export(first / "valid.csv", "generic")
    assert again.valid["contact_name"].tolist() == ["+Plus Minus"]


def test_null_cells_are_empty_where_the_profile_says_so(tmp_path: Path) -> None:
    content = "Record ID,First Name,Last Name,Email,Phone Number,City\n7,Ann,Lee,null,N/A,-\n"
    frame = read_crm(write(tmp_path, content), load_profile("hubspot")).frame
    assert [frame.at[0, c] for c in ("billing_email", "billing_phone", "billing_city")] == ["", "", ""]
    generic = read_crm(
        write(tmp_path, generic_csv({"billing_city": "null"}), "g.csv"), load_profile("generic")
    )
    assert generic.frame.at[0, "billing_city"] == "null"  # the generic profile declares no such values


def test_an_id_in_scientific_notation_says_a_spreadsheet_lost_the_ids(tmp_path: Path) -> None:
    export = write(tmp_path, generic_csv({"crm_id": "7.02255E+12"}, {"crm_id": "7.02255E+12"}))
    rejects = check_export(export, "generic").rejects
    assert rejects["rule"].tolist() == ["crm_id_scientific", "crm_id_scientific"]  # not also "duplicate"
    assert "a spreadsheet re-saved this export and rounded its ids" in rejects["reason"].iloc[0]


def test_a_shared_name_is_fatal_only_when_read_and_names_both_spellings(tmp_path: Path) -> None:
    header = "Record ID,First Name,Last Name,Email,Company Name,Notes,Company name,Notes\n"
    export = write(tmp_path, header + "1,Ann,Lee,a@example.com,Acme,x,Acme Inc,y\n")
    with pytest.raises(InputFileError, match=r'"Company Name" \(column 5\) and "Company name" \(column 7\)'):
        read_crm(export, load_profile("hubspot"))
    assert read_crm(export, load_profile("salesforce")).frame.at[0, "billing_email"] == "a@example.com"


def test_a_sections_columns_never_become_the_contacts(tmp_path: Path) -> None:
    header = (
        "Record ID - Contact,First Name,Last Name,Email,Company Name,Record ID - Company,Company name,City\n"
    )
    rows = "1,Ann,Lee,a@example.com,,9,Acme Inc,Edmonton\n2,Bo,Roy,b@example.com,Own Co,9,Acme Inc,Edmonton\n"
    frame = read_crm(write(tmp_path, header + rows), None).frame
    assert frame["business_name"].tolist() == ["Acme Inc", "Own Co"]  # the contact's own name wins
    assert frame["billing_city"].tolist() == ["", ""]  # the company's City is not the contact's
    assert frame["crm_id"].tolist() == ["1", "2"]


def test_auto_refuses_an_export_no_profile_fits_and_names_the_closest(tmp_path: Path) -> None:
    export = write(tmp_path, "Kunde,Strasse,Ort,PLZ\nAnn,Hauptstr. 1,Bern,3000\n")
    with pytest.raises(NoProfileFitsError, match=r"no built-in profile fits .* the closest: "):
        read_crm(export, None)
    result = CliRunner().invoke(cli, ["validate", "--crm", str(export), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "crmsync profile draft FILE" in result.output


#: Each system's export headers (the typical ones): auto must choose that system's profile.
LAYOUTS: dict[str, list[str]] = {
    "shopify": SHOPIFY.strip().split(","),
    "hubspot": [
        "Record ID",
        "First Name",
        "Last Name",
        "Email",
        "Street Address",
        "State/Region",
        "Postal Code",
    ],
    "zoho-crm": [
        "Record Id",
        "First Name",
        "Last Name",
        "Email",
        "Mailing Street",
        "Mailing State",
        "Mailing Zip",
    ],
    "salesforce": [
        "Contact ID",
        "First Name",
        "Last Name",
        "Email",
        "Mailing Street",
        "Mailing State/Province",
        "Mailing Zip/Postal Code",
    ],
    "dynamics365": [
        "(Do Not Modify) Contact",
        "Full Name",
        "Email",
        "Address 1: Street 1",
        "Address 1: City",
    ],
    "wave": [
        "customer_name",
        "email",
        "contact_first_name",
        "contact_last_name",
        "address_line_1",
        "province/state",
    ],
    "freshbooks": [
        "Organization",
        "First Name",
        "Last Name",
        "Email",
        "Street",
        "Province/State",
        "Postal Code",
    ],
    "mailchimp": [
        "Email Address",
        "First Name",
        "Last Name",
        "Address",
        "Phone Number",
        "MEMBER_RATING",
        "LEID",
    ],
    "square": [
        "First Name",
        "Last Name",
        "Email Address",
        "Address Line 1",
        "Postal Code",
        "Square Customer ID",
    ],
    "woocommerce": [
        "customer_id",
        "first_name",
        "last_name",
        "email",
        "billing_address_1",
        "billing_postcode",
    ],
    "pipedrive": ["ID", "Name", "Organization", "Email - Work", "Phone - Work", "Postal address"],
    "zoho-books": [
        "Customer ID",
        "Display Name",
        "First Name",
        "Last Name",
        "EmailID",
        "Billing Address",
        "Billing Code",
    ],
    "quickbooks": ["Name", "Company name", "Street Address", "City", "State", "Zip", "Phone", "Email"],
}


def test_each_system_layout_is_recognised_by_its_headers() -> None:
    for expected, headers in LAYOUTS.items():
        assert rank_profiles(headers)[0].profile == expected, (expected, rank_profiles(headers)[:2])


def test_a_draft_profile_is_valid_toml_and_maps_by_synonyms() -> None:
    text = draft_profile(
        ["Kunden-ID", "Client Name", "E-mail", "Zip", "Town", "Mobile", "Notes"], "Kundenbuch"
    )
    document = tomllib.loads(text)
    profile = parse_profile("draft", document)
    assert profile.columns["billing_postal_code"] == ("Zip",)
    assert profile.columns["billing_city"] == ("Town",)
    assert profile.columns["billing_email"] == ("E-mail",)
    assert "# guessed:" in text
    assert '"Notes"' in text  # listed as not mapped


def test_crmsync_profiles_lists_every_profile_with_its_key() -> None:
    result = CliRunner().invoke(cli, ["profiles"])
    assert result.exit_code == 0
    for name in available_profiles():
        assert f"{name}: " in result.output
    assert "key: the e-mail" in result.output


def test_an_email_key_rejects_a_row_without_an_email_in_its_own_words(tmp_path: Path) -> None:
    content = "customer_name,email,contact_first_name,contact_last_name,phone\nAcme,,Ann,Lee,403-555-0100\n"
    checked = check_export(write(tmp_path, content), "wave")
    assert checked.export.key == "email"
    assert checked.rejects["rule"].tolist() == ["email_key_required"]
    assert "no id column, so the e-mail is the customer's key" in checked.rejects["reason"].iloc[0]
    assert email_code(" x@y.com".strip()) == email_code("X@Y.COM")
    assert len(email_code("a" * 60 + "@example.com")) == 27


@pytest.mark.parametrize(
    ("street", "country", "parsed"),
    [
        pytest.param("500 Pine St\nSpringfield, IL 62701", "", ("500 Pine St", "Springfield", "IL", "62701", "USA"), id="us"),
        pytest.param(
            "12 Rue Ste-Anne, Québec, QC G1R 3X2", "Canada", ("12 Rue Ste-Anne", "Québec", "QC", "G1R 3X2", "CAN"), id="ca"
        ),
        pytest.param("1 Main St, Austin, Texas 78701, USA", "", ("1 Main St", "Austin", "TX", "78701", "USA"), id="names"),
        pytest.param("1 Main St, Calgary, AB 78701", "", None, id="province-of-another-country"),
        pytest.param("1 Main St, Springfield, IL 62701", "Canada", None, id="country-disagrees"),
        pytest.param("Suite 12345", "", None, id="no-city"),
    ],
)  # fmt: skip
def test_a_whole_address_in_the_street_splits_only_when_unambiguous(
    street: str, country: str, parsed: tuple[str, ...] | None
) -> None:
    assert parse_street_tail(street, country) == parsed


def test_incomplete_addresses_are_omitted_with_warnings_or_rejected(tmp_path: Path) -> None:
    export = write(tmp_path, generic_csv({"billing_street1": "", "billing_email": "bad@@x"}, {}))
    omitted = check_export(export, "generic")
    assert (omitted.rows_read, len(omitted.valid), omitted.rows_with_warnings) == (2, 2, 1)
    assert omitted.valid.iloc[0][[f"billing_{f}" for f in ("city", "email", "phone")]].tolist() == [
        "",
        "",
        "",
    ]
    assert omitted.valid.iloc[0]["cell_phone"] == "4035550100"  # what Helcim can hold stays
    warned = omitted.warnings
    assert list(warned.columns[:5]) == ["source_line", "crm_id", "column", "value", "reason"]
    assert set(warned["column"]) >= {"billing_city", "billing_email", "billing_phone", "billing_postal_code"}
    assert "this one has no street1" in warned["reason"].iloc[0]
    # the omitted addresses, as masks over the valid rows: billing on CRM-1's row only
    assert set(omitted.omitted) == {"billing"}
    assert omitted.valid["crm_id"][omitted.omitted["billing"]].tolist() == ["CRM-1"]
    rejected = check_export(export, "generic", "reject")
    assert rejected.rejected == 1
    assert "required_with_address" in set(rejected.rejects["rule"])


def test_crm_import_files_take_the_shape_the_system_imports() -> None:
    shopify = load_profile("shopify")
    assert shopify.crm_import is not None
    assert [c.header for c in crm_columns(shopify)] == list(shopify.crm_import.columns)
    customers = pd.DataFrame(
        {
            "helcim_id": [11],
            "customer_code": ["CST1001"],
            **{c: [""] for c in CRM_COLUMNS if c != "crm_id"},
        }
    ).assign(contact_name="Ann Lee", billing_country="CAN", billing_email="ann@example.com")
    new = new_customers(customers, shopify)
    assert list(new.columns) == [*shopify.crm_import.columns, "helcim_id", "helcim_customer_code"]
    assert new.iloc[0][["First Name", "Last Name", "Default Address Country Code"]].tolist() == [
        "Ann",
        "Lee",
        "CA",
    ]


def test_import_updates_write_back_the_crms_own_values_and_only_what_changed() -> None:
    """Helcim renamed Ann, whose address was omitted (Helcim holds no e-mail for her). The import file
    matches her on the e-mail her CRM row holds, and carries only the column that changed: nothing a
    Shopify import with "overwrite existing customers" could clear (Tags, Note, marketing consent)."""
    shopify, salesforce = load_profile("shopify"), load_profile("salesforce")
    customers = pd.DataFrame(
        {"helcim_id": [11], "customer_code": ["5897"], **{c: [""] for c in CRM_COLUMNS if c != "crm_id"}}
    ).assign(contact_name="Ann Lee-Smith")
    changes = pd.DataFrame(
        {
            "crm_id": ["5897"],
            "helcim_id": [11],
            "field": ["contact_name"],
            "crm": ["Ann Lee"],
            "helcim": ["Ann Lee-Smith"],
            "resolution": ["export"],
        }
    )
    own = pd.DataFrame(
        {"Email": ["ann@example.com"], "First Name": ["Ann"], "Last Name": ["Lee"], "Tags": ["vip"],
         "Note": ["call first"], "Accepts Email Marketing": ["yes"]},
        index=["5897"],
    )  # fmt: skip
    shaped, unmatched = import_updates(changes, customers, shopify, CrmRows(own=own))
    assert unmatched == 0
    assert shaped.to_dict("records") == [{"Email": "ann@example.com", "Last Name": "Lee-Smith"}]
    sf_id = "0035g00000AbCdEAAV"
    own_sf = pd.DataFrame(
        {"Id": [sf_id], "FirstName": ["Ann"], "LastName": ["Lee"], "Email": ["ann@example.com"]},
        index=[sf_id],
    )
    shaped, _ = import_updates(changes.assign(crm_id=sf_id), customers, salesforce, CrmRows(own=own_sf))
    assert shaped.to_dict("records") == [{"Id": sf_id, "LastName": "Lee-Smith"}]
    # a Salesforce report keyed by the e-mail has no Id: nothing to match on, so the record is left out
    # (counted: the run says so), never written with the e-mail's code as its Id
    keyed = CrmRows(
        "email", "Email", pd.Series({"em-1": "ann@example.com"}), own_sf.drop(columns="Id").set_axis(["em-1"])
    )
    shaped, unmatched = import_updates(changes.assign(crm_id="em-1"), customers, salesforce, keyed)
    assert (len(shaped), unmatched) == (0, 1)
    named = updates(changes.assign(crm_id="em-1"), customers, salesforce, keyed)
    assert named[["Email", "field", "helcim_value"]].values.tolist() == [
        ["ann@example.com", "LastName", "Lee-Smith"]
    ]


def test_an_omitted_address_never_clears_helcims_nor_is_pushed_again(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    add_to_helcim(sandbox, "CRM-1", "Ann Lee")  # Helcim holds a full billing address
    export = write(tmp_path, generic_csv({"billing_street1": "", "billing_city": "Banff"}))
    code, output = invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "plan"))
    assert code == 0, output
    assert [op.kind for op in plan_of(tmp_path / "plan").operations if op.crm_id == "CRM-1"] in (
        [],
        ["update"],
    )
    for op in plan_of(tmp_path / "plan").operations:
        assert not any(field.startswith("billing_") for field in op.changes), op.changes
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert summary["rows_with_warnings"] == 1
    assert (tmp_path / "plan" / "warnings.csv").read_text().count("CRM-1") >= 3


def test_a_cell_phone_is_normalised_with_the_country_helcim_will_hold(tmp_path: Path) -> None:
    """A Chilean customer with a +1 cell phone: with the whole address sent, the phone keeps its country
    code in Chile's context; with the address omitted, Helcim holds no country, and the phone is what
    Helcim's side normalises it to (North America: 10 digits), so the next night sees no difference."""
    chile = {"billing_country": "CL", "billing_province": "RM", "billing_city": "Santiago",
             "cell_phone": "+1 305 406 2391", "billing_postal_code": "8320000"}  # fmt: skip
    export = write(tmp_path, generic_csv(chile, chile | {"billing_postal_code": "", "crm_id": "CRM-2"}))
    checked = check_export(export, "generic")
    phones = checked.valid.set_index("crm_id")["cell_phone"].astype(str)
    assert phones["CRM-1"] == "13054062391"  # sent with its Chilean address
    assert phones["CRM-2"] == "3054062391"  # its address omitted: no country in Helcim
    assert phones["CRM-2"] == normalize_phone(pd.Series(["13054062391"]), pd.Series([""])).iloc[0]


def test_a_cell_phone_beside_an_omitted_address_compares_in_the_context_helcim_holds(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    """Helcim holds a Chilean address and the +1 cell phone with its country code; the CRM row's own
    address is omitted (no postal code). The phone is compared in Chile's context, as Helcim's side is:
    unchanged, not an update or an export every night."""
    address = Address(name="Ann Lee", street1="Av. Providencia 1208", city="Santiago", province="RM",
                      country="CHL", postal_code="7500000")  # fmt: skip
    body = CustomerInput(contact_name="Ann Lee", cell_phone="13054062391", billing=address, code="CRM-1")
    helcim(sandbox).create_customer(body)
    chile = {"contact_name": "Ann Lee", "billing_name": "Ann Lee", "billing_street1": "Av. Providencia 1208",
             "billing_city": "Santiago", "billing_province": "RM", "billing_country": "CL",
             "billing_postal_code": "", "cell_phone": "+1 305 406 2391"}  # fmt: skip
    export = write(tmp_path, generic_csv(chile))
    code, output = invoke(tmp_path, sandbox, "plan", "--crm", str(export), "--out", str(tmp_path / "plan"))
    assert code == 0, output
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert (summary["updates"], summary["unchanged"], summary["exports"]) == (0, 1, 0), summary
    assert not [r for r in read_csv(tmp_path / "plan" / "plan.csv") if r["field"] == "cell_phone"]
