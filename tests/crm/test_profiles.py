"""Mapping profiles: the built-in ones, a user's own file, and what a bad profile says."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crmsync.crm.extract import read_crm
from crmsync.crm.profiles import apply_profile, available_profiles, load_profile, parse_profile
from crmsync.errors import MissingColumnsError, UsageError
from crmsync.schemas.address import ADDRESS_FIELDS
from crmsync.schemas.crm import CRM_COLUMNS
from tests.crm.helpers import write

SAMPLES = Path(__file__).resolve().parents[2] / "sample_data"


def test_the_three_profiles_ship() -> None:
    assert {"generic", "hubspot", "salesforce"} <= set(available_profiles())
    for name in ("generic", "hubspot", "salesforce"):
        assert load_profile(name).required


def test_hubspot_export_maps_names_and_splits_a_multi_line_street() -> None:
    export = read_crm(SAMPLES / "hubspot_contacts.csv", load_profile("hubspot"))
    frame = export.frame.set_index("crm_id")
    assert frame.at["51234002", "contact_name"] == "Liam Smith"
    assert frame.at["51234002", "business_name"] == "Northwind Traders"
    assert frame.at["51234002", "billing_street1"] == "10111 Jasper Ave"
    assert frame.at["51234002", "billing_street2"] == "Suite 1200"
    assert frame.at["51234002", "billing_name"] == "Liam Smith"
    assert frame.at["51234004", "contact_name"] == ""  # no first or last name: no stray space
    assert frame.at["51234004", "billing_name"] == "Maple Supply"  # the company when no contact
    assert frame.at["51234001", "cell_phone"] == "403-555-0172"
    assert export.frame["source_line"].tolist()[:3] == [2, 3, 5]
    assert "Lifecycle Stage" in export.ignored_headers


def test_salesforce_export_maps_mailing_and_other_addresses() -> None:
    export = read_crm(SAMPLES / "salesforce_contacts.csv", load_profile("salesforce"))
    frame = export.frame.set_index("crm_id")
    grace = frame.loc["0035g00000AbCdEAA4"]
    assert (grace["billing_street1"], grace["billing_street2"]) == ("500 Pine St", "Floor 3, Reception")
    liam = frame.loc["0035g00000AbCdEAA2"]
    assert (liam["shipping_street1"], liam["shipping_street2"]) == ("Unit 4", "2020 Parsons Rd NW")
    assert liam["shipping_name"] == "Liam Smith"
    assert frame.loc["0035g00000AbCdEAA1", "shipping_name"] == ""  # no OtherStreet: no shipping address
    assert frame.loc["0035g00000AbCdEAA3", "business_name"] == "Boulangerie Côté"


def test_a_users_own_profile_file_needs_no_code(tmp_path: Path) -> None:
    profile = write(
        tmp_path,
        """
description = "Pipedrive people export"
required = ["crm_id", "contact_name"]

[columns]
crm_id = ["Person ID", "ID"]
contact_name = "Name"
billing_email = "Email - Work"

[[transforms]]
kind = "coalesce"
from = ["contact_name"]
to = "billing_name"
when = ["billing_email"]
""",
        "pipedrive.toml",
    )
    export = write(tmp_path, "ID,Name,Email - Work,Labels\n7,Ann Lee,ann@example.com,hot\n8,Bo,,cold\n")
    frame = read_crm(export, load_profile(str(profile))).frame
    assert frame["crm_id"].tolist() == ["7", "8"]
    assert frame["billing_name"].tolist() == ["Ann Lee", ""]
    assert frame["billing_email"].tolist() == ["ann@example.com", ""]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(
            {"columns": {"crm_idd": "Id"}},
            "'crm_idd' is not a generic column; did you mean crm_id",
            id="typo",
        ),
        pytest.param({"colums": {}}, "unknown key", id="unknown-key"),
        pytest.param(
            {"transforms": [{"kind": "explode", "from": "A", "to": "crm_id"}]}, "kind must be", id="kind"
        ),
        pytest.param(
            {"transforms": [{"kind": "split_lines", "from": "A", "to": "billing_street1"}]},
            "two targets",
            id="split",
        ),
        pytest.param({"required": ["crm_id"]}, "neither mapped nor produced", id="required-unmapped"),
        pytest.param({"columns": {"crm_id": []}}, "non-empty list", id="empty-list"),
    ],
)
def test_a_bad_profile_says_what_is_wrong(document: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_profile("custom", document)


def test_an_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="use auto, one of dynamics365, freshbooks, generic, hubspot"):
        load_profile("zoho")


def test_a_header_close_to_a_known_column_is_a_warning_not_a_silent_drop() -> None:
    headers = [c for c in CRM_COLUMNS if c != "shipping_postal_code"] + ["shipping_postcode", "notes"]
    content = pd.DataFrame({c: ["x"] for c in headers})
    mapped = apply_profile(load_profile("generic"), content.astype("str"))
    assert mapped.warnings == ["`shipping_postcode` was ignored; did you mean `shipping_postal_code`?"]
    assert mapped.ignored_headers == ["shipping_postcode", "notes"]


def test_profiles_report_missing_headers_in_their_own_names(tmp_path: Path) -> None:
    export = write(
        tmp_path, "Record ID,First Name,Company Name,Street Address,City,Country/Region,Postcode\n"
    )
    with pytest.raises(MissingColumnsError) as caught:
        read_crm(export, load_profile("hubspot"))
    message = str(caught.value)
    assert "Last Name (for contact_name" in message
    assert "State/Region" not in message  # not required: an address may be incomplete


def test_mapped_columns_name_what_the_export_really_carries(tmp_path: Path) -> None:
    generic = tmp_path / "generic.csv"
    required = [
        "crm_id",
        "contact_name",
        "business_name",
        *(f"billing_{f}" for f in ADDRESS_FIELDS),
    ]
    generic.write_text(
        ",".join([*required, "shipping_city"]) + "\n" + ",".join(["x"] * (len(required) + 1)) + "\n"
    )
    carried = read_crm(generic, load_profile("generic")).mapped_columns
    assert "shipping_city" in carried
    assert "cell_phone" not in carried
    assert "shipping_street1" not in carried
    sf = read_crm(Path("sample_data/salesforce_contacts.csv"), load_profile("salesforce")).mapped_columns
    assert {"contact_name", "billing_street1", "billing_street2", "billing_name"} <= set(
        sf
    )  # made by transforms
