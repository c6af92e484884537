"""The profile's reverse mapping behind crm_import/: generic columns back to the CRM's headers."""

from __future__ import annotations

import pandas as pd

from crmsync.crm.export import crm_columns, to_crm
from crmsync.crm.profiles import load_profile


def test_hubspot_headers_come_back_from_columns_joins_and_split_lines() -> None:
    profile = load_profile("hubspot")
    headers = [c.header for c in crm_columns(profile)]
    assert headers[0] == "Record ID"
    assert {"First Name", "Last Name", "Street Address", "Email", "Postal Code"} <= set(headers)
    assert "billing_name" not in headers  # a coalesce target: the CRM has no such column
    generic = pd.DataFrame(
        {
            "crm_id": ["1", "2"],
            "contact_name": ["Mary Ann Smith", "Cher"],
            "billing_street1": ["1 Main St", "2 Side Rd"],
            "billing_street2": ["Suite 4", ""],
            "billing_email": ["m@example.com", "=HYPERLINK()"],
        }
    )
    crm = to_crm(generic, profile)
    assert crm[["Record ID", "First Name", "Last Name", "Street Address"]].to_dict("records") == [
        {
            "Record ID": "1",
            "First Name": "Mary Ann",
            "Last Name": "Smith",
            "Street Address": "1 Main St\nSuite 4",
        },
        {"Record ID": "2", "First Name": "Cher", "Last Name": "", "Street Address": "2 Side Rd"},
    ]


def test_generic_profile_maps_every_column_to_itself() -> None:
    columns = crm_columns(load_profile("generic"))
    assert all(c.kind == "copy" and c.fields == (c.header,) for c in columns)
