"""Small builders for inline CRM exports."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from crmsync.schemas.crm import CRM_COLUMNS

GOOD = {
    "crm_id": "CRM-1",
    "contact_name": "Ann Lee",
    "business_name": "",
    "cell_phone": "403-555-0100",
    "billing_name": "Ann Lee",
    "billing_street1": "440 2 Ave SW",
    "billing_street2": "",
    "billing_city": "Calgary",
    "billing_province": "AB",
    "billing_country": "CAN",
    "billing_postal_code": "T2P 5E9",
    "billing_phone": "403-555-0101",
    "billing_email": "ann@example.com",
}


def generic_csv(*rows: dict[str, str], delimiter: str = ",", columns: tuple[str, ...] = CRM_COLUMNS) -> str:
    """A generic export: ``GOOD`` overridden by each row's values (``crm_id`` numbered by default)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for number, row in enumerate(rows, start=1):
        values = {**GOOD, "crm_id": f"CRM-{number}", **row}
        writer.writerow([values.get(column, "") for column in columns])
    return out.getvalue()


def write(tmp_path: Path, content: str | bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path
