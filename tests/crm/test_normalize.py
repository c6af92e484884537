"""Normalisation: each rule as a table, idempotence, and the fast paths against the libraries."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync import text
from crmsync.crm import normalize as n

# What the cleaner calls whitespace (RE2's \s, vertical tab, NEL and Unicode separators), spelled for Python.
_WHITESPACE = re.compile("[\t\n\f\r \x0b\x85\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def tidy(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip(" ")


def one(func: object, value: object, *context: str) -> str:
    series = [pd.Series([value], dtype=object)] + [pd.Series([c], dtype="str") for c in context]
    result = func(*series)  # type: ignore[operator]
    assert isinstance(result, pd.Series)
    assert str(result.dtype) == "str"
    return str(result.iloc[0])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann   Lee ", "Ann Lee"),
        ("Ann\u00a0\u00a0Lee", "Ann Lee"),
        ("12 Main St\n Suite 4", "12 Main St Suite 4"),
        ("\tCalgary\r\n", "Calgary"),
        ("Zoé\u2003Côté", "Zoé Côté"),
        ("MacDonald", "MacDonald"),
        (None, ""),
        (float("nan"), ""),
        ("   ", ""),
    ],
    ids=["spaces", "nbsp", "newline", "tabs-crlf", "em-space", "case-kept", "none", "nan", "blank"],
)
def test_text(raw: object, expected: str) -> None:
    assert one(n.normalize_text, raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Canada", "CAN"),
        ("canada ", "CAN"),
        ("CA", "CAN"),
        ("ca", "CAN"),
        ("CAN", "CAN"),
        ("United States", "USA"),
        ("U.S.A.", "USA"),
        ("usa", "USA"),
        ("US", "USA"),
        ("United States of America", "USA"),
        ("Germany", "DEU"),
        ("gb", "GBR"),
        ("UK", "GBR"),
        ("Côte d'Ivoire", "CIV"),
        ("South Korea", "KOR"),
        ("Canda", "Canda"),
        ("", ""),
        (None, ""),
    ],
)
def test_country(raw: object, expected: str) -> None:
    assert one(n.normalize_country, raw) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("Alberta", "CAN", "AB"),
        ("alta", "CAN", "AB"),
        ("ab", "CAN", "AB"),
        ("Québec", "CAN", "QC"),
        ("Quebec", "CAN", "QC"),
        ("PQ", "CAN", "QC"),
        ("Newfoundland", "CAN", "NL"),
        ("Nfld", "CAN", "NL"),
        ("P.E.I.", "CAN", "PE"),
        ("Yukon", "CAN", "YT"),
        ("Washington", "USA", "WA"),
        ("wash", "USA", "WA"),
        ("D.C.", "USA", "DC"),
        ("District of Columbia", "USA", "DC"),
        ("Puerto Rico", "USA", "PR"),
        ("CA", "USA", "CA"),
        ("Albrta", "CAN", "Albrta"),
        ("Bavaria ", "DEU", "Bavaria"),
        ("Alberta", "", "Alberta"),
        ("", "CAN", ""),
    ],
)
def test_province(raw: str, country: str, expected: str) -> None:
    assert one(n.normalize_province, raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("h0h0h0", "CAN", "H0H 0H0"),
        ("t2p-5e9", "CAN", "T2P 5E9"),
        (" T2P 5E9 ", "CAN", "T2P 5E9"),
        ("T2P5E", "CAN", "T2P5E"),
        ("98101", "USA", "98101"),
        ("981011234", "USA", "98101-1234"),
        ("98101 1234", "USA", "98101-1234"),
        ("2108", "USA", "2108"),
        ("sw1a 1aa", "GBR", "sw1a 1aa"),
        ("T2P5E9", "", "T2P5E9"),
        ("", "CAN", ""),
    ],
)
def test_postal_code(raw: str, country: str, expected: str) -> None:
    assert one(n.normalize_postal_code, raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("(403) 555-0100", "CAN", "4035550100"),
        ("403.555.0100", "CAN", "4035550100"),
        ("+1 403 555 0100", "USA", "4035550100"),
        ("1-403-555-0100", "", "4035550100"),
        ("4035550100", "CAN", "4035550100"),
        ("+44 20 7946 0958", "CAN", "442079460958"),
        ("020 7946 0958", "GBR", "442079460958"),
        ("+1 403 555 0100", "GBR", "14035550100"),
        ("0711 1234567", "DEU", "497111234567"),
        ("555-12", "CAN", "555-12"),
        ("403-555-0100 ext. 12", "CAN", "403-555-0100 ext. 12"),
        ("call me", "CAN", "call me"),
        ("", "CAN", ""),
    ],
)
def test_phone(raw: str, country: str, expected: str) -> None:
    assert one(n.normalize_phone, raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "expected", "error"),
    [
        ("Ann@Example.COM", "Ann@example.com", ""),
        ("  ann.lee+crm@mail.example.org ", "ann.lee+crm@mail.example.org", ""),
        ("bob@exämple.com", "bob@xn--exmple-cua.com", ""),
        ("bob@@example.com", "bob@@example.com", "invalid characters"),
        ("a..b@example.com", "a..b@example.com", "two periods"),
        ("ann@localhost", "ann@localhost", "period"),
        ("josé@example.com", "josé@example.com", "Internationalized characters"),
        ("no at sign", "no at sign", "@-sign"),
        ("", "", ""),
    ],
)
def test_email(raw: str, expected: str, error: str) -> None:
    assert one(n.normalize_email, raw) == expected
    found = one(text.email_errors, raw)
    assert (error in found) if error else found == ""


_PHONE_TEXT = st.text(alphabet=st.sampled_from(list("0123456789 +-().x/")), max_size=22)
# Phones as people type them: an optional +, then 2 to 5 groups of digits with separators.
_TYPED_PHONE = st.builds(
    lambda plus, groups, sep: plus + sep.join(groups),
    st.sampled_from(["", "+", "+1 "]),
    st.lists(st.text(alphabet="0123456789", min_size=1, max_size=4), min_size=2, max_size=5),
    st.sampled_from([" ", "-", ".", ""]),
)
_COUNTRY = st.sampled_from(["", "CAN", "USA", "GBR", "DEU", "FRA", "Canda"])


@settings(max_examples=200, deadline=None)
@given(phones=st.lists(st.tuples(st.one_of(_PHONE_TEXT, _TYPED_PHONE), _COUNTRY), min_size=1, max_size=20))
def test_phone_fast_path_agrees_with_phonenumbers_and_is_idempotent(phones: list[tuple[str, str]]) -> None:
    values = pd.Series([p for p, _ in phones], dtype="str")
    countries = pd.Series([c for _, c in phones], dtype="str")
    fast = n.normalize_phone(values, countries)
    slow = [n._phone(tidy(p), c) if tidy(p) else "" for p, c in phones]
    assert fast.tolist() == slow
    assert n.normalize_phone(fast, countries).tolist() == fast.tolist()


_EMAIL_TEXT = st.text(alphabet=st.sampled_from(list("ab.+-_@ AÉé1")), max_size=16).map(
    lambda s: s + "@ex.com"
)


@settings(max_examples=200, deadline=None)
@given(emails=st.lists(st.one_of(_EMAIL_TEXT, st.text(max_size=12)), min_size=1, max_size=20))
def test_email_fast_path_agrees_with_email_validator_and_is_idempotent(emails: list[str]) -> None:
    values = pd.Series(emails, dtype="str")
    fast = n.normalize_email(values)
    expected = [text._email(tidy(e))[0] if tidy(e) else "" for e in emails]
    assert fast.tolist() == expected
    assert n.normalize_email(fast).tolist() == fast.tolist()


_ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=15)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(_ANY_TEXT, st.sampled_from(["Alberta", "t2p5e9", "(403) 555-0100", "CA"])),
        min_size=1,
        max_size=10,
    ),
    country=st.sampled_from(["Canada", "US", "", "Germany", "CAN"]),
)
def test_every_normaliser_is_idempotent(values: list[str], country: str) -> None:
    series = pd.Series(values, dtype="str")
    countries = n.normalize_country(pd.Series([country] * len(values), dtype="str"))
    for func in (n.normalize_text, n.normalize_country, n.normalize_email):
        once = func(series)
        assert func(once).tolist() == once.tolist(), func.__name__
    for func2 in (n.normalize_province, n.normalize_postal_code, n.normalize_phone):
        once = func2(series, countries)
        assert func2(once, countries).tolist() == once.tolist(), func2.__name__


def test_normalize_crm_touches_only_generic_columns() -> None:
    from crmsync.schemas.crm import CRM_COLUMNS

    frame = pd.DataFrame({c: pd.Series([" x "], dtype="str") for c in CRM_COLUMNS})
    frame["source_line"] = [7]
    out = n.normalize_crm(frame)
    assert out["source_line"].tolist() == [7]
    assert out["contact_name"].tolist() == ["x"]
