"""Helcim → CRM import files, in the CRM's own column names (the profile's reverse mapping).

:func:`write_crm_import` writes ``crm_import/``:

``new_customers.csv``
    Helcim-only customers, ready to import. For a profile that names its
    system's import file (``[crm_import]``: Shopify's customer import, a HubSpot
    import, a Salesforce Data Loader file, …): exactly those columns, in that
    order (the system assigns the new records' ids, so its id column is empty),
    then ``helcim_id`` and ``helcim_customer_code`` (leave them unmapped). For
    the others (generic): the id column holding the Helcim customerCode, which
    links the record on the next run when the CRM keeps it as the record's id,
    ``helcim_id``, ``helcim_customer_code``, then the CRM's other columns.
``updates.csv``
    fields changed in Helcim that the CRM should take: ``<id column>, helcim_id,
    field, crm_value, helcim_value`` with ``field`` a CRM header (where the
    e-mail is the key, the first column is the export's e-mail column: the
    crm_id is then a code the CRM never saw).
``payment_methods.csv``
    one row per card and bank account: ``<id column>, helcim_id,
    customer_code, method, method_id, default, card_brand, card_last4,
    card_expiry, bank_last4, bank_verified, bank_ready, pad_status``.
``import_updates.csv`` (profiles with ``[crm_import]``)
    the same changes as updates.csv, as the system's import file: one row per
    customer, only the column the import matches on (``[crm_import] match``:
    the record Id for Salesforce's Data Loader update, Record ID for HubSpot,
    Email for Shopify) and the columns Helcim changed. Every cell is the
    record's own value as the CRM export holds it (:class:`CrmRows`), except
    the changed cells: importing it writes nothing but the changes. A record
    whose export row has no match value is left out, and counted (the run warns).
    Countries are written as the import wants them (``country``: Shopify and
    WooCommerce take alpha-2 codes).

The reverse mapping: a generic column the profile reads from a header goes
back to that header (the first one listed). A ``join`` of headers (HubSpot's
First Name + Last Name → contact_name) is split back at the last separator
(the last word to the last header); a ``split_lines`` (a multi-line street →
street1, street2) is joined back with a line break. Generic columns the CRM
has no header for (a ``coalesce`` target such as HubSpot's billing name) are
not written. Every cell goes through the formula-neutralising CSV writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pycountry

from crmsync.crm.profiles import Profile, header_key, load_profile
from crmsync.outputs import write_csv
from crmsync.schemas.crm import CRM_COLUMNS
from crmsync.schemas.reconciliation import PAYMENT_METHOD_COLUMNS

__all__ = [
    "CrmColumn",
    "CrmRows",
    "crm_columns",
    "import_updates",
    "new_customers",
    "to_crm",
    "updates",
    "write_crm_import",
]


@dataclass(frozen=True)
class CrmColumn:
    """One column of the CRM's export, and how to fill it from generic columns."""

    header: str
    fields: tuple[str, ...]  # the generic columns it is made from
    kind: str  # "copy" | "name_part" (one header of a join) | "lines" (a split_lines source)
    part: int = 0
    parts: int = 1
    separator: str = " "


@dataclass(frozen=True)
class CrmRows:
    """What the CRM export itself holds for its rows (the valid ones, by crm_id): crm_import/ names a
    record as the CRM knows it and writes back the CRM's own values for what did not change."""

    key: str = "crm_id"  # where the crm_id comes from: "crm_id" (an id column) or "email"
    key_header: str = ""  # the export's header of the key
    #: crm_id → what the CRM holds as the record's key: its id, or (e-mail keys) its e-mail.
    keys: pd.Series = field(default_factory=lambda: pd.Series(dtype="str"))
    #: The export's own values of the system's import columns, by crm_id (profiles with [crm_import]).
    own: pd.DataFrame | None = None


