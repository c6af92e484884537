"""Validation and `crmsync validate`: reasons, rejects, counts, exit codes, the golden file, the writer."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.cli import cli
from crmsync.crm.normalize import normalize_crm
from crmsync.crm.validate import REJECT_COLUMNS, VALID_COLUMNS, validate_frame
from crmsync.errors import UsageError
from crmsync.jobs.validate import parse_rate
from crmsync.outputs import write_csv
from crmsync.schemas.crm import CRM_COLUMNS
from tests.crm.helpers import generic_csv, write

ROOT = Path(__file__).resolve().parents[2]
DIRTY = ROOT / "sample_data" / "crm_customers_dirty.csv"
GOLDEN = ROOT / "tests" / "golden" / "rejects_dirty.csv"


def frame_of(*rows: dict[str, str]) -> pd.DataFrame:
    records = list(csv.DictReader(generic_csv(*rows).splitlines()))
    frame = pd.DataFrame(records, columns=list(CRM_COLUMNS)).astype("str")
    frame["source_line"] = range(2, 2 + len(frame))
    return frame


def rejects_of(*rows: dict[str, str]) -> pd.DataFrame:
    raw = frame_of(*rows)
    valid, rejects = validate_frame(normalize_crm(raw), raw)
    assert len(valid) + rejects["source_line"].nunique() == len(raw)
    return rejects


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ({"crm_id": ""}, "crm_id", "crm_id: required"),
        ({"crm_id": "A 1"}, "crm_id", 'crm_id "A 1" may only contain letters, digits and . _ : / # -'),
        ({"crm_id": "-A1"}, "crm_id", "starting with a letter or digit"),
        ({"crm_id": "A" * 51}, "crm_id", "has 51 characters; Helcim allows at most 50"),
        (
            {"contact_name": "", "business_name": ""},
            "contact_name",
            "a contact name or a business name is required",
        ),
        ({"cell_phone": "555-12"}, "cell_phone", 'cell_phone "555-12" has 5 digits; Helcim needs 10 to 15'),
        ({"billing_phone": "+1 403 555 0100 123456"}, "billing_phone", "has 17 digits"),
        ({"billing_phone": "call me"}, "billing_phone", "is not a phone number"),
        ({"billing_phone": "403-555-0100 x12"}, "billing_phone", "has an extension"),
        (
            {"billing_email": "ann@@example.com"},
            "billing_email",
            'billing_email "ann@@example.com" is not a valid e-mail',
        ),
        ({"billing_name": ""}, "billing_name", "billing_name: required when a billing address is given"),
        ({"billing_street1": ""}, "billing_street1", "required when a billing address is given"),
        ({"billing_postal_code": ""}, "billing_postal_code", "required when a billing address is given"),
        (
            {"shipping_name": "Ann", "shipping_street1": "1 Bear St", "shipping_city": "Banff"},
            "shipping_postal_code",
            "shipping_postal_code: required when a shipping address is given "
            "(shipping_name, shipping_street1, shipping_city filled in)",
        ),
        ({"billing_country": "Canda"}, "billing_country", 'billing_country "Canda" is not a known country'),
        ({"billing_province": ""}, "billing_province", "billing_province: required when the country is CAN"),
        ({"billing_province": "Albrta"}, "billing_province", "is not a Canadian province or territory"),
        (
            {"billing_country": "US", "billing_province": "ZZ", "billing_postal_code": "98101"},
            "billing_province",
            "is not a US state",
        ),
        ({"billing_postal_code": "T2P 5E"}, "billing_postal_code", "is not a Canadian postal code (A1A 1A1)"),
        (
            {"billing_country": "USA", "billing_province": "WA", "billing_postal_code": "9810"},
            "billing_postal_code",
            "is not a US ZIP code",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else None,
)
def test_each_rule_reads_in_plain_words(row: dict[str, str], column: str, reason: str) -> None:
    rejects = rejects_of(row)
    assert rejects["column"].tolist() == [column]
    assert reason in rejects["reason"].iloc[0]
    assert rejects["source_line"].tolist() == [2]


@pytest.mark.parametrize(
    ("column", "limit"),
    [
        ("contact_name", 100),
        ("business_name", 100),
        ("billing_name", 100),
        ("billing_street1", 100),
        ("billing_street2", 100),
        ("billing_city", 60),
        ("shipping_city", 60),
    ],
)
def test_values_longer_than_the_documented_maximum_are_rejected(column: str, limit: int) -> None:
    prefix = {"shipping_name": "Ann", "shipping_street1": "1 Bear St", "shipping_postal_code": "T1L 1A1",
              "shipping_province": "AB", "shipping_country": "CAN"} if column.startswith("shipping") else {}  # fmt: skip
    assert rejects_of({**prefix, column: "x" * limit}).empty
    rejects = rejects_of({**prefix, column: "x" * (limit + 1)})
    assert rejects["column"].tolist() == [column]
    assert f"has {limit + 1} characters; crmsync sends at most {limit}" in rejects["reason"].iloc[0]


def test_a_huge_value_is_rejected_without_being_copied_whole() -> None:
    rejects = rejects_of({"contact_name": "A" * 100_000})
    assert "has 100000 characters" in rejects["reason"].iloc[0]
    assert len(rejects["value"].iloc[0]) <= 1001
    assert len(rejects["reason"].iloc[0]) < 300


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("\ufeffC-1", "\\ufeffC-1"),  # a byte-order mark glued to the id
        ("C\u200b-1", "C\\u200b-1"),  # a zero-width space
        ("C-1\x00", "C-1\\x00"),
        ("C\u00a01", "C\\xa01"),  # a no-break space
    ],
    ids=["bom", "zero-width-space", "nul", "nbsp"],
)
def test_reasons_show_invisible_characters_escaped(value: str, escaped: str) -> None:
    rejects = rejects_of({"crm_id": value})
    assert f'crm_id "{escaped}" may only contain' in rejects["reason"].iloc[0]
    assert rejects["value"].iloc[0] == value  # the value column keeps what the export holds


def test_phantom_formats_are_valid_after_normalisation() -> None:
    raw = frame_of(
        {
            "billing_country": "Canada",
            "billing_province": "alta",
            "billing_postal_code": "t2p5e9",
            "billing_phone": "(403) 555-0100",
            "billing_email": "Ann@Example.COM",
            "cell_phone": "+1 403 555 0100",
        },
        {"billing_country": "US", "billing_province": "Washington", "billing_postal_code": "981011234"},
    )
    valid, rejects = validate_frame(normalize_crm(raw), raw)
    assert rejects.empty
    assert valid["billing_country"].tolist() == ["CAN", "USA"]
    assert valid["billing_postal_code"].tolist() == ["T2P 5E9", "98101-1234"]
    assert valid["billing_email"].tolist()[0] == "Ann@example.com"
    assert list(valid.columns) == list(VALID_COLUMNS)


def test_every_copy_of_a_duplicated_id_is_rejected_naming_the_others() -> None:
    rejects = rejects_of({"crm_id": "C-17"}, {"crm_id": "C-18"}, {"crm_id": "C-17"}, {"crm_id": "C-17"})
    assert rejects["source_line"].tolist() == [2, 4, 5]
    assert rejects["reason"].tolist() == [
        'crm_id "C-17" also appears on lines 4 and 5',
        'crm_id "C-17" also appears on lines 2 and 5',
        'crm_id "C-17" also appears on lines 2 and 4',
    ]


def test_a_row_with_three_problems_gives_three_rejects_and_counts_once() -> None:
    raw = frame_of({"crm_id": "A 1", "cell_phone": "12", "billing_email": "x@"}, {})
    valid, rejects = validate_frame(normalize_crm(raw), raw)
    assert len(valid) == 1
    assert rejects["column"].tolist() == [
        "billing_email",
        "cell_phone",
        "crm_id",
    ]  # sorted by line, then column
    assert set(rejects["source_line"]) == {2}


def test_rejects_show_the_value_as_the_export_holds_it() -> None:
    rejects = rejects_of({"billing_postal_code": " t2p 5e "})
    assert rejects["value"].tolist() == [" t2p 5e "]
    assert rejects["reason"].tolist() == [
        'billing_postal_code " t2p 5e " is not a Canadian postal code (A1A 1A1)'
    ]


def test_golden_rejects_of_the_dirty_sample(tmp_path: Path) -> None:
    args = ["--profile", "generic", "--incomplete-address", "reject"]
    result = CliRunner().invoke(cli, ["validate", "--crm", str(DIRTY), *args, "--out", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert (tmp_path / "rejects.csv").read_text(encoding="utf-8") == GOLDEN.read_text(encoding="utf-8"), (
        "rejects.csv differs from tests/golden/rejects_dirty.csv; if the change is intended, run `make golden`"
    )


def test_the_dirty_sample_readme_documents_every_rejected_line() -> None:
    readme = (ROOT / "sample_data" / "README.md").read_text(encoding="utf-8")
    section = readme.split("Rejected rows")[1].split("## ")[0]
    documented = {int(n) for cell in section.split("\n| ")[2:] for n in cell.split(" |")[0].split(", ")}
    golden = {
        int(row["source_line"]) for row in csv.DictReader(GOLDEN.read_text(encoding="utf-8").splitlines())
    }
    assert documented == golden


@pytest.mark.parametrize(
    ("sample", "profile", "rows", "rejected"),
    [
        pytest.param("crm_customers.csv", "generic", 200, 0, id="clean"),
        pytest.param("crm_customers_dirty.csv", "generic", 50, 28, id="dirty"),
        pytest.param("hubspot_contacts.csv", "hubspot", 10, 1, id="hubspot"),
        pytest.param("salesforce_contacts.csv", "salesforce", 8, 1, id="salesforce"),
    ],
)
def test_cli_on_each_sample(tmp_path: Path, sample: str, profile: str, rows: int, rejected: int) -> None:
    out = tmp_path / "out"
    args = ["validate", "--crm", str(ROOT / "sample_data" / sample), "--profile", profile, "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == (1 if rejected else 0), result.output
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["rows_read"], summary["rejected"]) == (rows, rejected)
    assert summary["valid"] + summary["rejected"] == summary["rows_read"]
    assert summary["profile"] == profile
    assert {
        "encoding",
        "encoding_guessed",
        "delimiter",
        "problems_by_column",
        "warnings",
        "source_file",
        "reject_rate",
    } <= set(summary)
    valid = pd.read_csv(out / "valid.csv", dtype=str, keep_default_na=False)
    assert list(valid.columns) == list(VALID_COLUMNS)
    assert len(valid) == rows - rejected
    rejects = pd.read_csv(out / "rejects.csv", dtype=str, keep_default_na=False)
    assert list(rejects.columns) == list(REJECT_COLUMNS)
    assert f"{rows:,} rows read" in result.output


def test_valid_csv_validates_again_unchanged(tmp_path: Path) -> None:
    runner = CliRunner()
    first, second = tmp_path / "first", tmp_path / "second"
    runner.invoke(cli, ["validate", "--crm", str(DIRTY), "--out", str(first)])
    result = runner.invoke(cli, ["validate", "--crm", str(first / "valid.csv"), "--out", str(second)])
    assert result.exit_code == 0, result.output
    before = pd.read_csv(first / "valid.csv", dtype=str, keep_default_na=False)
    after = pd.read_csv(second / "valid.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(before[list(CRM_COLUMNS)], after[list(CRM_COLUMNS)])


@pytest.mark.parametrize(
    ("flag", "exit_code"),
    [
        pytest.param("0.9", 1, id="under"),
        pytest.param("50%", 2, id="over-percent"),
        pytest.param("0", 2, id="zero"),
    ],
)
def test_max_reject_rate_fails_the_run_above_the_threshold(tmp_path: Path, flag: str, exit_code: int) -> None:
    result = CliRunner().invoke(
        cli, ["validate", "--crm", str(DIRTY), "--out", str(tmp_path), "--max-reject-rate", flag]
    )
    assert result.exit_code == exit_code, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_code"] == exit_code
    assert (tmp_path / "rejects.csv").exists()


@pytest.mark.parametrize("text", ["1.5", "-1%", "lots", "nan"])
def test_a_bad_rate_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


def test_cli_reports_a_fatal_input_error_with_exit_2(tmp_path: Path) -> None:
    content = generic_csv({}).replace("billing_postal_code", "Billing Postcode")
    result = CliRunner().invoke(
        cli,
        [
            "validate",
            "--crm",
            str(write(tmp_path, content)),
            "--profile",
            "generic",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert (
        'missing required columns: billing_postal_code (nearest header present: "Billing Postcode")'
        in result.stderr
    )


def test_cli_warns_about_ignored_look_alike_headers(tmp_path: Path) -> None:
    content = generic_csv({}).replace("shipping_postal_code", "shipping_postcode")
    result = CliRunner().invoke(
        cli, ["validate", "--crm", str(write(tmp_path, content)), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0
    assert "`shipping_postcode` was ignored; did you mean `shipping_postal_code`?" in result.stderr


def test_validate_help_explains_outputs_and_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["validate", "--help"])
    assert result.exit_code == 0
    for words in ("rejects.csv", "summary.json", "--max-reject-rate", "--profile", "Exit codes"):
        assert words in result.output


def test_the_csv_writer_neutralises_formulas(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": ["=SUM(A1)", "+1", "-2", "@x", "\tx", "\rx", "plain", "a=b"], "n": range(8)})
    path = write_csv(frame.astype({"a": "str"}), tmp_path / "x.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        cells = [row["a"] for row in csv.DictReader(handle)]
    assert cells == ["'=SUM(A1)", "'+1", "'-2", "'@x", "'\tx", "'\nx", "plain", "a=b"]


def test_the_csv_writer_neutralises_categories_too(tmp_path: Path) -> None:
    """warnings.csv's column, reason and rule are categories (millions of rows, a few dozen values)."""
    values = ["=SUM(A1)", "plain", "=SUM(A1)", "'=SUM(A1)", None]
    frame = pd.DataFrame({"a": pd.Categorical(values), "b": pd.Categorical(values[:2] * 2 + ["-1"])})
    path = write_csv(frame, tmp_path / "x.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        cells = [(row["a"], row["b"]) for row in csv.DictReader(handle)]
    assert [a for a, _ in cells] == ["'=SUM(A1)", "plain", "'=SUM(A1)", "'=SUM(A1)", ""]
    assert [b for _, b in cells] == ["'=SUM(A1)", "plain", "'=SUM(A1)", "plain", "'-1"]


_CELLS = st.text(alphabet=st.sampled_from(list('aZ9 ,;|\t"\n\r@=+-.é\u00a0')), max_size=8)


@settings(max_examples=40, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.lists(st.lists(_CELLS, min_size=1, max_size=24), max_size=6).map(
            lambda rows: "\n".join(",".join(cells) for cells in rows).encode("utf-8")
        ),
    ),
    with_header=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-16", "cp1252"]),
)
def test_any_input_ends_in_an_exit_code_and_rows_add_up(
    body: bytes, with_header: bool, encoding: str
) -> None:
    header = ",".join(CRM_COLUMNS) + "\n" if with_header else ""
    try:
        data = header.encode(encoding) + body.decode("utf-8").encode(encoding)
    except (UnicodeDecodeError, UnicodeEncodeError):
        data = header.encode("utf-8") + body
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "any.csv"
        path.write_bytes(data)
        result = CliRunner().invoke(cli, ["validate", "--crm", str(path), "--out", folder + "/out"])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code in (0, 1, 2), result.output
        if result.exit_code in (0, 1):
            summary = json.loads((Path(folder) / "out" / "summary.json").read_text())
            assert summary["rows_read"] == summary["valid"] + summary["rejected"]
            valid = pd.read_csv(Path(folder) / "out" / "valid.csv", dtype=str, keep_default_na=False)
            assert len(valid) == summary["valid"]
            assert (summary["rejected"] > 0) == (result.exit_code == 1)
