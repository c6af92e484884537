"""The three-way diff: properties, the named scenarios, pairing and link proposals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.crm.normalize import normalize_crm
from crmsync.schemas.helcim import SYNCED_FIELDS
from crmsync.sync.diff import BUCKETS, DiffResult, decide_one, diff

FIELDS = SYNCED_FIELDS


def crm_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [dict.fromkeys(("crm_id", *FIELDS), "") | r for r in rows], columns=["crm_id", *FIELDS]
    )
    return frame.astype(str)


def helcim_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    base = {
        "helcim_id": 0,
        "customer_code": "",
        **dict.fromkeys(FIELDS, ""),
        "date_created": "",
        "date_updated": "",
    }
    frame = pd.DataFrame([base | r for r in rows], columns=list(base))
    return frame.astype({c: "str" for c in base if c != "helcim_id"}).astype({"helcim_id": "int64"})


def base_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([dict.fromkeys(FIELDS) | r for r in rows], columns=["crm_id", *FIELDS])


NO_LINKS = pd.DataFrame({"crm_id": pd.Series(dtype=str), "helcim_id": pd.Series(dtype="int64")})


def mirrored(crm: pd.DataFrame, first_id: int = 1000) -> pd.DataFrame:
    """The Helcim side holding exactly the CRM rows under the same codes."""
    rows = [{str(k): v for k, v in r.items()} for r in crm.to_dict("records")]
    return helcim_frame(
        [{**r, "helcim_id": first_id + i, "customer_code": r["crm_id"]} for i, r in enumerate(rows)]
    )


def run(crm: pd.DataFrame, helcim: pd.DataFrame, base: pd.DataFrame | None = None, **kw: Any) -> DiffResult:
    return diff(crm, helcim, base if base is not None else base_frame([]), kw.pop("links", NO_LINKS), **kw)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def change(result: DiffResult, crm_id: str, field: str) -> dict[str, Any]:
    rows = result.changes[(result.changes["crm_id"] == crm_id) & (result.changes["field"] == field)]
    assert len(rows) == 1, rows
    return dict(rows.iloc[0])


# -- properties -------------------------------------------------------------------------------

VALUES = st.sampled_from(["", "Ada", "ada", "Bob", "T2P 1A1", "4035550100", "CAN"])
ROW = st.fixed_dictionaries(
    dict.fromkeys(("contact_name", "cell_phone", "billing_city", "shipping_name"), VALUES)
)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    n = draw(st.integers(0, 12))
    crm_rows = [{"crm_id": f"C{i}", **draw(ROW)} for i in range(n)]
    helcim_rows, base_rows = [], []
    for i, row in enumerate(crm_rows):
        where = draw(st.sampled_from(["both", "crm-only"]))
        if where == "both":
            helcim_rows.append({"helcim_id": 100 + i, "customer_code": row["crm_id"], **draw(ROW)})
            if draw(st.booleans()):
                base_rows.append({"crm_id": row["crm_id"], **draw(ROW)})
    for k in range(draw(st.integers(0, 4))):
        helcim_rows.append({"helcim_id": 900 + k, "customer_code": f"H{k}", **draw(ROW)})
    return crm_frame(crm_rows), helcim_frame(helcim_rows), base_frame(base_rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.sampled_from(["crm-wins", "helcim-wins", "manual"]))
def test_every_key_lands_in_exactly_one_bucket(world: tuple[pd.DataFrame, ...], policy: Any) -> None:
    crm, helcim, base = world
    result = run(crm, helcim, base, policy=policy)
    buckets = result.bucket_of()
    assert buckets.index.is_unique
    paired_codes = set(crm["crm_id"]) & set(helcim["customer_code"])
    helcim_only = {
        f"helcim:{i}"
        for i, c in zip(helcim["helcim_id"], helcim["customer_code"], strict=True)
        if c not in paired_codes
    }
    assert set(buckets.index) == set(crm["crm_id"]) | helcim_only
    assert set(buckets) <= set(BUCKETS)
    assert sum(result.counts().values()) == len(buckets)


@settings(max_examples=40, deadline=None)
@given(worlds())
def test_a_frame_diffed_with_itself_is_empty(world: tuple[pd.DataFrame, ...]) -> None:
    crm, _, _ = world
    helcim = mirrored(crm)
    result = run(crm, helcim, crm.copy())
    assert result.changes.empty
    assert len(result.unchanged) == len(crm)
    assert result.creates.empty
    assert result.exports.empty


@settings(max_examples=60, deadline=None)
@given(worlds(), st.sampled_from(["crm-wins", "helcim-wins"]))
def test_applying_the_updates_and_diffing_again_leaves_no_update(
    world: tuple[pd.DataFrame, ...], policy: Any
) -> None:
    crm, helcim, base = world
    first = run(crm, helcim, base, policy=policy)
    # Apply: Helcim takes the targets, the base moves to agreed values and to every pushed value.
    helcim_rows = {int(r["helcim_id"]): dict(r) for r in records(helcim)}
    helcim_of = dict(zip(first.changes["crm_id"].tolist(), first.changes["helcim_id"].tolist(), strict=True))
    for target in records(first.targets):
        helcim_rows[int(helcim_of[target["crm_id"]])].update({f: target[f] for f in FIELDS})
    base_rows = {str(r["crm_id"]): dict(r) for r in records(base)}
    for agreed in records(first.agreed):
        known = {f: v for f, v in agreed.items() if f in FIELDS and isinstance(v, str)}
        base_rows.setdefault(str(agreed["crm_id"]), {"crm_id": agreed["crm_id"]}).update(known)
    pushed = first.changes[first.changes["resolution"] == "push"]
    for crm_id, name, value in zip(pushed["crm_id"], pushed["field"], pushed["crm"], strict=True):
        base_rows.setdefault(str(crm_id), {"crm_id": crm_id})[str(name)] = value
    second = run(
        crm, helcim_frame(list(helcim_rows.values())), base_frame(list(base_rows.values())), policy=policy
    )
    assert (second.changes["resolution"] == "push").sum() == 0
    assert second.updates.empty


# -- scenarios ----------------------------------------------------------------------------------


def test_exported_but_not_yet_imported_is_never_pushed_back() -> None:
    crm = crm_frame([{"crm_id": "C1", "contact_name": "Ada", "cell_phone": "4035550100"}])
    base = base_frame([{"crm_id": "C1", "contact_name": "Ada", "cell_phone": "4035550100"}])
    helcim = mirrored(crm)
    helcim.loc[0, "cell_phone"] = "4035550199"  # changed in Helcim
    for _night in range(3):  # the CRM has not imported it yet, night after night
        result = run(crm, helcim, base)
        assert change(result, "C1", "cell_phone")["status"] == "export"
        assert result.updates.empty
        assert list(result.exports["crm_id"]) == ["C1"]
        agreed = result.agreed.set_index("crm_id")
        assert "C1" not in agreed.index or agreed.loc["C1", "cell_phone"] == "4035550100"  # the base stays
    crm.loc[0, "cell_phone"] = "4035550199"  # finally imported in the CRM
    result = run(crm, helcim, base)
    assert result.changes.empty
    assert result.agreed.set_index("crm_id").loc["C1", "cell_phone"] == "4035550199"  # the base moves now


@pytest.mark.parametrize(
    ("policy", "resolution", "bucket_field_target"),
    [("crm-wins", "push", "Ada CRM"), ("helcim-wins", "export", None), ("manual", "skip", None)],
)
def test_conflict_policies(policy: Any, resolution: str, bucket_field_target: str | None) -> None:
    crm = crm_frame([{"crm_id": "C1", "contact_name": "Ada CRM", "billing_city": "Calgary"}])
    base = base_frame([{"crm_id": "C1", "contact_name": "Ada", "billing_city": "Calgary"}])
    helcim = mirrored(crm)
    helcim.loc[0, "contact_name"] = "Ada Helcim"
    result = run(crm, helcim, base, policy=policy)
    cell = change(result, "C1", "contact_name")
    assert (cell["status"], cell["resolution"], cell["base"]) == ("conflict", resolution, "Ada")
    assert list(result.conflicts["crm_id"]) == ["C1"]
    assert result.updates.empty  # the customer is in the conflicts bucket only
    if bucket_field_target:
        assert result.targets.set_index("crm_id").loc["C1", "contact_name"] == bucket_field_target
    else:
        assert result.targets.empty


def test_push_and_export_in_one_customer_keep_the_helcim_side_change() -> None:
    crm = crm_frame([{"crm_id": "C1", "contact_name": "Ada King", "billing_city": "Calgary"}])
    base = base_frame([{"crm_id": "C1", "contact_name": "Ada", "billing_city": "Calgary"}])
    helcim = mirrored(crm)
    helcim.loc[0, ["contact_name", "billing_city"]] = ["Ada", "Banff"]
    result = run(crm, helcim, base)
    assert change(result, "C1", "contact_name")["status"] == "push"
    assert change(result, "C1", "billing_city")["status"] == "export"
    target = result.targets.set_index("crm_id").loc["C1"]
    assert (target["contact_name"], target["billing_city"]) == ("Ada King", "Banff")  # no revert of Banff
    assert list(result.updates["crm_id"]) == ["C1"]


def test_first_sync_pushes_but_never_clears_helcim_data() -> None:
    crm = crm_frame([{"crm_id": "C1", "contact_name": "Ada", "cell_phone": "", "billing_city": "Calgary"}])
    helcim = mirrored(crm)
    helcim.loc[0, ["cell_phone", "billing_city"]] = ["4035550100", "Edmonton"]
    result = run(crm, helcim)
    assert change(result, "C1", "billing_city")["status"] == "push"
    assert change(result, "C1", "cell_phone")["status"] == "export"
    assert change(result, "C1", "billing_city")["first_sync"]
    agreed = result.agreed.set_index("crm_id").loc["C1"]
    assert agreed["contact_name"] == "Ada"
    assert agreed["billing_city"] is None  # not agreed yet: stays unknown


def test_fields_the_export_lacks_are_not_compared() -> None:
    crm = crm_frame([{"crm_id": "C1", "contact_name": "Ada"}])
    helcim = mirrored(crm)
    helcim.loc[0, "shipping_city"] = "Banff"
    fields = tuple(f for f in FIELDS if not f.startswith("shipping_"))
    assert run(crm, helcim, fields=fields).changes.empty
    assert not run(crm, helcim).changes.empty


PHANTOMS = [
    ("billing_country", "CA", "CAN"),
    ("billing_country", "canada", "CAN"),
    ("billing_postal_code", "t2p1a1", "T2P 1A1"),
    ("cell_phone", "(403) 555-0100", "4035550100"),
    ("cell_phone", "+1 403.555.0100", "403-555-0100"),
    ("contact_name", "ADA  LOVELACE ", "Ada Lovelace"),
    ("billing_email", "Ada@Example.COM", "Ada@example.com"),
    ("billing_province", "Alberta", "AB"),
]


@pytest.mark.parametrize(
    ("field", "crm_value", "helcim_value"), PHANTOMS, ids=[f"{f}:{c}" for f, c, _ in PHANTOMS]
)
def test_phantom_changes_produce_no_update(field: str, crm_value: str, helcim_value: str) -> None:
    common = {
        "crm_id": "C1",
        "contact_name": "Ada Lovelace",
        "billing_name": "Ada",
        "billing_street1": "1 Main St",
        "billing_city": "Calgary",
        "billing_province": "AB",
        "billing_country": "CAN",
        "billing_postal_code": "T2P 1A1",
    }
    crm = normalize_crm(crm_frame([{**common, field: crm_value}]))
    raw_helcim = crm_frame([{**common, field: helcim_value}])
    helcim = mirrored(normalize_crm(raw_helcim))
    base = normalize_crm(crm_frame([{**common, field: helcim_value}]))
    result = run(crm, helcim, base)
    assert result.changes.empty, result.changes[["field", "crm", "helcim"]]
    assert list(result.unchanged["crm_id"]) == ["C1"]


# -- pairing and links --------------------------------------------------------------------------


def test_links_pair_different_codes_and_mark_missing_and_orphans() -> None:
    crm = crm_frame(
        [
            {"crm_id": "C1", "contact_name": "A"},
            {"crm_id": "C2", "contact_name": "B"},
            {"crm_id": "C3", "contact_name": "C"},
        ]
    )
    helcim = helcim_frame(
        [
            {"helcim_id": 10, "customer_code": "CST1000", "contact_name": "A"},
            {"helcim_id": 30, "customer_code": "CST1002", "contact_name": "Gone from CRM"},
        ]
    )
    links = pd.DataFrame({"crm_id": ["C1", "C2", "C9"], "helcim_id": [10, 20, 30]})
    result = run(crm, helcim, links=links, known_crm_ids=["C1", "C2", "C3"])
    buckets = result.bucket_of()
    assert buckets["C1"] == "unchanged"  # linked under another code
    assert buckets["C2"] == "missing_in_helcim"
    assert buckets["C3"] == "creates"
    assert list(result.orphaned["crm_id"]) == ["C9"]  # not exported as a new customer
    assert result.exports.empty


def test_rejected_rows_are_not_orphans() -> None:
    crm = crm_frame([])
    helcim = helcim_frame([{"helcim_id": 10, "customer_code": "C1", "contact_name": "A"}])
    links = pd.DataFrame({"crm_id": ["C1"], "helcim_id": [10]})
    result = run(crm, helcim, links=links, known_crm_ids=["C1"])
    assert result.exports.empty
    assert result.orphaned.empty
    assert result.bucket_of().empty


def test_duplicate_codes_in_helcim_pair_the_oldest() -> None:
    crm = crm_frame([{"crm_id": "C1", "contact_name": "A"}])
    helcim = helcim_frame(
        [
            {"helcim_id": 12, "customer_code": "C1", "contact_name": "A"},
            {"helcim_id": 11, "customer_code": "C1", "contact_name": "A"},
        ]
    )
    result = run(crm, helcim)
    assert list(result.unchanged["helcim_id"]) == [11]
    assert list(result.exports["helcim_id"]) == [12]


def test_look_alikes_under_other_codes_are_proposed_not_created() -> None:
    crm = crm_frame(
        [
            {"crm_id": "C1", "contact_name": "Ada", "billing_email": "ada@example.com"},
            {"crm_id": "C2", "contact_name": "Bob", "cell_phone": "4035550100"},
            {"crm_id": "C3", "contact_name": "Cy", "billing_postal_code": "T2P 1A1"},
            {"crm_id": "C4", "contact_name": "Di"},
        ]
    )
    helcim = helcim_frame(
        [
            {
                "helcim_id": 1,
                "customer_code": "CST1",
                "contact_name": "Ada L.",
                "billing_email": "ADA@example.com",
            },
            {"helcim_id": 2, "customer_code": "CST2", "contact_name": "Robert", "cell_phone": "4035550100"},
            {"helcim_id": 3, "customer_code": "CST3", "contact_name": "Bobby", "billing_phone": "4035550100"},
            {"helcim_id": 4, "customer_code": "CST4", "contact_name": "cy", "billing_postal_code": "T2P 1A1"},
        ]
    )
    result = run(crm, helcim)
    proposals = result.link_proposals.set_index(["crm_id", "helcim_id"])
    assert proposals.loc[("C1", 1), "matched_on"] == "email"
    assert not proposals.loc[("C1", 1), "ambiguous"]
    assert proposals.loc[("C2", 2), "ambiguous"]
    assert proposals.loc[("C2", 3), "ambiguous"]  # two candidates: a person must choose
    assert proposals.loc[("C3", 4), "matched_on"] == "name+postal"
    assert set(result.awaiting_link["crm_id"]) == {"C1", "C2", "C3"}
    assert list(result.creates["crm_id"]) == ["C4"]
    rejected = pd.DataFrame({"crm_id": ["C1"], "helcim_id": [1]})
    again = run(crm, helcim, rejected_links=rejected)
    assert "C1" in set(again.creates["crm_id"])  # a rejected proposal lets the row be created


def test_a_changed_email_key_without_phone_or_postal_is_proposed_by_name() -> None:
    """Ann's e-mail is her key; it changed, and Helcim holds neither her e-mail nor a postal code (her
    address was omitted). Her new row is proposed, on the name alone and marked ambiguous, as the
    linked customer whose row left the export: held, never created a second time. A row keyed by a
    CRM id is not proposed on a name alone (another customer may well share it)."""
    old, new = "em-" + "a" * 24, "em-" + "b" * 24
    crm = crm_frame(
        [
            {"crm_id": new, "contact_name": "Ann Lee", "billing_email": "ann.lee@example.com"},
            {"crm_id": "C-7", "contact_name": "Bo Lund"},
        ]
    )
    helcim = helcim_frame(
        [
            {"helcim_id": 1, "customer_code": old, "contact_name": "ann lee"},
            {"helcim_id": 2, "customer_code": "C-6", "contact_name": "Bo Lund"},
        ]
    )
    links = pd.DataFrame({"crm_id": [old, "C-6"], "helcim_id": [1, 2]})
    result = run(crm, helcim, links=links, known_crm_ids=[new, "C-7"])
    proposals = result.link_proposals.set_index(["crm_id", "helcim_id"])
    assert list(proposals.index) == [(new, 1)]
    assert proposals.loc[(new, 1), "matched_on"] == "name"
    assert proposals.loc[(new, 1), "ambiguous"]
    assert proposals.loc[(new, 1), "replaces"] == old
    assert list(result.awaiting_link["crm_id"]) == [new]
    assert list(result.creates["crm_id"]) == ["C-7"]


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown conflict policy"):
        run(crm_frame([]), helcim_frame([]), policy="whatever")


# -- the decision table, against the README's --------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"
#: For each row of the README's "How the diff decides" table: examples (crm, helcim, base; None = no
#: base yet) with what decide() must answer, and the word the README's result column starts with.
DECISIONS: dict[str, tuple[list[tuple[str, str, str | None, str]], str]] = {
    "*c = h*": ([("Banff", "Banff", "Calgary", "same"), ("Banff", "BANFF", None, "same")], "unchanged"),
    "*h = b*, *c ≠ b*": (
        [("Banff", "Calgary", "Calgary", "push"), ("", "Calgary", "calgary", "push")],
        "**update**",
    ),
    "*c = b*, *h ≠ b*": (
        [("Calgary", "Banff", "Calgary", "export"), ("Calgary", "", "Calgary", "export")],
        "**export**",
    ),
    "both differ from *b*": (
        [("Banff", "Canmore", "Calgary", "conflict"), ("", "Canmore", "Calgary", "conflict")],
        "**conflict**",
    ),
    "no base yet (first sync)": (
        [("Banff", "Calgary", None, "push"), ("", "Calgary", None, "export")],
        "the CRM owns",
    ),
}


def _readme_decision_table() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### How the diff decides", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    table = {}
    for line in rows[1:]:  # the header is first
        case, result = (cell.strip() for cell in line.strip("|").split(" | ", 1))
        table[case] = result
    return table


def test_the_readme_documents_exactly_the_decision_table_decide_implements() -> None:
    table = _readme_decision_table()
    assert set(table) == set(DECISIONS)
    for case, (_, word) in DECISIONS.items():
        assert table[case].startswith(word), case


@pytest.mark.parametrize(
    ("crm", "helcim", "base", "expected"),
    [example for examples, _ in DECISIONS.values() for example in examples],
)
def test_decide_answers_each_case_of_the_table(
    crm: str, helcim: str, base: str | None, expected: str
) -> None:
    assert decide_one(crm, helcim, base) == expected