def _read_columns(profile: Profile) -> list[CrmColumn]:
    """The profile's reverse mapping in its own order: the first header of each generic column."""
    out: list[CrmColumn] = []
    covered: set[str] = set()
    headers: set[str] = set()
    for column, names in profile.columns.items():
        if names[0] not in headers:
            out.append(CrmColumn(names[0], (column,), "copy"))
            headers.add(names[0])
        covered.add(column)
    for transform in profile.transforms:
        if any(source in CRM_COLUMNS for source in transform.sources):
            continue  # made from generic columns the CRM already has
        if transform.kind == "join" and transform.targets[0] not in covered:
            n = len(transform.sources)
            for part, header in enumerate(transform.sources):
                if header not in headers:
                    out.append(
                        CrmColumn(header, transform.targets, "name_part", part, n, transform.separator)
                    )
                    headers.add(header)
            covered.add(transform.targets[0])
        elif transform.kind == "split_lines" and not set(transform.targets) <= covered:
            header = transform.sources[0]
            if header not in headers:
                out.append(CrmColumn(header, transform.targets, "lines"))
                headers.add(header)
            covered.update(transform.targets)
    return out


def _inventory(profile: Profile) -> dict[str, CrmColumn]:
    """Every header the profile reads (by header_key) → how to fill it from generic columns."""
    found: dict[str, CrmColumn] = {}
    for column, names in profile.columns.items():
        for name in names:
            found.setdefault(header_key(name), CrmColumn(name, (column,), "copy"))
    for t in profile.transforms:
        headers = [s for s in t.sources if s not in CRM_COLUMNS]
        if t.kind == "join" and len(headers) == len(t.sources):
            for part, name in enumerate(t.sources):
                found.setdefault(
                    header_key(name),
                    CrmColumn(name, t.targets, "name_part", part, len(t.sources), t.separator),
                )
        elif t.kind == "split_lines":
            found.setdefault(header_key(t.sources[0]), CrmColumn(t.sources[0], t.targets, "lines"))
        elif t.kind == "split_fields":
            found.setdefault(
                header_key(t.sources[0]), CrmColumn(t.sources[0], t.targets, "fields", separator=t.separator)
            )
        elif t.kind == "coalesce":
            for name in headers:
                found.setdefault(header_key(name), CrmColumn(name, t.targets, "copy"))
    return found


def crm_columns(profile: Profile) -> list[CrmColumn]:
    """The CRM columns crmsync writes: the system's import columns when the profile names them
    (``[crm_import] columns``; a column no generic field fills stays empty), else the profile's own."""
    if profile.crm_import is None:
        return _read_columns(profile)
    inventory = _inventory(profile)
    return [inventory.get(header_key(h), CrmColumn(h, (), "empty")) for h in profile.crm_import.columns]


def _fill(column: CrmColumn, frame: pd.DataFrame) -> pd.Series:
    if column.kind == "empty":
        return pd.Series("", index=frame.index, dtype="str")
    values = frame[column.fields[0]].fillna("").astype("str")
    if column.kind == "copy":
        return values
    if column.kind == "fields":
        parts = [frame[f].fillna("").astype("str") for f in column.fields]
        joined = parts[0]
        for part in parts[1:]:
            joined = joined + column.separator + part
        given = pd.concat([p != "" for p in parts], axis=1).any(axis=1)
        return joined.where(given, "").astype("str")
    if column.kind == "lines":
        rest = frame[column.fields[1]].fillna("").astype("str")
        return (values + np.where(rest.str.strip() != "", "\n" + rest, "")).astype("str")
    # rsplit from the right: the last word goes to the last header; a short name fills the first headers
    pieces = values.str.rsplit(column.separator, n=column.parts - 1, expand=True)
    if column.part >= pieces.shape[1]:
        return pd.Series("", index=values.index, dtype="str")
    return pieces[column.part].fillna("").astype("str")


@lru_cache(maxsize=1)
def _alpha2_codes() -> Mapping[str, str]:
    """ISO 3166-1 alpha-3 → alpha-2 (built once: to_crm runs several times a run)."""
    return {str(c.alpha_3): str(c.alpha_2) for c in pycountry.countries}


def _alpha2(values: pd.Series) -> pd.Series:
    codes = _alpha2_codes()
    return values.map(lambda v: codes.get(str(v), v)).astype("str")


