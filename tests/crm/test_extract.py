"""Reading CRM exports: encodings, delimiters, lineage, irregular rows and files that are not CSV."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.crm.extract import read_crm, read_export
from crmsync.crm.profiles import load_profile
from crmsync.errors import InputFileError, MissingColumnsError
from tests.crm.helpers import generic_csv, write

TEXT = "crm_id,contact_name,city\nC-1,Zoé Côté,Montréal\nC-2,Renée Ørsted,Québec\n"


@pytest.mark.parametrize(
    ("data", "encoding", "guessed"),
    [
        pytest.param(TEXT.encode("utf-8"), "utf-8", False, id="utf-8"),
        pytest.param(codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig", False, id="utf-8-bom"),
        pytest.param(TEXT.encode("utf-16"), "utf-16", False, id="utf-16-bom"),
        pytest.param(codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16", False, id="utf-16-be-bom"),
        pytest.param(TEXT.encode("utf-16-le"), "utf-16-le", True, id="utf-16-le-no-bom"),
        pytest.param(TEXT.encode("utf-32"), "utf-32", False, id="utf-32-bom"),
        pytest.param(TEXT.encode("cp1252"), "cp1252", True, id="cp1252"),
    ],
)
def test_each_encoding_reads_the_same_text(tmp_path: Path, data: bytes, encoding: str, guessed: bool) -> None:
    export = read_export(write(tmp_path, data))
    assert (export.encoding, export.encoding_guessed) == (encoding, guessed)
    assert list(export.frame.columns) == ["crm_id", "contact_name", "city"]
    assert export.frame["contact_name"].tolist() == ["Zoé Côté", "Renée Ørsted"]
    assert export.frame["city"].tolist() == ["Montréal", "Québec"]
    assert export.source_lines.tolist() == [2, 3]


def test_cp1252_reads_windows_characters_and_undefined_bytes_as_latin1(tmp_path: Path) -> None:
    data = "crm_id,name\nC-1,“Café” – 50 €\n".encode("cp1252") + b"C-2,x\x81y\n"
    export = read_export(write(tmp_path, data))
    assert export.frame["name"].tolist() == ["“Café” – 50 €", "x\x81y"]
    assert export.encoding == "cp1252"
    assert any("0x81" in warning and "cp1252" in warning for warning in export.warnings)


@pytest.mark.parametrize(
    "delimiter",
    [
        pytest.param(",", id="comma"),
        pytest.param(";", id="semicolon"),
        pytest.param("\t", id="tab"),
        pytest.param("|", id="pipe"),
    ],
)
def test_each_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    content = generic_csv({"billing_street1": "1 Main St, Unit 2; rear | door"}, {}, delimiter=delimiter)
    export = read_export(write(tmp_path, content))
    assert export.delimiter == delimiter
    assert len(export.frame.columns) == 22
    assert export.frame["billing_street1"].tolist() == ["1 Main St, Unit 2; rear | door", "440 2 Ave SW"]


LINEAGE_CASES = [
    pytest.param("a,b\n1,2\n3,4\n", [2, 3], id="plain"),
    pytest.param("a,b\r\n1,2\r\n3,4\r\n", [2, 3], id="crlf"),
    pytest.param("a,b\r1,2\r3,4", [2, 3], id="old-mac-cr"),
    pytest.param('a,b\n1,"two\nlines"\n3,4\n', [2, 4], id="quoted-newline"),
    pytest.param('a,b\r\n1,"x\r\ny\r\nz"\r\n3,4\r\n', [2, 5], id="quoted-crlf"),
    pytest.param("a,b\n\n1,2\n\n\n3,4\n\n", [3, 6], id="blank-lines"),
    pytest.param("a,b\n1,2\n   \n3,4\n", [2, 4], id="spaces-only-line"),
    pytest.param("\n\na,b\n1,2\n", [4], id="blank-lines-before-header"),
    pytest.param('"a\nA",b\n1,2\n', [3], id="multi-line-header"),
    pytest.param('a,b\n"1",",\n,"\n\n"3","4"\n', [2, 5], id="delimiters-and-newlines-in-quotes"),
    pytest.param('a,b\n1,"say ""hi""\nthere"\n3,4', [2, 4], id="doubled-quotes-no-final-newline"),
    pytest.param('a,b\n1,x"y\n3,4\n', [2, 3], id="stray-quote-in-unquoted-value"),
]


@pytest.mark.parametrize(("content", "lines"), LINEAGE_CASES)
def test_lineage_is_the_line_each_record_starts_on(tmp_path: Path, content: str, lines: list[int]) -> None:
    path = write(tmp_path, content)
    fast, slow = read_export(path), read_export(path, force_slow=True)
    assert fast.source_lines.tolist() == lines
    assert slow.source_lines.tolist() == lines
    assert fast.frame.to_dict("list") == slow.frame.to_dict("list")


def test_values_keep_their_inner_newlines_as_lf(tmp_path: Path) -> None:
    export = read_export(write(tmp_path, 'a,b\r\n1,"x\r\ny"\r\n'))
    assert export.frame["b"].tolist() == ["x\ny"]


def test_rows_of_the_wrong_width_are_kept_with_a_problem(tmp_path: Path) -> None:
    export = read_export(write(tmp_path, "a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n"))
    assert export.parser == "csv"
    assert export.source_lines.tolist() == [2, 3, 4, 5]
    assert export.frame["a"].tolist() == ["1", "4", "6", "10"]
    assert export.frame["c"].tolist() == ["3", "", "8", "12"]
    assert set(export.row_problems) == {1, 2}
    assert "2 values but the header has 3 columns" in export.row_problems[1]
    assert "4 values but the header has 3 columns" in export.row_problems[2]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('a,b,c\n1,2,3\n4,"5,6\n7,8,9\n', id="width-differs"),
        pytest.param('a,b,c\n1,2,3\n4,5,"6\n7,8,9\n', id="width-matches"),
    ],
)
def test_an_unclosed_quote_is_one_rejected_row_not_a_crash(tmp_path: Path, content: str) -> None:
    export = read_export(write(tmp_path, content))
    assert export.source_lines.tolist() == [2, 3]
    assert list(export.row_problems) == [1]
    assert "never closed" in export.row_problems[1]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("CRM_ID,Contact Name,business-name", "crm_id", id="case-space-dash"),
        pytest.param("  crm id  ,CONTACT_NAME,Business Name", "crm_id", id="padding"),
    ],
)
def test_header_variants_match_generic_columns(tmp_path: Path, header: str, expected: str) -> None:
    billing = ",".join(
        f"billing_{f}" for f in "name street1 street2 city province country postal_code phone email".split()
    )
    content = f"{header},{billing}\nC-1,Ann,,Ann,1 Main,,Calgary,AB,CAN,T2P 5E9,4035550100,a@example.com\n"
    export = read_crm(write(tmp_path, content), load_profile("generic"))
    assert export.frame[expected].tolist() == ["C-1"]
    assert export.frame["contact_name"].tolist() == ["Ann"]
    assert export.frame["shipping_city"].tolist() == [""]  # optional and absent: empty


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "the file is empty", id="empty"),
        pytest.param(b"\n\n   \n", "empty", id="blank-lines-only"),
        pytest.param(codecs.BOM_UTF8, "empty", id="bom-only"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image", id="png"),
        pytest.param(b"PK\x03\x04\x14\x00\x06\x00", ".xlsx", id="zip-xlsx"),
        pytest.param(b"%PDF-1.7\n", "PDF", id="pdf"),
        pytest.param(b"crm_id,name\nC\x00-1,x\x00\x01\x02\n", "NUL", id="nul-bytes"),
        pytest.param(bytes(range(1, 32)) * 50, "control characters", id="control-characters"),
        pytest.param(b"Dear customer, thanks\n", "missing required columns", id="prose"),
        pytest.param(b"just one column\nvalue\n", "has no comma, semicolon, tab or |", id="no-delimiter"),
        pytest.param(
            b"crm_id,contact_name,Email,contact_name\n",
            '"contact_name" (column 2',
            id="dup",
        ),
        pytest.param(
            b"crm_id,Contact Name,contact_name\n",
            '"Contact Name" (column 2',
            id="dup-after-normalising",
        ),
    ],
)
def test_files_that_are_not_a_usable_csv_are_fatal(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InputFileError, match=message.replace("(", r"\(").replace(".", r"\.")) as caught:
        read_crm(path, load_profile("generic"))
    assert str(path) in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_repeated_header_the_profile_does_not_read_is_no_error(tmp_path: Path) -> None:
    header, line = generic_csv({}).splitlines()
    path = write(tmp_path, f"{header},Notes,NOTES,Notes\n{line},a,b,c\n")
    export = read_crm(path, load_profile("generic"))
    assert export.frame["crm_id"].tolist() == ["CRM-1"]
    assert export.ignored_headers == ["Notes", "NOTES", "Notes (column 25)"]


def test_a_missing_file_is_fatal(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_export(tmp_path / "absent.csv")


def test_missing_required_columns_are_listed_with_the_nearest_header(tmp_path: Path) -> None:
    content = (
        generic_csv({}).replace("billing_postal_code", "Billing Postcode").replace("billing_email", "mail")
    )
    with pytest.raises(MissingColumnsError) as caught:
        read_crm(write(tmp_path, content), load_profile("generic"))
    message = str(caught.value)
    assert (
        'missing required columns: billing_postal_code (nearest header present: "Billing Postcode")'
        in message
    )
    assert "billing_email (" in message


def test_fast_and_slow_paths_agree_on_the_dirty_sample() -> None:
    path = Path(__file__).resolve().parents[2] / "sample_data" / "crm_customers_dirty.csv"
    slow = read_export(path, force_slow=True)
    fast = read_export(path)
    assert fast.frame.to_dict("list") == slow.frame.to_dict("list")
    assert np.array_equal(fast.source_lines, slow.source_lines)
    assert fast.row_problems == slow.row_problems


_CELL = st.text(alphabet=st.sampled_from(list('ab ,;"\n\r\t|é')), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(_CELL, min_size=1, max_size=4), max_size=6), crlf=st.booleans())
def test_fast_path_matches_the_csv_module_on_any_text(
    tmp_path: Path, rows: list[list[str]], crlf: bool
) -> None:
    newline = "\r\n" if crlf else "\n"
    body = newline.join(",".join(cells) for cells in rows)
    path = write(tmp_path, f"h1,h2,h3{newline}{body}", "prop.csv")
    fast, slow = read_export(path), read_export(path, force_slow=True)
    assert fast.source_lines.tolist() == slow.source_lines.tolist()
    assert fast.frame.to_dict("list") == slow.frame.to_dict("list")
    assert fast.row_problems == slow.row_problems