def to_crm(frame: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Generic columns → the CRM's columns (see :func:`crm_columns`); missing generic columns are empty."""
    full = frame.reindex(columns=[*CRM_COLUMNS], fill_value="")
    if profile.crm_import is not None and profile.crm_import.country == "alpha-2":
        full = full.assign(**{c: _alpha2(full[c]) for c in ("billing_country", "shipping_country")})
    return pd.DataFrame(
        {c.header: _fill(c, full).to_numpy() for c in crm_columns(profile)}, index=frame.index
    )


def _key_header(profile: Profile, crm: CrmRows | None) -> str:
    """The header naming a record in updates.csv and payment_methods.csv: the export's e-mail column
    where the e-mail is the key (the crm_id is then a code the CRM never saw), else the id's."""
    if crm is not None and crm.key == "email":
        return crm.key_header or "email"
    return _id_header(profile)


def _record_keys(crm_ids: pd.Series, crm: CrmRows | None) -> pd.Series:
    """Each crm_id as the CRM knows the record: itself, or (e-mail keys) the row's e-mail."""
    if crm is None or crm.key != "email":
        return crm_ids.astype("str")
    return crm_ids.astype("str").map(crm.keys).fillna("").astype("str")


def _id_header(profile: Profile) -> str:
    """The header of the CRM's record id: the one its import matches on when it is an id, else the first."""
    ids = profile.columns.get("crm_id", ())
    if not ids:
        return "crm_id"
    wanted = {header_key(h) for h in (profile.crm_import.columns if profile.crm_import else ())}
    return next((h for h in ids if header_key(h) in wanted), ids[0])


def new_customers(customers: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """New CRM records from Helcim customers (generic columns, ``helcim_id``, ``customer_code``).

    The id column holds the customerCode; which customers to import is the
    sync's decision (:func:`crmsync.sync.pairing.importable`), not this one's.
    """
    id_header = _id_header(profile)
    columns = [c.header for c in crm_columns(profile)]
    if profile.crm_import is not None:  # the system's import file: it assigns the new records' ids
        ordered = [*columns, "helcim_id", "helcim_customer_code"]
    else:
        ordered = [id_header, "helcim_id", "helcim_customer_code", *[c for c in columns if c != id_header]]
    if customers.empty:
        return pd.DataFrame(columns=ordered)
    generic = customers.assign(crm_id="" if profile.crm_import else customers["customer_code"].astype("str"))
    out = to_crm(generic, profile)
    out["helcim_id"] = generic["helcim_id"].astype("int64").to_numpy()
    out["helcim_customer_code"] = generic["customer_code"].astype("str").to_numpy()
    return out.reindex(columns=ordered).sort_values("helcim_id", kind="stable")


def updates(
    changes: pd.DataFrame, customers: pd.DataFrame, profile: Profile, crm: CrmRows | None = None
) -> pd.DataFrame:
    """One row per CRM column whose value the CRM should take from Helcim.

    ``changes`` are the diff's differing cells (crm_id, helcim_id, field, crm,
    helcim, resolution): those resolved ``export`` go to the CRM. ``customers``
    are the Helcim customers (generic columns and helcim_id) they belong to.
    The first column names the record as the CRM knows it (``crm``: its e-mail
    where the e-mail is the key).
    """
    return _updates(_exported(changes, customers, profile), profile, crm)


def _updates(sides: _Exported | None, profile: Profile, crm: CrmRows | None) -> pd.DataFrame:
    """:func:`updates` of the exported changes ``sides``."""
    id_header = _key_header(profile, crm)
    columns = [id_header, "helcim_id", "field", "crm_value", "helcim_value"]
    if sides is None:
        return pd.DataFrame(columns=columns)
    rows = []
    for column in crm_columns(profile):
        if column.fields == ("crm_id",) or column.kind == "empty":
            continue
        old, new = sides.before[column.header], sides.after[column.header]
        for at in np.flatnonzero(sides.changed[column.header].to_numpy()).tolist():
            helcim_id = int(sides.before.index[at])
            rows.append(
                (sides.crm_ids[helcim_id], helcim_id, column.header, str(old.iat[at]), str(new.iat[at]))
            )
    table = pd.DataFrame(rows, columns=columns)
    table[id_header] = _record_keys(table[id_header], crm).to_numpy()
    return table.sort_values([id_header, "field"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class _Exported:
    """The changes resolved ``export``, as the CRM's columns by helcim_id: as the CRM holds them, as
    they should become, which cells Helcim changed, and each customer's crm_id."""

    before: pd.DataFrame
    after: pd.DataFrame
    changed: pd.DataFrame
    crm_ids: dict[int, str]


def _exported(changes: pd.DataFrame, customers: pd.DataFrame, profile: Profile) -> _Exported | None:
    """The changes resolved ``export`` (see :func:`updates`) as the CRM's columns; None without any.
    updates.csv and import_updates.csv both read them: computed once, to_crm runs twice, not four times."""
    exported = changes[changes["resolution"] == "export"] if not changes.empty else changes
    if exported.empty:
        return None
    before, after, fields_of, crm_ids = _before_after(changes, exported, customers, profile)
    return _Exported(before, after, _changed_cells(before, after, fields_of, profile), crm_ids)


def _before_after(
    changes: pd.DataFrame, exported: pd.DataFrame, customers: pd.DataFrame, profile: Profile
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, dict[int, str]]:
    """(the CRM's columns as the CRM holds them, as they should become, fields per customer, crm ids)."""
    ids = exported["helcim_id"].astype("int64").unique()
    helcim = (
        customers[customers["helcim_id"].isin(ids)]
        .set_index("helcim_id")
        .reindex(columns=[*CRM_COLUMNS], fill_value="")
    )
    crm_ids = dict(zip(exported["helcim_id"].astype("int64"), exported["crm_id"].astype("str"), strict=False))
    crm_side = helcim.copy()
    crm_side["crm_id"] = [crm_ids.get(int(h), "") for h in crm_side.index]
    for helcim_id, name, value in changes[changes["helcim_id"].isin(ids)][
        ["helcim_id", "field", "crm"]
    ].itertuples(index=False):
        crm_side.loc[int(helcim_id), name] = "" if pd.isna(value) else str(value)
    helcim_side = crm_side.copy()
    for helcim_id, name, value in exported[["helcim_id", "field", "helcim"]].itertuples(index=False):
        helcim_side.loc[int(helcim_id), name] = "" if pd.isna(value) else str(value)
    fields_of = exported.groupby("helcim_id")["field"].agg(set)
    return to_crm(crm_side, profile), to_crm(helcim_side, profile), fields_of, crm_ids


def _changed_cells(
    before: pd.DataFrame, after: pd.DataFrame, fields_of: pd.Series, profile: Profile
) -> pd.DataFrame:
    """(customer, import column) → whether Helcim changed it: a column made from an exported field
    whose value differs from what the CRM holds."""
    changed = pd.DataFrame(False, index=before.index, columns=list(before.columns))
    for column in crm_columns(profile):
        if column.kind == "empty" or column.fields == ("crm_id",):
            continue
        touched = np.array([bool(set(column.fields) & fields_of[h]) for h in before.index], dtype=bool)
        differs = (
            before[column.header].astype("str").to_numpy() != after[column.header].astype("str").to_numpy()
        )
        changed[column.header] = touched & differs
    return changed


def import_updates(
    changes: pd.DataFrame, customers: pd.DataFrame, profile: Profile, crm: CrmRows | None = None
) -> tuple[pd.DataFrame, int]:
    """The fields changed in Helcim as the system's own import file (``[crm_import]``), and how many
    changed records it leaves out.

    One row per customer with a change, and only what the import needs: the
    column it matches on, then the columns Helcim changed for any customer, in
    the import's order. Every cell is the CRM's own value as its export holds it
    (``crm.own``), except a cell Helcim changed, which holds Helcim's: importing
    the file (even with "overwrite") writes nothing the CRM does not hold
    already but the changes. A record whose own row has no value to match on
    (Shopify's ``Email``, Salesforce's ``Id`` in a report without it) cannot be
    matched: it is left out, and counted, so that the caller says so.
    """
    return _import_updates(_exported(changes, customers, profile), profile, crm)


def _import_updates(
    sides: _Exported | None, profile: Profile, crm: CrmRows | None
) -> tuple[pd.DataFrame, int]:
    """:func:`import_updates` of the exported changes ``sides``."""
    assert profile.crm_import is not None
    columns = [c.header for c in crm_columns(profile)]
    match = next((c for c in columns if header_key(c) == header_key(profile.crm_import.match)), None)
    match = match or profile.crm_import.match
    if sides is None:
        return pd.DataFrame(columns=[match]), 0
    before, after, changed, crm_ids = sides.before, sides.after, sides.changed, sides.crm_ids
    ids = [crm_ids[int(h)] for h in before.index]
    own = (
        crm.own if crm is not None and crm.own is not None else pd.DataFrame(index=pd.Index([], dtype="str"))
    )
    theirs = own.reindex(ids).set_axis(before.index)
    out = pd.DataFrame(index=before.index)
    out[match] = theirs[match].fillna("").astype("str") if match in theirs.columns else ""
    for column in (c for c in columns if c != match and changed[c].any()):
        mine = theirs[column] if column in theirs.columns else before[column]  # as the diff read it, else
        mine = mine.fillna(before[column]).fillna("").astype("str")
        out[column] = after[column].astype("str").where(changed[column], mine)
    with_changes = changed.drop(columns=[match], errors="ignore").any(axis=1)
    matched = out[match].str.strip() != ""
    kept = out[with_changes & matched].reset_index(drop=True)
    return kept, int((with_changes & ~matched).sum())


@dataclass(frozen=True)
class CrmImport:
    """What :func:`write_crm_import` wrote, and what a person must know about it."""

    files: dict[str, str]
    warnings: list[str]


def write_crm_import(
    out_dir: Path,
    *,
    profile: Profile | str,
    new: pd.DataFrame,
    changes: pd.DataFrame,
    customers: pd.DataFrame,
    methods: pd.DataFrame,
    crm: CrmRows | None = None,
) -> CrmImport:
    """Write ``out_dir/crm_import/`` (see the module docstring).

    ``new``: the Helcim customers to import as new records; ``changes`` and
    ``customers``: see :func:`updates` (both empty without a CRM export: then
    new_customers.csv and updates.csv hold their header only); ``methods``: the
    reconciliation's payment-method table (``crm_id`` and PAYMENT_METHOD_COLUMNS);
    ``crm``: what the CRM export holds (how it names its records, its own values).
    """
    mapping = profile if isinstance(profile, Profile) else load_profile(profile)
    key_header = _key_header(mapping, crm)
    folder = out_dir / "crm_import"
    sides = _exported(changes, customers, mapping)
    renamed = methods.assign(crm_id=_record_keys(methods["crm_id"], crm)).rename(
        columns={"crm_id": key_header}
    )
    files = {
        "new_customers": str(write_csv(new_customers(new, mapping), folder / "new_customers.csv")),
        "updates": str(write_csv(_updates(sides, mapping, crm), folder / "updates.csv")),
        "payment_methods": str(
            write_csv(renamed, folder / "payment_methods.csv", [key_header, *PAYMENT_METHOD_COLUMNS])
        ),
    }
    warnings: list[str] = []
    if mapping.crm_import is not None:
        shaped, unmatched = _import_updates(sides, mapping, crm)
        files["import_updates"] = str(write_csv(shaped, folder / "import_updates.csv"))
        if unmatched:
            warnings.append(
                f"crm_import/import_updates.csv leaves out {unmatched} changed record(s) whose row in the "
                f"export has no {mapping.crm_import.match} (the column {mapping.system}'s import matches "
                "on): update them by hand from crm_import/updates.csv"
            )
    return CrmImport(files, warnings)
